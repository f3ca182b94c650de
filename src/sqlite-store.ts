import { isAscii } from "node:buffer";
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import type { KeyvStoreAdapter } from "keyv";
import { CALL_BOUND, type CallBounded } from "./key-limits.js";

/**
 * The synchronous SQLite drivers {@link SqliteStore} runs on: Node's built-in `node:sqlite`
 * (Node 22.13 and later, no native addon) or `better-sqlite3` (any supported Node).
 */
export type SqliteDriver = "node:sqlite" | "better-sqlite3";

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Path of the database file, or `:memory:`. */
  file: string;
  /** Table of the entries, a plain SQL identifier. @default "keyv" */
  table?: string;
  /** How long, in ms, a statement retries while another process holds a lock. @default 5000 */
  busyTimeout?: number;
  /**
   * Drivers to try, in order; the first that loads is used.
   * @default ["node:sqlite", "better-sqlite3"]
   */
  drivers?: readonly SqliteDriver[];
}

/** The part of a prepared statement both drivers share. */
interface Statement {
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): unknown;
}

/** The part of a connection both drivers share. */
interface Database {
  prepare(sql: string): Statement;
  exec(sql: string): unknown;
  close(): unknown;
}

type Row = { key: string; value: unknown };

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const DEFAULT_DRIVERS: readonly SqliteDriver[] = ["node:sqlite", "better-sqlite3"];
// A walk reads a page per call: at most PAGE_ROWS rows and, once a page has shown how large
// entries are, about PAGE_CHARS characters, so a namespace of 1 MB entries is not read whole.
const PAGE_ROWS = 1000;
const FIRST_PAGE_ROWS = 16;
const PAGE_CHARS = 8 * 1024 * 1024;
const MAX_STATEMENTS = 64;
// Text longer than this (in UTF-8 bytes) is read as bytes and decoded by decodeText: faster from
// about this size up on Node 20, 22 and 24 (measured at 64 KB, 128 KB, 256 KB and 1 MB).
const LARGE_TEXT_BYTES = 256 * 1024;
// Longest pause between two attempts of a statement that found the database locked.
const MAX_RETRY_WAIT_MS = 25;

const load = createRequire(import.meta.url);

/**
 * A Keyv 5 store adapter over one synchronous SQLite connection. A read is a call into SQLite on
 * this thread (microseconds) instead of a round trip through libuv's thread pool, as the async
 * `sqlite3` driver makes it.
 *
 * The table is the one `@keyv/sqlite` creates (`key VARCHAR(255) PRIMARY KEY, value TEXT`), so
 * files written by either read back with the other. Like `@keyv/sqlite`, expiry is left to Keyv
 * (`ttl` is accepted and ignored). The connection opens on first use and puts the file in WAL
 * mode. Several processes can share the file: readers never wait for a writer, and a statement
 * that finds the file locked is retried without blocking the event loop, for up to
 * `busyTimeout`. WAL needs a local file system, as SQLite's shared memory does; and within one
 * process, open the file only through this store (another copy of SQLite in the same process,
 * such as the `sqlite3` package's, neither sees nor respects its locks).
 *
 * `iterator` and `clear` select exactly the keys of a namespace (`ns:` up to `ns;` in binary
 * order), page by page in key order.
 */
export class SqliteStore extends EventEmitter implements KeyvStoreAdapter, CallBounded {
  /** What Keyv reads: `dialect` lets Keyv 5 bind its iterator. */
  readonly opts: {
    readonly dialect: "sqlite";
    readonly url: string;
    readonly table: string;
    readonly busyTimeout: number;
  };
  /**
   * Set by Keyv; prefixes are part of the keys it passes. Declared, not defined: Keyv 6 bridges
   * a store that has no `namespace` of its own by prefixing the keys it passes, and one that has
   * by passing them bare, which would mix namespaces in this table.
   */
  declare namespace: string | undefined;
  /** Entries carry their expiry in Keyv's value: the table has no expiry column. */
  readonly ttlSupport = false;
  readonly #file: string;
  readonly #drivers: readonly SqliteDriver[];
  #db: Database | undefined;
  #driver: SqliteDriver | undefined;
  #hot: HotStatements | undefined;
  readonly #cache = new Map<string, Statement>();
  #closed = false;
  /** The shortest bound a caller puts on one call; retries end before it. */
  #callBound = Number.POSITIVE_INFINITY;

  /** @throws {Error} When the table name is not a plain SQL identifier. */
  constructor(options: SqliteStoreOptions) {
    super();
    const table = options.table ?? "keyv";
    if (!TABLE_NAME.test(table)) throw new Error(`invalid SQLite table name: ${table}`);
    this.#file = options.file;
    this.#drivers = options.drivers ?? DEFAULT_DRIVERS;
    this.opts = {
      dialect: "sqlite",
      url: `sqlite://${options.file}`,
      table,
      busyTimeout: options.busyTimeout ?? 5000,
    };
  }

  /** Takes the longest a caller waits for one call (the shortest, when several say). */
  [CALL_BOUND](ms: number): void {
    if (ms > 0) this.#callBound = Math.min(this.#callBound, ms);
  }

  /** The driver in use; `undefined` until the first call opens the connection. */
  get driver(): SqliteDriver | undefined {
    return this.#driver;
  }

  // biome-ignore lint/suspicious/noExplicitAny: the Keyv adapter interface returns any stored data.
  async get(key: string): Promise<any> {
    return this.#attempt(() => rowValue(this.#statements().select.get(key)));
  }

  // biome-ignore lint/suspicious/noExplicitAny: the Keyv adapter interface returns any stored data.
  async getMany(keys: string[]): Promise<any[]> {
    return this.#attempt(() => {
      const { select } = this.#statements();
      return keys.map((key) => rowValue(select.get(key)));
    });
  }

  async has(key: string): Promise<boolean> {
    return this.#attempt(() => this.#statements().exists.get(key) !== undefined);
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return this.#attempt(() => {
      const { exists } = this.#statements();
      return keys.map((key) => exists.get(key) !== undefined);
    });
  }

  /** Writes `value` under `key`; `ttl` is ignored (see the class description). */
  async set(key: string, value: unknown, _ttl?: number): Promise<void> {
    await this.#attempt(() => this.#statements().upsert.run(key, value));
  }

  async setMany(entries: { key: string; value: unknown; ttl?: number }[]): Promise<void> {
    await this.#attempt(() => {
      const { upsert } = this.#statements();
      this.#transaction(() => {
        for (const { key, value } of entries) upsert.run(key, value);
      });
    });
  }

  async delete(key: string): Promise<boolean> {
    return this.#attempt(() => changes(this.#statements().remove.run(key)) > 0);
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    return this.#attempt(() => {
      const { remove } = this.#statements();
      let deleted = 0;
      this.#transaction(() => {
        for (const key of keys) deleted += changes(remove.run(key));
      });
      return deleted > 0;
    });
  }

  /** Deletes the keys of this namespace (every key without one). */
  async clear(): Promise<void> {
    const { where, params } = keyRange(this.namespace, undefined);
    await this.query(`DELETE FROM ${this.opts.table} ${where}`, params);
  }

  /** Yields `[key, value]` for the keys of `namespace` (every key without one), in key order. */
  // biome-ignore lint/suspicious/noExplicitAny: mirrors the Keyv adapter interface.
  async *iterator(namespace?: string): AsyncGenerator<[string, any], void> {
    let after: string | undefined;
    let limit = FIRST_PAGE_ROWS;
    while (true) {
      const { where, params } = keyRange(namespace, after);
      const rows = (await this.query(
        `SELECT key, value FROM ${this.opts.table} ${where} ORDER BY key LIMIT ?`,
        [...params, limit],
      )) as Row[];
      let chars = 0;
      for (const row of rows) {
        chars += row.key.length + (typeof row.value === "string" ? row.value.length : 0);
        yield [row.key, row.value];
      }
      const last = rows[rows.length - 1];
      if (rows.length < limit || last === undefined) return;
      after = last.key;
      limit = Math.max(
        1,
        Math.min(PAGE_ROWS, Math.floor((limit * PAGE_CHARS) / Math.max(chars, 1))),
      );
    }
  }

  /**
   * Runs one SQL statement with positional parameters and returns its rows: for maintenance
   * and tests. Walks and clear() go through it. Statements are prepared once and kept. Bound to
   * the store, as @keyv/sqlite's is, so it can be passed around and wrapped.
   */
  query = (sql: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> =>
    this.#attempt(() => {
      const statement = this.#statement(sql);
      // better-sqlite3 refuses all() on a statement that returns no rows (and says so in
      // `reader`); node:sqlite answers all() with [] for those.
      if ((statement as { reader?: boolean }).reader === false) {
        statement.run(...params);
        return [];
      }
      return statement.all(...params) as Record<string, unknown>[];
    });

  /** Closes the connection. Later calls reject. */
  async disconnect(): Promise<void> {
    this.#closed = true;
    this.#hot = undefined;
    this.#cache.clear();
    const db = this.#db;
    this.#db = undefined;
    db?.close();
  }

  /**
   * Runs `work` now; while another connection holds the lock it needs, again later, without
   * blocking the thread, until `busyTimeout` has passed. SQLite's own busy handler would sleep
   * on this thread, stalling the event loop for as long as another process holds the lock.
   */
  #attempt<T>(work: () => T): Promise<T> {
    try {
      return Promise.resolve(work());
    } catch (error) {
      if (!isBusy(error)) return Promise.reject(error);
      // Retries end before the caller stops waiting: a call reported as failed never lands.
      const patience = Math.min(this.opts.busyTimeout, this.#callBound - 1);
      return this.#retry(work, Date.now() + patience, error);
    }
  }

  async #retry<T>(work: () => T, deadline: number, busy: unknown): Promise<T> {
    let wait = 1;
    let last = busy;
    while (Date.now() + wait <= deadline) {
      await sleep(wait);
      try {
        return work();
      } catch (error) {
        if (!isBusy(error)) throw error;
        last = error;
      }
      wait = Math.min(wait * 2, MAX_RETRY_WAIT_MS);
    }
    throw last;
  }

  /** The statements of single-key calls, prepared once on first use. */
  #statements(): HotStatements {
    if (this.#hot !== undefined) return this.#hot;
    const db = this.#open();
    const table = this.opts.table;
    this.#hot = {
      // Large text comes back as its UTF-8 bytes, flagged, and is decoded here (see decodeText).
      select: db.prepare(
        `SELECT large, CASE WHEN large THEN CAST(value AS BLOB) ELSE value END AS value FROM (SELECT value, typeof(value) = 'text' AND length(CAST(value AS BLOB)) > ${LARGE_TEXT_BYTES} AS large FROM ${table} WHERE key = ?)`,
      ),
      exists: db.prepare(`SELECT 1 AS found FROM ${table} WHERE key = ?`),
      upsert: db.prepare(
        `INSERT INTO ${table} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
      ),
      remove: db.prepare(`DELETE FROM ${table} WHERE key = ?`),
    };
    return this.#hot;
  }

  #statement(sql: string): Statement {
    let statement = this.#cache.get(sql);
    if (statement === undefined) {
      statement = this.#open().prepare(sql);
      // `query` may be handed any number of distinct statements: keep the cache bounded.
      if (this.#cache.size >= MAX_STATEMENTS) this.#cache.clear();
      this.#cache.set(sql, statement);
    }
    return statement;
  }

  #transaction(work: () => void): void {
    const db = this.#open();
    db.exec("BEGIN IMMEDIATE");
    try {
      work();
      db.exec("COMMIT");
    } catch (error) {
      // SQLite may have rolled back already (it does on some errors): nothing left to undo.
      try {
        db.exec("ROLLBACK");
      } catch {}
      throw error;
    }
  }

  #open(): Database {
    if (this.#db !== undefined) return this.#db;
    if (this.#closed) throw new Error("the SQLite store is closed");
    const { driver, open } = loadDriver(this.#drivers);
    const db = open(this.#file);
    try {
      // No waiting inside SQLite: a busy statement fails at once and #attempt retries it later.
      db.exec("PRAGMA busy_timeout = 0");
      // A synchronous driver runs every fsync on this thread. In the default rollback journal a
      // write fsyncs several times (2.7 ms a 1 KB write, measured) and a read locks and stats
      // the file (8 system calls). WAL with synchronous=NORMAL commits without fsync (28 µs),
      // reads without system calls, and lets readers of other processes go on while one
      // writes. A power cut may lose the last writes, never corrupt the file: right for a cache.
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec(
        `CREATE TABLE IF NOT EXISTS ${this.opts.table} (key VARCHAR(255) PRIMARY KEY, value TEXT)`,
      );
    } catch (error) {
      db.close();
      throw error;
    }
    this.#db = db;
    this.#driver = driver;
    return db;
  }
}

interface HotStatements {
  readonly select: Statement;
  readonly exists: Statement;
  readonly upsert: Statement;
  readonly remove: Statement;
}

/**
 * The value column of a row, `undefined` for no row (or a NULL value, as Keyv reads it). Only
 * large text arrives as bytes (the select casts it): it is decoded to the same string.
 */
function rowValue(row: unknown): unknown {
  if (row === undefined) return undefined;
  const { large, value } = row as { large: unknown; value: unknown };
  if (value === null) return undefined;
  // Drivers return SQLite's integer 1 as a number or, with big integers on, a bigint.
  return large && value instanceof Uint8Array ? decodeText(value) : value;
}

/**
 * UTF-8 bytes to a string. Both drivers build large strings from UTF-8 slowly (1.0 ms for 1 MB of
 * ASCII through better-sqlite3 on Node 20, 0.75 ms through node:sqlite on Node 24, measured);
 * checking for ASCII and decoding the bytes as Latin-1, which is then the same text, took 0.4 ms.
 */
function decodeText(bytes: Uint8Array): string {
  const buffer = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return isAscii(buffer) ? buffer.toString("latin1") : buffer.toString("utf8");
}

/** Whether a driver error is SQLite's SQLITE_BUSY (another connection holds the lock). */
function isBusy(error: unknown): boolean {
  const { code, errcode } = (error ?? {}) as { code?: unknown; errcode?: unknown };
  // better-sqlite3 names the code; node:sqlite gives the number (extended codes keep 5 below).
  return (
    (typeof code === "string" && code.startsWith("SQLITE_BUSY")) ||
    (typeof errcode === "number" && (errcode & 0xff) === 5)
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rows a write statement changed, as either driver reports it. */
function changes(result: unknown): number {
  return Number((result as { changes?: number | bigint } | undefined)?.changes ?? 0);
}

/**
 * Where clause selecting the keys of a namespace as Keyv lays them out (`ns:key`), after `after`
 * when given. In binary order the keys starting with `ns:` are exactly those from `ns:` up to
 * `ns;`; unlike `LIKE 'ns:%'`, `_` and `%` in a namespace are not patterns and case counts.
 * One lower bound only, so that SQLite seeks straight to it on every page.
 */
function keyRange(
  namespace: string | undefined,
  after: string | undefined,
): { where: string; params: string[] } {
  const conditions: string[] = [];
  const params: string[] = [];
  if (after !== undefined) {
    conditions.push("key > ?");
    params.push(after);
  } else if (namespace) {
    conditions.push("key >= ?");
    params.push(`${namespace}:`);
  }
  if (namespace) {
    conditions.push("key < ?");
    params.push(`${namespace};`);
  }
  return { where: conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`, params };
}

type Opener = (file: string) => Database;

/** The first of `drivers` that loads. */
function loadDriver(drivers: readonly SqliteDriver[]): { driver: SqliteDriver; open: Opener } {
  const failures: string[] = [];
  for (const driver of drivers) {
    try {
      return { driver, open: driver === "node:sqlite" ? nodeSqlite() : betterSqlite3() };
    } catch (error) {
      failures.push(`${driver}: ${(error as Error).message.split("\n")[0]}`);
    }
  }
  throw new Error(
    `no SQLite driver loads on Node ${process.versions.node} (${failures.join("; ")}): use Node 22.13 or later, or npm install better-sqlite3`,
  );
}

let nodeSqliteOpener: Opener | undefined;

function nodeSqlite(): Opener {
  if (nodeSqliteOpener !== undefined) return nodeSqliteOpener;
  // Node 22 announces node:sqlite with an ExperimentalWarning on stderr when it loads. The
  // application did not ask for SQLite by name, so that one warning is held back; any other
  // warning raised meanwhile goes through (the load is synchronous: nothing else runs).
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string })?.type;
    const text = typeof warning === "string" ? warning : warning.message;
    if (type === "ExperimentalWarning" && text.includes("SQLite")) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  let DatabaseSync: new (file: string) => Database;
  try {
    ({ DatabaseSync } = load("node:sqlite") as { DatabaseSync: new (file: string) => Database });
  } finally {
    process.emitWarning = emit;
  }
  nodeSqliteOpener = (file) => new DatabaseSync(file);
  return nodeSqliteOpener;
}

let betterSqliteOpener: Opener | undefined;

function betterSqlite3(): Opener {
  if (betterSqliteOpener !== undefined) return betterSqliteOpener;
  const BetterSqlite = load("better-sqlite3") as new (
    file: string,
    options: { timeout: number },
  ) => Database;
  // Opening a throwaway in-memory database proves the addon was built for this Node: a binary
  // of another major fails here, at load, rather than on the first real call.
  new BetterSqlite(":memory:", { timeout: 0 }).close();
  betterSqliteOpener = (file) => new BetterSqlite(file, { timeout: 0 });
  return betterSqliteOpener;
}
