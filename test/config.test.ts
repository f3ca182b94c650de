import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors.ts";
import { OLD_SECRET, SECRET } from "./support/secrets.ts";

const dir = mkdtempSync(join(tmpdir(), "signed-cache-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, contents: string): string {
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
    });
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
    });
  });

  it("reads _FILE variants, trimmed, and refuses both forms at once", () => {
    const config = readConfig({
      SIGNED_CACHE_SECRET_FILE: file("secret", `${SECRET}\n`),
      SIGNED_CACHE_SECRET_FALLBACKS_FILE: file("fallbacks", `${OLD_SECRET}\n`),
    });
    expect(config.secret).toBe(SECRET);
    expect(config.fallbacks).toEqual([OLD_SECRET]);
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
});
