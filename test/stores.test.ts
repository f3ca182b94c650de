import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { format, inspect } from "node:util";
import fc from "fast-check";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import { afterAll, describe, expect, it } from "vitest";
import { createKeyv } from "../src/create-keyv.ts";
import { ConfigError } from "../src/errors.ts";
import { KEY_LIMITS, type KeyLimits } from "../src/key-limits.ts";
import { SqliteStore } from "../src/sqlite-store.ts";
import { signedStore } from "../src/store.ts";
import { redactUrl, storeFromUrl } from "../src/stores.ts";
import { backendBehaviours } from "./support/backends.ts";
import { SECRET } from "./support/secrets.ts";

const dir = mkdtempSync(join(tmpdir(), "signed-cache-stores-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("storeFromUrl", () => {
  it("memory:// gives a new, empty Map on every call", () => {
    const first = storeFromUrl("memory://");
    const second = storeFromUrl("memory://");
    expect(first).toBeInstanceOf(Map);
    expect(first).not.toBe(second);
  });

  it("rejects an unknown scheme, listing the supported ones without echoing the URL", () => {
    const attempt = () => storeFromUrl("mongodb://admin:hunter2@db.example/cache");
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/mongodb:.*supported: memory:\/\/, sqlite:\/\/, redis:\/\//);
    expect(attempt).not.toThrow(/hunter2/);
    expect(() => storeFromUrl("localhost:6379")).toThrow(/without a scheme/);
    expect(() => storeFromUrl("")).toThrow(ConfigError);
  });

  it("rejects a table name that is not a plain identifier", () => {
    expect(() => storeFromUrl("sqlite://x.sqlite?table=keyv;DROP")).toThrow(/table/);
    expect(() => storeFromUrl("postgres://localhost/db?table=a-b")).toThrow(ConfigError);
  });

  it("sqlite:// paths are relative to the working directory; a missing directory is a ConfigError", async () => {
    const cwd = process.cwd();
    process.chdir(dir);
    let store: ReturnType<typeof signedStore>;
    try {
      store = signedStore(storeFromUrl("sqlite://relative.sqlite"), SECRET);
    } finally {
      process.chdir(cwd);
    }
    const keyv = new Keyv({ store });
    await keyv.set("k", "v");
    expect(await keyv.get("k")).toBe("v");
    await keyv.disconnect();
    expect(existsSync(join(dir, "relative.sqlite"))).toBe(true);
    expect(() => storeFromUrl(`sqlite://${join(dir, "missing", "c.sqlite")}`)).toThrow(
      /directory that does not exist/,
    );
  });

  it("names the package to install when an adapter is missing", () => {
    // A copy of the sources next to a node_modules holding keyv and nothing else.
    const app = join(dir, "app");
    cpSync(resolve("src"), join(app, "src"), { recursive: true });
    mkdirSync(join(app, "node_modules"));
    symlinkSync(resolve("node_modules/keyv"), join(app, "node_modules/keyv"));
    const script = `
      import { storeFromUrl } from "./src/stores.ts";
      for (const url of ["redis://localhost", "postgres://localhost/db", "mysql://localhost/db"]) {
        try { storeFromUrl(url); } catch (error) { console.log(error.name + ": " + error.message); }
      }`;
    const output = execFileSync(resolve("node_modules/.bin/tsx"), ["--eval", script], {
      cwd: app,
      encoding: "utf8",
    });
    expect(output).toContain(
      "ConfigError: this store URL needs @keyv/redis: npm install @keyv/redis",
    );
    expect(output).toContain("npm install @keyv/postgres");
    expect(output).toContain("npm install @keyv/mysql");
  });
});

describe("redactUrl", () => {
  it.each([
    ["postgres://user:password@127.0.0.1/test", "postgres://user:***@127.0.0.1/test"],
    ["mysql://app:p%40ss@db:3306/cache?table=t", "mysql://app:***@db:3306/cache?table=t"],
    ["redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"],
    ["rediss://default:hunter2@cache:6380", "rediss://default:***@cache:6380"],
    // Unencoded @ in the password: the last @ before the path ends the user part.
    ["mysql://app:p@ss@db/cache", "mysql://app:***@db/cache"],
  ])("masks the password of %s, keeping the rest as written", (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it.each([
    "redis://cache:6379",
    "redis://user@cache:6379",
    "sqlite://http_cache.sqlite",
    "sqlite:///var/cache/a.sqlite?table=t",
    "memory://",
    "localhost:6379",
  ])("leaves %s, which has no password, alone", (url) => {
    expect(redactUrl(url)).toBe(url);
  });

  it.each([
    ["redis://:hunter2@[bad", "redis://***@[bad"],
    ["redis://app:hun/ter2@cache", "redis://***@cache"],
    ["redis://app:123?hunter2@cache", "redis://***@cache"],
  ])(
    "masks everything between // and @ in %s, where the password's end is unclear",
    (url, shown) => {
      expect(redactUrl(url)).toBe(shown);
    },
  );

  it("never throws and never returns the password, whatever it holds", () => {
    expect(redactUrl(undefined as unknown as string)).toBeTypeOf("string");
    fc.assert(
      fc.property(
        fc
          .string({ minLength: 1, unit: "binary" })
          .filter((password) => !/[\t\n\r]/.test(password)),
        (password) => {
          const shown = redactUrl(`redis://app:${password}@cache:6379/0`);
          expect(["redis://app:***@cache:6379/0", "redis://***@cache:6379/0"]).toContain(shown);
        },
      ),
    );
  });
});

describe("adapters from storeFromUrl", () => {
  it("never end the process with an error event nobody heard (etcd closed at once)", async () => {
    const crashes: unknown[] = [];
    const record = (error: unknown) => crashes.push(error);
    process.on("uncaughtException", record);
    try {
      // @keyv/etcd's first call fails once the client is closed, and reports it as an event.
      const adapter = storeFromUrl("etcd://127.0.0.1:1") as { disconnect(): Promise<void> };
      await adapter.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      process.off("uncaughtException", record);
    }
    expect(crashes).toEqual([]);
  });

  const password = "s3cr3t-Pa55word";

  it.each([
    ["redis", `redis://app:${password}@127.0.0.1:6379/0`, "redis://app:***@127.0.0.1:6379/0"],
    ["rediss", `rediss://:${password}@127.0.0.1:6380`, "rediss://:***@127.0.0.1:6380"],
  ])("a %s:// adapter never shows its password when inspected", async (_, url, shown) => {
    // The Redis adapter connects on first use: nothing here reaches a server.
    const adapter = storeFromUrl(url) as KeyvStoreAdapter;
    adapter.namespace = "api";
    for (const options of [{ depth: 10 }, { depth: 10, showHidden: true }, { depth: 0 }]) {
      expect(inspect(adapter, options)).not.toContain(password);
    }
    expect(format("%o %O %s", adapter, adapter, adapter)).not.toContain(password);
    expect(inspect(adapter)).toBe(`KeyvRedis { url: '${shown}', namespace: 'api' }`);
    await adapter.disconnect?.();
  });

  it.each([
    ["postgres", `postgres://app:${password}@127.0.0.1:1/test`],
    ["mysql", `mysql://app:${password}@127.0.0.1:1/test`],
    ["redis", `redis://app:${password}@127.0.0.1:1`],
  ])("a %s:// adapter serializes to JSON without its password (JSON loggers)", async (_, url) => {
    const adapter = storeFromUrl(url) as KeyvStoreAdapter;
    const keyv = createKeyv({ store: adapter, secret: SECRET, onError: () => {} });
    for (const shown of [JSON.stringify(adapter), JSON.stringify({ store: keyv.store })]) {
      expect(shown).not.toContain(password);
    }
    expect(JSON.parse(JSON.stringify(adapter))).toMatchObject({ url: redactUrl(url) });
    await keyv.disconnect().catch(() => {});
  });

  it("a sqlite:// adapter declares the keys it stores faithfully and inspects to its URL", async () => {
    const url = `sqlite://${join(dir, "limits.sqlite")}`;
    const adapter = storeFromUrl(url) as KeyvStoreAdapter & { [KEY_LIMITS]: KeyLimits };
    expect(adapter[KEY_LIMITS]).toEqual({ maxBytes: 1024 * 1024, nul: false });
    expect(inspect(adapter, { breakLength: Number.POSITIVE_INFINITY })).toBe(
      `KeyvSqlite { url: '${url}', namespace: undefined }`,
    );
    await adapter.disconnect?.();
  });
});

describe("signedStore over sqlite:// from storeFromUrl", async () => {
  const file = join(dir, "behaviours.sqlite");
  const TABLE = "sc_backends_sqlite";

  // A connection of its own, through the same SQLite library as the store: two copies of SQLite
  // in one process (sqlite3's beside it) do not see each other's locks, and in WAL mode one
  // closing deletes the log the other is using.
  async function run<T>(sql: string, params: unknown[], all = false): Promise<T> {
    const db = new SqliteStore({ file, table: TABLE });
    try {
      const rows = await db.query(sql, params);
      return (all ? rows[0] : undefined) as T;
    } finally {
      await db.disconnect();
    }
  }

  backendBehaviours({
    store: () => storeFromUrl(`sqlite://${file}?table=${TABLE}`),
    // The built-in store keeps Keyv's `namespace:key` in one column, under either Keyv major.
    read: async (namespace, key) =>
      (
        await run<{ value: string } | undefined>(
          `SELECT value FROM ${TABLE} WHERE key = ?`,
          [`${namespace}:${key}`],
          true,
        )
      )?.value,
    write: (namespace, key, value) =>
      run(
        `INSERT INTO ${TABLE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
        [`${namespace}:${key}`, value],
      ),
  });
});
