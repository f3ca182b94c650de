import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createKeyv } from "../../src/create-keyv.ts";
import { StoreError } from "../../src/errors.ts";
import { KEY_LIMITS } from "../../src/key-limits.ts";
import { signedStore } from "../../src/store.ts";
import { storeFromUrl } from "../../src/stores.ts";
import {
  backendBehaviours,
  closedPort,
  describeBackend,
  expectRefusedConnectionIsMiss,
  findBackend,
} from "../support/backends.ts";
import { keyvCompliance } from "../support/compliance.ts";
import { expectKeyRoundTrip, keyOfBytes, type LimitedAdapter } from "../support/keys.ts";
import { SECRET } from "../support/secrets.ts";

const mariadb = await findBackend("MariaDB/MySQL", "MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
const SUITE_TABLE = "sc_backends_mysql_suite";
const TABLE = "sc_backends_mysql";
const LEGACY_TABLE = "sc_backends_mysql_legacy";
// The table as the previous release of storeFromUrl left it: PAD SPACE keys of 255 characters.
// New tables get a per-run suffix: another run of this file may share the server.
const RUN = randomBytes(3).toString("hex");
const PAD_TABLE = `sc_backends_mysql_pad_${RUN}`;
// Its own small table: with few rows MariaDB picks the index range plan that missed the key.
const ASTRAL_TABLE = `sc_backends_mysql_astral_${RUN}`;
const BIG_TABLE = `sc_backends_mysql_big_${RUN}`;
const NO_PAD = /^utf8mb4_(nopad_bin|0900_bin)$/;

function withTable(table: string): string {
  return `${mariadb.url}${mariadb.url.includes("?") ? "&" : "?"}table=${table}`;
}

describeBackend(mariadb, "MariaDB/MySQL", () => {
  let client: mysql.Connection;
  beforeAll(async () => {
    client = await mysql.createConnection(mariadb.url);
  });
  afterAll(async () => {
    await client.query(
      `DROP TABLE IF EXISTS ${SUITE_TABLE}, ${TABLE}, ${LEGACY_TABLE}, ${PAD_TABLE}, ${ASTRAL_TABLE}, ${BIG_TABLE}`,
    );
    await client.end();
  });

  async function columnsOf(table: string): Promise<unknown> {
    const [columns] = await client.query(
      `SELECT COLUMN_NAME AS name, DATA_TYPE AS type, CHARACTER_MAXIMUM_LENGTH AS length,
         COLLATION_NAME AS collation
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`,
      [table],
    );
    return columns;
  }

  async function readRow(table: string, id: string): Promise<string | undefined> {
    const [rows] = await client.query(`SELECT value FROM ${table} WHERE id = ?`, [id]);
    return (rows as { value: string }[])[0]?.value;
  }

  describeBackend(mariadb, "@keyv/test-suite: signedStore over @keyv/mysql", () => {
    keyvCompliance(() => signedStore(storeFromUrl(withTable(SUITE_TABLE)), SECRET), {
      iterator: true,
    });
  });

  describeBackend(mariadb, "signedStore over MariaDB, from storeFromUrl", () => {
    backendBehaviours({
      store: () => storeFromUrl(withTable(TABLE)),
      // @keyv/mysql keeps the key as Keyv 5 (or the signed store) prefixed it.
      read: (namespace, key) => readRow(TABLE, `${namespace}:${key}`),
      write: async (namespace, key, value) => {
        await client.query(
          `INSERT INTO ${TABLE} (id, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)`,
          [`${namespace}:${key}`, value],
        );
      },
    });
  });

  describeBackend(mariadb, "a table @keyv/mysql created (TEXT, case-insensitive keys)", () => {
    it("is widened so a 1 MB entry is stored whole and keys keep their case", async () => {
      // Exactly the table @keyv/mysql creates on its own.
      await client.query(`CREATE TABLE ${LEGACY_TABLE}(id VARCHAR(255) PRIMARY KEY, value TEXT)`);
      const big = "x".repeat(1024 * 1024);
      const [refused] = await Promise.allSettled([
        client.query(`INSERT INTO ${LEGACY_TABLE} (id, value) VALUES ('probe', ?)`, [big]),
      ]);
      // As created, the column cannot hold it: strict SQL mode refuses, lax mode truncates.
      if (refused?.status === "fulfilled") {
        expect((await readRow(LEGACY_TABLE, "probe"))?.length).toBe(65_535);
      } else {
        expect(String(refused?.reason)).toMatch(/too long/i);
      }

      const cache = createKeyv({ url: withTable(LEGACY_TABLE), secret: SECRET, strict: true });
      await cache.set("big", big);
      await cache.set("Key", "upper");
      await cache.set("key", "lower");
      expect(await cache.get("big")).toBe(big);
      expect(await cache.get("Key")).toBe("upper");
      expect(await cache.get("key")).toBe("lower");
      expect(await columnsOf(LEGACY_TABLE)).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ name: "value", type: "longtext" }),
          expect.objectContaining({
            name: "id",
            length: 768,
            collation: expect.stringMatching(NO_PAD),
          }),
        ]),
      );
      await cache.disconnect();
    });

    it("a table the previous release widened (PAD SPACE keys) gets NO PAD, 768-character keys", async () => {
      await client.query(
        `CREATE TABLE ${PAD_TABLE}(id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, value LONGTEXT)`,
      );
      const cache = createKeyv({ url: withTable(PAD_TABLE), secret: SECRET, strict: true });
      await cache.set("user", "no space");
      await cache.set("user ", "one space");
      expect(await cache.get("user")).toBe("no space");
      expect(await cache.get("user ")).toBe("one space");
      await cache.disconnect();
      expect(await columnsOf(PAD_TABLE)).toContainEqual(
        expect.objectContaining({
          name: "id",
          length: 768,
          collation: expect.stringMatching(NO_PAD),
        }),
      );
    });

    it("a server that refuses connections is a miss (strict: StoreError), never a hang", async () => {
      await expectRefusedConnectionIsMiss(
        `mysql://root@127.0.0.1:${await closedPort()}/test?table=${TABLE}`,
      );
    });
  });

  describeBackend(mariadb, "keys stored exactly as given", () => {
    it("declares 768 bytes with NUL; the widest declared key and a key with NUL round-trip", async () => {
      const namespace = "sc_backends_widest";
      const adapter = storeFromUrl(withTable(TABLE)) as LimitedAdapter;
      const { maxBytes } = adapter[KEY_LIMITS];
      expect(adapter[KEY_LIMITS]).toEqual({ maxBytes: 768, nul: true });
      // An emoji first: MariaDB's LIKE 'ns:%' index range stops short of it; listing must not.
      for (const fill of ["k", "\u{1F511}", "é "]) {
        const key = keyOfBytes(namespace, fill, maxBytes);
        expect(Buffer.byteLength(key)).toBe(maxBytes);
        await expectKeyRoundTrip(adapter, namespace, key);
      }
      await expectKeyRoundTrip(adapter, namespace, `${namespace}:a\u0000b`);
    });

    it("keeps keys differing in trailing spaces or case apart, through the signed store", async () => {
      const namespace = "sc_backends_exact";
      const cache = createKeyv({ url: withTable(TABLE), secret: SECRET, namespace, strict: true });
      const keys = ["user", "user ", "user  ", "User", "USER", "user\t"];
      for (const key of keys) await cache.set(key, JSON.stringify(key));
      for (const key of keys) expect(await cache.get(key)).toBe(JSON.stringify(key));
      const [rows] = await client.query(`SELECT id FROM ${TABLE} WHERE id LIKE ?`, [
        `${namespace}:%`,
      ]);
      expect((rows as unknown[]).length).toBe(keys.length);
      await cache.clear();
    });

    it("lists and clears a key that starts with a character beyond U+FFFF", async () => {
      const cache = createKeyv({
        url: withTable(ASTRAL_TABLE),
        secret: SECRET,
        // No `_` in it: a LIKE wildcard would end the index range early and hide the fault.
        namespace: "astral",
        strict: true,
      });
      await cache.set("\u{1F511}key", "astral");
      await cache.set("key", "plain");
      const listed: string[] = [];
      for await (const [key] of cache.iterator?.(undefined) ?? []) listed.push(String(key));
      expect(listed.sort()).toEqual(["key", "\u{1F511}key"].sort());
      await cache.clear();
      expect(await readRow(ASTRAL_TABLE, "astral:\u{1F511}key")).toBeUndefined();
      await cache.disconnect();
    });
  });

  describeBackend(mariadb, "entries near max_allowed_packet", () => {
    let maxPacket: number;
    let adapter: LimitedAdapter;
    beforeAll(async () => {
      const [rows] = await client.query("SELECT @@max_allowed_packet AS max");
      maxPacket = Number((rows as { max: number }[])[0]?.max);
      adapter = storeFromUrl(withTable(BIG_TABLE)) as LimitedAdapter;
    });
    // The adapter's pool is shared by every MySQL store in this file: closed once, at the end.
    afterAll(async () => {
      await adapter.disconnect?.();
    });

    it("stores an entry larger than half of max_allowed_packet: the value is sent once", async () => {
      const value = "v".repeat(Math.floor(maxPacket * 0.6));
      await adapter.set("big:once", value);
      expect(await adapter.get("big:once")).toBe(value);
      await adapter.delete("big:once");
    }, 60_000);

    it("takes values up to about max_allowed_packet, and refuses one byte more before sending it", async () => {
      // The largest plain value accepted, found by bisection through the adapter itself.
      const fits = async (length: number) => {
        try {
          await adapter.set("big:edge", "e".repeat(length));
          return true;
        } catch {
          return false;
        }
      };
      let low = maxPacket - 4096;
      let high = maxPacket;
      expect(await fits(low)).toBe(true);
      expect(await fits(high)).toBe(false);
      while (high - low > 1) {
        const middle = Math.floor((low + high) / 2);
        if (await fits(middle)) low = middle;
        else high = middle;
      }
      // The statement around the value (key, table name, SQL) is all that is lost.
      expect(maxPacket - low).toBeLessThan(200);
      await adapter.set("big:edge", "e".repeat(low));
      expect(await adapter.get("big:edge")).toHaveLength(low);
      // One byte more is refused by the store before anything is sent, not by the server.
      await expect(adapter.set("big:edge", "e".repeat(low + 1))).rejects.toThrow(
        /makes a \d+-byte packet.*max_allowed_packet of \d+ bytes/,
      );
      // The refused write removed the older entry rather than leave it to be served.
      expect(await adapter.get("big:edge")).toBeUndefined();
    }, 120_000);

    it("an oversized write rejects with StoreError, and the next write succeeds", async () => {
      const strict = createKeyv({ store: adapter, secret: SECRET, strict: true });
      await strict.set("huge", "an older value");
      await expect(strict.set("huge", "h".repeat(maxPacket + 1024))).rejects.toBeInstanceOf(
        StoreError,
      );
      // The pooled connection is intact: an unrelated write right after succeeds.
      await strict.set("after", "small");
      expect(await strict.get("after")).toBe("small");
      expect(await strict.get("huge")).toBeUndefined();
      await expect(strict.set("huge", "h".repeat(maxPacket + 1024))).rejects.toBeInstanceOf(
        StoreError,
      );
      await strict.set("after", "still small");
      expect(await strict.get("after")).toBe("still small");
      await strict.delete("after");
    }, 60_000);

    it("setMany writes many rows per statement, splitting where a packet would overflow", async () => {
      const big = Math.floor(maxPacket * 0.4);
      const entries = ["a", "b", "c"].map((name) => ({
        key: `many:${name}`,
        value: name.repeat(big),
      }));
      const small = Array.from({ length: 2000 }, (_, i) => ({ key: `many:s${i}`, value: `${i}` }));
      await adapter.setMany?.([...entries, ...small]);
      for (const { key, value } of entries) expect(await adapter.get(key)).toBe(value);
      expect(await adapter.get("many:s1999")).toBe("1999");
      // One entry that cannot fit: nothing is written, the batch rejects.
      await expect(
        adapter.setMany?.([
          { key: "many:fits", value: "f" },
          { key: "many:a", value: "x".repeat(maxPacket) },
        ]),
      ).rejects.toThrow(/max_allowed_packet/);
      expect(await adapter.get("many:fits")).toBeUndefined();
      expect(await adapter.get("many:a")).toBeUndefined();
      await adapter.set("many:after", "ok");
      expect(await adapter.get("many:after")).toBe("ok");
    }, 120_000);
  });

  describeBackend(mariadb, "a store URL with a password", () => {
    it("never shows the password, and a refused login is a rejected call, not a crash", async () => {
      const password = "s3cr3t-Pa55word";
      const url = new URL(withTable(TABLE));
      url.username = "sc_backends_nobody";
      url.password = password;
      // @keyv/mysql connects at once and, on its own, leaves this refusal unhandled.
      const adapter = storeFromUrl(url.href) as LimitedAdapter;
      adapter.namespace = "sc_backends_pw";
      for (const options of [{ depth: 10 }, { depth: 10, showHidden: true }]) {
        const shown = inspect(adapter, options);
        expect(shown).not.toContain(password);
        expect(shown).toContain("sc_backends_nobody:***@");
        expect(shown).toMatch(/^KeyvMysql \{.*namespace: 'sc_backends_pw'/s);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      await expect(adapter.get("sc_backends_pw:k")).rejects.toThrow(/Access denied/);
      const strict = createKeyv({ store: adapter, secret: SECRET, strict: true });
      await expect(strict.get("k")).rejects.toBeInstanceOf(StoreError);
      await adapter.disconnect?.();
    });
  });
});

describeBackend(mariadb, "MySQL stores closing", () => {
  it("closing one store leaves the others working; the last closes the shared pool", async () => {
    const a = createKeyv({ url: mariadb.url, secret: SECRET, env: {}, strict: true });
    const b = createKeyv({ url: mariadb.url, secret: SECRET, env: {}, strict: true });
    await a.set("sc_close_a", 1);
    await b.set("sc_close_b", 2);
    await a.disconnect();
    expect(await b.get("sc_close_b")).toBe(2);
    await b.delete("sc_close_b");
    await b.disconnect();
  });

  it("closing a store whose first connection is still being refused does not end the process", async () => {
    const heard: unknown[] = [];
    const refused = createKeyv({
      url: `mysql://root:pw@127.0.0.1:${await closedPort()}/test`,
      secret: SECRET,
      env: {},
      onError: (error) => heard.push(error),
    });
    await Promise.resolve();
    await refused.disconnect();
    // The refusal settles before the pool is ended: nothing is left to surface as an uncaught
    // error (which would end the process) in the moments after.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(heard.length).toBeGreaterThan(0);
    // And MySQL stores opened afterwards work.
    const next = createKeyv({ url: mariadb.url, secret: SECRET, env: {}, strict: true });
    await next.set("sc_after_refused", 1);
    expect(await next.get("sc_after_refused")).toBe(1);
    await next.delete("sc_after_refused");
    await next.disconnect();
  });
});

describeBackend(mariadb, "store errors and what they carry", () => {
  it("a failed statement's error names the fault, never the key or the value it held", async () => {
    const table = `sc_leak_${randomBytes(3).toString("hex")}`;
    const url = `${mariadb.url}${mariadb.url.includes("?") ? "&" : "?"}table=${table}`;
    const cache = createKeyv({ url, secret: SECRET, env: {}, strict: true });
    await cache.set("warm", 1);
    const admin = await mysql.createConnection(mariadb.url);
    await admin.query(`DROP TABLE \`${table}\``);
    await admin.end();
    const failure = await cache
      .set("token-KEYSECRET", "VALUESECRET")
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StoreError);
    const shown = inspect(failure, { depth: Number.POSITIVE_INFINITY, showHidden: true });
    expect(shown).toMatch(/doesn't exist/);
    expect(shown).not.toContain("KEYSECRET");
    expect(shown).not.toContain("VALUESECRET");
    await cache.disconnect();
  });
});
