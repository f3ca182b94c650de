import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import KeyvSqlite from "@keyv/sqlite";
import Keyv from "keyv";
import sqlite3 from "sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { signedStore } from "../../src/store.ts";
import { keyvCompliance } from "../support/compliance.ts";
import { SECRET } from "../support/secrets.ts";

const dir = mkdtempSync(join(tmpdir(), "signed-cache-sqlite-"));
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

  it("stores envelopes in the row, and a row tampered through sqlite3 is rejected", async () => {
    const keyv = new Keyv({ store: sqliteStore(), namespace: "tamper" });
    await keyv.set("k", { admin: false });
    const row = await rawRow("tamper:k");
    expect(row).toMatch(/^sc1\.hs256\..*"admin":false/);
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
  });

  it("iterates every valid entry even when bad ones are deleted along the way", async () => {
    const store = sqliteStore();
    const keyv = new Keyv({ store, namespace: "walk" });
    for (let i = 0; i < 25; i++) await keyv.set(`k${i}`, i);
    // Every third row is tampered with; the adapter pages 10 rows at a time with OFFSET.
    for (let i = 0; i < 25; i += 3) await writeRaw(`walk:k${i}`, "planted");
    const seen: string[] = [];
    for await (const [key] of store.iterator("walk")) seen.push(key);
    expect(seen).toHaveLength(25 - 9);
    expect(await rawRow("walk:k0")).toBeUndefined();
  });
});
