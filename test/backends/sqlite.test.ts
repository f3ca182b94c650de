import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import KeyvSqlite from "@keyv/sqlite";
import Keyv from "keyv";
import sqlite3 from "sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { createKeyv } from "../../src/create-keyv.ts";
import { ENVELOPE_PREFIX } from "../../src/envelope.ts";
import { KEY_LIMITS } from "../../src/key-limits.ts";
import { signedStore } from "../../src/store.ts";
import { storeFromUrl } from "../../src/stores.ts";
import { adapterMajor } from "../support/adapters.ts";
import { keyvCompliance } from "../support/compliance.ts";
import { expectKeyRoundTrip, keyOfBytes, type LimitedAdapter } from "../support/keys.ts";
import { SECRET } from "../support/secrets.ts";
import { holdExclusiveLock } from "../support/sqlite-lock.ts";

const dir = mkdtempSync(join(tmpdir(), "signed-cache-sqlite-"));
const SQLITE6 = adapterMajor("@keyv/sqlite") === 6;
const uri = `sqlite://${join(dir, "cache.sqlite")}`;
const adapters: KeyvSqlite[] = [];

function sqliteStore() {
  const adapter = new KeyvSqlite({ uri, busyTimeout: 10_000 });
  adapters.push(adapter);
  return signedStore(adapter, SECRET);
}

afterAll(async () => {
  await Promise.all(adapters.map((adapter) => adapter.disconnect()));
  rmSync(dir, { recursive: true, force: true });
});

describe("@keyv/test-suite: signedStore over @keyv/sqlite (file)", () => {
  keyvCompliance(sqliteStore, { iterator: true });
});

describe("signedStore over @keyv/sqlite", () => {
  function rawRow(key: string): Promise<string | undefined> {
    const db = new sqlite3.Database(uri.replace("sqlite://", ""));
    return new Promise((resolve, reject) => {
      db.get("SELECT value FROM keyv WHERE key = ?", [key], (error, row?: { value: string }) => {
        db.close();
        if (error) reject(error);
        else resolve(row?.value);
      });
    });
  }

  function writeRaw(key: string, value: string): Promise<void> {
    const db = new sqlite3.Database(uri.replace("sqlite://", ""));
    return new Promise((resolve, reject) => {
      db.run("UPDATE keyv SET value = ? WHERE key = ?", [value, key], (error) => {
        db.close();
        if (error) reject(error);
        else resolve();
      });
    });
  }

  // @keyv/sqlite 4's rows (`ns:key` in one column); its 6.x keeps the namespace apart.
  it.skipIf(SQLITE6)(
    "stores envelopes in the row, and a row tampered through sqlite3 is rejected",
    async () => {
      const keyv = new Keyv({ store: sqliteStore(), namespace: "tamper" });
      await keyv.set("k", { admin: false });
      const row = await rawRow("tamper:k");
      expect(row?.startsWith(`${ENVELOPE_PREFIX}hs256.`)).toBe(true);
      expect(row).toContain('"admin":false');
      await writeRaw("tamper:k", String(row).replace('"admin":false', '"admin":true'));

      const strict = new Keyv({
        store: signedStore(new KeyvSqlite({ uri }), SECRET, { strict: true }),
        namespace: "tamper",
        throwOnErrors: true,
      });
      await expect(strict.get("k")).rejects.toMatchObject({
        name: "BadSignature",
        reason: "mismatch",
      });
      expect(await keyv.get("k")).toBeUndefined();
      expect(await rawRow("tamper:k")).toBeUndefined();
      await strict.disconnect();
    },
  );

  // @keyv/sqlite 4's rows (`ns:key` in one column); its 6.x keeps the namespace apart.
  it.skipIf(SQLITE6)(
    "iterates every valid entry even when bad ones are deleted along the way",
    async () => {
      const store = sqliteStore();
      const keyv = new Keyv({ store, namespace: "walk" });
      for (let i = 0; i < 25; i++) await keyv.set(`k${i}`, i);
      // Every third row is tampered with; the adapter pages 10 rows at a time with OFFSET.
      for (let i = 0; i < 25; i += 3) await writeRaw(`walk:k${i}`, "planted");
      const seen: string[] = [];
      for await (const [key] of store.iterator("walk")) seen.push(key);
      expect(seen).toHaveLength(25 - 9);
      expect(await rawRow("walk:k0")).toBeUndefined();
    },
  );
});

describe("a SQLite file locked by another process", () => {
  const file = join(dir, "locked.sqlite");

  it("still serves reads, bounds writes by storeTimeout, never blocks the event loop, and recovers on release", async () => {
    const errors: unknown[] = [];
    const cache = createKeyv({
      url: `sqlite://${file}`,
      secret: SECRET,
      namespace: "locked",
      onError: (error) => errors.push(error),
    });
    await cache.set("k", "before the lock");

    // Another process takes an exclusive lock: writers must wait for it; in WAL mode readers
    // go on reading the last committed entry.
    const lock = await holdExclusiveLock(file);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    try {
      expect(await cache.get("k")).toBe("before the lock");
      expect(await cache.set("k", "during the lock")).toBe(false);
    } finally {
      clearInterval(ticker);
      await lock.release();
    }
    // The write waited about one storeTimeout; the event loop kept turning all along. The
    // store itself gave up just before that bound, so the failure is the lock's.
    expect(ticks).toBeGreaterThan(10);
    expect(errors).toContainEqual(
      expect.objectContaining({
        name: "StoreError",
        message: expect.stringMatching(/database is locked|within 1000 ms/),
      }),
    );
    // Once the lock is gone the same store serves again, and the write reported as failed did
    // not land behind the caller's back.
    expect(await cache.get("k")).toBe("before the lock");
    expect(await cache.set("k", "after the lock")).toBe(true);
    expect(await cache.get("k")).toBe("after the lock");
    await cache.disconnect();
  });
});

describe("a write the caller gave up on", () => {
  it("never lands later over a newer one: the store stops retrying before storeTimeout", async () => {
    const file = join(dir, "given-up.sqlite");
    const cache = createKeyv({
      url: `sqlite://${file}`,
      secret: SECRET,
      namespace: "late",
      storeTimeout: 300,
      onError: () => {},
    });
    await cache.set("k", "before");
    const lock = await holdExclusiveLock(file);
    try {
      // Both writes fail: the lock outlasts storeTimeout.
      expect(await cache.set("k", "OLD")).toBe(false);
      expect(await cache.set("k", "NEW")).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 700));
    } finally {
      await lock.release();
    }
    // Had the store kept retrying past the caller's bound, OLD would have landed after the lock.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await cache.get("k")).toBe("before");
    await cache.disconnect();
  });
});

describe("keys through sqlite:// from storeFromUrl", () => {
  const url = `sqlite://${join(dir, "keys.sqlite")}`;

  it("declares 1 MiB without NUL, and the widest declared key round-trips", async () => {
    const adapter = storeFromUrl(url) as LimitedAdapter;
    const { maxBytes } = adapter[KEY_LIMITS];
    expect(adapter[KEY_LIMITS]).toEqual({ maxBytes: 1024 * 1024, nul: false });
    for (const fill of ["k", "\u{1F511}", " "]) {
      const key = keyOfBytes("widest", fill, maxBytes);
      expect(Buffer.byteLength(key)).toBe(maxBytes);
      await expectKeyRoundTrip(adapter, "widest", key);
    }
    await adapter.disconnect?.();
  });

  it("nul: false because @keyv/sqlite, which may share the file, misses a key holding NUL in getMany", async () => {
    const adapter = storeFromUrl(url) as LimitedAdapter;
    await adapter.set("nul:a\u0000b", "v");
    expect(await adapter.get("nul:a\u0000b")).toBe("v");
    // Closed first: two copies of SQLite in one process must not have the file open together.
    await adapter.disconnect?.();
    const theirs = new KeyvSqlite({ uri: url });
    expect(await theirs.getMany(["nul:a\u0000b"])).toEqual([undefined]);
    await theirs.delete("nul:a\u0000b");
    await theirs.disconnect();
  });
});
