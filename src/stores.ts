import type { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { type InspectOptions, inspect } from "node:util";
import type { KeyvStoreAdapter } from "keyv";
import { ConfigError } from "./errors.js";
import { KEY_LIMITS, type KeyLimits } from "./key-limits.js";
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

// Key limits, measured against live servers with keys of growing UTF-8 length (ASCII and 4-byte
// characters), NUL, trailing spaces and case; `maxBytes` counts the namespaced key Keyv passes.
// SQLite and Redis kept 16 MiB keys intact; 1 MiB is declared, far beyond any sane key.
// SQLite keeps NUL in a key, but the adapter's getMany passes keys through json_each, which
// does not: such a key is missed by getMany.
const SQLITE_KEY_LIMITS: KeyLimits = Object.freeze({ maxBytes: 1024 * 1024, nul: false });
const REDIS_KEY_LIMITS: KeyLimits = Object.freeze({ maxBytes: 1024 * 1024, nul: true });
// PostgreSQL rejects NUL in text, and a btree entry over 2704 bytes (8 kB pages): random keys
// of 2692 bytes were the most that fit. The key column is VARCHAR(2048), in characters, so
// every key of up to 2048 bytes fits both the column and the index.
const PG_KEY_CHARS = 2048;
const PG_KEY_LIMITS: KeyLimits = Object.freeze({ maxBytes: PG_KEY_CHARS, nul: false });
// InnoDB caps a key at 3072 bytes, 768 utf8mb4 characters; a longer VARCHAR key is refused.
// Counted in characters, so only keys of up to 768 bytes are sure to fit.
const MYSQL_KEY_CHARS = 768;
const MYSQL_KEY_LIMITS: KeyLimits = Object.freeze({ maxBytes: MYSQL_KEY_CHARS, nul: true });
// Binary collations that do not pad: under PAD SPACE (utf8mb4_bin) "user" and "user " are one
// row. MariaDB 10.2+ has the first, MySQL 8 the second; most preferred first.
const NO_PAD_COLLATIONS = ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"];

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
 * SQL URLs accept `?table=name` (default `keyv`); `postgres` also `?schema=name`. Tables are
 * fixed on first use, new or existing, so every key is stored as given: PostgreSQL keys widened
 * to `VARCHAR(2048)`; MySQL keys to `VARCHAR(768)` in a binary NO PAD collation (the default
 * folds case and ignores trailing spaces) and values to `LONGTEXT` (`TEXT` rejects or truncates
 * entries over 64 KB).
 *
 * Every adapter returned (not the `Map`) carries its {@link KeyLimits} under `KEY_LIMITS`, and
 * `util.inspect` shows its URL with the password masked by {@link redactUrl}.
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

/**
 * A store URL fit for logs: the password replaced by `***`, everything else kept as written.
 * Never throws. When it cannot be told where the password ends (the URL does not parse, or an
 * `@` follows the host), everything between `//` and the last `@` is replaced instead.
 *
 * @example
 * ```ts
 * redactUrl("postgres://app:hunter2@db/app"); // "postgres://app:***@db/app"
 * ```
 */
export function redactUrl(url: string): string {
  if (typeof url !== "string") return "[not a URL]";
  const from = url.indexOf("//") + 2;
  const at = url.lastIndexOf("@");
  if (from === 1 || at < from) return url;
  const parsed = parseUrl(url);
  const authorityEnd = url.slice(from).search(/[/?#]/);
  // `u:p/x@host` or `host/db?to=a@b`: a driver might read either part as the password.
  if (parsed === undefined || (authorityEnd !== -1 && at > from + authorityEnd)) {
    return `${url.slice(0, from)}***${url.slice(at)}`;
  }
  if (parsed.password === "") return url;
  const colon = url.indexOf(":", from);
  const redacted = `${url.slice(0, colon + 1)}***${url.slice(at)}`;
  // Belt and braces: should the surgery misread the URL, hide the whole user part.
  return parseUrl(redacted)?.password === "***"
    ? redacted
    : `${url.slice(0, from)}***${url.slice(at)}`;
}

function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/**
 * Marks an adapter with its key limits, and gives it an inspect and JSON view of its URL
 * (password masked) and namespace: adapters keep the URL, and Redis clients the password, in
 * their state.
 */
function finish<T extends object>(adapter: T, name: string, url: string, limits: KeyLimits): T {
  const shown = redactUrl(url);
  Object.defineProperties(adapter, {
    [KEY_LIMITS]: { value: limits, enumerable: false, configurable: true, writable: true },
    [inspect.custom]: {
      value: (depth: number, options: InspectOptions) => {
        if (depth < 0) return `[${name}]`;
        const { namespace } = adapter as { namespace?: unknown };
        return `${name} ${inspect({ url: shown, namespace }, options)}`;
      },
      enumerable: false,
      configurable: true,
      writable: true,
    },
    // JSON loggers (pino and others) serialize objects they are handed: the same view, no secret.
    toJSON: {
      value: () => ({
        adapter: name,
        url: shown,
        namespace: (adapter as { namespace?: unknown }).namespace,
      }),
      enumerable: false,
      configurable: true,
      writable: true,
    },
  });
  return adapter;
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
  const adapter = new KeyvSqlite({
    uri: `sqlite://${file}`,
    table: params.table ?? "keyv",
    busyTimeout: 5000,
    iterationLimit: ITERATION_PAGE,
  } as never);
  return finish(adapter, "KeyvSqlite", url, SQLITE_KEY_LIMITS);
}

function redisStore(url: string): KeyvStoreAdapter {
  checkParses(url);
  const KeyvRedis = adapterClass<KeyvStoreAdapter>("@keyv/redis");
  const adapter = new KeyvRedis(
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
  return finish(adapter, "KeyvRedis", url, REDIS_KEY_LIMITS);
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
  const table = params.table ?? "keyv";
  const schema = params.schema ?? "public";
  const adapter = new OwnPool({
    uri: bare,
    table,
    schema,
    keySize: PG_KEY_CHARS,
    iterationLimit: ITERATION_PAGE,
  } as never) as unknown as SqlAdapter<[values?: unknown[]]>;
  onFirstQuery(adapter, (query) => widenPostgresTable(query, schema, table));
  return finish(adapter, "KeyvPostgres", url, PG_KEY_LIMITS);
}

/**
 * Tables @keyv/postgres created before have `key VARCHAR(255)`: keys up to the declared limit
 * would fail there. Widening a VARCHAR rewrites neither the table nor its index.
 */
async function widenPostgresTable(
  query: (sql: string, values?: unknown[]) => Promise<unknown>,
  schema: string,
  table: string,
): Promise<void> {
  // The adapter writes both names unquoted, so PostgreSQL folds them to lower case.
  const [column] = (await query(
    `SELECT data_type AS type, character_maximum_length AS length FROM information_schema.columns
     WHERE table_schema = $1 AND table_name = $2 AND column_name = 'key'`,
    [schema.toLowerCase(), table.toLowerCase()],
  )) as { type: string; length: number | null }[];
  if (column === undefined || column.type !== "character varying") return;
  if (column.length === null || column.length >= PG_KEY_CHARS) return;
  await query(`ALTER TABLE ${schema}.${table} ALTER COLUMN key TYPE VARCHAR(${PG_KEY_CHARS})`);
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

/** A SQL adapter whose `query` runs every statement it makes. */
type SqlAdapter<Rest extends unknown[] = []> = KeyvStoreAdapter & {
  query: (sql: string, ...rest: Rest) => Promise<unknown>;
};

/**
 * Runs `prepare` once, before the adapter's first statement; a failure is retried next time.
 * `eager` starts it at once, so that a connection that fails before any call is awaited by
 * someone: @keyv/mysql leaves that rejection unhandled, which ends the process.
 */
function onFirstQuery<Rest extends unknown[]>(
  adapter: SqlAdapter<Rest>,
  prepare: (query: SqlAdapter<Rest>["query"]) => Promise<void>,
  eager = false,
): void {
  const query = adapter.query;
  let ready: Promise<void> | undefined;
  const start = () => {
    ready ??= prepare(query).catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
  adapter.query = async (sql: string, ...rest: Rest) => {
    await start();
    return query(sql, ...rest);
  };
  // The next call retries and reports the failure; until then it is only an event.
  if (eager) start().catch((error: unknown) => reportError(adapter, error));
}

function reportError(adapter: object, error: unknown): void {
  const emitter = adapter as Partial<EventEmitter>;
  if ((emitter.listenerCount?.("error") ?? 0) > 0) emitter.emit?.("error", error);
}

function mysqlStore(url: string): KeyvStoreAdapter {
  const [bare, params] = takeParams(url, ["table"]);
  checkParses(bare);
  const table = params.table ?? "keyv";
  const KeyvMysql = adapterClass<SqlAdapter>("@keyv/mysql");
  // mysql2 warns about every pool option it does not know, so only pass ones it does
  // (keySize is the adapter's own and not passed on).
  const adapter = new KeyvMysql({
    uri: bare,
    table,
    keySize: MYSQL_KEY_CHARS,
    connectTimeout: SQL_CONNECT_TIMEOUT_MS,
  } as never);
  onFirstQuery(adapter, (query) => widenMysqlTable(query, table), true);
  const format = loadBeside<{ format: (sql: string, values: unknown[]) => string }>(
    "@keyv/mysql",
    "mysql2",
  ).format;
  adapter.iterator = ((namespace?: string) =>
    mysqlEntries(adapter, table, format, namespace)) as SqlAdapter["iterator"];
  return finish(adapter, "KeyvMysql", url, MYSQL_KEY_LIMITS);
}

/**
 * Lists a namespace by key range instead of the adapter's `LIKE 'ns:%'`: MariaDB ends that
 * LIKE's index range at U+FFFF under a binary collation, so a key whose first character after
 * `ns:` lies beyond it (an emoji) was never listed. Under a NO PAD binary collation the keys
 * starting with `ns:` are exactly those from `ns:` up to, not including, `ns;`.
 */
async function* mysqlEntries(
  adapter: SqlAdapter,
  table: string,
  format: (sql: string, values: unknown[]) => string,
  namespace: string | undefined,
): AsyncGenerator<[string, unknown]> {
  const bounds: [string, unknown[]] =
    namespace === undefined
      ? ["TRUE", []]
      : ["id >= ? AND id < ?", [`${namespace}:`, `${namespace};`]];
  let after: string | undefined;
  while (true) {
    const [where, values] =
      after === undefined ? bounds : [`${bounds[0]} AND id > ?`, [...bounds[1], after]];
    const rows = (await adapter.query(
      format(`SELECT id, value FROM \`${table}\` WHERE ${where} ORDER BY id LIMIT ?`, [
        ...values,
        ITERATION_PAGE,
      ]),
    )) as { id: string; value: unknown }[];
    for (const row of rows) yield [row.id, row.value];
    if (rows.length < ITERATION_PAGE) return;
    after = rows[rows.length - 1]?.id;
  }
}

/**
 * @keyv/mysql creates `id VARCHAR(255)` in the database's default collation and `value TEXT`
 * (64 KB): long keys fail, keys differing only in case or in trailing spaces share a row, and
 * a large entry is rejected or truncated. Fix the table once, new or existing: a stricter key
 * collation never makes two existing rows collide.
 */
async function widenMysqlTable(
  query: (sql: string) => Promise<unknown>,
  table: string,
): Promise<void> {
  const columns = (await query(
    `SELECT COLUMN_NAME AS name, DATA_TYPE AS type, CHARACTER_MAXIMUM_LENGTH AS length,
       COLLATION_NAME AS collation
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}'`,
  )) as { name: string; type: string; length: number | null; collation: string | null }[];
  const id = columns.find((column) => column.name === "id");
  const value = columns.find((column) => column.name === "value");
  const collation = await noPadCollation(query);
  const keyFits = id?.collation === collation && Number(id.length) >= MYSQL_KEY_CHARS;
  if (value?.type === "longtext" && keyFits) return;
  await query(
    `ALTER TABLE \`${table}\` MODIFY id VARCHAR(${MYSQL_KEY_CHARS}) CHARACTER SET utf8mb4 COLLATE ${collation} NOT NULL, MODIFY value LONGTEXT CHARACTER SET utf8mb4`,
  );
}

async function noPadCollation(query: (sql: string) => Promise<unknown>): Promise<string> {
  const rows = (await query(
    `SELECT COLLATION_NAME AS name FROM information_schema.COLLATIONS
     WHERE COLLATION_NAME IN (${NO_PAD_COLLATIONS.map((name) => `'${name}'`).join(", ")})`,
  )) as { name: string }[];
  const found = NO_PAD_COLLATIONS.find((name) => rows.some((row) => row.name === name));
  if (found === undefined) {
    throw new ConfigError(
      "this MySQL server has no NO PAD binary collation (MariaDB 10.2+ or MySQL 8.0+ needed): keys differing only in trailing spaces would share a row",
    );
  }
  return found;
}

function checkParses(url: string): void {
  try {
    new URL(url);
  } catch {
    // No cause attached: URL's error carries the input, and the input may carry a password.
    throw new ConfigError(`store URL is malformed (${schemeOf(url)}//…)`);
  }
}
