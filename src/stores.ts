import type { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { type InspectOptions, inspect } from "node:util";
import type { KeyvStoreAdapter } from "keyv";
import { checkHostList, distributedStore } from "./cluster-stores.js";
import { ConfigError, driverFault, StoreError } from "./errors.js";
import { KEY_LIMITS, type KeyLimits } from "./key-limits.js";
import { SqliteStore } from "./sqlite-store.js";
import type { WrappableStore } from "./store.js";

/** The store a URL names when none is given. */
export const DEFAULT_STORE_URL = "sqlite://http_cache.sqlite";

/** URL schemes {@link storeFromUrl} understands, each with the package it needs. */
export const STORE_SCHEMES = {
  "memory:": undefined,
  "sqlite:": undefined,
  "redis:": "@keyv/redis",
  "rediss:": "@keyv/redis",
  "postgres:": "@keyv/postgres",
  "postgresql:": "@keyv/postgres",
  "mysql:": "@keyv/mysql",
  "valkey:": "@keyv/redis",
  "valkeys:": "@keyv/redis",
  "redis+cluster:": "@keyv/redis",
  "rediss+cluster:": "@keyv/redis",
  "memcache:": "@keyv/memcache",
  "etcd:": "@keyv/etcd",
} as const;

/** A scheme {@link storeFromUrl} understands. */
export type Scheme = keyof typeof STORE_SCHEMES;

// Optional peers are loaded only when their scheme is used, and synchronously, so that
// createKeyv can hand back a ready Keyv. Every adapter ships a CommonJS build.
const load = createRequire(import.meta.url);

// Interpolated into SQL by the adapters, which do not all quote it: only plain identifiers pass.
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

// Walks (iterator, and so clear() and audits of a namespace) page by key: each page starts
// where the last one ended, so every page costs the same however far the walk has gone. A page
// holds at most PAGE_ROWS rows and, once the first page has shown how large entries are, about
// PAGE_CHARS characters: a namespace of large entries is walked in smaller pages.
const PAGE_ROWS = 1000;
const FIRST_PAGE_ROWS = 16;
const PAGE_CHARS = 8 * 1024 * 1024;
// Keys Redis looks at per SCAN call (a hint): the default, 10, makes a walk one round trip per
// ten keys of the whole database.
const REDIS_SCAN_COUNT = 1000;

// A dead Redis must fail a call quickly instead of queueing it behind endless reconnects.
const REDIS_CONNECT_TIMEOUT_MS = 2000;
const REDIS_RECONNECT_ATTEMPTS = 2;
/** How long a close may wait for replies before the socket is destroyed, in ms. */
const REDIS_CLOSE_GRACE_MS = 300;

/** The slice of a node-redis client a close needs. */
interface RedisClientLike {
  readonly isOpen?: boolean;
  ping?: () => Promise<unknown>;
}

/** Resolves after `ms`, without holding the process open. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
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
 * Builds the Keyv store adapter a URL names. Adapter packages are optional peer dependencies,
 * loaded on first use; SQLite is built in ({@link SqliteStore}).
 *
 * | URL | store | package |
 * | --- | --- | --- |
 * | `memory://` | a new `Map` per call | — |
 * | `sqlite://path` (relative to the working directory), `sqlite:///abs/path` | SQLite file | — (`node:sqlite`, or `better-sqlite3` on Node 20) |
 * | `redis://…`, `rediss://…` | Redis | `@keyv/redis` |
 * | `postgres://…`, `postgresql://…` | PostgreSQL | `@keyv/postgres` |
 * | `mysql://…` | MySQL / MariaDB | `@keyv/mysql` |
 * | `valkey://…`, `valkeys://…` | Valkey | `@keyv/redis` |
 * | `redis+cluster://host:port,host:port`, `rediss+cluster://…` | Redis / Valkey Cluster | `@keyv/redis` |
 * | `memcache://host:port[,host:port]` | memcached servers | `@keyv/memcache` |
 * | `etcd://host:port[,host:port]` | etcd | `@keyv/etcd` |
 *
 * SQL URLs accept `?table=name` (default `keyv`); `postgres` also `?schema=name`. Tables are
 * fixed on first use, new or existing, so every key is stored as given: PostgreSQL keys widened
 * to `VARCHAR(2048)` in the "C" collation; MySQL keys to `VARCHAR(768)` in a binary NO PAD
 * collation (the default folds case and ignores trailing spaces) and values to `LONGTEXT`
 * (`TEXT` rejects or truncates entries over 64 KB).
 *
 * Every adapter lists (`iterator`) and clears exactly the keys of its namespace, whatever
 * characters the namespace holds, page by page in key order (linear, never recursive). MySQL
 * writes send each value once, and a write larger than the server's `max_allowed_packet` is
 * refused before it is sent (its key's older entry deleted) instead of breaking a pooled
 * connection.
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
    case "valkey:":
    case "valkeys:":
      return redisStore(url);
    case "postgres:":
    case "postgresql:":
      return postgresStore(url);
    case "mysql:":
      return mysqlStore(url);
    default:
      // Redis Cluster, Valkey, memcached and etcd: see cluster-stores.ts.
      return distributedStore(url, scheme);
  }
}

/**
 * Checks that a URL names a supported store, without building it or loading any package.
 *
 * @throws {ConfigError} On an unknown scheme or a URL that does not parse.
 */
export function checkStoreUrl(url: string): void {
  const scheme = schemeOf(url);
  // Host lists (`host:port,host:port`) are not WHATWG URLs.
  if (checkHostList(url, scheme)) return;
  if (scheme !== "memory:" && scheme !== "sqlite:") checkParses(takeParams(url, [])[0]);
}

/**
 * A store URL fit for logs: passwords replaced by `***`, everything else kept as written. Never
 * throws. It masks the password of the user part; when it cannot be told where that ends (the
 * URL does not parse, or an `@` follows the host), everything between `//` and the last `@`.
 * It also masks password parameters of the query (`?password=`, as PostgreSQL and MySQL drivers
 * read it), and the user parts of a bare server list (`user:pass@host:port,…`, as memcached
 * clients keep it).
 *
 * @example
 * ```ts
 * redactUrl("postgres://app:hunter2@db/app"); // "postgres://app:***@db/app"
 * redactUrl("postgres://db/app?password=hunter2"); // "postgres://db/app?password=***"
 * ```
 */
export function redactUrl(url: string): string {
  if (typeof url !== "string") return "[not a URL]";
  return maskPasswordParams(maskUserPart(url));
}

// Query parameters a database driver takes as a password.
const PASSWORD_PARAM = /([?&;](?:password|passwd|pass|pwd|sslpassword)=)[^&;#]*/gi;

function maskPasswordParams(url: string): string {
  return url.replace(PASSWORD_PARAM, "$1***");
}

function maskUserPart(url: string): string {
  const from = url.indexOf("//") + 2;
  const at = url.lastIndexOf("@");
  if (from === 1) {
    // No scheme: a server list such as memjs keeps, `user:pass@host:port,user:pass@host:port`.
    return at === -1 ? url : url.replace(/(^|,)([^,:@/]*):[^,@]*@/g, "$1$2:***@");
  }
  if (at < from) return url;
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
export function finish<T extends object>(
  adapter: T,
  name: string,
  url: string,
  limits: KeyLimits,
): T {
  // Some adapters report faults of their own making as "error" events (etcd's first call, a
  // pool's dropped connection) before anything listens: an unheard one would end the process.
  // The signed store, and Keyv, add listeners of their own to hear them.
  (adapter as Partial<EventEmitter>).on?.("error", ignoreUnheard);
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

/**
 * Whether an adapter class speaks Keyv 6's storage contract (the 6.x adapters declare it with a
 * `capabilities` getter): it prefixes its namespace itself and takes an absolute `expires`.
 */
function takesExpires(adapterClass: { prototype: object }): boolean {
  return "capabilities" in adapterClass.prototype;
}

export function adapterClass<T>(packageName: string): new (...args: never[]) => T {
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

/** The listener that keeps an adapter's "error" events from being unheard; see {@link finish}. */
function ignoreUnheard(): void {}

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
  // A synchronous driver: a read costs microseconds instead of a thread-pool round trip. The
  // store lists and clears by key range itself (see SqliteStore), and is the same under either
  // Keyv major (the signed store addresses it as a Keyv 5 adapter).
  const adapter = new SqliteStore({ file, table: params.table ?? "keyv", busyTimeout: 5000 });
  return finish(adapter, "KeyvSqlite", url, SQLITE_KEY_LIMITS);
}

function redisStore(url: string): KeyvStoreAdapter {
  checkParses(url);
  // Valkey speaks the Redis protocol: the same client, walks and fixes serve both.
  const target = url.replace(/^valkey(s?):/i, "redis$1:");
  return redisAdapter(url, {
    url: target,
    socket: {
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      // Out of retries, the client closes and rejects what it queued; the adapter reconnects
      // on the next call. Calls made while it connects wait in the queue, bounded by storeTimeout.
      reconnectStrategy: (retries: number) =>
        retries < REDIS_RECONNECT_ATTEMPTS ? 50 * 2 ** retries : false,
    },
  });
}

/**
 * A @keyv/redis adapter over `connect` (node-redis client or cluster options), with the walks,
 * errors and close of {@link storeFromUrl}'s Redis stores; `url` is what inspect shows.
 */
export function redisAdapter(url: string, connect: object, name = "KeyvRedis"): RedisAdapter {
  const KeyvRedis = adapterClass<KeyvStoreAdapter>("@keyv/redis");
  const adapter = new KeyvRedis(
    connect as never,
    // By default the adapter turns a failed command into an "error" event and a miss (or a
    // write that seems to succeed); throwing lets the signed store report it as a StoreError.
    { throwOnErrors: true, connectionTimeout: REDIS_CONNECT_TIMEOUT_MS } as never,
  ) as RedisAdapter;
  // The adapter's SCAN MATCH "<ns>::*" leaves the namespace unescaped: `u[a]` matches `ua::…`
  // and never `u[a]::…`, `u\` matches `u::…`. Both walks here escape it, ask for larger SCAN
  // batches, and report a failed command instead of ending as if complete.
  const clear = adapter.clear.bind(adapter);
  adapter.iterator = ((namespace?: string) =>
    redisEntries(adapter, namespace)) as KeyvStoreAdapter["iterator"];
  adapter.clear = async () => {
    if (!adapter.namespace && adapter.noNamespaceAffectsAll) return clear();
    await redisClear(adapter);
  };
  // A graceful close waits for the replies to what was sent: a server that stopped answering
  // would keep the socket, and the process, alive forever (and once closing has begun the
  // client can no longer be destroyed). So the server is asked first, briefly; if it does not
  // answer, the socket is destroyed instead.
  const disconnect = (adapter.disconnect as (force?: boolean) => Promise<void>).bind(adapter);
  adapter.disconnect = async () => {
    const client = (adapter as unknown as { client?: RedisClientLike }).client;
    if (client === undefined || client.isOpen !== true) return disconnect();
    const answers = await Promise.race([
      Promise.resolve(client.ping?.()).then(
        () => true,
        () => false,
      ),
      sleep(REDIS_CLOSE_GRACE_MS).then(() => false),
    ]);
    await disconnect(!answers).catch(() => {});
  };
  return finish(adapter, name, url, REDIS_KEY_LIMITS);
}

/** The parts of @keyv/redis (and its node-redis clients) the walks use. */
export type RedisAdapter = KeyvStoreAdapter & {
  keyPrefixSeparator: string;
  clearBatchSize: number;
  noNamespaceAffectsAll: boolean;
  getMasterNodes(): Promise<RedisScanner[]>;
  mget(keys: string[]): Promise<(string | undefined)[]>;
  clearWithClusterSupport(keys: string[]): Promise<void>;
};

interface RedisScanner {
  scan(
    cursor: string,
    options: { MATCH: string; COUNT: number; TYPE: string },
  ): Promise<{ cursor: string | number; keys: string[] }>;
}

/** A Redis glob matching `text` literally: `*`, `?`, `[`, `]` and `\` escaped. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

/**
 * Walks the keys of a namespace (or, without one, those outside every namespace) with SCAN,
 * one batch per call, on every master. Keys SCAN hands back twice (it may, while Redis resizes
 * its table) are listed once; keys gone by the time their value is read are skipped.
 */
async function* redisScan(
  adapter: RedisAdapter,
  namespace: string | undefined,
  count: number,
): AsyncGenerator<string[]> {
  const separator = adapter.keyPrefixSeparator;
  const prefix = namespace ? `${namespace}${separator}` : undefined;
  const match = prefix === undefined ? "*" : `${escapeGlob(prefix)}*`;
  const seen = new Set<string>();
  for (const client of await adapter.getMasterNodes()) {
    let cursor = "0";
    do {
      const result = await client.scan(cursor, { MATCH: match, COUNT: count, TYPE: "string" });
      cursor = String(result.cursor);
      const keys = result.keys.filter((key) => {
        const mine =
          prefix === undefined
            ? adapter.noNamespaceAffectsAll || !key.includes(separator)
            : key.startsWith(prefix);
        if (!mine || seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      if (keys.length > 0) yield keys;
    } while (cursor !== "0");
  }
}

async function* redisEntries(
  adapter: RedisAdapter,
  namespace: string | undefined,
): AsyncGenerator<[string, unknown]> {
  const cut = namespace ? `${namespace}${adapter.keyPrefixSeparator}`.length : 0;
  for await (const keys of redisScan(adapter, namespace, REDIS_SCAN_COUNT)) {
    const values = await adapter.mget(keys);
    for (const [index, key] of keys.entries()) {
      const value = values[index];
      if (value !== undefined && value !== null) yield [key.slice(cut), value];
    }
  }
}

async function redisClear(adapter: RedisAdapter): Promise<void> {
  const count = Math.max(REDIS_SCAN_COUNT, adapter.clearBatchSize);
  for await (const keys of redisScan(adapter, adapter.namespace, count)) {
    await adapter.clearWithClusterSupport(keys);
  }
}

function postgresStore(url: string): KeyvStoreAdapter {
  const [bare, params] = takeParams(url, ["table", "schema"]);
  checkParses(bare);
  const KeyvPostgres = adapterClass<KeyvStoreAdapter & EventEmitter>("@keyv/postgres");
  const table = params.table ?? "keyv";
  const schema = params.schema ?? "public";
  // The adapter keeps one module-wide pg.Pool that nobody listens to: an idle connection the
  // server drops (a restart, a terminated backend) then emits an unheard "error" and kills the
  // process, and any adapter's disconnect() ends the pool under all of them. Here stores of one
  // server share a pool that reports its errors to each of them, and closes with the last one.
  // Both adapter majors get their query function from connect().
  let shared: SharedPool | undefined;
  const OwnPool = class extends KeyvPostgres {
    async connect() {
      shared = acquirePool(bare, this);
      const pool = shared.pool;
      return async (sql: string, values?: unknown[]) => (await pool.query(sql, values)).rows;
    }
    override async disconnect() {
      (this as { stopClearExpiredTimer?: () => void }).stopClearExpiredTimer?.();
      await releasePool(bare, this);
    }
  };
  if (takesExpires(KeyvPostgres)) {
    // 6.x keeps the namespace in a column of its own and walks it by key: exact and linear.
    const adapter = new OwnPool({
      uri: bare,
      table,
      schema,
      keyLength: PG_KEY_CHARS,
      iterationLimit: PAGE_ROWS,
    } as never);
    return finish(adapter, "KeyvPostgres", url, PG_KEY_LIMITS);
  }
  const adapter = new OwnPool({
    uri: bare,
    table,
    schema,
    keySize: PG_KEY_CHARS,
  } as never) as unknown as SqlAdapter<[values?: unknown[]]>;
  const ready = onFirstQuery(adapter, (query) => widenPostgresTable(query, schema, table));
  // The adapter's walk ends silently when a page fails, and its clear() matches an unescaped
  // LIKE ('u%' clears u2 too): replaced by keyset pages over a key range in the "C" collation
  // the key column now has, where that range is exactly the keys starting with `ns:`.
  const where = `${schema}.${table}`;
  const run = async (sql: string, params: unknown[]) =>
    (await adapter.query(sql, params)) as Record<string, unknown>[];
  adapter.iterator = ((namespace?: string) =>
    keysetWalk(async (after, limit) => {
      const bounds = keyBounds("key", namespace, after, (n) => `$${n}`);
      await ready();
      const pool = shared?.pool;
      if (pool === undefined) throw new Error("the PostgreSQL store is not connected");
      const rows = await indexOrderedQuery(
        pool,
        `SELECT key, value FROM ${where} ${bounds.where} ORDER BY key LIMIT ${limit}`,
        bounds.params,
      );
      return rows.map((row) => [String(row.key), row.value]);
    })) as KeyvStoreAdapter["iterator"];
  adapter.clear = async () => {
    const bounds = keyBounds("key", adapter.namespace, undefined, (n) => `$${n}`);
    await run(`DELETE FROM ${where} ${bounds.where}`, bounds.params);
  };
  return finish(adapter, "KeyvPostgres", url, PG_KEY_LIMITS);
}

/**
 * Tables @keyv/postgres created before have `key VARCHAR(255)`: keys up to the declared limit
 * would fail there. Widening a VARCHAR rewrites neither the table nor its index. The key column
 * also gets the "C" collation (byte order), once: in the database's default collation (often a
 * linguistic one such as en_US) keys starting with `ns:` are not one range of the index, so a
 * walk over a namespace could not be a range scan. Changing it rebuilds the key index once.
 */
async function widenPostgresTable(
  query: (sql: string, values?: unknown[]) => Promise<unknown>,
  schema: string,
  table: string,
): Promise<void> {
  // The adapter writes both names unquoted, so PostgreSQL folds them to lower case.
  const [column] = (await query(
    `SELECT data_type AS type, character_maximum_length AS length, collation_name AS collation
     FROM information_schema.columns
     WHERE table_schema = $1 AND table_name = $2 AND column_name = 'key'`,
    [schema.toLowerCase(), table.toLowerCase()],
  )) as { type: string; length: number | null; collation: string | null }[];
  if (column === undefined) return;
  const bytewise = column.collation === "C" || column.collation === "POSIX";
  let type: string;
  if (column.type === "text") type = "TEXT";
  else if (column.type !== "character varying") return;
  else if (column.length === null) type = "VARCHAR";
  else type = `VARCHAR(${Math.max(column.length, PG_KEY_CHARS)})`;
  if (bytewise && (column.length === null || column.length >= PG_KEY_CHARS)) return;
  await query(`ALTER TABLE ${schema}.${table} ALTER COLUMN key TYPE ${type} COLLATE "C"`);
}

/**
 * Runs a page of a walk as an index scan in key order, which stops after the page. Without
 * planner statistics (a table filled since autovacuum last analyzed it) PostgreSQL guesses a
 * key range holds a few hundred rows and prefers to read all of it and sort it: every page
 * would then read the rest of the namespace, and a walk would be quadratic in its size.
 */
async function indexOrderedQuery(
  pool: PgPool,
  sql: string,
  values: unknown[],
): Promise<Record<string, unknown>[]> {
  const client = await pool.connect();
  let broken: unknown;
  try {
    await client.query(
      "BEGIN READ ONLY; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
    );
    const { rows } = await client.query(sql, values);
    await client.query("COMMIT");
    return rows as Record<string, unknown>[];
  } catch (error) {
    broken = error;
    throw error;
  } finally {
    // A connection whose transaction failed is closed rather than handed out again.
    client.release(broken === undefined ? undefined : true);
  }
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
      for (const each of users) {
        if (each.listenerCount("error") === 0) continue;
        try {
          each.emit("error", error);
        } catch {
          // One store's listener rethrowing must neither stop the others hearing it nor, from
          // the pool's event, end the process.
        }
      }
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
  connect(): Promise<{
    query(sql: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
    release(destroy?: boolean): void;
  }>;
  end(): Promise<void>;
}

/** Loads `dependency` as `packageName` itself would resolve it. */
export function loadBeside<T>(packageName: string, dependency: string): T {
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
): () => Promise<void> {
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
  return start;
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
  const prepared = onFirstQuery(adapter, (query) => widenMysqlTable(query, table), true);
  shareMysqlPool(adapter, prepared);
  const format = loadBeside<{ format: (sql: string, values: unknown[]) => string }>(
    "@keyv/mysql",
    "mysql2",
  ).format;
  const run = async (sql: string, values: unknown[]) =>
    (await adapter.query(format(sql, values))) as Record<string, unknown>[];
  // The adapter lists with `LIKE 'ns:%'` 10 rows a page, recursing per page (the stack
  // overflows past ~31 000 entries), and clears with the same unescaped LIKE (`u\` clears
  // `u`): replaced by keyset pages over a key range. Under the NO PAD binary collation the key
  // column gets, the keys starting with `ns:` are exactly those from `ns:` up to `ns;`; the
  // range also lists keys whose first character after `ns:` lies beyond U+FFFF (an emoji),
  // which MariaDB's index range for that LIKE stops short of.
  adapter.iterator = ((namespace?: string) =>
    keysetWalk(async (after, limit) => {
      const { where, params } = keyBounds("id", namespace, after, () => "?");
      const rows = await run(
        `SELECT id, value FROM \`${table}\` ${where} ORDER BY id LIMIT ${limit}`,
        params,
      );
      return rows.map((row) => [String(row.id), row.value]);
    })) as SqlAdapter["iterator"];
  adapter.clear = async () => {
    const { where, params } = keyBounds("id", adapter.namespace, undefined, () => "?");
    await run(`DELETE FROM \`${table}\` ${where}`, params);
  };
  const upsert = mysqlUpsert(adapter, table, format);
  adapter.set = (key: string, value: unknown) => upsert([{ key, value }]);
  adapter.setMany = (entries: { key: string; value: unknown }[]) => upsert(entries);
  return finish(adapter, "KeyvMysql", url, MYSQL_KEY_LIMITS);
}

/** Adapters of @keyv/mysql open in this process: they all share its one module-wide pool. */
let openMysqlAdapters = 0;

/**
 * @keyv/mysql keeps one connection pool for the whole process, and any adapter's `disconnect()`
 * ends it: under every other MySQL store (whose next call then fails with "Pool is closed"),
 * and under a connection attempt still in flight, whose failure then surfaces as an uncaught
 * error that ends the process. Here the pool ends with the last adapter, once its own
 * preparation has settled.
 */
function shareMysqlPool(adapter: SqlAdapter, prepared: () => Promise<void>): void {
  const end = adapter.disconnect?.bind(adapter);
  let open = true;
  openMysqlAdapters++;
  adapter.disconnect = async () => {
    if (!open) return;
    open = false;
    await prepared().catch(() => {});
    if (--openMysqlAdapters === 0) await end?.();
  };
}

/**
 * Writes entries with `ON DUPLICATE KEY UPDATE value = VALUES(value)`, each value sent once
 * (the adapter's `value = ?` sent it twice, halving the largest entry), many rows a statement.
 *
 * A statement larger than the server's `max_allowed_packet` is refused by the server, which
 * then drops the connection: the pool hands it out again and the next, unrelated write fails
 * with ECONNRESET. So statements are sized before they are sent: rows are grouped to fit, and
 * an entry that cannot fit on its own is never sent. Its key's older entry is deleted (it would
 * otherwise be served in place of the value just refused) and the write rejects.
 */
function mysqlUpsert(
  adapter: SqlAdapter,
  table: string,
  format: (sql: string, values: unknown[]) => string,
): (entries: readonly { key: string; value: unknown }[]) => Promise<undefined> {
  const head = `INSERT INTO \`${table}\` (id, value) VALUES `;
  const tail = " ON DUPLICATE KEY UPDATE value = VALUES(value)";
  // The packet is a 1-byte command code and the statement; the server takes packets shorter
  // than max_allowed_packet (measured on MariaDB 10.11: a 16 MiB limit takes a statement of
  // 16 MiB - 2 bytes, and refuses one byte more).
  const fixed = Buffer.byteLength(head) + Buffer.byteLength(tail) + 1;
  let limit: Promise<number> | undefined;
  const maxPacket = () => {
    limit ??= (async () => {
      const [row] = (await adapter.query("SELECT @@max_allowed_packet AS max")) as {
        max: number | string;
      }[];
      return Number(row?.max);
    })().catch((error: unknown) => {
      limit = undefined;
      throw error;
    });
    return limit;
  };
  const send = async (rows: string[]) => {
    try {
      await adapter.query(`${head}${rows.join(", ")}${tail}`);
    } catch (error) {
      // The limit was lowered since it was read: read it again next time.
      if ((error as { code?: string }).code === "ER_NET_PACKET_TOO_LARGE") limit = undefined;
      throw error;
    }
  };
  return async (entries) => {
    if (entries.length === 0) return undefined;
    const max = await maxPacket();
    const rows = entries.map(({ key, value }) => format("(?, ?)", [key, value]));
    const sizes = rows.map((row) => Buffer.byteLength(row));
    const refused = entries.filter((_, index) => fixed + (sizes[index] ?? 0) >= max);
    if (refused.length > 0) {
      const keys = refused.map((entry) => entry.key);
      await adapter
        .query(format(`DELETE FROM \`${table}\` WHERE id IN (?)`, [keys]))
        .catch(() => {});
      const largest = sizes.reduce((most, size) => Math.max(most, size), 0) + fixed;
      throw new Error(
        `entry not written: it makes a ${largest}-byte packet, and the MySQL server takes packets under its max_allowed_packet of ${max} bytes (any older entry under its key is removed)`,
      );
    }
    let batch: string[] = [];
    let size = fixed;
    for (const [index, row] of rows.entries()) {
      const rowSize = sizes[index] ?? 0;
      // Rows are joined with ", ".
      if (batch.length > 0 && size + 2 + rowSize >= max) {
        await send(batch);
        batch = [];
        size = fixed;
      }
      size += (batch.length > 0 ? 2 : 0) + rowSize;
      batch.push(row);
    }
    await send(batch);
    return undefined;
  };
}

/**
 * Where clause and parameters selecting the keys of a namespace as Keyv lays them out
 * (`ns:key`), after `after` when given: `key >= 'ns:' AND key < 'ns;'`. In a binary (code point)
 * order, which every walk here runs in, that range is exactly the keys starting with `ns:` —
 * unlike `LIKE 'ns:%'`, where `_`, `%` (and, in MySQL, `\`) in the namespace are patterns.
 * Without a namespace (or an empty one, as the adapters treat it), every key.
 */
function keyBounds(
  column: string,
  namespace: string | undefined,
  after: string | undefined,
  placeholder: (position: number) => string,
): { where: string; params: string[] } {
  const params: string[] = [];
  const conditions: string[] = [];
  const add = (operator: string, value: string) => {
    params.push(value);
    conditions.push(`${column} ${operator} ${placeholder(params.length)}`);
  };
  // One lower bound only: given two, SQLite seeks to one and filters by the other, and may
  // seek to the namespace's start on every page. A key listed is never below the namespace.
  if (after !== undefined) add(">", after);
  else if (namespace) add(">=", `${namespace}:`);
  if (namespace) add("<", `${namespace};`);
  return { where: conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`, params };
}

/**
 * Walks pages of `[key, value]` in key order, each page starting after the last key of the one
 * before (keyset pagination): iterative, and each page an index range read however far the walk
 * has gone. Pages hold at most PAGE_ROWS rows, fewer when entries are large.
 */
async function* keysetWalk(
  page: (after: string | undefined, limit: number) => Promise<[string, unknown][]>,
): AsyncGenerator<[string, unknown]> {
  let after: string | undefined;
  let limit = FIRST_PAGE_ROWS;
  while (true) {
    const rows = await page(after, limit);
    let chars = 0;
    for (const row of rows) {
      chars += row[0].length + (typeof row[1] === "string" ? row[1].length : 0);
      yield row;
    }
    const last = rows[rows.length - 1];
    if (rows.length < limit || last === undefined) return;
    after = last[0];
    limit = Math.max(1, Math.min(PAGE_ROWS, Math.floor((limit * PAGE_CHARS) / Math.max(chars, 1))));
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

/**
 * Whether the table a SQL store URL names exists, asked without creating it: the adapters create
 * their table (and fix its columns) on first use, which a read-only command must never do.
 * `undefined` for URLs that are not SQL tables (SQLite files are checked as files).
 *
 * @throws {StoreError} When the server cannot be asked.
 */
export async function sqlTableExists(url: string): Promise<boolean | undefined> {
  const scheme = schemeOf(url);
  if (scheme === "postgres:" || scheme === "postgresql:") {
    const [bare, params] = takeParams(url, ["table", "schema"]);
    const { Client } = loadBeside<{ Client: new (config: object) => PgClient }>(
      "@keyv/postgres",
      "pg",
    );
    const client = new Client({
      connectionString: bare,
      connectionTimeoutMillis: SQL_CONNECT_TIMEOUT_MS,
    });
    try {
      await client.connect();
      const { rows } = await client.query("SELECT to_regclass($1) IS NOT NULL AS found", [
        `"${params.schema ?? "public"}"."${params.table ?? "keyv"}"`,
      ]);
      return (rows[0] as { found?: boolean } | undefined)?.found === true;
    } catch (error) {
      throw new StoreError(`store check failed: ${(error as Error).message}`, {
        cause: driverFault(error),
      });
    } finally {
      await client.end().catch(() => {});
    }
  }
  if (scheme === "mysql:") {
    const [bare, params] = takeParams(url, ["table"]);
    const mysql = loadBeside<{ createConnection: (uri: string) => Promise<MysqlConnection> }>(
      "@keyv/mysql",
      "mysql2/promise",
    );
    let connection: MysqlConnection | undefined;
    try {
      connection = await mysql.createConnection(bare);
      const [rows] = await connection.query(
        "SELECT COUNT(*) AS found FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        [params.table ?? "keyv"],
      );
      return Number((rows as { found?: number }[])[0]?.found ?? 0) > 0;
    } catch (error) {
      throw new StoreError(`store check failed: ${(error as Error).message}`, {
        cause: driverFault(error),
      });
    } finally {
      await connection?.end().catch(() => {});
    }
  }
  return undefined;
}

interface PgClient {
  connect(): Promise<void>;
  query(sql: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
  end(): Promise<void>;
}

interface MysqlConnection {
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  end(): Promise<void>;
}
