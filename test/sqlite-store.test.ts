import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import KeyvSqlite from "@keyv/sqlite";
import Keyv from "keyv";
import { afterAll, describe, expect, it } from "vitest";
import { type SqliteDriver, SqliteStore } from "../src/sqlite-store.ts";
import { adapterMajor, KEYV_MAJOR } from "./support/adapters.ts";
import { keyvCompliance } from "./support/compliance.ts";
import { holdExclusiveLock } from "./support/sqlite-lock.ts";

const dir = mkdtempSync(join(tmpdir(), "signed-cache-sqlite-store-"));
const stores: SqliteStore[] = [];
afterAll(async () => {
  await Promise.all(stores.map((store) => store.disconnect()));
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
function open(driver: SqliteDriver, options: { file?: string; busyTimeout?: number } = {}) {
  const store = new SqliteStore({
    file: options.file ?? join(dir, `${driver.replace(":", "-")}-${files++}.sqlite`),
    drivers: [driver],
    ...(options.busyTimeout === undefined ? {} : { busyTimeout: options.busyTimeout }),
  });
  stores.push(store);
  return store;
}

/** Whether a driver loads on this Node (node:sqlite needs 22.13+; better-sqlite3 its build). */
async function loads(driver: SqliteDriver): Promise<boolean> {
  const probe = new SqliteStore({ file: ":memory:", drivers: [driver] });
  try {
    await probe.get("probe");
    return true;
  } catch {
    return false;
  } finally {
    await probe.disconnect();
  }
}

const drivers: SqliteDriver[] = ["node:sqlite", "better-sqlite3"];
const available = Object.fromEntries(
  await Promise.all(drivers.map(async (driver) => [driver, await loads(driver)] as const)),
) as Record<SqliteDriver, boolean>;

it("at least one driver loads on every supported Node", () => {
  expect(Object.values(available)).toContain(true);
});

for (const driver of drivers) {
  describe.skipIf(!available[driver])(`SqliteStore on ${driver}`, () => {
    describe("@keyv/test-suite", () => {
      const file = join(dir, `${driver.replace(":", "-")}-suite.sqlite`);
      keyvCompliance(() => open(driver, { file }), { iterator: true });
    });

    it("uses the driver asked for, and creates no file before the first call", async () => {
      const file = join(dir, `${driver.replace(":", "-")}-lazy.sqlite`);
      const store = open(driver, { file });
      expect(existsSync(file)).toBe(false);
      expect(store.driver).toBeUndefined();
      expect(await store.get("missing")).toBeUndefined();
      expect(store.driver).toBe(driver);
      expect(existsSync(file)).toBe(true);
    });

    it("keeps Keyv's namespaced keys, lists and clears exactly one namespace", async () => {
      const store = open(driver);
      // `_` and `%` are LIKE wildcards, and LIKE ignores case: none of that may leak.
      const names = ["a_b", "a%b", "A_B", "axb", "a_b2"];
      const keyvs = names.map(
        (namespace) =>
          new Keyv({ store: open(driver, { file: store.opts.url.slice(9) }), namespace }),
      );
      for (const [index, keyv] of keyvs.entries()) {
        for (let i = 0; i < 3; i++) await keyv.set(`k${i}`, `${names[index]}-${i}`);
      }
      const listed: string[] = [];
      for await (const [key] of store.iterator("a_b")) listed.push(key);
      // Keyv 5 prefixes `ns:`; Keyv 6 bridges a store without a namespace of its own with `ns::`.
      const prefix = KEYV_MAJOR === 6 ? "a_b::" : "a_b:";
      expect(listed).toEqual([`${prefix}k0`, `${prefix}k1`, `${prefix}k2`]);
      await keyvs[0]?.clear();
      expect(await keyvs[0]?.get("k0")).toBeUndefined();
      for (const keyv of keyvs.slice(1)) expect(await keyv.get("k1")).toBeDefined();
      const all: string[] = [];
      for await (const [key] of store.iterator()) all.push(key);
      expect(all).toHaveLength(12);
    });

    it("walks in pages by key range, smaller pages for large entries", async () => {
      const store = open(driver);
      const big = "x".repeat(1024 * 1024);
      await store.setMany(
        Array.from({ length: 40 }, (_, i) => ({
          key: `big:${String(i).padStart(2, "0")}`,
          value: big,
        })),
      );
      await store.set("big;after", "outside");
      const query = store.query.bind(store);
      const limits: unknown[] = [];
      store.query = (sql, params = []) => {
        limits.push(params[params.length - 1]);
        return query(sql, params);
      };
      let count = 0;
      for await (const [key] of store.iterator("big")) {
        expect(key.startsWith("big:")).toBe(true);
        count++;
      }
      expect(count).toBe(40);
      // The first page of 16 holds 16 MB: the next ones are cut to about 8 MB.
      expect(limits[0]).toBe(16);
      expect(limits[1]).toBe(7);
    });

    // @keyv/sqlite 4's layout; its 6.x keeps the namespace in a column of its own.
    it.skipIf(adapterMajor("@keyv/sqlite") === 6)(
      "reads and writes the table @keyv/sqlite uses, both ways",
      async () => {
        // One at a time: two copies of SQLite in one process (sqlite3's and this driver's) do not
        // see each other's locks, and one closing would delete the WAL the other has open.
        const file = join(dir, `${driver.replace(":", "-")}-shared.sqlite`);
        const theirs = new KeyvSqlite({ uri: `sqlite://${file}` });
        await theirs.set("ns:from-them", "one");
        await theirs.disconnect();
        const ours = open(driver, { file });
        expect(await ours.get("ns:from-them")).toBe("one");
        await ours.set("ns:from-us", "two");
        expect(await ours.getMany(["ns:from-them", "ns:nothing", "ns:from-us"])).toEqual([
          "one",
          undefined,
          "two",
        ]);
        expect(await ours.deleteMany(["ns:from-them", "ns:nothing"])).toBe(true);
        expect(await ours.hasMany(["ns:from-us", "ns:from-them"])).toEqual([true, false]);
        await ours.disconnect();
        const again = new KeyvSqlite({ uri: `sqlite://${file}` });
        expect(await again.get("ns:from-us")).toBe("two");
        expect(await again.get("ns:from-them")).toBeUndefined();
        await again.disconnect();
      },
    );

    it("waits for another process's lock without blocking the event loop, up to busyTimeout", async () => {
      const file = join(dir, `${driver.replace(":", "-")}-locked.sqlite`);
      const store = open(driver, { file, busyTimeout: 400 });
      await store.set("k", "before");
      const lock = await holdExclusiveLock(file);
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 10);
      const started = Date.now();
      // Readers go on in WAL mode; a writer waits, retrying without blocking the event loop.
      expect(await store.get("k")).toBe("before");
      await expect(store.set("k", "during")).rejects.toMatchObject({ message: /locked/ });
      const waited = Date.now() - started;
      clearInterval(ticker);
      expect(waited).toBeGreaterThanOrEqual(300);
      expect(ticks).toBeGreaterThan(waited / 10 / 4);
      // A write started under the lock lands once it is released.
      const write = store.set("k", "after");
      await new Promise((resolve) => setTimeout(resolve, 50));
      await lock.release();
      await write;
      expect(await store.get("k")).toBe("after");
    });

    it("returns text of every size exactly, and bytes stored by others as bytes", async () => {
      const store = open(driver);
      // Past 256 KB text is read as bytes and decoded here: ASCII, and text that is not.
      for (const value of ["a".repeat(300_000), "é😀\u0000".repeat(100_000), "x", "é"]) {
        await store.set("k", value);
        expect(await store.get("k")).toBe(value);
      }
      await store.query("INSERT INTO keyv (key, value) VALUES (?, ?)", [
        "blob",
        Buffer.alloc(300_000, 1),
      ]);
      const blob = (await store.get("blob")) as Uint8Array;
      expect(blob).toBeInstanceOf(Uint8Array);
      expect(blob.length).toBe(300_000);
    });

    it("rejects calls once disconnected", async () => {
      const store = open(driver);
      await store.set("k", "v");
      await store.disconnect();
      await expect(store.get("k")).rejects.toThrow(/closed/);
      await store.disconnect();
    });
  });
}

it("names what to do when no driver loads", async () => {
  const store = new SqliteStore({ file: ":memory:", drivers: [] });
  await expect(store.get("k")).rejects.toThrow(
    /Node 22\.13 or later, or npm install better-sqlite3/,
  );
});

it("refuses a table name that is not a plain identifier", () => {
  expect(() => new SqliteStore({ file: ":memory:", table: "keyv; DROP" })).toThrow(/table/);
});
