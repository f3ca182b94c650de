import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectEnvelope } from "../src/envelope.ts";
import { Keyring, type Secret } from "../src/keyring.ts";
import { type SignedStoreOptions, signedStore } from "../src/store.ts";
import { storeFromUrl } from "../src/stores.ts";
import { adapterKey, fullKeyOf } from "./support/adapters.ts";
import { backendOrSkip, findBackend } from "./support/backends.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "./support/secrets.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
// Absolute, so that the CLI also runs from a directory without node_modules.
const tsx = pathToFileURL(join(root, "node_modules/tsx/dist/loader.mjs")).href;
const script = join(root, "src/cli.ts");
const dir = mkdtempSync(join(tmpdir(), "signed-cache-cli-"));
const sqliteUrl = (name: string) => `sqlite://${join(dir, name)}`;
const url = sqliteUrl("cache.sqlite");
const kidOf = (secret: Secret) => new Keyring(secret).current.kid;

async function cli(args: string[], env: Record<string, string> = {}, cwd = root) {
  const base = {
    PATH: process.env.PATH ?? "",
    SIGNED_CACHE_SECRET: SECRET,
    SIGNED_CACHE_SECRET_FALLBACKS: OLD_SECRET,
    SIGNED_CACHE_URL: url,
  };
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", tsx, script, ...args], {
      env: { ...base, ...env },
      cwd,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** A Keyv over a signed SQLite store of `url`, in `namespace`. */
function keyvAt(
  at: string,
  namespace: string,
  secret: Secret,
  options: SignedStoreOptions = {},
): Keyv {
  return new Keyv({ store: signedStore(storeFromUrl(at), secret, options), namespace });
}

/** The store the CLI opens for `at`, unsigned: what someone with write access to it sees. */
function rawAt(at: string, namespace: string): KeyvStoreAdapter {
  const adapter = storeFromUrl(at) as KeyvStoreAdapter;
  adapter.namespace = namespace;
  return adapter;
}

/** Reads, below the signed store, the entry stored as `fullKey` (`namespace:key`). */
async function rawGet(at: string, fullKey: string): Promise<unknown> {
  const namespace = fullKey.slice(0, fullKey.indexOf(":"));
  const raw = rawAt(at, namespace);
  try {
    return await raw.get(adapterKey(raw, namespace, fullKey));
  } finally {
    await raw.disconnect?.();
  }
}

/** Writes, below the signed store, `text` as the entry stored as `fullKey`. */
async function rawSet(at: string, fullKey: string, text: string): Promise<void> {
  const namespace = fullKey.slice(0, fullKey.indexOf(":"));
  const raw = rawAt(at, namespace);
  try {
    await raw.set(adapterKey(raw, namespace, fullKey), text);
  } finally {
    await raw.disconnect?.();
  }
}

/** Replaces `false` by `true` in a stored envelope: a MAC mismatch with a header that parses. */
async function tamper(at: string, key: string): Promise<void> {
  await rawSet(at, key, String(await rawGet(at, key)).replace("false", "true"));
}

/** Keys stored in a namespace, read from the backend itself. */
async function storedKeys(at: string, namespace: string): Promise<string[]> {
  const keys: string[] = [];
  const raw = rawAt(at, namespace);
  for await (const [key] of raw.iterator?.(namespace) ?? []) {
    keys.push(fullKeyOf(raw, namespace, String(key)));
  }
  await raw.disconnect?.();
  return keys.sort();
}

/** The CLI over the SQLite store at `at`. */
const cliAt =
  (at: string) =>
  (args: string[], env: Record<string, string> = {}) =>
    cli(args, { SIGNED_CACHE_URL: at, ...env });

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function seed(): Promise<void> {
  const current = keyvAt(url, "app", SECRET);
  for (const name of ["a", "b", "c"]) await current.set(name, { name });
  // Long enough to be written under either Keyv major (Keyv 6 hands over an absolute expiry,
  // already past if a millisecond went by), short enough to have expired when the CLI runs.
  await current.set("soon", "gone", 30);
  await keyvAt(url, "app", OLD_SECRET).set("old", "from last month");
  await keyvAt(url, "app", OTHER_SECRET).set("forged", "admin");
  await current.set("tampered", { admin: false });
  await tamper(url, "app:tampered");
  await rawSet(url, "app:legacy", JSON.stringify({ value: "plain", expires: null }));
  await keyvAt(url, "other", SECRET).set("x", 1);
  await pause(60);
}

beforeAll(seed, 30_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("signed-cache CLI", () => {
  it("keygen prints a fresh base64url secret", async () => {
    const first = await cli(["keygen"]);
    const second = await cli(["keygen", "--bytes", "64"]);
    expect(first.stdout.trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(second.stdout.trim()).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(JSON.parse((await cli(["keygen", "--json"])).stdout).secret).toHaveLength(43);
    const short = await cli(["keygen", "--bytes", "8"]);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/32 to 1024/);
  });

  it("verify --json counts every entry of the namespace and exits 1 on invalid ones", async () => {
    const result = await cli(["verify", "--namespace", "app", "--json"]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({
      scanned: 8,
      valid: 3,
      fallback: 1,
      invalid: 3,
      expired: 1,
      reasons: { "unknown-key": 1, mismatch: 1, unsigned: 1 },
    });
  });

  it("without the fallback secret, old entries count as unknown-key", async () => {
    const result = await cli(["verify", "--namespace", "app", "--json"], {
      SIGNED_CACHE_SECRET_FALLBACKS: "",
    });
    expect(JSON.parse(result.stdout)).toMatchObject({ fallback: 0, invalid: 4 });
  });

  it("stats counts by key id without changing anything", async () => {
    const result = await cli(["stats", "--namespace", "app", "--json"]);
    const stats = JSON.parse(result.stdout);
    expect(result.code).toBe(0);
    expect(stats.scanned).toBe(8);
    expect(stats.current).toBe(kidOf(SECRET));
    expect(stats.fallbacks).toEqual([kidOf(OLD_SECRET)]);
    // Verified entries (valid, fallback, expired) by the key id that signed them…
    expect(stats.kids).toEqual({ [kidOf(SECRET)]: 4, [kidOf(OLD_SECRET)]: 1 });
    // …and invalid ones, apart, by the key id they claim: a forger chooses it.
    expect(stats.unverifiedKids).toEqual({ [kidOf(SECRET)]: 1, [kidOf(OTHER_SECRET)]: 1 });
    const text = await cli(["stats", "--namespace", "app"]);
    expect(text.stdout).toMatch(/claimed by invalid entries \(unverified\)/);
    expect(text.stdout).toContain(`key id ${kidOf(OTHER_SECRET)} (not configured): 1 entries`);
    expect(text.stdout).toContain(`key id ${kidOf(OLD_SECRET)} (fallback): 1 entries`);
  });

  it("says which namespaces hold entries when the one walked is empty", async () => {
    // Entries live under app and other; the default namespace is keyv.
    const text = await cli(["verify"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/0 scanned/);
    expect(text.stderr).toMatch(/no entries in namespace keyv; entries exist under app, other/);
    expect(text.stderr).toMatch(/--namespace/);
    // JSON output stays exactly the documented object; the hint goes to stderr.
    const json = await cli(["verify", "--json"]);
    expect(JSON.parse(json.stdout)).toEqual({
      scanned: 0,
      valid: 0,
      fallback: 0,
      invalid: 0,
      expired: 0,
      reasons: {},
    });
    expect(json.stderr).toMatch(/entries exist under app, other/);
  });

  it("resign moves fallback entries to the current key, then purge --force removes the bad ones", async () => {
    const resigned = JSON.parse((await cli(["resign", "--namespace", "app", "--json"])).stdout);
    expect(resigned).toMatchObject({ fallback: 1, resigned: 1 });
    const purged = await cli(["purge", "--namespace", "app", "--force", "--json"]);
    expect(purged.code).toBe(0);
    expect(JSON.parse(purged.stdout)).toMatchObject({
      invalid: 3,
      expired: 1,
      dryRun: false,
      deleted: 4,
      deletedReasons: { "unknown-key": 1, mismatch: 1, unsigned: 1, expired: 1 },
      refused: {},
    });

    const after = await cli(["verify", "--namespace", "app", "--json"], {
      SIGNED_CACHE_SECRET_FALLBACKS: "",
    });
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout)).toEqual({
      scanned: 4,
      valid: 4,
      fallback: 0,
      invalid: 0,
      expired: 0,
      reasons: {},
    });
    // Another namespace in the same table is untouched.
    expect(JSON.parse((await cli(["verify", "--namespace", "other", "--json"])).stdout).valid).toBe(
      1,
    );
  });

  it("prints a readable summary without --json", async () => {
    const result = await cli(["verify", "--namespace", "app"]);
    expect(result.stdout).toMatch(/4 scanned/);
    expect(result.stdout).toMatch(/4 valid/);
  });

  it("fails with a clear message, never the secret, when the secret is missing or short", async () => {
    const missing = await cli(["verify"], { SIGNED_CACHE_SECRET: "" });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/SIGNED_CACHE_SECRET/);
    const short = await cli(["verify"], { SIGNED_CACHE_SECRET: "not-long-enough-secret" });
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/ConfigError/);
    expect(short.stderr).not.toContain("not-long-enough-secret");
  });

  it("rejects an unknown store URL with the supported schemes", async () => {
    const result = await cli(["verify", "--url", "ftp://example"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/redis:\/\//);
  });
});

describe("exit codes", () => {
  it("usage errors exit 2: an unknown option, command or argument, or no command", async () => {
    const runs = await Promise.all([
      cli(["verify", "--bogus"]),
      cli(["frobnicate"]),
      cli(["purge", "--kid", "not-a-kid"]),
      cli(["verify", "extra-argument"]),
      cli([]),
    ]);
    for (const { code } of runs) expect(code).toBe(2);
    expect(runs[0]?.stderr).toMatch(/unknown option '--bogus'/);
    expect(runs[2]?.stderr).toMatch(/8 base64url characters/);
    expect((await cli(["--help"])).code).toBe(0);
  });

  it("configuration errors exit 2", async () => {
    const runs = await Promise.all([
      cli(["verify", "--namespace", "a:b"]),
      cli(["verify", "--namespace", "app"], { SIGNED_CACHE_ALGORITHM: "md5" }),
      // A store that reads sha512 only cannot write its sha256.
      cli(["verify", "--namespace", "app"], { SIGNED_CACHE_ALGORITHMS: "sha512" }),
    ]);
    for (const { code, stderr } of runs) {
      expect(code).toBe(2);
      expect(stderr).toMatch(/ConfigError/);
    }
  });
});

describe("read-only commands never create a store", () => {
  it("refuses a SQLite file that does not exist, from another working directory", async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), "signed-cache-cwd-"));
    try {
      const commands = [
        ["verify"],
        ["stats"],
        ["purge", "--dry-run"],
        ["resign"],
        ["purge"],
        ["verify", "--url", "sqlite://nowhere.sqlite"],
      ];
      // Without SIGNED_CACHE_URL: the default, sqlite://http_cache.sqlite, in this directory.
      const runs = await Promise.all(
        commands.map((args) => cli(args, { SIGNED_CACHE_URL: "" }, elsewhere)),
      );
      for (const { code, stdout, stderr } of runs) {
        expect(code).toBe(2);
        expect(stdout).toBe("");
        expect(stderr).toMatch(/ConfigError: no SQLite store at .*(http_cache|nowhere)\.sqlite/);
      }
      expect(readdirSync(elsewhere)).toEqual([]);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});

describe("resign never lowers an entry's protection", () => {
  const at = sqliteUrl("resign.sqlite");
  const run = cliAt(at);
  const ttl = 3_600_000;
  const everyAlgorithm = { SIGNED_CACHE_ALGORITHMS: "sha256,sha512,aes-256-gcm,blake2b512" };

  /** Writes entries under the old secret, resigns through the CLI, returns headers before and after. */
  async function resignThroughCli(
    namespace: string,
    entries: [key: string, options: SignedStoreOptions][],
    env: Record<string, string>,
  ) {
    for (const [key, options] of entries) {
      await keyvAt(at, namespace, OLD_SECRET, options).set(
        key,
        { secret: "4111", admin: false },
        ttl,
      );
    }
    const raw = { get: (fullKey: string) => rawGet(at, fullKey) };
    const header = async (key: string) => inspectEnvelope(await raw.get(`${namespace}:${key}`));
    const before = await Promise.all(entries.map(([key]) => header(key)));
    const result = await run(["resign", "--namespace", namespace, "--json"], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      scanned: entries.length,
      fallback: entries.length,
      invalid: 0,
      resigned: entries.length,
    });
    const after = await Promise.all(entries.map(([key]) => header(key)));
    return { before, after, raw };
  }

  it("keeps encryption, a longer digest, the signed expiry and the purpose", async () => {
    const { before, after, raw } = await resignThroughCli(
      "keep",
      [
        ["encrypted", { encrypt: true, purpose: "sessions" }],
        ["sha512", { algorithm: "sha512" }],
        ["blake", { algorithm: "blake2b512", purpose: "axios" }],
        ["sha256", {}],
      ],
      everyAlgorithm,
    );
    expect(after.map((header) => header.algorithm)).toEqual(["a256gcm", "hs512", "hb512", "hs256"]);
    after.forEach((header, index) => {
      expect(header).toEqual({ ...before[index], kid: kidOf(SECRET) });
    });
    expect(String(await raw.get("keep:encrypted"))).not.toContain("4111");
    // The new secret alone now reads each entry, for its own purpose.
    const reader = keyvAt(at, "keep", SECRET, {
      purpose: "sessions",
      encrypt: true,
      algorithms: ["aes-256-gcm"],
    });
    expect(await reader.get("encrypted")).toEqual({ secret: "4111", admin: false });
    const verify = await run(["verify", "--namespace", "keep", "--json"], {
      ...everyAlgorithm,
      SIGNED_CACHE_SECRET_FALLBACKS: "",
    });
    expect(JSON.parse(verify.stdout)).toMatchObject({ scanned: 4, valid: 4, invalid: 0 });
  });

  it("raises protection to the configured one when that is stronger", async () => {
    const { before, after } = await resignThroughCli(
      "raise",
      [
        ["sha256", {}],
        ["sha512", { algorithm: "sha512" }],
      ],
      { ...everyAlgorithm, SIGNED_CACHE_ENCRYPT: "true" },
    );
    expect(after.map((header) => header.algorithm)).toEqual(["a256gcm", "a256gcm"]);
    after.forEach((header, index) => {
      expect(header.expiresAt).toBe(before[index]?.expiresAt);
      expect(header.purpose).toBe(before[index]?.purpose);
    });
  });
});

describe("purge under another configuration deletes nothing", () => {
  const at = sqliteUrl("refuse.sqlite");
  const run = cliAt(at);

  beforeAll(async () => {
    const bulk = keyvAt(at, "bulk", SECRET);
    for (let index = 0; index < 100; index++) await bulk.set(`entry-${index}`, { index });
    const strong = keyvAt(at, "strong", SECRET, { algorithm: "sha512" });
    for (let index = 0; index < 10; index++) await strong.set(`entry-${index}`, { index });
    const mixed = keyvAt(at, "mixed", SECRET);
    await mixed.set("a", 1);
    await mixed.set("b", 2);
    await mixed.set("soon", "gone", 1);
    await mixed.set("tampered", { admin: false });
    await tamper(at, "mixed:tampered");
    await keyvAt(at, "mixed", OTHER_SECRET).set("foreign", "signed elsewhere");
    await pause(10);
  }, 30_000);

  it("refuses (exit 2) when entries fail only for an unknown key id: a wrong secret", async () => {
    const wrong = { SIGNED_CACHE_SECRET: OTHER_SECRET, SIGNED_CACHE_SECRET_FALLBACKS: "" };
    const text = await run(["purge", "--namespace", "bulk"], wrong);
    expect(text.code).toBe(2);
    expect(text.stderr).toMatch(/refusing to purge: 100 signed by key ids/);
    expect(text.stderr).toContain(`${kidOf(SECRET)}: 100`);
    expect(text.stderr).toMatch(/nothing was deleted.*--force/s);
    const json = await run(["purge", "--namespace", "bulk", "--json"], wrong);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({
      scanned: 100,
      invalid: 100,
      deleted: 0,
      deletedReasons: {},
      refused: { "unknown-key": 100 },
    });
    expect(await storedKeys(at, "bulk")).toHaveLength(100);
    const verify = await run(["verify", "--namespace", "bulk", "--json"]);
    expect(JSON.parse(verify.stdout)).toMatchObject({ valid: 100, invalid: 0 });
  });

  it("refuses when their algorithm is not accepted, and deletes nothing once it is", async () => {
    const refused = await run(["purge", "--namespace", "strong", "--json"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/10 written with an algorithm it does not accept/);
    expect(JSON.parse(refused.stdout)).toMatchObject({
      deleted: 0,
      refused: { "unsupported-version": 10 },
    });
    const accepted = await run(["purge", "--namespace", "strong", "--json"], {
      SIGNED_CACHE_ALGORITHMS: "sha256,sha512",
    });
    expect(accepted.code).toBe(0);
    expect(JSON.parse(accepted.stdout)).toMatchObject({ valid: 10, deleted: 0, refused: {} });
    expect(await storedKeys(at, "strong")).toHaveLength(10);
  });

  it("--dry-run reports by reason; a refusal deletes nothing, not even tampered entries; --force deletes", async () => {
    const all = await storedKeys(at, "mixed");
    expect(all).toHaveLength(5);

    const dry = await run(["purge", "--namespace", "mixed", "--dry-run", "--json"]);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({
      dryRun: true,
      deleted: 2,
      deletedReasons: { mismatch: 1, expired: 1 },
      refused: { "unknown-key": 1 },
    });
    const dryText = await run(["purge", "--namespace", "mixed", "--dry-run"]);
    expect(dryText.stdout).toMatch(/would delete 2 \(expired: 1, mismatch: 1\)/);
    expect(dryText.stdout).toMatch(/purge would refuse without --force/);
    expect(await storedKeys(at, "mixed")).toEqual(all);

    // The check runs as a first, read-only pass: the tampered entry is still there.
    const refused = await run(["purge", "--namespace", "mixed"]);
    expect(refused.code).toBe(2);
    expect(await storedKeys(at, "mixed")).toEqual(all);

    const forced = await run(["purge", "--namespace", "mixed", "--force", "--json"]);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({
      deleted: 3,
      deletedReasons: { "unknown-key": 1, mismatch: 1, expired: 1 },
    });
    expect(await storedKeys(at, "mixed")).toEqual(["mixed:a", "mixed:b"]);
  });
});

describe("purge --kid revokes one secret", () => {
  const at = sqliteUrl("revoke.sqlite");
  const run = cliAt(at);
  const leaked = kidOf(OLD_SECRET);

  beforeAll(async () => {
    const byLeaked = keyvAt(at, "rev", OLD_SECRET);
    await byLeaked.set("one", 1);
    await byLeaked.set("two", 2);
    await byLeaked.set("soon", "gone", 1);
    await byLeaked.set("tampered", { admin: false });
    await tamper(at, "rev:tampered");
    const current = keyvAt(at, "rev", SECRET);
    await current.set("keep-1", 1);
    await current.set("keep-2", 2);
    await keyvAt(at, "rev", OTHER_SECRET).set("foreign", "signed elsewhere");
    await pause(10);
  }, 30_000);

  it("--dry-run counts what the secret signed, deletes nothing, and warns while it is configured", async () => {
    const dry = await run(["purge", "--namespace", "rev", "--kid", leaked, "--dry-run", "--json"]);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({
      dryRun: true,
      kid: leaked,
      deleted: 4,
      deletedReasons: { revoked: 2, expired: 1, mismatch: 1 },
      refused: {},
    });
    expect(dry.stderr).toMatch(/still a configured fallback/);
    expect(await storedKeys(at, "rev")).toHaveLength(7);
  });

  it("deletes every entry the secret signed once it is dropped, and nothing else", async () => {
    const result = await run(["purge", "--namespace", "rev", "--kid", leaked, "--json"], {
      SIGNED_CACHE_SECRET_FALLBACKS: "",
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    // Unknown to this configuration now, and deleted anyway: --kid names them.
    expect(JSON.parse(result.stdout)).toMatchObject({
      deleted: 4,
      deletedReasons: { "unknown-key": 4 },
      refused: {},
    });
    expect(await storedKeys(at, "rev")).toEqual(["rev:foreign", "rev:keep-1", "rev:keep-2"]);
  });

  it("refuses the current secret's key id without --force", async () => {
    const result = await run(["purge", "--namespace", "rev", "--kid", kidOf(SECRET)]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/current secret's key id/);
    expect(await storedKeys(at, "rev")).toHaveLength(3);
  });
});

describe("a store the walk cannot finish", () => {
  it("every store command exits 2 with a StoreError, never reports an empty store as clean", async () => {
    const commands = [
      ["verify"],
      ["stats"],
      ["resign"],
      ["purge"],
      ["purge", "--dry-run"],
      ["purge", "--kid", kidOf(OTHER_SECRET)],
    ];
    const runs = await Promise.all(
      commands.map((args) =>
        cli([...args, "--json"], { SIGNED_CACHE_URL: "postgres://postgres@127.0.0.1:1/test" }),
      ),
    );
    for (const { code, stdout, stderr } of runs) {
      expect(code).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toMatch(/StoreError: store (walk|check) failed/);
    }
  });
});

const servers = await Promise.all([
  findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379"),
  findBackend("PostgreSQL", "POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"),
  findBackend("MariaDB/MySQL", "MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
]);
// Each in a place of its own (a Redis database, a table), so the namespaces listed are ours.
const hintUrls: Record<string, string> = {
  Redis: `${servers[0].url.replace(/\/\d*$/, "")}/11`,
  PostgreSQL: `${servers[1].url}?table=sc_cli_hint`,
  "MariaDB/MySQL": `${servers[2].url}?table=sc_cli_hint`,
};

describe("the namespace hint on server backends", () => {
  it.each(servers)("$name: names the namespace that holds the entries", async (server) => {
    if (!backendOrSkip(server, "its namespace hint test")) return;
    const at = hintUrls[server.name] as string;
    const namespace = `hint-${randomBytes(4).toString("hex")}`;
    if (server.name === "Redis") {
      // Database 11 is this test's own: start it empty, so that the keys the hint samples are ours.
      const client = await createClient({ url: at }).connect();
      await client.flushDb();
      await client.quit();
    }
    const keyv = new Keyv({ store: signedStore(storeFromUrl(at), SECRET), namespace });
    try {
      await keyv.set("entry", 1);
      const result = await cli(["verify", "--url", at, "--namespace", "empty"]);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/0 scanned/);
      expect(result.stderr).toContain(namespace);
    } finally {
      await keyv.clear();
      await keyv.disconnect();
    }
  });
});

describe("finishing a signed → encrypted migration", () => {
  it("resign raises current-key entries to encryption, and stats shows when none is left", async () => {
    const file = join(dir, "migrate.sqlite");
    const migrateUrl = `sqlite://${file}`;
    const plain = new Keyv({
      store: signedStore(storeFromUrl(migrateUrl), SECRET),
      namespace: "app",
    });
    await plain.set("card", "4111111111111111");
    await plain.disconnect();
    const env = {
      SIGNED_CACHE_URL: migrateUrl,
      SIGNED_CACHE_SECRET_FALLBACKS: "",
      SIGNED_CACHE_ENCRYPT: "true",
      SIGNED_CACHE_ALGORITHMS: "aes-256-gcm,sha256",
    };
    const before = JSON.parse((await cli(["stats", "--namespace", "app", "--json"], env)).stdout);
    expect(before.algorithms).toEqual({ sha256: 1 });
    const resigned = await cli(["resign", "--namespace", "app", "--json"], env);
    expect(resigned.code).toBe(0);
    expect(JSON.parse(resigned.stdout).resigned).toBe(1);
    const after = JSON.parse((await cli(["stats", "--namespace", "app", "--json"], env)).stdout);
    expect(after.algorithms).toEqual({ "aes-256-gcm": 1 });
  });
});

describe("a SQL table that does not exist", () => {
  it.each(servers.slice(1))("$name: every command exits 2 and creates nothing", async (server) => {
    if (!backendOrSkip(server, "its missing-table test")) return;
    const table = `sc_cli_missing_${randomBytes(3).toString("hex")}`;
    const url = `${server.url}?table=${table}`;
    for (const command of [["verify"], ["stats"], ["purge", "--dry-run"]]) {
      const result = await cli([...command, "--url", url, "--json"]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/no such table/);
    }
    // Still absent: listing the namespaces of a store that was never there finds nothing.
    const check = await cli(["verify", "--url", url]);
    expect(check.stderr).toMatch(/no such table/);
  });
});
