import mysql from "mysql2/promise";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createKeyv } from "../../src/create-keyv.ts";
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
import { SECRET } from "../support/secrets.ts";

const mariadb = await findBackend("MariaDB/MySQL", "MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
const SUITE_TABLE = "sc_backends_mysql_suite";
const TABLE = "sc_backends_mysql";
const LEGACY_TABLE = "sc_backends_mysql_legacy";

function withTable(table: string): string {
  return `${mariadb.url}${mariadb.url.includes("?") ? "&" : "?"}table=${table}`;
}

describeBackend(mariadb, "MariaDB/MySQL", () => {
  let client: mysql.Connection;
  beforeAll(async () => {
    client = await mysql.createConnection(mariadb.url);
  });
  afterAll(async () => {
    await client.query(`DROP TABLE IF EXISTS ${SUITE_TABLE}, ${TABLE}, ${LEGACY_TABLE}`);
    await client.end();
  });

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
      physicalKey: (namespace, key) => `${namespace}:${key}`,
      read: (key) => readRow(TABLE, key),
      write: async (key, value) => {
        await client.query(
          `INSERT INTO ${TABLE} (id, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)`,
          [key, value],
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
      const [columns] = await client.query(
        `SELECT COLUMN_NAME AS name, DATA_TYPE AS type, COLLATION_NAME AS collation
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`,
        [LEGACY_TABLE],
      );
      expect(columns).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ name: "value", type: "longtext" }),
          expect.objectContaining({ name: "id", collation: "utf8mb4_bin" }),
        ]),
      );
      await cache.disconnect();
    });

    it("a server that refuses connections is a miss (strict: StoreError), never a hang", async () => {
      await expectRefusedConnectionIsMiss(
        `mysql://root@127.0.0.1:${await closedPort()}/test?table=${TABLE}`,
      );
    });
  });
});
