import type { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import type { KeyvStoreAdapter } from "keyv";
import { ConfigError } from "./errors.js";
import type { WrappableStore } from "./store.js";

/** The store a URL names when none is given. */
export const DEFAULT_STORE_URL = "sqlite://http_cache.sqlite";

/** URL schemes {@link storeFromUrl} understands, each with the package it needs. */
export const STORE_SCHEMES = {
  "memory:": undefined,
  "sqlite:": "@keyv/sqlite",
  "redis:": "@keyv/redis",
  "rediss:": "@keyv/redis",
  "postgres:": "@keyv/postgres",
  "postgresql:": "@keyv/postgres",
  "mysql:": "@keyv/mysql",
} as const;

type Scheme = keyof typeof STORE_SCHEMES;

// Optional peers are loaded only when their scheme is used, and synchronously, so that
// createKeyv can hand back a ready Keyv. Every adapter ships a CommonJS build.
const load = createRequire(import.meta.url);

// Interpolated into SQL by the adapters, which do not all quote it: only plain identifiers pass.
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

// SQLite's adapter pages its iterator with OFFSET, so a bigger page keeps a scan near-linear.
const ITERATION_PAGE = 1000;

// A dead Redis must fail a call quickly instead of queueing it behind endless reconnects.
const REDIS_CONNECT_TIMEOUT_MS = 2000;
const REDIS_RECONNECT_ATTEMPTS = 2;
const SQL_CONNECT_TIMEOUT_MS = 5000;

/**
 * Builds the Keyv store adapter a URL names. Adapter packages other than `@keyv/sqlite` are
 * optional peer dependencies, loaded on first use.
 *
 * | URL | store | package |
 * | --- | --- | --- |
 * | `memory://` | a new `Map` per call | — |
 * | `sqlite://path` (relative to the working directory), `sqlite:///abs/path` | SQLite file | `@keyv/sqlite` |
 * | `redis://…`, `rediss://…` | Redis | `@keyv/redis` |
 * | `postgres://…`, `postgresql://…` | PostgreSQL | `@keyv/postgres` |
 * | `mysql://…` | MySQL / MariaDB | `@keyv/mysql` |
 *
 * SQL URLs accept `?table=name` (default `keyv`); `postgres` also `?schema=name`. For MySQL the
 * table's `value` column is widened to `LONGTEXT` and its keys made case-sensitive, because the
 * adapter's `TEXT` column rejects (or, outside strict SQL mode, truncates) entries over 64 KB and
 * its default collation folds case.
 *
 * @param url - A store URL; see the table above.
 * @returns A Keyv store adapter, or a `Map` for `memory://`.
 * @throws {ConfigError} On an unknown scheme, a malformed URL or table name, a SQLite file whose
 *   directory does not exist, or an adapter package that is not installed.
 * @example
 * ```ts
 * const store = storeFromUrl("redis://localhost:6379");
 * const keyv = new Keyv({ store: signedStore(store, secret) });
 * ```
 */
export function storeFromUrl(url: string): WrappableStore {
  if (typeof url !== "string" || url.trim() === "") {
    throw new ConfigError(`store URL must be a non-empty string; ${schemeList()}`);
  }
  const scheme = schemeOf(url);
  switch (scheme) {
    case "memory:":
      return new Map<string, unknown>();
    case "sqlite:":
      return sqliteStore(url);
    case "redis:":
    case "rediss:":
      return redisStore(url);
    case "postgres:":
    case "postgresql:":
      return postgresStore(url);
    case "mysql:":
      return mysqlStore(url);
  }
}

/**
 * Checks that a URL names a supported store, without building it or loading any package.
 *
 * @throws {ConfigError} On an unknown scheme or a URL that does not parse.
 */
export function checkStoreUrl(url: string): void {
  const scheme = schemeOf(url);
  if (scheme !== "memory:" && scheme !== "sqlite:") checkParses(takeParams(url, [])[0]);
}

function schemeOf(url: string): Scheme {
  const match = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(url);
  const scheme = match?.[1]?.toLowerCase();
  if (scheme === undefined || !Object.hasOwn(STORE_SCHEMES, scheme)) {
    // Only the scheme is echoed: the rest of a URL may carry a password.
    const shown = scheme ?? "a URL without a scheme";
    throw new ConfigError(`unsupported store URL (${shown}); ${schemeList()}`);
  }
  return scheme as Scheme;
}

function schemeList(): string {
  return `supported: ${Object.keys(STORE_SCHEMES)
    .map((scheme) => `${scheme}//`)
    .join(", ")}`;
}

function adapterClass<T>(packageName: string): new (...args: never[]) => T {
  let module: { default?: unknown };
  try {
    module = load(packageName);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND") {
      throw new ConfigError(`this store URL needs ${packageName}: npm install ${packageName}`, {
        cause: error,
      });
    }
    throw error;
  }
  return module.default as new (
    ...args: never[]
  ) => T;
}

/** Splits `?table=` (and other signed-cache parameters) off a URL the adapter will parse. */
function takeParams(url: string, names: readonly string[]): [string, Record<string, string>] {
  const queryAt = url.indexOf("?");
  if (queryAt === -1) return [url, {}];
  const params = new URLSearchParams(url.slice(queryAt + 1));
  const taken: Record<string, string> = {};
  for (const name of names) {
    const value = params.get(name);
    if (value === null) continue;
    if (!TABLE_NAME.test(value)) {
      throw new ConfigError(
        `store URL parameter ${name} must be a plain SQL identifier (letters, digits, _)`,
      );
    }
    taken[name] = value;
    params.delete(name);
  }
  const rest = params.toString();
  return [rest === "" ? url.slice(0, queryAt) : `${url.slice(0, queryAt)}?${rest}`, taken];
}

function sqliteStore(url: string): KeyvStoreAdapter {
  const [bare, params] = takeParams(url, ["table"]);
  const location = bare.slice("sqlite://".length);
  if (location === "")
    throw new ConfigError("sqlite:// URL needs a file path, e.g. sqlite://cache.sqlite");
  const file = location === ":memory:" ? location : resolve(location);
  if (file !== ":memory:" && !existsSync(dirname(file))) {
    throw new ConfigError(
      `sqlite:// URL points into a directory that does not exist: ${dirname(file)}`,
    );
  }
  const KeyvSqlite = adapterClass<KeyvStoreAdapter>("@keyv/sqlite");
  return new KeyvSqlite({
    uri: `sqlite://${file}`,
    table: params.table ?? "keyv",
    busyTimeout: 5000,
    iterationLimit: ITERATION_PAGE,
  } as never);
}

function redisStore(url: string): KeyvStoreAdapter {
  checkParses(url);
  const KeyvRedis = adapterClass<KeyvStoreAdapter>("@keyv/redis");
  return new KeyvRedis(
    {
      url,
      socket: {
        connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
        // Out of retries, the client closes and rejects what it queued; the adapter reconnects
        // on the next call. Calls made while it connects wait in the queue, bounded by storeTimeout.
        reconnectStrategy: (retries: number) =>
          retries < REDIS_RECONNECT_ATTEMPTS ? 50 * 2 ** retries : false,
      },
    } as never,
    // By default the adapter turns a failed command into an "error" event and a miss (or a
    // write that seems to succeed); throwing lets the signed store report it as a StoreError.
    { throwOnErrors: true, connectionTimeout: REDIS_CONNECT_TIMEOUT_MS } as never,
  );
}

function postgresStore(url: string): KeyvStoreAdapter {
  const [bare, params] = takeParams(url, ["table", "schema"]);
  checkParses(bare);
  const KeyvPostgres = adapterClass<KeyvStoreAdapter & EventEmitter>("@keyv/postgres");
  // The adapter keeps one module-wide pg.Pool that nobody listens to: an idle connection the
  // server drops (a restart, a terminated backend) then emits an unheard "error" and kills the
  // process, and any adapter's disconnect() ends the pool under all of them. Here stores of one
  // server share a pool that reports its errors to each of them, and closes with the last one.
  let shared: SharedPool | undefined;
  const OwnPool = class extends KeyvPostgres {
    async connect() {
      shared = acquirePool(bare, this);
      const pool = shared.pool;
      return async (sql: string, values?: unknown[]) => (await pool.query(sql, values)).rows;
    }
    override async disconnect() {
      await releasePool(bare, this);
    }
  };
  return new OwnPool({
    uri: bare,
    table: params.table ?? "keyv",
    schema: params.schema ?? "public",
    iterationLimit: ITERATION_PAGE,
  } as never);
}

interface SharedPool {
  pool: PgPool;
  users: Set<EventEmitter>;
}

const pgPools = new Map<string, SharedPool>();

function acquirePool(uri: string, user: EventEmitter): SharedPool {
  let shared = pgPools.get(uri);
  if (shared === undefined) {
    const { Pool } = loadBeside<{ Pool: new (config: object) => PgPool }>("@keyv/postgres", "pg");
    const pool = new Pool({
      connectionString: uri,
      connectionTimeoutMillis: SQL_CONNECT_TIMEOUT_MS,
    });
    const users = new Set<EventEmitter>();
    pool.on("error", (error) => {
      for (const each of users) if (each.listenerCount("error") > 0) each.emit("error", error);
    });
    shared = { pool, users };
    pgPools.set(uri, shared);
  }
  shared.users.add(user);
  return shared;
}

async function releasePool(uri: string, user: EventEmitter): Promise<void> {
  const shared = pgPools.get(uri);
  if (shared === undefined || !shared.users.delete(user) || shared.users.size > 0) return;
  pgPools.delete(uri);
  await shared.pool.end();
}

/** The slice of pg.Pool the PostgreSQL store uses. */
interface PgPool extends EventEmitter {
  query(sql: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
  end(): Promise<void>;
}

/** Loads `dependency` as `packageName` itself would resolve it. */
function loadBeside<T>(packageName: string, dependency: string): T {
  return createRequire(load.resolve(packageName))(dependency) as T;
}

type MysqlAdapter = KeyvStoreAdapter & { query: (sql: string) => Promise<unknown> };

function mysqlStore(url: string): KeyvStoreAdapter {
  const [bare, params] = takeParams(url, ["table"]);
  checkParses(bare);
  const table = params.table ?? "keyv";
  const KeyvMysql = adapterClass<MysqlAdapter>("@keyv/mysql");
  // mysql2 warns about every pool option it does not know, so only pass ones it does.
  const adapter = new KeyvMysql({
    uri: bare,
    table,
    connectTimeout: SQL_CONNECT_TIMEOUT_MS,
  } as never);
  const query = adapter.query;
  let ready: Promise<void> | undefined;
  adapter.query = async (sql: string) => {
    ready ??= widenMysqlTable(query, table).catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    await ready;
    return query(sql);
  };
  return adapter;
}

/**
 * @keyv/mysql creates `value TEXT` (64 KB) and a case-insensitive key column: a large entry is
 * rejected or truncated, and keys differing only in case share a row. Fix the table once.
 */
async function widenMysqlTable(
  query: (sql: string) => Promise<unknown>,
  table: string,
): Promise<void> {
  const columns = (await query(
    `SELECT COLUMN_NAME AS name, DATA_TYPE AS type, COLLATION_NAME AS collation
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}'`,
  )) as { name: string; type: string; collation: string | null }[];
  const id = columns.find((column) => column.name === "id");
  const value = columns.find((column) => column.name === "value");
  if (value?.type === "longtext" && id?.collation?.endsWith("_bin")) return;
  await query(
    `ALTER TABLE \`${table}\` MODIFY id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, MODIFY value LONGTEXT CHARACTER SET utf8mb4`,
  );
}

function checkParses(url: string): void {
  try {
    new URL(url);
  } catch {
    // No cause attached: URL's error carries the input, and the input may carry a password.
    throw new ConfigError(`store URL is malformed (${schemeOf(url)}//…)`);
  }
}
