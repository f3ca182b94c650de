import { EventEmitter } from "node:events";
import { inspect } from "node:util";
import type { KeyvStoreAdapter } from "keyv";
import {
  acceptedSpecIds,
  DEFAULT_MAC_ALGORITHM,
  type EntryAlgorithm,
  isEntryAlgorithm,
  isMacAlgorithm,
  MAC_BY_DIGEST,
  type MacAlgorithm,
} from "./algorithms.js";
import { DEFAULT_MAX_ENTRY_BYTES, DEFAULT_STORE_TIMEOUT } from "./config.js";
import { withDeadline } from "./deadline.js";
import {
  DEFAULT_PURPOSE,
  inspectEnvelope,
  isOutdatedEnvelope,
  isPurpose,
  type OpenedEnvelope,
  openEnvelope,
  type SealOptions,
  sealEnvelope,
} from "./envelope.js";
import {
  BadData,
  BadSignature,
  type BadSignatureReason,
  ConfigError,
  driverFault,
  EntryTooLarge,
  InvalidKey,
  SignedCacheError,
  StoreError,
} from "./errors.js";
import { CALL_BOUND, type CallBounded, KEY_LIMITS, type KeyLimits } from "./key-limits.js";
import { Keyring, type Secret } from "./keyring.js";
import { redactUrl } from "./stores.js";
import { expiryOf, normalizeTtl } from "./ttl.js";

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
  /** HMAC digest for new entries. @default "sha256" */
  algorithm?: MacAlgorithm;
  /**
   * What is accepted on read: HMAC digests and `aes-256-gcm` for encrypted entries. It must
   * include what the store writes. List more only while migrating (a new digest, or signed ↔
   * encrypted): anything else is rejected as `unsupported-version`, so an attacker cannot hand
   * the store an entry weaker than its own.
   * @default the configured `algorithm`, or `["aes-256-gcm"]` when `encrypt` is on
   */
  algorithms?: readonly EntryAlgorithm[];
  /**
   * What the entries are for, bound into every MAC: an entry written for one purpose never
   * verifies for another (the axios storage uses `axios`). Lowercase letters, digits and `-`,
   * at most 16 characters.
   * @default "keyv"
   */
  purpose?: string;
  /**
   * Largest stored entry in bytes (UTF-8, envelope included). A larger write is not cached: it
   * removes any older entry under its key and rejects with {@link EntryTooLarge}. A larger read
   * is rejected before any parsing or crypto, as `malformed`.
   * @default 33554432 (32 MiB)
   */
  maxEntryBytes?: number;
  /**
   * Upper bound in ms on each call to the wrapped store (each page of a walk counts as one); a
   * call past it rejects with {@link StoreError}, so a store that stops answering never hangs a
   * caller. `0`: no bound.
   * @default 1000
   */
  storeTimeout?: number;
}

/** What {@link SignedStore.audit} may do to the entries it walks. */
export interface AuditActions {
  /** Re-sign entries that verified under a fallback secret with the current one. */
  resign?: boolean;
  /** `true`: delete invalid and expired entries; a function: delete those it returns true for. */
  purge?: boolean | ((entry: EntryAudit) => boolean);
}

/** What {@link SignedStore.audit} found for one stored entry. */
export interface EntryAudit {
  /** The key as stored, namespace prefix included. */
  key: string;
  /** `fallback`: valid, but signed by an older secret. */
  status: "valid" | "fallback" | "expired" | "invalid";
  /** Why an invalid entry failed: a {@link BadSignatureReason}, or `payload` for BadPayload. */
  reason?: BadSignatureReason | "payload";
  /**
   * Key id the entry names: of the secret that signed a verified entry, or, for an invalid
   * entry whose header parses, the one it claims (unverified: whoever wrote it chose it).
   */
  kid?: string;
  /** The purpose the entry names (verified when its status is valid or fallback). */
  purpose?: string;
  /** How a verified entry is protected: its HMAC digest, or `aes-256-gcm` when encrypted. */
  algorithm?: EntryAlgorithm;
  /** Length of the stored text in characters (0 for non-string values). */
  size: number;
  /** What the audit did to it, when asked to act. */
  action?: "resigned" | "deleted";
}

/** An entry of `setMany`: Keyv 5 gives a ttl, Keyv 6 an absolute `expires`. */
type SetEntry = { key: string; value: unknown; ttl?: number; expires?: number };

/** A sealed entry ready to write, under its stored key, with its ttl and the same as a time. */
type Sealed = {
  key: string;
  value: string;
  ttl: number | undefined;
  expiresAt: number | undefined;
};

/** When a write expires: a whole ttl in ms and the absolute time it ends, or already past. */
type Lifetime = { ttl: number | undefined; expiresAt: number | undefined } | typeof EXPIRED;

const EXPIRED: unique symbol = Symbol("expired");

/** A store's settings once checked, shared by the stores {@link SignedStore.withPurpose} makes. */
interface Settings {
  readonly strict: boolean;
  readonly resign: boolean;
  readonly encrypt: boolean;
  readonly algorithm: MacAlgorithm;
  readonly algorithms: readonly EntryAlgorithm[] | undefined;
  readonly accepted: ReadonlySet<string>;
  readonly purpose: string;
  readonly timeout: number;
  readonly maxEntryBytes: number;
  readonly onInvalid: ((error: BadData) => void) | undefined;
}

// Keys deleted per call when clearing a namespace: bounded so no single statement is huge.
const CLEAR_BATCH = 500;

const MISS: unique symbol = Symbol("miss");
type ReadResult = unknown | typeof MISS;

/**
 * A Keyv store adapter that signs every value before it reaches the wrapped store and verifies
 * it on the way back. Built by {@link signedStore}.
 */
export class SignedStore extends EventEmitter implements KeyvStoreAdapter {
  readonly #backend: WrappableStore;
  readonly #keyring: Keyring;
  readonly #map: Map<string, unknown> | undefined;
  readonly #adapter: KeyvStoreAdapter | undefined;
  readonly #settings: Settings;
  readonly #limits: KeyLimits | undefined;
  #safeOpts: Record<string, unknown> | undefined;
  #namespace: string | undefined;
  /**
   * How callers address entries. `prefixed` (Keyv 5, and direct use): keys arrive as stored,
   * `namespace:` prefix included, with a relative ttl. `bare` (Keyv 6, once it adopts the store
   * through {@link SignedStore.capabilities}): keys arrive without the namespace, with an absolute
   * `expires`.
   */
  #callers: "prefixed" | "bare" = "prefixed";
  /** Whether a call has addressed an entry in the prefixed contract. */
  #servedPrefixed = false;
  /** Whether the wrapped adapter speaks Keyv 6's contract: its own namespace, absolute `expires`. */
  readonly #adapterTakesExpires: boolean;

  /**
   * @param secret - The current secret, or a {@link Keyring} holding it and the fallbacks (then
   *   `options.fallbacks` must be left out).
   */
  constructor(store: WrappableStore, secret: Secret | Keyring, options: SignedStoreOptions = {}) {
    super();
    if (secret instanceof Keyring) {
      if (options.fallbacks !== undefined) {
        throw new ConfigError("pass fallbacks inside the Keyring, not as an option beside it");
      }
      this.#keyring = secret;
    } else {
      this.#keyring = new Keyring(secret, options.fallbacks ?? []);
    }
    if (store instanceof Map) {
      this.#map = store;
    } else if (isAdapter(store)) {
      this.#adapter = store;
      SignedStore.#join(store, this);
      this.#namespace = store.namespace;
    } else {
      throw new ConfigError("store must be a Keyv store adapter (get/set/delete/clear) or a Map");
    }
    this.#backend = store;
    this.#adapterTakesExpires = takesExpires(this.#adapter);
    this.#settings = checkOptions(options);
    // An adapter that retries on its own stops before this store gives up on a call.
    const bounded = this.#adapter as Partial<CallBounded> | undefined;
    if (this.#settings.timeout > 0) bounded?.[CALL_BOUND]?.(this.#settings.timeout);
    const limits = (store as { [KEY_LIMITS]?: KeyLimits })[KEY_LIMITS];
    this.#limits = store instanceof Map ? undefined : limits;
  }

  /** The wrapped store, holding envelopes. */
  get backend(): WrappableStore {
    return this.#backend;
  }

  /** What the entries are for: bound into every MAC. */
  get purpose(): string {
    return this.#settings.purpose;
  }

  /**
   * A store over the same backend, secrets and settings whose entries are for another purpose.
   * Entries of each never verify for the other.
   *
   * @throws {ConfigError} When `purpose` is not a valid purpose label.
   */
  withPurpose(purpose: string): SignedStore {
    const { strict, resign, encrypt, algorithm, algorithms, timeout, maxEntryBytes, onInvalid } =
      this.#settings;
    return new SignedStore(this.#backend, this.#keyring, {
      strict,
      resign,
      encrypt,
      algorithm,
      ...(algorithms === undefined ? {} : { algorithms }),
      storeTimeout: timeout,
      maxEntryBytes,
      purpose,
      ...(onInvalid === undefined ? {} : { onInvalid }),
    });
  }

  /** What `console.log` and `util.inspect` show: never a secret, a derived key or a password. */
  [inspect.custom](): string {
    const { backend, url, namespace, purpose, kids } = this.toJSON();
    const where = url === undefined ? "" : ` ${url}`;
    return `SignedStore { backend: ${backend}${where}, namespace: ${inspect(namespace)}, purpose: ${inspect(purpose)}, kids: ${inspect(kids)} }`;
  }

  /** What JSON loggers see: the same description, password redacted. */
  toJSON(): {
    backend: string;
    url: string | undefined;
    namespace: string | undefined;
    purpose: string;
    kids: string[];
  } {
    const url = this.#adapter?.opts?.url;
    return {
      backend: this.#map ? "Map" : (this.#adapter?.constructor?.name ?? "adapter"),
      url: typeof url === "string" && url !== "" ? redactUrl(url) : undefined,
      namespace: this.#namespace,
      purpose: this.purpose,
      kids: this.kids,
    };
  }

  /** The wrapped adapter's options (Keyv reads them), or a description of the Map. */
  get opts(): Record<string, unknown> {
    this.#safeOpts ??= keyvFacingOpts(this.#adapter, this.#map !== undefined);
    return this.#safeOpts;
  }

  /**
   * Keyv 6's storage contract: every method, and an absolute `expires` on writes. Keyv 6 reads
   * this when it adopts the store and then hands it keys without their namespace; from that
   * read on, this store speaks that contract (Keyv 5 never reads it). Either way an entry is
   * bound to the same `namespace:key`, so what one major wrote the other reads.
   */
  get capabilities(): StorageCapabilities {
    if (this.#callers === "prefixed" && this.#servedPrefixed) {
      // Switching now would re-read every key this store's current caller uses as another.
      throw new ConfigError(
        "this signed store already serves Keyv 5 (or direct calls): give Keyv 6 a signedStore of its own",
      );
    }
    this.#callers = "bare";
    return STORAGE_CAPABILITIES;
  }

  /** The namespace Keyv set; it is bound into every MAC and forwarded to the wrapped adapter. */
  get namespace(): string | undefined {
    return this.#namespace;
  }

  set namespace(namespace: string | undefined) {
    if (namespace !== undefined && (typeof namespace !== "string" || !namespace.isWellFormed())) {
      throw new ConfigError("namespace must be a well-formed string");
    }
    const adapter = this.#adapter;
    if (adapter) {
      // An adapter holds one namespace field: two namespaces over one adapter would write each
      // other's keys (and leave entries nobody can clear). Same namespace, several stores: fine.
      for (const other of SignedStore.#sharing(adapter)) {
        const theirs = other.#namespace;
        if (
          other !== this &&
          theirs !== undefined &&
          namespace !== undefined &&
          theirs !== namespace
        ) {
          throw new ConfigError(
            `this store adapter is already used under namespace ${JSON.stringify(theirs)}: give each namespace its own adapter`,
          );
        }
      }
      adapter.namespace = namespace;
    }
    this.#namespace = namespace;
  }

  /** The signed stores over each adapter, held weakly, and the one listener each adapter gets. */
  static readonly #shares = new WeakMap<object, Set<WeakRef<SignedStore>>>();

  /** Registers `store` as wrapping `adapter`: one "error" listener per adapter, not per wrap. */
  static #join(adapter: KeyvStoreAdapter, store: SignedStore): void {
    let refs = SignedStore.#shares.get(adapter);
    if (refs === undefined) {
      const fresh = new Set<WeakRef<SignedStore>>();
      refs = fresh;
      SignedStore.#shares.set(adapter, fresh);
      if (typeof adapter.on === "function") {
        adapter.on("error", (error: unknown) => {
          for (const each of SignedStore.#sharing(adapter)) each.#emitError(error);
        });
      }
    }
    refs.add(new WeakRef(store));
  }

  /** The live signed stores over `adapter`; forgets collected ones. */
  static #sharing(adapter: KeyvStoreAdapter): SignedStore[] {
    const refs = SignedStore.#shares.get(adapter);
    if (refs === undefined) return [];
    const live: SignedStore[] = [];
    for (const ref of refs) {
      const store = ref.deref();
      if (store === undefined) refs.delete(ref);
      else live.push(store);
    }
    return live;
  }

  /** Bound in ms on each call to the wrapped store; `0` for none. */
  get storeTimeout(): number {
    return this.#settings.timeout;
  }

  /** Whether reads throw on bad entries. */
  get strict(): boolean {
    return this.#settings.strict;
  }

  /** Key ids of the configured secrets, current first. */
  get kids(): string[] {
    return this.#keyring.kids;
  }

  // biome-ignore lint/suspicious/noExplicitAny: the Keyv adapter interface returns any stored data.
  async get<Value>(key: string): Promise<any> {
    const stored = this.#storedKey(key);
    // A key the backend cannot hold was never written: asking the backend would read its alias.
    if (stored === undefined) return undefined;
    // A Map answers synchronously and cannot fail: no timeout or fault handling to pay for.
    const raw = this.#map
      ? this.#map.get(stored)
      : await this.#fetch("get", () =>
          (this.#adapter as KeyvStoreAdapter).get(this.#backendKey(stored)),
        );
    let result = this.#read(stored, raw);
    if (result instanceof Promise) result = await result;
    return result === MISS ? undefined : (result as Value);
  }

  // biome-ignore lint/suspicious/noExplicitAny: the Keyv adapter interface returns any stored data.
  async getMany<Value>(keys: string[]): Promise<any[]> {
    const storedKeys = keys.map((key) => this.#storedKey(key));
    const storable = storedKeys.filter((key) => key !== undefined);
    const raws = await this.#fetch("getMany", () => this.#rawManyNow(storable));
    const byKey = new Map(storable.map((key, index) => [key, raws[index]]));
    const results = await Promise.all(
      storedKeys.map((key) => (key === undefined ? MISS : this.#read(key, byKey.get(key)))),
    );
    return results.map((result) => (result === MISS ? undefined : (result as Value)));
  }

  /** Whether a valid, unexpired entry exists; a tampered entry is not "present". */
  async has(key: string): Promise<boolean> {
    const stored = this.#storedKey(key);
    if (stored === undefined) return false;
    const raw = await this.#fetch("has", () =>
      this.#map ? this.#map.get(stored) : this.#adapter?.get(this.#backendKey(stored)),
    );
    return (await this.#read(stored, raw)) !== MISS;
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return Promise.all(keys.map((key) => this.has(key)));
  }

  /**
   * Signs `value` and writes it. The third argument becomes the signed expiry and is passed on
   * so that backends with native expiry still evict the entry: from Keyv 5 (and direct callers)
   * a ttl in ms, see {@link normalizeTtl} for zero, fractional, huge and non-finite values; from
   * Keyv 6 an absolute `expires` in ms since the epoch, where one already past deletes the entry.
   *
   * @throws {InvalidKey} When the backend cannot store `key` faithfully.
   * @throws {EntryTooLarge} When the entry exceeds `maxEntryBytes`; an older entry is removed.
   */
  // biome-ignore lint/suspicious/noExplicitAny: mirrors the Keyv adapter interface.
  async set(key: string, value: unknown, ttlOrExpires?: number): Promise<any> {
    const stored = this.#checkedKey(key);
    const life = this.#lifetimeOf(ttlOrExpires);
    if (life === EXPIRED) {
      await this.#call("delete", () => this.#deleteStored(stored));
      return true;
    }
    const sealed = await this.#sealForWrite(stored, value, life);
    // Keyv 6 passes on what the store answers; adapters of Keyv 5 answer nothing on success.
    return (await this.#call("set", () => this.#write(sealed))) !== false;
  }

  async setMany(entries: SetEntry[]): Promise<void> {
    const sealed: Sealed[] = [];
    const gone: string[] = [];
    for (const { key, value, ttl, expires } of entries) {
      const stored = this.#checkedKey(key);
      const life = this.#lifetimeOf(this.#callers === "bare" ? expires : ttl);
      if (life === EXPIRED) gone.push(stored);
      else sealed.push(await this.#sealForWrite(stored, value, life));
    }
    if (gone.length > 0) await this.#deleteInBatches(gone);
    if (sealed.length === 0) return;
    const adapter = this.#adapter;
    await this.#call("setMany", async () => {
      if (adapter?.setMany) {
        return adapter.setMany(
          sealed.map(({ key, value, ttl, expiresAt }) =>
            this.#adapterTakesExpires
              ? { key: this.#backendKey(key), value, expires: expiresAt }
              : { key, value, ttl },
          ) as never,
        );
      }
      await Promise.all(sealed.map((entry) => this.#write(entry)));
    });
  }

  /**
   * The stored key (namespace prefix included, as Keyv 5 hands it over and as bound into the
   * MAC) for a key as this store's caller gives it, or `undefined` when the backend cannot store
   * it faithfully.
   */
  #storedKey(key: string): string | undefined {
    if (typeof key !== "string") return undefined;
    const stored = this.#prefixed(key);
    return this.#keyProblem(stored) === undefined ? stored : undefined;
  }

  /** {@link SignedStore.#storedKey} for a write: a key it cannot store is an error. */
  #checkedKey(key: string): string {
    const stored = typeof key === "string" ? this.#prefixed(key) : key;
    const problem = this.#keyProblem(stored);
    if (problem !== undefined) throw new InvalidKey(`cannot store this key: ${problem}`);
    return stored;
  }

  /** A caller's key as stored: Keyv 6's bare keys get the namespace Keyv 5 would have put. */
  #prefixed(key: string): string {
    if (this.#callers === "prefixed") {
      this.#servedPrefixed = true;
      return key;
    }
    const namespace = this.#namespace;
    return namespace === undefined ? key : `${namespace}:${key}`;
  }

  /** A stored key as this store's caller names it: without the namespace for Keyv 6. */
  #callerKey(stored: string): string {
    return this.#callers === "bare" ? this.#withoutNamespace(stored) : stored;
  }

  /** A stored key as the wrapped adapter takes it: Keyv 6 adapters add the namespace themselves. */
  #backendKey(stored: string): string {
    return this.#adapterTakesExpires ? this.#withoutNamespace(stored) : stored;
  }

  /** A key the wrapped adapter listed, as stored here. */
  #storedFromBackend(name: string): string {
    const namespace = this.#namespace;
    return this.#adapterTakesExpires && namespace !== undefined ? `${namespace}:${name}` : name;
  }

  #withoutNamespace(stored: string): string {
    const namespace = this.#namespace;
    if (namespace === undefined || !stored.startsWith(`${namespace}:`)) return stored;
    return stored.slice(namespace.length + 1);
  }

  /**
   * When a write expires, from what the caller passed: a ttl (Keyv 5, see {@link normalizeTtl})
   * or an absolute `expires` (Keyv 6, kept to the millisecond).
   */
  #lifetimeOf(given: unknown): Lifetime {
    const now = Date.now();
    if (this.#callers === "prefixed") {
      const ttl = normalizeTtl(given, now);
      return { ttl, expiresAt: expiryOf(ttl, now) };
    }
    if (typeof given !== "number" || !Number.isFinite(given)) {
      return { ttl: undefined, expiresAt: undefined };
    }
    const expiresAt = Math.ceil(given);
    if (expiresAt <= now) return EXPIRED;
    const ttl = normalizeTtl(expiresAt - now, now);
    return ttl === undefined ? { ttl, expiresAt: undefined } : { ttl, expiresAt };
  }

  /** Seals the value and checks the size: everything a write needs once its key is checked. */
  async #sealForWrite(
    stored: string,
    value: unknown,
    life: Exclude<Lifetime, typeof EXPIRED>,
  ): Promise<Sealed> {
    const envelope = this.#seal(stored, value, life.expiresAt, this.#sealOptions());
    const max = this.#settings.maxEntryBytes;
    // Length bounds the UTF-8 size from below: only entries that may be too big are measured.
    if (envelope.length > max / 3 && Buffer.byteLength(envelope, "utf8") > max) {
      // The older entry would otherwise be served in place of the value just refused.
      await this.#deleteStoredQuietly(stored);
      throw new EntryTooLarge(
        `entry of ${Buffer.byteLength(envelope, "utf8")} bytes exceeds maxEntryBytes (${max}); not cached`,
      );
    }
    return { key: stored, value: envelope, ...life };
  }

  /**
   * Why the backend could not store `key` as given, or `undefined` when it can. Every backend
   * stores UTF-8, which has no form for a lone surrogate; adapters built by `storeFromUrl`
   * declare their length limit and whether NUL survives.
   */
  #keyProblem(key: string): string | undefined {
    if (typeof key !== "string") return "keys must be strings";
    if (!key.isWellFormed()) return "it is not well-formed Unicode (a lone surrogate)";
    const limits = this.#limits;
    if (limits === undefined) return undefined;
    if (!limits.nul && key.includes("\0")) return "this backend does not store NUL characters";
    if (key.length > limits.maxBytes / 3 && Buffer.byteLength(key, "utf8") > limits.maxBytes) {
      return `it is over the ${limits.maxBytes} bytes this backend stores in a key (namespace included)`;
    }
    return undefined;
  }

  async delete(key: string): Promise<boolean> {
    const stored = this.#storedKey(key);
    if (stored === undefined) return false;
    return this.#call("delete", () => this.#deleteStored(stored));
  }

  /**
   * Deletes entries: for Keyv 5 (and direct callers) whether all of them existed, for Keyv 6
   * whether each did.
   */
  // biome-ignore lint/suspicious/noExplicitAny: Keyv 5 expects a boolean, Keyv 6 a boolean per key.
  async deleteMany(keys: string[]): Promise<any> {
    const perKey = this.#callers === "bare";
    // A key that cannot be stored was never written; passing it on would delete its alias.
    const stored = keys.map((key) => this.#storedKey(key));
    const storable = stored.filter((key) => key !== undefined);
    // Nothing to delete; some adapters also build invalid SQL (`IN ()`) from an empty list.
    if (storable.length === 0) return perKey ? keys.map(() => false) : false;
    const deleted = await this.#call("deleteMany", () => this.#deleteEach(storable, perKey));
    if (!perKey) return deleted.every(Boolean);
    const byKey = new Map(storable.map((key, index) => [key, deleted[index] === true]));
    return stored.map((key) => key !== undefined && byKey.get(key) === true);
  }

  /** Deletes one entry by its stored key; unbounded: callers bound it. */
  async #deleteStored(stored: string): Promise<boolean> {
    if (this.#map) return this.#map.delete(stored);
    return (this.#adapter as KeyvStoreAdapter).delete(this.#backendKey(stored));
  }

  /**
   * Deletes entries by their stored keys, in one call where the adapter has one, and tells
   * which existed (an adapter's single answer stands for all, unless `perKey` asks for each);
   * unbounded: callers bound it.
   */
  async #deleteEach(stored: string[], perKey = false): Promise<boolean[]> {
    const adapter = this.#adapter;
    // An adapter answering one boolean for all cannot tell which keys existed: ask each.
    const oneAnswer = !this.#adapterTakesExpires && stored.length > 1;
    if (adapter?.deleteMany && !(perKey && oneAnswer)) {
      const answer: unknown = await adapter.deleteMany(stored.map((key) => this.#backendKey(key)));
      return Array.isArray(answer) ? answer.map(Boolean) : stored.map(() => Boolean(answer));
    }
    return Promise.all(stored.map((key) => this.#deleteStored(key)));
  }

  /**
   * Clears this namespace (or everything, without one); other namespaces stay. With a namespace,
   * the keys to delete are listed by walking the store, because the SQL adapters match
   * `LIKE 'ns:%'` (where `_`, `%` are wildcards and SQLite and MySQL ignore case) and Redis
   * matches a glob: their own `clear()` would reach into other namespaces.
   */
  async clear(): Promise<void> {
    const adapter = this.#adapter;
    const namespace = this.#namespace;
    if (adapter && (namespace === undefined || typeof adapter.iterator !== "function")) {
      await this.#call("clear", () => adapter.clear());
      return;
    }
    if (!adapter && namespace === undefined) {
      this.#map?.clear();
      return;
    }
    // Each page of the walk and each batch of deletes is bounded by storeTimeout, not the whole
    // clear: a namespace of any size clears as long as the store keeps answering.
    const keys: string[] = [];
    const prefix = `${namespace}:`;
    for await (const [key, raw] of this.#entries(namespace)) {
      // `ns:a:b` may be the entry `b` of namespace `ns:a`: that one stays.
      const aliased = key.indexOf(":", prefix.length) !== -1 && this.#ownedByLonger(key, raw);
      if (!aliased) keys.push(key);
    }
    await this.#deleteInBatches(keys);
  }

  /** Whether an entry in this namespace's key range verifies for a longer namespace instead. */
  #ownedByLonger(key: string, raw: unknown): boolean {
    const own = (this.#namespace ?? "").length;
    for (let at = key.indexOf(":", own + 1); at > 0; at = key.indexOf(":", at + 1)) {
      try {
        this.#open(key, raw, key.slice(0, at), undefined);
        return true;
      } catch {
        // Not that namespace's either.
      }
    }
    return false;
  }

  /** Deletes stored keys a batch at a time, so a huge namespace never makes one huge statement. */
  async #deleteInBatches(keys: string[]): Promise<void> {
    for (let start = 0; start < keys.length; start += CLEAR_BATCH) {
      const batch = keys.slice(start, start + CLEAR_BATCH);
      await this.#call("deleteMany", () => this.#deleteEach(batch));
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
    // Deletions wait until the walk ends: adapters built by hand may page with OFFSET (those
    // from storeFromUrl page by key), and deleting mid-walk would shift entries past the cursor.
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
        if (result !== MISS) yield [this.#callerKey(key), result];
      }
    } finally {
      for (const key of doomed) await this.#deleteStoredQuietly(key);
    }
  }

  /**
   * Walks every stored entry of a namespace and classifies it, for audits and maintenance
   * (`signed-cache verify`, `resign`, `purge`). Values are verified but never returned. Nothing
   * changes unless asked: `resign` rewrites fallback-signed entries under the current secret,
   * and current ones less protected than configured (keeping their purpose and expiry, never
   * lowering their protection); `purge: true` deletes invalid and expired
   * ones, a `purge` function the entries it returns true for, once the walk is over.
   * `onInvalid` is not called: the audit itself is the report.
   */
  async *audit(
    namespace: string | undefined = this.#namespace,
    actions: AuditActions = {},
  ): AsyncGenerator<EntryAudit, void> {
    const doomed: [string, unknown][] = [];
    const { purge } = actions;
    try {
      for await (const [key, raw] of this.#entries(namespace)) {
        const { report, opened } = this.#classify(key, raw, namespace);
        const deadWood = report.status === "invalid" || report.status === "expired";
        if (typeof purge === "function" ? purge(report) : purge === true && deadWood) {
          doomed.push([key, raw]);
          report.action = "deleted";
        } else if (
          opened &&
          actions.resign &&
          (report.status === "fallback" ||
            (report.status === "valid" && weakerThanConfigured(opened, this.#settings)))
        ) {
          // Fallback-signed entries move to the current secret; entries of the current secret
          // with less protection than configured (a signed → encrypted migration) are raised.
          if (await this.#resignEntry(key, opened, namespace, raw)) report.action = "resigned";
        }
        yield report;
      }
    } finally {
      await this.#deleteUnchanged(doomed);
    }
  }

  /**
   * Deletes the entries a walk doomed, but only those still holding what the walk read: an
   * application may have written a fresh entry under the key since. (Keyv adapters offer no
   * compare-and-delete, so this narrows that window to one round trip; it cannot close it.)
   */
  async #deleteUnchanged(doomed: readonly [string, unknown][]): Promise<void> {
    for (let start = 0; start < doomed.length; start += CLEAR_BATCH) {
      const batch = doomed.slice(start, start + CLEAR_BATCH);
      const now = await this.#rawMany(batch.map(([key]) => key));
      await this.#deleteInBatches(
        batch.filter(([, raw], index) => now[index] === raw).map(([key]) => key),
      );
    }
  }

  /** What the wrapped store holds under each stored key, unverified; bounded by storeTimeout. */
  async #rawMany(keys: string[]): Promise<unknown[]> {
    return this.#call("getMany", () => this.#rawManyNow(keys));
  }

  /** What the wrapped store holds under each stored key, unverified; unbounded. */
  async #rawManyNow(keys: string[]): Promise<unknown[]> {
    const map = this.#map;
    if (map) return keys.map((key) => map.get(key));
    const adapter = this.#adapter as KeyvStoreAdapter;
    const names = keys.map((key) => this.#backendKey(key));
    return adapter.getMany
      ? adapter.getMany(names)
      : Promise.all(names.map((name) => adapter.get(name)));
  }

  #classify(
    key: string,
    raw: unknown,
    namespace: string | undefined,
  ): { report: EntryAudit; opened?: OpenedEnvelope } {
    const size = typeof raw === "string" ? raw.length : 0;
    // An entry of the previous format is superseded, not forged: a miss that purge removes.
    if (isOutdatedEnvelope(raw)) return { report: { key, status: "expired", size } };
    try {
      // An audit walks every purpose of the namespace (plain values and HTTP entries alike).
      const opened = this.#open(key, raw, namespace, undefined);
      const expired = opened.expiresAt !== undefined && Date.now() > opened.expiresAt;
      const status = expired ? "expired" : opened.current ? "valid" : "fallback";
      return {
        report: {
          key,
          status,
          kid: opened.kid,
          purpose: opened.purpose,
          algorithm: specName(opened.spec),
          size,
        },
        opened,
      };
    } catch (error) {
      if (!(error instanceof BadData)) throw error;
      const reason = error instanceof BadSignature ? error.reason : "payload";
      return { report: { key, status: "invalid", reason, size, ...claimedHeader(raw) } };
    }
  }

  /** Size-checks (before any parsing) and verifies one stored entry. */
  #open(
    key: string,
    raw: unknown,
    namespace: string | undefined,
    purpose: string | undefined,
  ): OpenedEnvelope {
    const max = this.#settings.maxEntryBytes;
    if (typeof raw === "string" && raw.length > max) {
      throw new BadSignature("malformed", `entry is larger than maxEntryBytes (${max})`, { key });
    }
    return openEnvelope(this.#keyring, key, raw, {
      namespace,
      purpose,
      accepted: this.#settings.accepted,
    });
  }

  /**
   * Closes the wrapped store's connections; bounded by `storeTimeout` like every call. A close
   * that fails or times out is reported as an `error` event, not thrown.
   */
  async disconnect(): Promise<void> {
    try {
      await this.#call("disconnect", () => this.#adapter?.disconnect?.());
    } catch (error) {
      // Shutting down goes on: a close the store did not answer is reported, never thrown at
      // the `await` in a shutdown path.
      this.#emitError(error);
    }
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
    // Adapters built by hand may select a namespace with LIKE or a glob, which can match other
    // namespaces (those from storeFromUrl select exact key ranges): keep only this one's keys.
    const prefix = namespace === undefined ? "" : `${namespace}:`;
    // Some adapters (@keyv/postgres) end a walk the store broke off as if it were complete, and
    // only emit an "error": a fault heard during the walk fails it, so that a partial listing is
    // never taken for the whole namespace (by clear(), an audit, or `signed-cache verify`).
    let fault: unknown;
    const onFault = (error: unknown) => {
      fault ??= error;
    };
    const events = adapter as unknown as {
      on?: (event: string, listener: (error: unknown) => void) => unknown;
      off?: (event: string, listener: (error: unknown) => void) => unknown;
    };
    events.on?.("error", onFault);
    // Keyv 6 adapters walk the namespace they hold, whatever they are passed.
    if (this.#adapterTakesExpires && namespace !== this.#namespace) {
      throw new ConfigError("this store's adapter walks only the store's own namespace");
    }
    const walk = adapter.iterator(namespace)[Symbol.asyncIterator]();
    let finished = false;
    try {
      while (fault === undefined) {
        // Each step (a page, for paging adapters) is bounded by storeTimeout on its own.
        const step = await this.#call("walk", () => walk.next());
        if (step.done) {
          finished = true;
          break;
        }
        const name = this.#storedFromBackend(String(step.value[0]));
        if (name.startsWith(prefix)) yield [name, step.value[1]];
      }
    } catch (error) {
      if (error instanceof SignedCacheError) throw error;
      fault ??= error;
    } finally {
      events.off?.("error", onFault);
      // Stopped early (a fault, or the consumer broke off): let the adapter release its cursor.
      if (!finished) await this.#call("walk", () => walk.return?.()).catch(() => {});
    }
    if (fault !== undefined) {
      const reason = fault instanceof Error ? fault.message : String(fault);
      throw new StoreError(`store walk failed: ${reason}`, {
        cause: fault,
      });
    }
  }

  /**
   * Verifies one stored entry. Bad or expired entries are deleted now, or queued on `doomed`.
   * A valid entry is answered synchronously: the hot path allocates no promise of its own.
   */
  #read(key: string, raw: unknown, doomed?: string[]): ReadResult | Promise<ReadResult> {
    if (raw === undefined || raw === null) return MISS;
    if (isOutdatedEnvelope(raw)) return this.#discard(key, doomed);
    let opened: OpenedEnvelope;
    try {
      opened = this.#open(key, raw, this.#namespace, this.#settings.purpose);
    } catch (error) {
      if (!(error instanceof BadData)) throw error;
      // Keyv's `namespace:key` lets namespaces alias (`a` + `b:c`, `a:b` + `c`; no namespace
      // + `a:c`): a genuine entry of another namespace is a miss here, never removed as forged.
      if (
        error instanceof BadSignature &&
        error.reason === "mismatch" &&
        this.#elsewhere(key, raw)
      ) {
        return MISS;
      }
      this.#report(error);
      if (this.#settings.strict) throw error;
      return this.#discard(key, doomed);
    }
    if (opened.expiresAt !== undefined && Date.now() > opened.expiresAt) {
      return this.#discard(key, doomed);
    }
    if (!opened.current && this.#settings.resign) return this.#resignOnRead(key, opened, raw);
    return opened.value;
  }

  /**
   * Whether `raw`, stored under `key`, is a genuine entry of another namespace whose key reads
   * the same once prefixed: no namespace, or any prefix of `key` that ends before a `:`.
   * Only ever asked of entries that failed to verify here.
   */
  #elsewhere(key: string, raw: unknown): boolean {
    const candidates: (string | undefined)[] = [undefined];
    for (let at = key.indexOf(":"); at > 0; at = key.indexOf(":", at + 1)) {
      candidates.push(key.slice(0, at));
    }
    return candidates.some((namespace) => {
      if (namespace === this.#namespace) return false;
      try {
        this.#open(key, raw, namespace, undefined);
        return true;
      } catch {
        return false;
      }
    });
  }

  async #resignOnRead(key: string, opened: OpenedEnvelope, raw: unknown): Promise<unknown> {
    try {
      await this.#resignEntry(key, opened, this.#namespace, raw);
    } catch (error) {
      this.#emitError(error);
    }
    return opened.value;
  }

  /**
   * Rewrites a verified entry under the current secret. It keeps its purpose and its signed
   * expiry (re-signing never extends a life), and its protection: an encrypted entry stays
   * encrypted, a stronger digest is not traded for a weaker one. Only an entry still holding
   * what was read (`raw`) is rewritten: a fresher value written meanwhile is never replaced by
   * the old one (the window left is one round trip; Keyv adapters have no compare-and-set).
   *
   * @returns Whether the entry was rewritten.
   */
  async #resignEntry(
    key: string,
    opened: OpenedEnvelope,
    namespace: string | undefined,
    raw: unknown,
  ): Promise<boolean> {
    const [now] = await this.#rawMany([key]);
    if (now !== raw) return false;
    const { expiresAt } = opened;
    const ttl = expiresAt === undefined ? undefined : Math.max(1, expiresAt - Date.now());
    const value = this.#seal(key, opened.value, expiresAt, {
      ...this.#sealOptions(),
      namespace,
      purpose: opened.purpose,
      ...protectionAtLeast(opened, this.#settings),
    });
    await this.#call("set", () => this.#write({ key, value, ttl, expiresAt }));
    return true;
  }

  #sealOptions(): SealOptions {
    const { purpose, algorithm, encrypt } = this.#settings;
    return { namespace: this.#namespace, purpose, algorithm, encrypt };
  }

  #seal(key: string, value: unknown, expiresAt: number | undefined, options: SealOptions): string {
    return sealEnvelope(this.#keyring, key, value, expiresAt, options);
  }

  /** Writes a sealed entry; unbounded: callers bound it. */
  async #write({ key, value, ttl, expiresAt }: Sealed): Promise<unknown> {
    if (this.#map) {
      this.#map.set(key, value);
      return true;
    }
    const adapter = this.#adapter as KeyvStoreAdapter;
    // Keyv 6 adapters take the absolute expiry (a ttl there would read as a date in 1970).
    if (this.#adapterTakesExpires) return adapter.set(this.#backendKey(key), value, expiresAt);
    return adapter.set(key, value, ttl);
  }

  /** Removes a bad or expired entry (now, or once a walk ends) and answers a miss. */
  async #discard(stored: string, doomed: string[] | undefined): Promise<typeof MISS> {
    if (doomed) doomed.push(stored);
    else await this.#deleteStoredQuietly(stored);
    return MISS;
  }

  async #deleteStoredQuietly(stored: string): Promise<void> {
    try {
      await this.#call("delete", () => this.#deleteStored(stored));
    } catch (error) {
      this.#emitError(error);
    }
  }

  #report(error: BadData): void {
    try {
      this.#settings.onInvalid?.(error);
    } catch (callbackError) {
      this.#emitError(callbackError);
    }
  }

  #emitError(error: unknown): void {
    // An EventEmitter throws on an unheard "error"; a cache fault must never crash the process.
    if (this.listenerCount("error") === 0) return;
    try {
      this.emit("error", error);
    } catch {
      // A listener rethrew: Keyv 6 rethrows what it hears while nobody listens to it. A fault
      // reported from a driver's event (a socket closing) would end the process from there.
      // Calls in flight still fail through their own rejection.
    }
  }

  async #call<T>(operation: string, run: () => T | Promise<T>): Promise<T> {
    const timeout = this.#settings.timeout;
    // A Map answers synchronously and cannot stall: no timer to pay for.
    if (timeout === 0 || this.#map !== undefined) return this.#typed(operation, run);
    return withDeadline(
      this.#typed(operation, run),
      timeout,
      () => new StoreError(`store ${operation} did not answer within ${timeout} ms`),
    );
  }

  /** A read: Keyv 5 swallows read faults without an `error` event, so they are reported here. */
  async #fetch<T>(operation: string, run: () => T | Promise<T>): Promise<T> {
    try {
      return await this.#call(operation, run);
    } catch (error) {
      // Keyv 5 swallows a failed read without a word; Keyv 6 reports it itself (once is enough).
      if (error instanceof StoreError && this.#callers === "prefixed") this.#emitError(error);
      throw error;
    }
  }

  /** Runs a store call, turning whatever a backend throws into a {@link StoreError}. */
  async #typed<T>(operation: string, run: () => T | Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof SignedCacheError) throw error;
      // The backend's message names the fault (ECONNREFUSED, a missing table). The driver's
      // error itself is not kept: SQL drivers attach the statement, with its keys and values.
      const reason = error instanceof Error ? error.message : String(error);
      throw new StoreError(`store ${operation} failed: ${reason}`, { cause: driverFault(error) });
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

/** Keyv 6's description of a storage adapter, as its `capabilities` carries it. */
export interface StorageCapabilities {
  readonly compatible: true;
  readonly store: "keyvStorage";
  readonly methods: Readonly<
    Record<string, { readonly exists: boolean; readonly methodType: "async" }>
  >;
  /** Writes take an absolute `expires` (ms since the epoch), not a ttl. */
  readonly expires: true;
}

const STORAGE_CAPABILITIES: StorageCapabilities = Object.freeze({
  compatible: true,
  store: "keyvStorage",
  methods: Object.freeze(
    Object.fromEntries(
      [
        "get",
        "set",
        "delete",
        "clear",
        "has",
        "getMany",
        "setMany",
        "deleteMany",
        "hasMany",
        "iterator",
        "disconnect",
      ].map((name) => [name, Object.freeze({ exists: true, methodType: "async" as const })]),
    ),
  ),
  expires: true,
});

/** Whether an adapter declares Keyv 6's contract: it takes an absolute `expires`. */
function takesExpires(adapter: KeyvStoreAdapter | undefined): boolean {
  const capabilities = (adapter as { capabilities?: { expires?: unknown } } | undefined)
    ?.capabilities;
  return capabilities?.expires === true;
}

function isAdapter(store: unknown): store is KeyvStoreAdapter {
  if (typeof store !== "object" || store === null) return false;
  const candidate = store as Record<string, unknown>;
  return ["get", "set", "delete", "clear"].every(
    (method) => typeof candidate[method] === "function",
  );
}

// Keyv 5 binds `keyv.iterator()` only for a store whose `opts.dialect` (or URL) is on its own
// list. This decorator iterates any store it wraps that can list its keys (a Map, or an adapter
// with `iterator()`), so it names a dialect from that list; Keyv 5 reads `dialect` for nothing
// else, and Keyv 6 looks for `iterator()` itself.
const KEYV5_ITERABLE = ["sqlite", "postgres", "mysql", "mongo", "redis", "valkey", "etcd"];

/**
 * The options Keyv sees: the wrapped adapter's, with its URL redacted (Keyv's own inspect shows
 * them), a URL string even when the adapter has none (Keyv 5 probes `opts.url.includes`), and
 * a dialect that lets Keyv 5 bind `iterator()` whenever the wrapped store can list its keys.
 */
function keyvFacingOpts(
  adapter: KeyvStoreAdapter | undefined,
  isMap: boolean,
): Record<string, unknown> {
  const opts = (adapter?.opts ?? {}) as Record<string, unknown>;
  const url = typeof opts.url === "string" ? redactUrl(opts.url) : isMap ? "memory://" : "";
  const dialect = typeof opts.dialect === "string" ? opts.dialect : isMap ? "map" : undefined;
  const iterable = isMap || typeof adapter?.iterator === "function";
  const known =
    (dialect !== undefined && KEYV5_ITERABLE.includes(dialect)) ||
    KEYV5_ITERABLE.some((name) => url.includes(name));
  // Options an adapter keeps beside its URL may hold a password of their own.
  const shown = Object.fromEntries(
    Object.entries(opts).map(([name, value]) => [
      name,
      typeof value === "string" && /pass|secret|token/i.test(name) ? "***" : value,
    ]),
  );
  return {
    ...shown,
    url,
    ...(typeof opts.uri === "string" ? { uri: redactUrl(opts.uri) } : {}),
    ...(iterable && !known ? { dialect: "sqlite", wrappedDialect: dialect } : { dialect }),
  };
}

/** The key id and purpose an entry's header names, when it parses; nothing is verified. */
function claimedHeader(raw: unknown): { kid?: string; purpose?: string } {
  try {
    const { kid, purpose } = inspectEnvelope(raw);
    return { kid, purpose };
  } catch {
    return {};
  }
}

/** Checks every option once, filling in defaults. */
function checkOptions(options: SignedStoreOptions): Settings {
  const algorithm = options.algorithm ?? DEFAULT_MAC_ALGORITHM;
  if (!isMacAlgorithm(algorithm)) {
    throw new ConfigError("algorithm must be one of sha256, sha512, blake2b512");
  }
  const timeout = options.storeTimeout ?? DEFAULT_STORE_TIMEOUT;
  if (!Number.isFinite(timeout) || timeout < 0) {
    throw new ConfigError("storeTimeout must be a non-negative number of milliseconds");
  }
  const maxEntryBytes = options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
  if (!Number.isSafeInteger(maxEntryBytes) || maxEntryBytes < 1024) {
    throw new ConfigError("maxEntryBytes must be a whole number of bytes, at least 1024");
  }
  const purpose = options.purpose ?? DEFAULT_PURPOSE;
  if (!isPurpose(purpose)) {
    throw new ConfigError(
      "purpose must be 1 to 16 lowercase letters, digits or '-', starting with a letter",
    );
  }
  const encrypt = options.encrypt ?? false;
  const algorithms = options.algorithms;
  if (algorithms !== undefined) {
    if (!Array.isArray(algorithms) || algorithms.length === 0) {
      throw new ConfigError("algorithms must be a non-empty array");
    }
    const unknown = algorithms.find((name) => !isEntryAlgorithm(name));
    if (unknown !== undefined) {
      throw new ConfigError("algorithms may list sha256, sha512, blake2b512 and aes-256-gcm only");
    }
    const written = encrypt ? "aes-256-gcm" : algorithm;
    if (!algorithms.includes(written)) {
      throw new ConfigError(`algorithms must include ${written}, which this store writes`);
    }
  }
  return {
    strict: options.strict ?? false,
    resign: options.resign ?? false,
    encrypt,
    algorithm,
    algorithms: algorithms === undefined ? undefined : [...algorithms],
    accepted: acceptedSpecIds(algorithms, algorithm, encrypt),
    purpose,
    timeout,
    maxEntryBytes,
    onInvalid: options.onInvalid,
  };
}

/** Whether a verified entry is less protected than the store is configured to write. */
function weakerThanConfigured(opened: OpenedEnvelope, settings: Settings): boolean {
  if (opened.spec.kind === "aead") return false;
  if (settings.encrypt) return true;
  return opened.spec.tagChars < MAC_BY_DIGEST[settings.algorithm].tagChars;
}

/** The name `algorithms` uses for a spec. */
function specName(spec: OpenedEnvelope["spec"]): EntryAlgorithm {
  return spec.kind === "aead" ? "aes-256-gcm" : (spec.primitive as MacAlgorithm);
}

/** Seal settings at least as protective as both an existing entry's and the store's. */
function protectionAtLeast(
  opened: OpenedEnvelope,
  settings: Settings,
): Pick<SealOptions, "encrypt" | "algorithm"> {
  if (settings.encrypt || opened.spec.kind === "aead")
    return { encrypt: true, algorithm: settings.algorithm };
  const configured = MAC_BY_DIGEST[settings.algorithm];
  const entryDigest = opened.spec.primitive as MacAlgorithm;
  // A longer tag is the stronger MAC; between equals, the configured digest wins.
  const stronger = opened.spec.tagChars > configured.tagChars ? entryDigest : settings.algorithm;
  return { encrypt: false, algorithm: stronger };
}
