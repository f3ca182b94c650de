import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import Keyv from "keyv";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.ts";
import { signedStore } from "../src/store.ts";
import { storeFromUrl } from "../src/stores.ts";
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

describe("signedStore over sqlite:// from storeFromUrl", async () => {
  const sqlite3 = (await import("sqlite3")).default;
  const file = join(dir, "behaviours.sqlite");
  const TABLE = "sc_backends_sqlite";

  function run<T>(sql: string, params: unknown[], all = false): Promise<T> {
    const db = new sqlite3.Database(file);
    return new Promise((done, fail) => {
      const callback = (error: Error | null, result?: unknown) => {
        db.close();
        if (error) fail(error);
        else done(result as T);
      };
      if (all) db.get(sql, params, callback);
      else db.run(sql, params, (error) => callback(error));
    });
  }

  backendBehaviours({
    store: () => storeFromUrl(`sqlite://${file}?table=${TABLE}`),
    physicalKey: (namespace, key) => `${namespace}:${key}`,
    read: async (key) =>
      (
        await run<{ value: string } | undefined>(
          `SELECT value FROM ${TABLE} WHERE key = ?`,
          [key],
          true,
        )
      )?.value,
    write: (key, value) =>
      run(
        `INSERT INTO ${TABLE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
        [key, value],
      ),
  });
});
