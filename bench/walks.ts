/**
 * Walks over one namespace: a full listing (`adapter.iterator(namespace)`) and the signed
 * store's `clear()`, which lists the namespace and deletes it in batches, on every reachable
 * backend `storeFromUrl` builds, at growing sizes. A walk that pages by OFFSET or recurses per
 * page grows quadratically or overflows the stack; a keyset walk grows linearly.
 *
 * Run alone: `tsx bench/walks.ts [--quick] [--sizes=10000,40000] [--backends=sqlite,mysql]`
 * prints the rows as JSON; `bench/run.ts` prints them as a table and keeps them under `walks`.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { KeyvStoreAdapter } from "keyv";
import { format } from "mysql2";
import { DEFAULT_MAC_ALGORITHM } from "../src/algorithms.ts";
import { DEFAULT_PURPOSE, sealEnvelope } from "../src/envelope.ts";
import { generateSecret, type SignedStore, signedStore, storeFromUrl } from "../src/index.ts";
import { Keyring } from "../src/keyring.ts";
import { reachable, SERVERS } from "./stores.ts";

/** Entries per namespace walked: the full run and --quick. */
export const WALK_SIZES = [10_000, 40_000, 100_000] as const;
export const QUICK_WALK_SIZES = [5_000] as const;

/** One backend × size. Times in ms; `error` when a walk failed (a stack overflow, a timeout). */
export interface WalkRow {
  readonly backend: string;
  readonly entries: number;
  /** Writing the entries (multi-row statements), for scale only. */
  readonly fillMs: number;
  /** Listing the namespace through the adapter, every key once. */
  readonly iterateMs?: number;
  /** `signedStore(adapter).audit(namespace)` to the end: what `signed-cache verify` does. */
  readonly verifyMs?: number;
  /** `signedStore(adapter).clear()` over the namespace. */
  readonly clearMs?: number;
  /** Keys the listing yielded (must equal `entries`). */
  readonly listed?: number;
  readonly error?: string;
}

interface WalkBackend {
  readonly name: string;
  readonly url: string;
  readonly probe?: URL;
  readonly cleanup: (adapter: SqlAdapter) => Promise<void>;
}

type SqlAdapter = KeyvStoreAdapter & { query?: (sql: string, ...rest: unknown[]) => unknown };

// Values are never verified by a walk: any string will do; this one is envelope-sized.
const VALUE = "x".repeat(200);
// Entries of a neighbouring namespace (`<ns>x`), which a walk must step over.
const NEIGHBOURS = 1000;
const FILL_BATCH = 1000;

/** Times a full listing and a clear of one namespace per size, on every reachable backend. */
export async function benchWalks(
  sizes: readonly number[],
  only: readonly string[] | undefined,
  progress: (line: string) => void,
  timeoutMs = 300_000,
): Promise<WalkRow[]> {
  const run = `${process.pid}_${randomBytes(2).toString("hex")}`;
  const table = `signed_cache_walks_${run}`;
  const sqliteFile = join(tmpdir(), `signed-cache-walks-${run}.sqlite`);
  const dropTable = async (adapter: SqlAdapter) => {
    await adapter.query?.(`DROP TABLE IF EXISTS ${table}`);
  };
  const backends: WalkBackend[] = [
    {
      name: "sqlite",
      url: `sqlite://${sqliteFile}?table=${table}`,
      cleanup: async () => {
        for (const suffix of ["", "-journal", "-wal", "-shm"]) {
          rmSync(sqliteFile + suffix, { force: true });
        }
      },
    },
    { name: "redis", url: SERVERS.redis, probe: new URL(SERVERS.redis), cleanup: async () => {} },
    {
      name: "postgres",
      url: `${SERVERS.postgres}?table=${table}`,
      probe: new URL(SERVERS.postgres),
      cleanup: dropTable,
    },
    {
      name: "mysql",
      url: `${SERVERS.mysql}?table=${table}`,
      probe: new URL(SERVERS.mysql),
      cleanup: dropTable,
    },
  ];
  const rows: WalkRow[] = [];
  for (const backend of backends) {
    if (only && !only.includes(backend.name)) continue;
    if (backend.probe && !(await reachable(backend.probe))) {
      progress(`walks: skipped ${backend.name}, nothing answers at ${backend.probe.host}`);
      continue;
    }
    // One adapter per namespace, as Keyv needs: an adapter holds a single namespace.
    const adapters: SqlAdapter[] = [];
    const open = () => {
      const adapter = storeFromUrl(backend.url) as SqlAdapter;
      adapter.on?.("error", () => {});
      adapters.push(adapter);
      return adapter;
    };
    try {
      for (const entries of sizes) {
        const row = await walkOnce(backend.name, open, `walk${entries}_${run}`, entries, {
          timeoutMs,
        });
        rows.push(row);
        progress(
          `walks: ${backend.name} ${entries} entries: ${row.error ?? `iterate ${row.iterateMs?.toFixed(0)} ms, verify ${row.verifyMs?.toFixed(0)} ms, clear ${row.clearMs?.toFixed(0)} ms`}`,
        );
      }
    } finally {
      if (adapters[0]) await backend.cleanup(adapters[0]).catch(() => {});
      for (const adapter of adapters) await adapter.disconnect?.().catch(() => {});
    }
  }
  return rows;
}

async function walkOnce(
  backend: string,
  open: () => SqlAdapter,
  namespace: string,
  entries: number,
  { timeoutMs }: { timeoutMs: number },
): Promise<WalkRow> {
  const secret = generateSecret();
  const stores = [namespace, `${namespace}x`].map((ns) => {
    const store = signedStore(open(), secret);
    store.on("error", () => {});
    store.namespace = ns;
    return store;
  });
  const [mine, neighbour] = stores as [(typeof stores)[0], (typeof stores)[0]];
  const adapter = mine.backend as SqlAdapter;
  let started = performance.now();
  await fill(neighbour.backend as SqlAdapter, `${namespace}x`, NEIGHBOURS);
  // Genuine envelopes, each bound to its key, so that verifying them does the full work.
  const keyring = new Keyring(secret);
  const seal = (key: string) =>
    sealEnvelope(keyring, key, VALUE, undefined, {
      namespace,
      purpose: DEFAULT_PURPOSE,
      algorithm: DEFAULT_MAC_ALGORITHM,
      encrypt: false,
    });
  await fill(adapter, namespace, entries, seal);
  const fillMs = performance.now() - started;
  try {
    started = performance.now();
    const listed = await withTimeout(countKeys(adapter, namespace), timeoutMs, "listing");
    const iterateMs = performance.now() - started;
    started = performance.now();
    const valid = await withTimeout(countValid(mine, namespace), timeoutMs, "verify");
    const verifyMs = performance.now() - started;
    if (valid !== entries) throw new Error(`verify found ${valid} valid entries of ${entries}`);
    started = performance.now();
    await withTimeout(mine.clear(), timeoutMs, "clear");
    const clearMs = performance.now() - started;
    const left = await countKeys(adapter, namespace);
    if (left !== 0) throw new Error(`clear() left ${left} of ${entries} entries`);
    if (listed !== entries) throw new Error(`listed ${listed} keys of ${entries}`);
    return { backend, entries, fillMs, iterateMs, verifyMs, clearMs, listed };
  } catch (error) {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return { backend, entries, fillMs, error: message.slice(0, 200) };
  } finally {
    // Whatever the walk did, leave nothing behind: the neighbours, and a namespace not cleared.
    for (const store of stores) await store.clear().catch(() => {});
  }
}

/** Entries an audit of `namespace` finds valid: the walk `signed-cache verify` makes. */
async function countValid(store: SignedStore, namespace: string): Promise<number> {
  let valid = 0;
  for await (const entry of store.audit(namespace)) if (entry.status === "valid") valid++;
  return valid;
}

/** Keys the adapter lists for `namespace`; throws on a key listed twice. */
async function countKeys(adapter: KeyvStoreAdapter, namespace: string): Promise<number> {
  const seen = new Set<string>();
  if (typeof adapter.iterator !== "function") throw new Error("the adapter cannot list keys");
  for await (const [key] of adapter.iterator(namespace)) {
    const name = String(key);
    if (seen.has(name)) throw new Error(`key listed twice: ${name}`);
    seen.add(name);
  }
  return seen.size;
}

/**
 * Writes `count` entries `namespace:kNNNNNN` as Keyv lays them out, many per statement: through
 * `setMany` where the adapter has one, else a multi-row INSERT through its own `query`.
 */
export async function fill(
  adapter: SqlAdapter,
  namespace: string,
  count: number,
  value: string | ((key: string) => string) = VALUE,
): Promise<void> {
  // @keyv/redis prefixes its own namespace, as it does under Keyv.
  adapter.namespace = namespace;
  const table = (adapter.opts as { table?: string } | undefined)?.table ?? "keyv";
  const dialect = (adapter.opts as { dialect?: string } | undefined)?.dialect;
  for (let start = 0; start < count; start += FILL_BATCH) {
    const batch: { key: string; value: string }[] = [];
    for (let i = start; i < Math.min(count, start + FILL_BATCH); i++) {
      const key = `${namespace}:k${String(i).padStart(7, "0")}`;
      batch.push({ key, value: typeof value === "string" ? value : value(key) });
    }
    if (dialect === "sqlite") {
      await adapter.query?.(
        `INSERT OR REPLACE INTO ${table} (key, value) VALUES ${batch.map(() => "(?, ?)").join(", ")}`,
        batch.flatMap((entry) => [entry.key, entry.value]),
      );
    } else if (adapter.setMany) {
      await adapter.setMany(batch);
    } else if (dialect === "mysql") {
      await adapter.query?.(
        format(
          `INSERT INTO \`${table}\` (id, value) VALUES ? ON DUPLICATE KEY UPDATE value = VALUES(value)`,
          [batch.map((entry) => [entry.key, entry.value])],
        ),
      );
    } else {
      throw new Error(`no fast way to fill a ${dialect} store`);
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = process.argv.slice(2);
  const option = (name: string) =>
    args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  const sizes =
    option("sizes")?.split(",").map(Number) ??
    (args.includes("--quick") ? QUICK_WALK_SIZES : WALK_SIZES);
  const rows = await benchWalks(sizes, option("backends")?.split(","), (line) =>
    process.stderr.write(`${line}\n`),
  );
  process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  process.exit(0);
}
