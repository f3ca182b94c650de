/**
 * Walks over a namespace on every backend `storeFromUrl` builds: listing (`iterator`), and so
 * the signed store's clear(), audits and iterator, must be linear in the namespace, iterative,
 * and list exactly the namespace's keys whatever characters its name holds.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import { format } from "mysql2";
import pg from "pg";
import { createClient } from "redis";
import { afterAll, expect, it } from "vitest";
import { type SignedStore, signedStore } from "../../src/store.ts";
import { storeFromUrl } from "../../src/stores.ts";
import { ownsNamespace } from "../support/adapters.ts";
import { type Backend, describeBackend, findBackend } from "../support/backends.ts";
import { SECRET } from "../support/secrets.ts";

// Another run of this file may share the servers: tables and Redis namespaces are per run.
const RUN = randomBytes(3).toString("hex");
const TABLE = `sc_walks_${RUN}`;
const dir = mkdtempSync(join(tmpdir(), "signed-cache-walks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Adapter = KeyvStoreAdapter & {
  query?: (sql: string, ...rest: unknown[]) => Promise<unknown>;
  opts?: { table?: string; dialect?: string };
};

interface Target {
  backend: Backend;
  url: string;
  /** Drops what the run left behind. */
  cleanup: (adapter: Adapter) => Promise<void>;
}

const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");
const postgres = await findBackend(
  "PostgreSQL",
  "POSTGRES_URL",
  "postgres://postgres@127.0.0.1:5432/test",
);
const mariadb = await findBackend("MariaDB/MySQL", "MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
const withTable = (url: string) => `${url}${url.includes("?") ? "&" : "?"}table=${TABLE}`;
const dropTable = async (adapter: Adapter) => {
  await adapter.query?.(`DROP TABLE IF EXISTS ${TABLE}`);
};

const targets: Target[] = [
  {
    backend: { name: "SQLite", url: "sqlite://", reachable: true },
    url: `sqlite://${join(dir, "walks.sqlite")}?table=${TABLE}`,
    cleanup: async () => {},
  },
  // Redis namespaces are per run: whatever a failed test left behind goes.
  {
    backend: redis,
    url: redis.url,
    cleanup: async () => {
      const client = await createClient({ url: redis.url }).connect();
      for await (const keys of client.scanIterator({ MATCH: `w${RUN}*`, COUNT: 1000 })) {
        if (keys.length > 0) await client.del(keys);
      }
      await client.close();
    },
  },
  { backend: postgres, url: withTable(postgres.url), cleanup: dropTable },
  { backend: mariadb, url: withTable(mariadb.url), cleanup: dropTable },
];

const ENTRIES = 40_000;

/** The key an adapter's own `iterator()` lists for the entry Keyv calls `key` in `namespace`. */
const listedAs = (adapter: object, namespace: string, key: string) =>
  ownsNamespace(adapter) ? key : `${namespace}:${key}`;

/**
 * Writes `count` entries `namespace:kNNNNNN` as Keyv lays them out, a thousand a statement: a
 * multi-row INSERT through the SQL adapters' own `query`, `setMany` on the others.
 */
async function fill(adapter: Adapter, namespace: string, count: number): Promise<string[]> {
  // @keyv/redis prefixes its namespace to the key, as it does under Keyv.
  adapter.namespace = namespace;
  const table = adapter.opts?.table ?? "keyv";
  const keys: string[] = [];
  for (let start = 0; start < count; start += 1000) {
    const batch: [string, string][] = [];
    for (let i = start; i < Math.min(count, start + 1000); i++) {
      const key = listedAs(adapter, namespace, `k${String(i).padStart(6, "0")}`);
      keys.push(key);
      batch.push([key, `value ${i}`]);
    }
    if (ownsNamespace(adapter)) {
      await adapter.setMany?.(batch.map(([key, value]) => ({ key, value })));
    } else if (adapter.opts?.dialect === "sqlite") {
      await adapter.query?.(
        `INSERT INTO ${table} (key, value) VALUES ${batch.map(() => "(?, ?)").join(", ")}`,
        batch.flat(),
      );
    } else if (adapter.opts?.dialect === "mysql") {
      await adapter.query?.(format(`INSERT INTO ${table} (id, value) VALUES ?`, [batch]));
    } else {
      await adapter.setMany?.(batch.map(([key, value]) => ({ key, value })));
    }
  }
  return keys;
}

async function listKeys(adapter: KeyvStoreAdapter, namespace: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const [key] of adapter.iterator?.(namespace) ?? []) keys.push(String(key));
  return keys.sort();
}

/**
 * Records the page statements of a SQL adapter's walk, to check each is an index range read in
 * key order. SQLite and MySQL pages go through the adapter's own `query`, and are EXPLAINed once
 * the walk is over. PostgreSQL's are EXPLAIN ANALYZEd as they run, on the connection and in the
 * transaction that runs them, so the plan checked is the one used, with the rows it read.
 */
interface Capture {
  /** Stops recording (idempotent); the walk is over. */
  stop: () => void;
  expectIndexRanges: () => Promise<void>;
}

function capturePages(adapter: Adapter): Capture {
  // A 6.x adapter's pages are its own statements, over its own layout; their pace is checked.
  if (ownsNamespace(adapter)) return { stop: () => {}, expectIndexRanges: async () => {} };
  const dialect = adapter.opts?.dialect;
  const isPage = (sql: unknown) =>
    typeof sql === "string" && /^\s*SELECT\b/i.test(sql) && sql.includes(TABLE);
  if (dialect === "postgres") return capturePostgresPages(isPage);
  const query = adapter.query;
  if (query === undefined || (dialect !== "sqlite" && dialect !== "mysql")) {
    return { stop: () => {}, expectIndexRanges: async () => {} };
  }
  const seen: [string, unknown[]][] = [];
  adapter.query = (sql: string, ...rest: unknown[]) => {
    if (isPage(sql)) seen.push([sql, rest]);
    return query(sql, ...rest);
  };
  return {
    stop: () => {
      adapter.query = query;
    },
    expectIndexRanges: async () => {
      expect(seen.length).toBeGreaterThan(ENTRIES / 1000);
      // The first pages, one from the middle and the last.
      const sample = [0, 1, 2, Math.floor(seen.length / 2), seen.length - 1];
      for (const [sql, rest] of sample.map((index) => seen[index] as [string, unknown[]])) {
        if (dialect === "sqlite") {
          const plan = (await query(`EXPLAIN QUERY PLAN ${sql}`, ...rest)) as { detail: string }[];
          for (const { detail } of plan) {
            expect(detail, sql).toMatch(/^SEARCH \S+ USING (COVERING )?INDEX .*\(key[<>]/);
          }
        } else {
          const plan = (await query(`EXPLAIN ${sql}`)) as Record<string, unknown>[];
          for (const row of plan) {
            expect(row, sql).toMatchObject({ type: "range", key: "PRIMARY" });
            expect(String(row.Extra), sql).not.toMatch(/filesort/i);
          }
        }
      }
    },
  };
}

interface PgPlanNode {
  "Node Type": string;
  "Actual Rows": number;
  "Actual Loops": number;
  "Rows Removed by Filter"?: number;
  Plans?: PgPlanNode[];
}

function capturePostgresPages(isPage: (sql: unknown) => boolean): Capture {
  type Query = (this: pg.Client, ...args: unknown[]) => unknown;
  const prototype = pg.Client.prototype as unknown as { query: Query };
  const original = prototype.query;
  const plans: { sql: string; limit: number; plan: PgPlanNode }[] = [];
  prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const [sql, values, callback] = args;
    if (!isPage(sql)) return original.apply(this, args);
    const explain = async () => {
      const result = (await original.call(
        this,
        `EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`,
        values,
      )) as {
        rows: { "QUERY PLAN": { Plan: PgPlanNode }[] }[];
      };
      const plan = result.rows[0]?.["QUERY PLAN"][0]?.Plan as PgPlanNode;
      plans.push({ sql: String(sql), limit: Number(/LIMIT (\d+)/.exec(String(sql))?.[1]), plan });
    };
    if (typeof callback === "function") {
      explain().then(() => original.call(this, sql, values, callback), callback as () => void);
      return undefined;
    }
    return explain().then(() => original.call(this, sql, values));
  };
  const flatten = (node: PgPlanNode): PgPlanNode[] => [
    node,
    ...(node.Plans ?? []).flatMap(flatten),
  ];
  return {
    stop: () => {
      prototype.query = original;
    },
    expectIndexRanges: async () => {
      expect(plans.length).toBeGreaterThan(ENTRIES / 1000);
      for (const { sql, limit, plan } of plans) {
        const nodes = flatten(plan);
        expect(
          nodes.map((node) => node["Node Type"]),
          sql,
        ).toEqual(["Limit", "Index Scan"]);
        const read = nodes
          .filter((node) => node["Node Type"].endsWith("Scan"))
          .reduce(
            (sum, node) =>
              sum +
              (node["Actual Rows"] + (node["Rows Removed by Filter"] ?? 0)) * node["Actual Loops"],
            0,
          );
        expect(read, sql).toBeLessThanOrEqual(limit + 1);
      }
    },
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

for (const { backend, url, cleanup } of targets) {
  describeBackend(backend, `walks over ${backend.name}, from storeFromUrl`, () => {
    const adapters: Adapter[] = [];
    const open = (): Adapter => {
      const adapter = storeFromUrl(url) as Adapter;
      adapters.push(adapter);
      return adapter;
    };
    afterAll(async () => {
      if (adapters[0]) await cleanup(adapters[0]);
      // @keyv/mysql has one pool per process: its first disconnect closes it for all.
      for (const adapter of adapters) await adapter.disconnect?.().catch(() => {});
    });

    it(`lists ${ENTRIES} entries once each, iteratively, every page as fast as the first`, async () => {
      const namespace = `w${RUN}big`;
      const adapter = open();
      // A neighbouring namespace whose name extends this one: its keys sort right after.
      const next = open();
      const neighbours = await fill(next, `${namespace}x`, 500);
      const keys = await fill(adapter, namespace, ENTRIES);
      const pages = capturePages(adapter);
      const seen = new Set<string>();
      let repeated = 0;
      const marks: number[] = [];
      const started = performance.now();
      try {
        for await (const [key] of adapter.iterator?.(namespace) ?? []) {
          if (seen.has(String(key))) repeated++;
          seen.add(String(key));
          if (seen.size % 1000 === 0) marks.push(performance.now());
        }
      } finally {
        pages.stop();
      }
      const ms = performance.now() - started;
      expect(repeated).toBe(0);
      expect(seen.size).toBe(ENTRIES);
      expect([...seen].sort()).toEqual(keys);
      expect(ms).toBeLessThan(15_000);
      // Each thousand keys costs what the others do. A walk paging by OFFSET, or seeking to the
      // namespace's start for every page, slows down as it goes; one whose pages read the rest of
      // the namespace and sort it (PostgreSQL's plan for a range it has no statistics on) starts
      // slow and speeds up.
      const spans = marks.slice(1).map((mark, index) => mark - (marks[index] ?? mark));
      const early = median(spans.slice(2, 9));
      const late = median(spans.slice(-7));
      // Generous bounds, for a shared machine: a quadratic walk is tens of times slower at the
      // end of 40 000 keys than at the start, far beyond them.
      expect(late).toBeLessThan(10 * early + 25);
      expect(early).toBeLessThan(10 * late + 25);
      // Where the statements can be seen: each page is an index range read in key order, never
      // a scan of the table (SQLite's LIKE ignores case, so it cannot use the key index).
      await pages.expectIndexRanges();

      // Through the signed store: clear() lists the namespace and deletes all of it, only it.
      const store = signedStore(adapter, SECRET);
      store.namespace = namespace;
      await store.clear();
      expect(await listKeys(adapter, namespace)).toEqual([]);
      const neighbour = signedStore(next, SECRET);
      neighbour.namespace = `${namespace}x`;
      expect(await listKeys(next, `${namespace}x`)).toEqual(neighbours);
      await neighbour.clear();
    }, 120_000);

    it("a walk that deletes what it has listed still lists every key", async () => {
      const namespace = `w${RUN}shrinking`;
      const adapter = open();
      const keys = await fill(adapter, namespace, 2500);
      const listed: string[] = [];
      for await (const [key] of adapter.iterator?.(namespace) ?? []) {
        listed.push(String(key));
        // As a purge does: the key is gone before the next page is read.
        await adapter.delete(String(key));
      }
      expect(listed.sort()).toEqual(keys);
      expect(await listKeys(adapter, namespace)).toEqual([]);
    }, 60_000);

    it("each namespace lists and clears exactly its own keys, whatever its name holds", async () => {
      // LIKE wildcards (_ %), LIKE's and Redis's escape (\), glob characters (* ? [ ]), case,
      // the character right after ':' (';'), and names extending others (u2, ua).
      const names = ["u", "u2", "u_a", "uxa", "ua", "U", "u*", "u%", "u[a]", "u\\", "u\\\\"];
      names.push("u?", "u;", "u]", "u^");
      const namespaces = names.map((name) => `w${RUN}${name}`);
      const entries = namespaces.map((namespace) => {
        const adapter = open();
        const store = signedStore(adapter, SECRET);
        // As Keyv sets it: on the signed store, which hands it to the adapter.
        const keyv = new Keyv({ store, namespace });
        expect(adapter.namespace).toBe(namespace);
        return { namespace, adapter, store, keyv };
      });
      const writeAll = async () => {
        for (const { namespace, keyv } of entries) {
          await keyv.set("a", `${namespace}/a`);
          await keyv.set("b", `${namespace}/b`);
        }
      };
      const expectListed = async (cleared: number) => {
        for (const [index, { namespace, adapter, keyv }] of entries.entries()) {
          const own = index < cleared ? [] : ["a", "b"];
          expect(await listKeys(adapter, namespace), namespace).toEqual(
            own.map((key) => listedAs(adapter, namespace, key)),
          );
          const listed: [string, unknown][] = [];
          for await (const entry of keyv.iterator?.(undefined) ?? []) listed.push(entry);
          const values = own.map((key) => [key, `${namespace}/${key}`]);
          expect(listed.sort(), namespace).toEqual(values);
        }
      };
      const audited = async ({ namespace, store }: { namespace: string; store: SignedStore }) => {
        const keys: string[] = [];
        for await (const report of store.audit(namespace)) keys.push(report.key);
        return keys.sort();
      };

      await writeAll();
      await expectListed(0);
      for (const entry of entries) {
        expect(await audited(entry), entry.namespace).toEqual([
          `${entry.namespace}:a`,
          `${entry.namespace}:b`,
        ]);
      }
      // Clearing one namespace at a time, through Keyv and the signed store, then through the
      // adapter itself: every namespace not yet cleared keeps all of its entries.
      for (const [index, { keyv }] of entries.entries()) {
        await keyv.clear();
        await expectListed(index + 1);
      }
      await writeAll();
      for (const [index, { adapter }] of entries.entries()) {
        await adapter.clear();
        await expectListed(index + 1);
      }
    }, 60_000);
  });
}
