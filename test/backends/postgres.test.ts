import pg from "pg";
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

const postgres = await findBackend(
  "PostgreSQL",
  "POSTGRES_URL",
  "postgres://postgres@127.0.0.1:5432/test",
);
const SUITE_TABLE = "sc_backends_pg_suite";
const TABLE = "sc_backends_pg";
const SCHEMA = "sc_backends_pg_schema";

function withParams(params: string): string {
  return `${postgres.url}${postgres.url.includes("?") ? "&" : "?"}${params}`;
}

describeBackend(postgres, "PostgreSQL", () => {
  const client = new pg.Client({ connectionString: postgres.url });
  beforeAll(async () => {
    await client.connect();
  });
  afterAll(async () => {
    await client.query(`DROP TABLE IF EXISTS ${SUITE_TABLE}, ${TABLE}`);
    await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await client.end();
  });

  describeBackend(postgres, "@keyv/test-suite: signedStore over @keyv/postgres", () => {
    keyvCompliance(() => signedStore(storeFromUrl(withParams(`table=${SUITE_TABLE}`)), SECRET), {
      iterator: true,
    });
  });

  describeBackend(postgres, "signedStore over PostgreSQL, from storeFromUrl", () => {
    backendBehaviours({
      store: () => storeFromUrl(withParams(`table=${TABLE}`)),
      physicalKey: (namespace, key) => `${namespace}:${key}`,
      read: async (key) => {
        const { rows } = await client.query(`SELECT value FROM ${TABLE} WHERE key = $1`, [key]);
        return rows[0]?.value;
      },
      write: async (key, value) => {
        await client.query(
          `INSERT INTO ${TABLE} (key, value) VALUES ($1, $2)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
          [key, value],
        );
      },
    });
  });

  describeBackend(postgres, "storeFromUrl options and faults", () => {
    it("?schema= and ?table= choose where entries live", async () => {
      const cache = createKeyv({
        url: withParams(`schema=${SCHEMA}&table=${TABLE}`),
        secret: SECRET,
        namespace: "sc_backends_schema",
      });
      await cache.set("k", "in the schema");
      const { rows } = await client.query(`SELECT value FROM ${SCHEMA}.${TABLE} WHERE key = $1`, [
        "sc_backends_schema:k",
      ]);
      expect(rows[0]?.value).toMatch(/^sc1\..*in the schema/);
      expect(await cache.get("k")).toBe("in the schema");
      await cache.disconnect();
    });

    it("a connection the server drops is reported through onError, never fatal", async () => {
      const errors: unknown[] = [];
      const cache = createKeyv({
        url: withParams(`table=${TABLE}`),
        secret: SECRET,
        namespace: "sc_backends_drop",
        onError: (error) => errors.push(error),
      });
      await cache.set("k", "v");
      // Terminate the store's idle pooled connection, as a server restart would.
      const { rows } = await client.query(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'
           AND query LIKE '%${TABLE}%'`,
      );
      expect(rows.length).toBeGreaterThan(0);
      await expect.poll(() => errors.length).toBeGreaterThan(0);
      // A read racing a dying connection is a miss; the pool then reconnects on its own.
      await expect.poll(() => cache.get("k"), { timeout: 5000 }).toBe("v");
      await cache.disconnect();
    });

    it("disconnecting one store leaves another store's connections open", async () => {
      const first = createKeyv({
        url: withParams(`table=${TABLE}`),
        secret: SECRET,
        namespace: "sc_backends_a",
      });
      const second = createKeyv({
        url: withParams(`table=${TABLE}`),
        secret: SECRET,
        namespace: "sc_backends_b",
      });
      await first.set("k", 1);
      await second.set("k", 2);
      await first.disconnect();
      expect(await second.get("k")).toBe(2);
      await second.disconnect();
    });

    it("a server that refuses connections is a miss (strict: StoreError), never a hang", async () => {
      await expectRefusedConnectionIsMiss(
        `postgres://postgres@127.0.0.1:${await closedPort()}/test?table=${TABLE}`,
      );
    });
  });
});
