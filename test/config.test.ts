import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  DEFAULT_MAX_ENTRY_BYTES,
  DEFAULT_MAX_STALE,
  readConfig,
  type SignedCacheConfig,
} from "../src/config.ts";
import { ConfigError } from "../src/errors.ts";
import { Keyring, type Secret } from "../src/keyring.ts";
import { OLD_SECRET, SECRET } from "./support/secrets.ts";

const dir = mkdtempSync(join(tmpdir(), "signed-cache-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, contents: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, contents);
  return path;
}

describe("readConfig", () => {
  it("fills in defaults for an empty environment", () => {
    expect(readConfig({})).toEqual({
      secret: undefined,
      fallbacks: [],
      url: "sqlite://http_cache.sqlite",
      namespace: undefined,
      ttl: undefined,
      strict: false,
      encrypt: false,
      resign: false,
      storeTimeout: 1000,
      algorithm: "sha256",
      algorithms: undefined,
      maxStale: 86_400_000,
      maxEntryBytes: 32 * 1024 * 1024,
    });
    expect([DEFAULT_MAX_STALE, DEFAULT_MAX_ENTRY_BYTES]).toEqual([86_400_000, 33_554_432]);
  });

  it("reads every variable", () => {
    const config = readConfig({
      SIGNED_CACHE_SECRET: SECRET,
      SIGNED_CACHE_SECRET_FALLBACKS: ` ${OLD_SECRET} , ${SECRET},`,
      SIGNED_CACHE_URL: "redis://cache:6379",
      SIGNED_CACHE_NAMESPACE: "http",
      SIGNED_CACHE_TTL: "60000",
      SIGNED_CACHE_STRICT: "TRUE",
      SIGNED_CACHE_ENCRYPT: "1",
      SIGNED_CACHE_RESIGN: "false",
      SIGNED_CACHE_STORE_TIMEOUT: "0",
      SIGNED_CACHE_ALGORITHM: "SHA512",
      SIGNED_CACHE_ALGORITHMS: " sha512, aes-256-gcm ,sha256",
      SIGNED_CACHE_MAX_STALE: "0",
      SIGNED_CACHE_MAX_ENTRY_BYTES: "1024",
    });
    expect(config).toEqual({
      secret: SECRET,
      fallbacks: [OLD_SECRET, SECRET],
      url: "redis://cache:6379",
      namespace: "http",
      ttl: 60_000,
      strict: true,
      encrypt: true,
      resign: false,
      storeTimeout: 0,
      algorithm: "sha512",
      algorithms: ["sha512", "aes-256-gcm", "sha256"],
      maxStale: 0,
      maxEntryBytes: 1024,
    });
  });

  it("reads _FILE variants, secrets as bytes, and refuses both forms at once", () => {
    const config = readConfig({
      SIGNED_CACHE_SECRET_FILE: file("secret", `${SECRET}\n`),
      SIGNED_CACHE_SECRET_FALLBACKS_FILE: file("fallbacks", `${OLD_SECRET}\n`),
      SIGNED_CACHE_MAX_STALE_FILE: file("max-stale", "60000\n"),
    });
    expect(config.secret).toEqual(Buffer.from(SECRET));
    expect(config.fallbacks).toEqual([Buffer.from(OLD_SECRET)]);
    expect(config.maxStale).toBe(60_000);
    expect(() =>
      readConfig({ SIGNED_CACHE_SECRET: SECRET, SIGNED_CACHE_SECRET_FILE: file("s2", SECRET) }),
    ).toThrow(/SIGNED_CACHE_SECRET or SIGNED_CACHE_SECRET_FILE, not both/);
    expect(() => readConfig({ SIGNED_CACHE_SECRET_FILE: join(dir, "nope") })).toThrow(/ENOENT/);
    expect(() => readConfig({ SIGNED_CACHE_SECRET_FILE: file("empty", "\n") })).toThrow(/empty/);
  });

  it("treats an empty variable as unset", () => {
    expect(readConfig({ SIGNED_CACHE_STRICT: "", SIGNED_CACHE_URL: "" }).url).toBe(
      "sqlite://http_cache.sqlite",
    );
  });

  it.each([
    ["SIGNED_CACHE_STRICT", "yes", /SIGNED_CACHE_STRICT must be true, false, 1 or 0; got "yes"/],
    ["SIGNED_CACHE_ENCRYPT", "2", /SIGNED_CACHE_ENCRYPT/],
    ["SIGNED_CACHE_TTL", "1e3", /SIGNED_CACHE_TTL must be a whole number/],
    ["SIGNED_CACHE_TTL", "0", /at least 1/],
    ["SIGNED_CACHE_TTL", "-5", /SIGNED_CACHE_TTL/],
    ["SIGNED_CACHE_STORE_TIMEOUT", "1.5", /SIGNED_CACHE_STORE_TIMEOUT/],
    ["SIGNED_CACHE_URL", "mongodb://x", /SIGNED_CACHE_URL: unsupported store URL/],
    [
      "SIGNED_CACHE_NAMESPACE",
      "a:b",
      /SIGNED_CACHE_NAMESPACE must be a non-empty string without ':'/,
    ],
    [
      "SIGNED_CACHE_ALGORITHM",
      "md5",
      /SIGNED_CACHE_ALGORITHM must be one of sha256, sha512, blake2b512; got "md5"/,
    ],
    ["SIGNED_CACHE_ALGORITHM", "aes-256-gcm", /SIGNED_CACHE_ALGORITHM must be one of/],
    ["SIGNED_CACHE_ALGORITHMS", "sha256,md5", /SIGNED_CACHE_ALGORITHMS must be a comma-separated/],
    ["SIGNED_CACHE_ALGORITHMS", ",", /SIGNED_CACHE_ALGORITHMS/],
    [
      "SIGNED_CACHE_MAX_STALE",
      "-1",
      /SIGNED_CACHE_MAX_STALE must be a whole number of milliseconds/,
    ],
    ["SIGNED_CACHE_MAX_STALE", "1h", /SIGNED_CACHE_MAX_STALE/],
    ["SIGNED_CACHE_MAX_ENTRY_BYTES", "1023", /SIGNED_CACHE_MAX_ENTRY_BYTES .*at least 1024/],
    ["SIGNED_CACHE_MAX_ENTRY_BYTES", "32MB", /SIGNED_CACHE_MAX_ENTRY_BYTES must be a whole number/],
    ["SIGNED_CACHE_MAX_ENTRY_BYTES", "9".repeat(20), /SIGNED_CACHE_MAX_ENTRY_BYTES/],
  ])("%s=%s is a ConfigError naming the variable", (name, value, message) => {
    expect(() => readConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => readConfig({ [name]: value })).toThrow(message);
  });

  it("rejects short secrets without echoing them", () => {
    const short = "tooshort-but-secret";
    for (const env of [
      { SIGNED_CACHE_SECRET: short },
      { SIGNED_CACHE_SECRET_FALLBACKS: `${SECRET},${short}` },
    ]) {
      let error: unknown;
      try {
        readConfig(env);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(String((error as Error).message)).toMatch(/at least 32/);
      expect(String((error as Error).message)).not.toContain(short);
    }
    expect(() => readConfig({ SIGNED_CACHE_SECRET_FALLBACKS: `${SECRET},x` })).toThrow(
      /SIGNED_CACHE_SECRET_FALLBACKS\[1\]/,
    );
  });

  it("does not echo a malformed URL, which may hold a password", () => {
    expect(() => readConfig({ SIGNED_CACHE_URL: "redis://:hunter2@[bad" })).toThrow(ConfigError);
    expect(() => readConfig({ SIGNED_CACHE_URL: "redis://:hunter2@[bad" })).not.toThrow(/hunter2/);
  });

  it("reads a secret file as bytes: files differing only in non-UTF-8 bytes are different keys", () => {
    const kid = (bytes: number) =>
      new Keyring(
        readConfig({ SIGNED_CACHE_SECRET_FILE: file(`bin-${bytes}`, Buffer.alloc(32, bytes)) })
          .secret as Secret,
      ).current.kid;
    expect(kid(0x80)).not.toBe(kid(0xff));
    const fallbacks = readConfig({
      SIGNED_CACHE_SECRET_FALLBACKS_FILE: file("bin-list", Buffer.alloc(32, 0x80)),
    }).fallbacks;
    expect(fallbacks).toEqual([Buffer.alloc(32, 0x80)]);
  });

  describe("one trimming rule for the variable, the _FILE and each fallback", () => {
    const kids = (config: SignedCacheConfig) =>
      new Keyring(config.secret ?? SECRET, config.fallbacks).kids;
    const expected = new Keyring(SECRET).current.kid;

    it.each([
      ["a trailing newline", `${SECRET}\n`],
      ["CRLF", `${SECRET}\r\n`],
      ["spaces and tabs at both ends", ` \t${SECRET}\t `],
    ])("a secret with %s is the same key in every position", (_, written) => {
      const positions: Record<string, string>[] = [
        { SIGNED_CACHE_SECRET: written },
        { SIGNED_CACHE_SECRET_FILE: file("trim-secret", written) },
        { SIGNED_CACHE_SECRET: OLD_SECRET, SIGNED_CACHE_SECRET_FALLBACKS: written },
        { SIGNED_CACHE_SECRET: OLD_SECRET, SIGNED_CACHE_SECRET_FALLBACKS: `${written},` },
        {
          SIGNED_CACHE_SECRET: OLD_SECRET,
          SIGNED_CACHE_SECRET_FALLBACKS_FILE: file("trim-fallbacks", written),
        },
      ];
      for (const env of positions) expect(kids(readConfig(env))).toContain(expected);
      expect(kids(readConfig({ SIGNED_CACHE_SECRET: written }))).toEqual([expected]);
    });

    it("removes only ASCII whitespace: other spaces are part of the secret", () => {
      for (const edge of ["\u00a0", "\ufeff", "\u2003", "\v", "\f"]) {
        for (const env of [
          { SIGNED_CACHE_SECRET: `${SECRET}${edge}` },
          { SIGNED_CACHE_SECRET_FILE: file("edge", `${SECRET}${edge}`) },
          { SIGNED_CACHE_SECRET: OLD_SECRET, SIGNED_CACHE_SECRET_FALLBACKS: `${edge}${SECRET}` },
        ]) {
          expect(kids(readConfig(env))).not.toContain(expected);
        }
      }
    });

    it("splits fallbacks on commas, and in a file on newlines too, newest first", () => {
      const listed = kids(
        readConfig({
          SIGNED_CACHE_SECRET: SECRET,
          SIGNED_CACHE_SECRET_FALLBACKS_FILE: file("list", `${OLD_SECRET}\r\n\n${SECRET},\n`),
        }),
      );
      expect(listed).toEqual(new Keyring(SECRET, [OLD_SECRET]).kids);
      expect(
        readConfig({ SIGNED_CACHE_SECRET_FALLBACKS: `${OLD_SECRET} ,, ${SECRET}` }).fallbacks,
      ).toEqual([OLD_SECRET, SECRET]);
    });
  });

  describe("messages never show what a file holds", () => {
    // A secret that old messages would have echoed whole, or in part (its "scheme").
    const secret = "mongodb://admin:hunter2-0123456789abcdefghij@db/x";
    const secretFile = file("looks-like-a-url", `${secret}\n`);
    const nonSecret = [
      "SIGNED_CACHE_URL",
      "SIGNED_CACHE_NAMESPACE",
      "SIGNED_CACHE_TTL",
      "SIGNED_CACHE_STRICT",
      "SIGNED_CACHE_ENCRYPT",
      "SIGNED_CACHE_RESIGN",
      "SIGNED_CACHE_STORE_TIMEOUT",
      "SIGNED_CACHE_ALGORITHM",
      "SIGNED_CACHE_ALGORITHMS",
      "SIGNED_CACHE_MAX_STALE",
      "SIGNED_CACHE_MAX_ENTRY_BYTES",
    ];

    function messageOf(env: Record<string, string>): string {
      try {
        readConfig(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      throw new Error("readConfig accepted it");
    }

    it.each(nonSecret)("%s_FILE pointing at a secret names the variable and path only", (name) => {
      const message = messageOf({ [`${name}_FILE`]: secretFile });
      expect(message).toContain(`${name}_FILE (${secretFile})`);
      for (const part of ["hunter2", "mongodb", "admin", "0123456789"]) {
        expect(message).not.toContain(part);
      }
    });

    it("a file that is not UTF-8 is refused without decoding it into the message", () => {
      const message = messageOf({
        SIGNED_CACHE_URL_FILE: file("latin1", Buffer.from([0x72, 0xe9, 0x64])),
      });
      expect(message).toMatch(/SIGNED_CACHE_URL_FILE \(.*\) must hold UTF-8 text/);
    });

    it("a short value typed into the variable is echoed; a long one (a pasted secret) never", () => {
      expect(messageOf({ SIGNED_CACHE_TTL: "10s" })).toMatch(
        /SIGNED_CACHE_TTL must be .*; got "10s"$/,
      );
      const pasted = "a-secret-pasted-in-the-wrong-place-0123456789";
      for (const name of ["SIGNED_CACHE_TTL", "SIGNED_CACHE_ENCRYPT", "SIGNED_CACHE_ALGORITHM"]) {
        const message = messageOf({ [name]: pasted });
        expect(message).toMatch(/got a value of 45 characters \(not shown\)$/);
        expect(message).not.toContain(pasted.slice(0, 8));
      }
    });
  });
});
