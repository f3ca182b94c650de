import { EventEmitter } from "node:events";
import type { KeyvStoreAdapter } from "keyv";
import { DEFAULT_MAC_ALGORITHM, isMacAlgorithm, type MacAlgorithm } from "./algorithms.js";
import { type OpenedEnvelope, openEnvelope, sealEnvelope } from "./envelope.js";
import {
  BadData,
  BadSignature,
  type BadSignatureReason,
  ConfigError,
  SignedCacheError,
  StoreError,
} from "./errors.js";
import { Keyring, type Secret } from "./keyring.js";

/** Anything `signedStore` can wrap: a Keyv store adapter or a plain `Map`. */
export type WrappableStore = KeyvStoreAdapter | Map<string, unknown>;

/** Options of {@link signedStore}. */
export interface SignedStoreOptions {
  /** Older secrets, newest first: entries they signed still verify. @default [] */
  fallbacks?: readonly Secret[];
  /**
   * Throw {@link BadSignature} / {@link BadPayload} from reads instead of treating a bad entry as
   * a miss. Keyv swallows store errors on `get` unless it has `throwOnErrors: true`.
   * @default false
   */
  strict?: boolean;
  /** Called with every rejected entry's error, in both modes. Exceptions it throws are ignored. */
  onInvalid?: (error: BadData) => void;
  /** Rewrite entries that verified under a fallback secret with the current one. @default false */
  resign?: boolean;
  /** Encrypt payloads with AES-256-GCM rather than only signing them. @default false */
  encrypt?: boolean;
  /** HMAC digest for new entries; every supported digest is accepted on read. @default "sha256" */
  algorithm?: MacAlgorithm;
  /**
   * Upper bound in ms on each call to the wrapped store; a call past it rejects with
   * {@link StoreError}. `0` or unset: no bound.
   * @default undefined
   */
  storeTimeout?: number;
}

/** What {@link SignedStore.audit} found for one stored entry. */
export interface EntryAudit {
  /** The key as stored, namespace prefix included. */
  key: string;
  /** `fallback`: valid, but signed by an older secret. */
  status: "valid" | "fallback" | "expired" | "invalid";
  /** Why an invalid entry failed: a {@link BadSignatureReason}, or `payload` for BadPayload. */
  reason?: BadSignatureReason | "payload";
  /** Key id of the secret that signed a verified entry. */
  kid?: string;
  /** Length of the stored text in characters (0 for non-string values). */
  size: number;
  /** What the audit did to it, when asked to act. */
  action?: "resigned" | "deleted";
}

type SetEntry = { key: string; value: unknown; ttl?: number };

// Keys deleted per call when clearing a namespace: bounded so no single statement is huge.
const CLEAR_BATCH = 500;

const MISS: unique symbol = Symbol("miss");
type ReadResult = unknown | typeof MISS;

/**
 * A Keyv store adapter that signs every value before it reaches the wrapped store and verifies
 * it on the way back. Built by {@link signedStore}.
 */
export class SignedStore extends EventEmitter implements KeyvStoreAdapter {
  /** The wrapped store, holding envelopes. */
  readonly backend: WrappableStore;
  readonly #keyring: Keyring;
  readonly #map: Map<string, unknown> | undefined;
  readonly #adapter: KeyvStoreAdapter | undefined;
  readonly #strict: boolean;
  readonly #resign: boolean;
  readonly #encrypt: boolean;
  readonly #algorithm: MacAlgorithm;
  readonly #timeout: number;
  readonly #onInvalid: ((error: BadData) => void) | undefined;
  readonly #mapOpts = { dialect: "map", url: "memory://" };
  #safeOpts: Record<string, unknown> | undefined;
  #namespace: string | undefined;

  constructor(store: WrappableStore, secret: Secret, options: SignedStoreOptions = {}) {
    super();
    this.#keyring = new Keyring(secret, options.fallbacks ?? []);
    if (store instanceof Map) {
      this.#map = store;
    } else if (isAdapter(store)) {
      this.#adapter = store;
      if (typeof store.on === "function") {
        store.on("error", (error: unknown) => this.#emitError(error));
      }
      this.#namespace = store.namespace;
    } else {
      throw new ConfigError("store must be a Keyv store adapter (get/set/delete/clear) or a Map");
    }
    const algorithm = options.algorithm ?? DEFAULT_MAC_ALGORITHM;
    if (!isMacAlgorithm(algorithm)) {
      throw new ConfigError("algorithm must be one of sha256, sha512, blake2b512");
    }
    const timeout = options.storeTimeout ?? 0;
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw new ConfigError("storeTimeout must be a non-negative number of milliseconds");
    }
    this.backend = store;
    this.#strict = options.strict ?? false;
    this.#resign = options.resign ?? false;
    this.#encrypt = options.encrypt ?? false;
    this.#algorithm = algorithm;
    this.#timeout = timeout;
    this.#onInvalid = options.onInvalid;
  }

  /** The wrapped adapter's options (Keyv reads them), or a description of the Map. */
  get opts(): Record<string, unknown> {
    const opts = this.#adapter?.opts;
    if (opts === undefined || opts === null) return this.#mapOpts;
    // Keyv probes `opts.url.includes(...)` on any store with an iterator, and this one always
    // has one: give adapters without a url an empty one rather than let Keyv's constructor throw.
    if (typeof opts.url !== "string") {
      const safe = this.#safeOpts ?? { ...opts, url: "" };
      this.#safeOpts = safe;
      return safe;
    }
    return opts;
  }

  /** The namespace Keyv set; it is bound into every MAC and forwarded to the wrapped adapter. */
  get namespace(): string | undefined {
    return this.#namespace;
  }

  set namespace(namespace: string | undefined) {
    this.#namespace = namespace;
    if (this.#adapter) this.#adapter.namespace = namespace;
  }

  /** Whether reads throw on bad entries. */
  get strict(): boolean {
    return this.#strict;
  }

  /** Key ids of the configured secrets, current first. */
  get kids(): string[] {
    return this.#keyring.kids;
  }

  // biome-ignore lint/suspicious/noExplicitAny: the Keyv adapter interface returns any stored data.
  async get<Value>(key: string): Promise<any> {
    const raw = await this.#fetch("get", () =>
      this.#map ? this.#map.get(key) : this.#adapter?.get(key),
    );
    const result = await this.#read(key, raw);
    return result === MISS ? undefined : (result as Value);
  }

  // biome-ignore lint/suspicious/noExplicitAny: the Keyv adapter interface returns any stored data.
  async getMany<Value>(keys: string[]): Promise<any[]> {
    const raws = await this.#fetch("getMany", () => {
      if (this.#map) return keys.map((key) => this.#map?.get(key));
      const adapter = this.#adapter as KeyvStoreAdapter;
      return adapter.getMany
        ? adapter.getMany(keys)
        : Promise.all(keys.map((key) => adapter.get(key)));
    });
    const results = await Promise.all(keys.map((key, index) => this.#read(key, raws[index])));
    return results.map((result) => (result === MISS ? undefined : (result as Value)));
  }

  /** Whether a valid, unexpired entry exists; a tampered entry is not "present". */
  async has(key: string): Promise<boolean> {
    const raw = await this.#fetch("has", () =>
      this.#map ? this.#map.get(key) : this.#adapter?.get(key),
    );
    return (await this.#read(key, raw)) !== MISS;
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return Promise.all(keys.map((key) => this.has(key)));
  }

  /**
   * Signs `value` and writes it. `ttl` (ms) becomes the signed expiry and is passed on to the
   * wrapped store so that backends with native expiry still evict the entry.
   */
  // biome-ignore lint/suspicious/noExplicitAny: mirrors the Keyv adapter interface.
  async set(key: string, value: unknown, ttl?: number): Promise<any> {
    const envelope = this.#seal(key, value, expiryFromTtl(ttl));
    return this.#call("set", () => this.#write(key, envelope, ttl));
  }

  async setMany(entries: SetEntry[]): Promise<void> {
    const sealed = entries.map(({ key, value, ttl }) => ({
      key,
      value: this.#seal(key, value, expiryFromTtl(ttl)),
      ttl,
    }));
    const adapter = this.#adapter;
    await this.#call("setMany", async () => {
      if (adapter?.setMany) return adapter.setMany(sealed);
      await Promise.all(sealed.map(({ key, value, ttl }) => this.#write(key, value, ttl)));
    });
  }

  async delete(key: string): Promise<boolean> {
    return this.#call("delete", () =>
      this.#map ? this.#map.delete(key) : (this.#adapter as KeyvStoreAdapter).delete(key),
    );
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    return this.#call("deleteMany", async () => {
      const adapter = this.#adapter;
      if (adapter?.deleteMany) return adapter.deleteMany(keys);
      const results = await Promise.all(
        keys.map((key) => (adapter ? adapter.delete(key) : this.#map?.delete(key))),
      );
      return results.every(Boolean);
    });
  }

  /**
   * Clears this namespace (or everything, without one); other namespaces stay. With a namespace,
   * the keys to delete are listed by walking the store, because the SQL adapters match
   * `LIKE 'ns:%'` (where `_`, `%` are wildcards and SQLite and MySQL ignore case) and Redis
   * matches a glob: their own `clear()` would reach into other namespaces.
   */
  async clear(): Promise<void> {
    await this.#call("clear", async () => {
      const adapter = this.#adapter;
      const namespace = this.#namespace;
      if (adapter && (namespace === undefined || typeof adapter.iterator !== "function")) {
        return adapter.clear();
      }
      if (!adapter && namespace === undefined) return this.#map?.clear();
      const keys: string[] = [];
      for await (const [key] of this.#entries(namespace)) keys.push(key);
      await this.#deleteInBatches(keys);
    });
  }

  /** Deletes keys a batch at a time, so a huge namespace never makes one huge statement. */
  async #deleteInBatches(keys: string[]): Promise<void> {
    const adapter = this.#adapter;
    for (let start = 0; start < keys.length; start += CLEAR_BATCH) {
      const batch = keys.slice(start, start + CLEAR_BATCH);
      if (!adapter) for (const key of batch) this.#map?.delete(key);
      else if (adapter.deleteMany) await adapter.deleteMany(batch);
      else await Promise.all(batch.map((key) => adapter.delete(key)));
    }
  }

  /**
   * Yields `[key, value]` for every valid, unexpired entry of a namespace. Bad entries are
   * skipped (and reported through `onInvalid`), never yielded, in either mode.
   */
  async *iterator(
    namespace: string | undefined = this.#namespace,
    // biome-ignore lint/suspicious/noExplicitAny: mirrors the Keyv adapter interface.
  ): AsyncGenerator<[string, any], void> {
    // Deletions wait until the walk ends: adapters page with OFFSET, and deleting mid-walk
    // would shift later entries past the cursor.
    const doomed: string[] = [];
    try {
      for await (const [key, raw] of this.#entries(namespace)) {
        let result: ReadResult;
        try {
          result = await this.#read(key, raw, doomed);
        } catch (error) {
          if (error instanceof BadData) continue;
          throw error;
        }
        if (result !== MISS) yield [key, result];
      }
    } finally {
      for (const key of doomed) await this.#deleteQuietly(key);
    }
  }

  /**
   * Walks every stored entry of a namespace and classifies it, for audits and maintenance
   * (`signed-cache verify`, `resign`, `purge`). Values are verified but never returned. Nothing
   * changes unless asked: `resign` rewrites fallback-signed entries under the current secret
   * (keeping their expiry), `purge` deletes invalid and expired ones once the walk is over.
   * `onInvalid` is not called: the audit itself is the report.
   */
  async *audit(
    namespace: string | undefined = this.#namespace,
    actions: { resign?: boolean; purge?: boolean } = {},
  ): AsyncGenerator<EntryAudit, void> {
    const doomed: string[] = [];
    try {
      for await (const [key, raw] of this.#entries(namespace)) {
        const { report, opened } = this.#classify(key, raw, namespace);
        if (report.status === "invalid" || report.status === "expired") {
          if (actions.purge) {
            doomed.push(key);
            report.action = "deleted";
          }
        } else if (opened && report.status === "fallback" && actions.resign) {
          const envelope = sealEnvelope(this.#keyring, key, opened.value, opened.expiresAt, {
            namespace,
            algorithm: this.#algorithm,
            encrypt: this.#encrypt,
          });
          const ttl =
            opened.expiresAt === undefined ? undefined : Math.max(1, opened.expiresAt - Date.now());
          await this.#call("set", () => this.#write(key, envelope, ttl));
          report.action = "resigned";
        }
        yield report;
      }
    } finally {
      await this.#call("deleteMany", () => this.#deleteInBatches(doomed));
    }
  }

  #classify(
    key: string,
    raw: unknown,
    namespace: string | undefined,
  ): { report: EntryAudit; opened?: OpenedEnvelope } {
    const size = typeof raw === "string" ? raw.length : 0;
    try {
      const opened = openEnvelope(this.#keyring, key, raw, namespace);
      const expired = opened.expiresAt !== undefined && Date.now() > opened.expiresAt;
      const status = expired ? "expired" : opened.current ? "valid" : "fallback";
      return { report: { key, status, kid: opened.kid, size }, opened };
    } catch (error) {
      if (!(error instanceof BadData)) throw error;
      const reason = error instanceof BadSignature ? error.reason : "payload";
      return { report: { key, status: "invalid", reason, size } };
    }
  }

  /** Closes the wrapped store's connections; bounded by `storeTimeout` like every call. */
  async disconnect(): Promise<void> {
    await this.#call("disconnect", () => this.#adapter?.disconnect?.());
  }

  async *#entries(namespace: string | undefined): AsyncGenerator<[string, unknown]> {
    if (this.#map) {
      const prefix = namespace === undefined ? "" : `${namespace}:`;
      for (const entry of this.#map) if (entry[0].startsWith(prefix)) yield entry;
      return;
    }
    const adapter = this.#adapter as KeyvStoreAdapter;
    if (typeof adapter.iterator !== "function") {
      throw new ConfigError("the wrapped store does not support iteration");
    }
    // Adapters select a namespace with LIKE or a glob, which can match other namespaces.
    const prefix = namespace === undefined ? "" : `${namespace}:`;
    for await (const [key, raw] of adapter.iterator(namespace)) {
      const name = String(key);
      if (name.startsWith(prefix)) yield [name, raw];
    }
  }

  /** Verifies one stored entry. Bad or expired entries are deleted now, or queued on `doomed`. */
  async #read(key: string, raw: unknown, doomed?: string[]): Promise<ReadResult> {
    if (raw === undefined || raw === null) return MISS;
    let opened: OpenedEnvelope;
    try {
      opened = openEnvelope(this.#keyring, key, raw, this.#namespace);
    } catch (error) {
      if (!(error instanceof BadData)) throw error;
      this.#report(error);
      if (this.#strict) throw error;
      await this.#discard(key, doomed);
      return MISS;
    }
    if (opened.expiresAt !== undefined && Date.now() > opened.expiresAt) {
      await this.#discard(key, doomed);
      return MISS;
    }
    if (!opened.current && this.#resign) await this.#resignEntry(key, opened);
    return opened.value;
  }

  async #resignEntry(key: string, opened: OpenedEnvelope): Promise<void> {
    const ttl =
      opened.expiresAt === undefined ? undefined : Math.max(1, opened.expiresAt - Date.now());
    try {
      const envelope = this.#seal(key, opened.value, opened.expiresAt);
      await this.#call("set", () => this.#write(key, envelope, ttl));
    } catch (error) {
      this.#emitError(error);
    }
  }

  #seal(key: string, value: unknown, expiresAt: number | undefined): string {
    return sealEnvelope(this.#keyring, key, value, expiresAt, {
      namespace: this.#namespace,
      algorithm: this.#algorithm,
      encrypt: this.#encrypt,
    });
  }

  async #write(key: string, envelope: string, ttl: number | undefined): Promise<unknown> {
    if (this.#map) {
      this.#map.set(key, envelope);
      return true;
    }
    return (this.#adapter as KeyvStoreAdapter).set(key, envelope, ttl);
  }

  async #discard(key: string, doomed: string[] | undefined): Promise<void> {
    if (doomed) doomed.push(key);
    else await this.#deleteQuietly(key);
  }

  async #deleteQuietly(key: string): Promise<void> {
    try {
      await this.delete(key);
    } catch (error) {
      this.#emitError(error);
    }
  }

  #report(error: BadData): void {
    try {
      this.#onInvalid?.(error);
    } catch (callbackError) {
      this.#emitError(callbackError);
    }
  }

  #emitError(error: unknown): void {
    // An EventEmitter throws on an unheard "error"; a cache fault must never crash the process.
    if (this.listenerCount("error") > 0) this.emit("error", error);
  }

  async #call<T>(operation: string, run: () => T | Promise<T>): Promise<T> {
    if (this.#timeout === 0) return this.#typed(operation, run);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new StoreError(`store ${operation} did not answer within ${this.#timeout} ms`)),
        this.#timeout,
      );
      timer.unref();
    });
    try {
      return await Promise.race([this.#typed(operation, run), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A read: Keyv swallows read faults without an `error` event, so they are reported here. */
  async #fetch<T>(operation: string, run: () => T | Promise<T>): Promise<T> {
    try {
      return await this.#call(operation, run);
    } catch (error) {
      if (error instanceof StoreError) this.#emitError(error);
      throw error;
    }
  }

  /** Runs a store call, turning whatever a backend throws into a {@link StoreError}. */
  async #typed<T>(operation: string, run: () => T | Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof SignedCacheError) throw error;
      // The backend's message names the fault (ECONNREFUSED, a missing table); adapters'
      // messages carry neither secrets nor cached values, unlike their SQL, kept on `cause`.
      const reason = error instanceof Error ? error.message : String(error);
      throw new StoreError(`store ${operation} failed: ${reason}`, { cause: error });
    }
  }
}

/**
 * Wraps a Keyv store adapter (or a `Map`) so that every entry is a signed, versioned envelope
 * bound to its key. It signs the string Keyv already serialized, so every Keyv backend works
 * unchanged.
 *
 * @param store - Any Keyv store adapter (`@keyv/redis`, `@keyv/sqlite`…) or a `Map`.
 * @param secret - At least 32 bytes; see {@link generateSecret}.
 * @throws {ConfigError} When the secret is too short or an option is invalid.
 * @example
 * ```ts
 * import Keyv from "keyv";
 * import KeyvRedis from "@keyv/redis";
 * import { signedStore } from "signed-cache";
 *
 * const keyv = new Keyv({ store: signedStore(new KeyvRedis("redis://localhost"), process.env.SIGNED_CACHE_SECRET!) });
 * ```
 */
export function signedStore(
  store: WrappableStore,
  secret: Secret,
  options: SignedStoreOptions = {},
): SignedStore {
  return new SignedStore(store, secret, options);
}

function isAdapter(store: unknown): store is KeyvStoreAdapter {
  if (typeof store !== "object" || store === null) return false;
  const candidate = store as Record<string, unknown>;
  return ["get", "set", "delete", "clear"].every(
    (method) => typeof candidate[method] === "function",
  );
}

function expiryFromTtl(ttl: number | undefined): number | undefined {
  return typeof ttl === "number" && Number.isFinite(ttl) && ttl > 0 ? Date.now() + ttl : undefined;
}
