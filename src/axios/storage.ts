import {
  type AxiosStorage,
  buildStorage,
  type CacheRequestConfig,
  type StorageValue,
} from "axios-cache-interceptor";
import Keyv from "keyv";
import { checkNamespace, DEFAULT_STORE_TIMEOUT, readMaxStale } from "../config.js";
import { KEYV_DEFAULT_NAMESPACE } from "../create-keyv.js";
import { BadData, ConfigError, driverFault, EntryTooLarge, StoreError } from "../errors.js";
import { LocalWrites, REMOVED } from "../http/local-writes.js";
import { ReplayBounds } from "../http/replay-bounds.js";
import {
  type CircuitCounts,
  type CircuitState,
  isBypassed,
  reportingGuard,
} from "../http/store-guard.js";
import { Keyring, type Secret } from "../keyring.js";
import { KeyvEntries } from "../keyv-io.js";
import {
  SignedStore,
  type SignedStoreOptions,
  signedStore,
  type WrappableStore,
} from "../store.js";
import { deserializeEntry, serializeEntry } from "./entry.js";

type StoredValue = Parameters<AxiosStorage["set"]>[1];

/** How long a `loading` entry may outlive a request that never settled (a crashed process). */
const LOADING_TTL_MS = 60_000;
/** How long a write the store rejected stays visible to this process. */
const FAILED_WRITE_GRACE_MS = 5_000;
/** Where a `loading` marker records the end of the response it carries (signed with it). */
const REPLAY_UNTIL = "replayUntil";
/**
 * How long a response too large to cache stays visible to this process: long enough for the
 * requests waiting on it to read it, so that they share one download.
 */
const TOO_LARGE_GRACE_MS = 1_000;
/** The purpose bound into every axios entry: no other kind of entry verifies as one. */
export const AXIOS_PURPOSE = "axios";
const SIGNING_OPTIONS = [
  "fallbacks",
  "strict",
  "onInvalid",
  "resign",
  "encrypt",
  "algorithm",
  "algorithms",
  "storeTimeout",
  "maxEntryBytes",
] as const satisfies readonly (keyof SignedStoreOptions)[];

/** Options of {@link signedStorage}. */
export interface SignedStorageOptions extends Omit<SignedStoreOptions, "purpose"> {
  /**
   * The longest, in ms, an entry is kept past its freshness to be revalidated (ETag,
   * Last-Modified) or served stale (`stale-while-revalidate`, `staleIfError`). Every entry's
   * signed expiry is its freshness plus at most this: it bounds how long an old response can be
   * replayed into the store and still be served.
   * @default 86400000 (24 h), or SIGNED_CACHE_MAX_STALE
   */
  maxStale?: number;
  /**
   * Keyv namespace of the entries. Ignored when a `Keyv` is passed: its own namespace is kept.
   * @default "keyv"
   */
  namespace?: string;
  /**
   * Called with a {@link StoreError} (its `cause` is the backend's error) whenever the store
   * fails or times out. The request then carries on as if the entry were absent.
   */
  onError?: (error: StoreError) => void;
  /**
   * Called when the store's circuit changes state: `open` after repeated faults (requests then
   * bypass the store), `half-open` when one call probes it again after the cool-down, `closed`
   * when it answers. The opening is also reported once through `onError`.
   */
  onCircuit?: (state: CircuitState, counts: CircuitCounts) => void;
  /**
   * How long, in ms, requests bypass a store whose circuit opened before one call probes it.
   * @default 5000
   */
  circuitCoolDown?: number;
  /**
   * Let store faults reject the request with {@link StoreError} instead of falling back to the
   * network. The `loading` marker written before a request is exempt: nothing was fetched yet.
   * @default false
   */
  throwOnStoreError?: boolean;
}

/** An axios-cache-interceptor storage whose entries are signed envelopes in a Keyv store. */
export interface SignedAxiosStorage extends AxiosStorage {
  /** The signed Keyv the entries live in; read it to inspect or purge entries. */
  readonly keyv: Keyv;
  clear: () => Promise<void>;
}

/**
 * Builds an axios-cache-interceptor storage over a Keyv, a Keyv store adapter or a `Map`, in
 * which every entry is signed. For people who call axios-cache-interceptor's own `setupCache`;
 * `setupCache` from `signed-cache/axios` builds one for you.
 *
 * Store faults never fail a request unless `throwOnStoreError` is set: they are reported through
 * `onError` and the request goes to the network. Every store call is bounded by `storeTimeout`
 * (default 1000 ms) unless the given `Keyv` is already signed, which keeps its own setting. A
 * tampered entry is a miss (lax) or rejects the request with {@link BadSignature} (`strict`).
 *
 * When this storage builds the Keyv itself (from a store adapter, a `Map`, or an unsigned `Keyv`
 * whose store it wraps), a text or parsed-JSON response body is stored after the entry's JSON
 * rather than escaped inside it, which keeps large cache hits cheap; the whole stored text is
 * signed either way, and entries in Keyv's usual JSON still read back. A `Keyv` that is already
 * signed is used as it is, with its own serializer: entries stay in Keyv's JSON.
 *
 * @param keyvOrStore - A `Keyv` (its store gets signed unless it already is), a Keyv store adapter
 *   or a `Map`.
 * @param secret - At least 32 bytes.
 * @throws {ConfigError} When the secret is too short, an option is invalid, or a `Keyv` that is
 *   already signed uses another secret or is given signing options.
 * @example
 * ```ts
 * import Axios from "axios";
 * import { setupCache } from "axios-cache-interceptor";
 * import KeyvRedis from "@keyv/redis";
 * import { signedStorage } from "signed-cache/axios";
 *
 * const storage = signedStorage(new KeyvRedis("redis://localhost:6379"), process.env.SIGNED_CACHE_SECRET!);
 * const axios = setupCache(Axios.create(), { storage });
 * ```
 */
export function signedStorage(
  keyvOrStore: Keyv | WrappableStore,
  secret: Secret,
  options: SignedStorageOptions = {},
): SignedAxiosStorage {
  const keyv = signedKeyv(keyvOrStore, secret, options);
  const store = keyv.store as SignedStore;
  const strict = store.strict;
  const entries = new KeyvEntries(keyv, store, serializeEntry, deserializeEntry);
  const maxStale = options.maxStale ?? readMaxStale();
  if (options.namespace !== undefined) checkNamespace(options.namespace, "namespace");
  if (!Number.isSafeInteger(maxStale) || maxStale < 0) {
    throw new ConfigError("maxStale must be a whole, non-negative number of milliseconds");
  }
  const local = new LocalWrites<StoredValue>();
  const bounds = new ReplayBounds();
  const reported = new WeakSet<object>();

  const tell = (error: StoreError) => {
    try {
      options.onError?.(error);
    } catch {
      // A throwing error callback must not turn a cache fault into a failed request.
    }
  };
  const guard = reportingGuard({
    budgetMs: requestBudget(keyv, options),
    coolDownMs: options.circuitCoolDown ?? 5_000,
    tell,
    onCircuit: options.onCircuit,
  });
  // Closing the storage's Keyv (how users close the store) also stops the breaker's timers.
  keyv.on("disconnect", () => guard.shutdown());
  const report = (error: unknown, operation: string): StoreError => {
    const reason = error instanceof Error ? error.message : String(error);
    const storeError =
      error instanceof StoreError
        ? error
        : new StoreError(`store ${operation} failed: ${reason}`, { cause: driverFault(error) });
    // Calls the guard skipped are not faults, and while the circuit is open the store's own
    // events (reconnect attempts) add nothing to the report made when it opened.
    if (isBypassed(storeError) || guard.state === "open") return storeError;
    if (typeof error === "object" && error !== null) {
      if (reported.has(error)) return storeError;
      reported.add(error);
    }
    // The first fault of a streak is reported; the rest are counted, and reported together if
    // the circuit opens. A call the store answers ends the streak.
    if (!inStreak) tell(storeError);
    inStreak = true;
    return storeError;
  };
  let inStreak = false;
  const answered = () => {
    inStreak = false;
  };
  // Connection errors, and faults the signed store absorbs itself (a failed delete of a bad
  // entry, a failed re-sign), surface only as events.
  let faultEvents = 0;
  store.on("error", (error: unknown) => {
    faultEvents++;
    report(error, "connection");
  });

  const write = async (
    key: string,
    value: StoredValue | typeof REMOVED,
    call: () => Promise<unknown>,
    operation: string,
    request: object | undefined,
  ): Promise<void> => {
    const run = () => guard.run(request, operation, call);
    const token = local.begin(key, value);
    const faultsBefore = faultEvents;
    let failure: unknown;
    try {
      // Keyv answers `false` rather than throwing when it swallows a store error.
      if ((await run()) === false && operation === "set") {
        failure = new StoreError("store set was not acknowledged");
      }
    } catch (error) {
      failure = error;
    }
    // Some adapters (@keyv/redis by default) swallow a failed call and only emit an event: a
    // fault during this write may have been this write's, so it is not trusted to have landed.
    if (failure === undefined && faultEvents !== faultsBefore) {
      failure = new StoreError(
        `store ${operation} may not have landed: the store reported a fault`,
      );
    }
    if (failure === undefined) {
      answered();
      // A loading marker that carries the previous response stays readable here for its
      // request's life: a 304 is answered from that response, and must find it even if the
      // store fails between sending the revalidation and reading its answer.
      if (value !== REMOVED && value.state === "loading" && value.data !== undefined) {
        local.failed(key, token, loadingTtl(undefined));
      } else {
        local.succeeded(key, token);
      }
      return;
    }
    // An entry too large to cache is a response not cached, not a store that failed: it stays
    // visible here only for the requests waiting on it (the store removed any older entry).
    if (failure instanceof EntryTooLarge) {
      local.failed(key, token, TOO_LARGE_GRACE_MS);
      report(failure, operation);
      return;
    }
    const loading = value !== REMOVED && value.state === "loading";
    local.failed(key, token, loading ? loadingTtl(undefined) : FAILED_WRITE_GRACE_MS);
    const storeError = report(failure, operation);
    if (options.throwOnStoreError && !loading) throw storeError;
  };

  const storage = buildStorage({
    async find(key, request) {
      const pending = local.read(key);
      if (pending === REMOVED) return undefined;
      if (pending !== undefined) return pending;
      let value: unknown;
      try {
        // Raw: the entry's expiry comes with it, signed like the rest of the stored text.
        const raw = await guard.run(request, "get", () => entries.get(key));
        answered();
        value = raw?.value;
        if (raw === undefined) {
          bounds.forget(key);
        } else if (isStorageValue(value) && value.state === "loading") {
          // A loading marker's own expiry is its request's; the response it carries keeps the
          // end of the entry it was made from, which the marker records.
          const carried = (value as unknown as Record<string, unknown>)[REPLAY_UNTIL];
          if (typeof carried === "number" || carried === null) bounds.remember(key, carried);
        } else {
          bounds.remember(key, typeof raw.expires === "number" ? raw.expires : null);
        }
      } catch (error) {
        if (error instanceof BadData && strict) throw error;
        const storeError = report(error, "get");
        if (options.throwOnStoreError) throw storeError;
      }
      // A write this process began while the read was in flight is newer than what was read.
      const written = local.read(key);
      if (written !== undefined) return written === REMOVED ? undefined : written;
      return isStorageValue(value) ? value : undefined;
    },
    async set(key, value, request) {
      let ttl = entryTtl(value, request, maxStale);
      let stored: StoredValue = value;
      // Only a `cached` entry holds what the origin just sent (or confirmed with a 304). Any
      // other state carrying a response re-writes one already stored: it keeps that one's end.
      if (value.state !== "cached" && "data" in value && value.data !== undefined) {
        const inherited = bounds.inherit(key, ttl);
        if (value.state === "loading") {
          // A loading marker needs no longer than its request, and records the end of the
          // response it carries for whoever turns it back into an entry (in any process).
          ttl = Math.min(ttl, inherited);
          const until = bounds.until(key);
          if (until !== undefined)
            stored = { ...value, [REPLAY_UNTIL]: until } as unknown as StoredValue;
        } else {
          ttl = inherited;
        }
      }
      if (value.state !== "loading" && ttl > 0) {
        bounds.remember(key, Number.isFinite(ttl) ? Date.now() + ttl : null);
      }
      // Already past its life: what buildStorage would delete on the next read is not written.
      if (ttl <= 0) {
        await write(key, REMOVED, () => entries.delete(key), "delete", request);
        return;
      }
      await write(key, stored, () => entries.set(key, stored, ttl), "set", request);
    },
    async remove(key, request) {
      await write(key, REMOVED, () => entries.delete(key), "delete", request);
    },
    async clear() {
      local.clear();
      try {
        await entries.clear();
      } catch (error) {
        const storeError = report(error, "clear");
        if (options.throwOnStoreError) throw storeError;
      }
    },
  });
  return Object.assign(storage, { keyv }) as SignedAxiosStorage;
}

/**
 * The signed Keyv behind a storage, always its own: over the given store, the given Keyv's store,
 * or the given signed Keyv's backend and secrets, with the `axios` purpose bound into every entry.
 */
function signedKeyv(
  keyvOrStore: Keyv | WrappableStore,
  secret: Secret,
  options: SignedStorageOptions,
): Keyv {
  // Like createKeyv, bound every store call by default: a dead store must not hang a request.
  const signing = {
    storeTimeout: DEFAULT_STORE_TIMEOUT,
    ...signingOptions(options),
    purpose: AXIOS_PURPOSE,
  };
  if (!isKeyv(keyvOrStore)) {
    return entryKeyv(
      signedStore(keyvOrStore, secret, signing),
      options.namespace ?? KEYV_DEFAULT_NAMESPACE,
    );
  }
  const inner = keyvOrStore.store as unknown;
  if (!(inner instanceof SignedStore)) {
    return entryKeyv(
      signedStore(inner as WrappableStore, secret, signing),
      keyvOrStore.namespace,
      keyvOrStore.useKeyPrefix,
    );
  }
  const current = new Keyring(secret).kids[0];
  if (inner.kids[0] !== current) {
    throw new ConfigError("the Keyv is already signed with a different secret");
  }
  const given = SIGNING_OPTIONS.filter((name) => options[name] !== undefined);
  if (given.length > 0) {
    throw new ConfigError(
      `the Keyv is already signed: set ${given.join(", ")} on its signedStore instead`,
    );
  }
  // Its settings, its backend and namespace; only the purpose differs, so that what the storage
  // writes never reads back as a plain value of that Keyv, and no plain value as an HTTP entry.
  const store = inner.purpose === AXIOS_PURPOSE ? inner : inner.withPurpose(AXIOS_PURPOSE);
  return entryKeyv(store, keyvOrStore.namespace, keyvOrStore.useKeyPrefix);
}

/** A Keyv the storage owns over `store`, writing entries in the axios entry layout. */
function entryKeyv(
  store: SignedStore,
  namespace: string | undefined,
  useKeyPrefix?: boolean,
): Keyv {
  const keyv = new Keyv({
    store,
    namespace,
    ...(useKeyPrefix === undefined ? {} : { useKeyPrefix }),
  });
  // The storage reads and writes through KeyvEntries, which also sets this Keyv's serializer:
  // users reading `storage.keyv` get the entries decoded.
  return keyv;
}

const STORAGE_OPTIONS = [
  "namespace",
  "onError",
  "onCircuit",
  "circuitCoolDown",
  "throwOnStoreError",
  "maxStale",
] as const satisfies readonly (keyof SignedStorageOptions)[];

/**
 * Splits `setupCache` options three ways: what signs entries, what the storage itself takes, and
 * the rest — axios-cache-interceptor's own options.
 */
export function splitOptions<T extends SignedStorageOptions>(
  options: T,
): {
  cache: Omit<T, keyof SignedStorageOptions>;
  signing: SignedStoreOptions;
  storage: Pick<SignedStorageOptions, (typeof STORAGE_OPTIONS)[number]>;
} {
  const cache = { ...options } as Record<string, unknown>;
  const storage: Record<string, unknown> = {};
  for (const name of [...SIGNING_OPTIONS, ...STORAGE_OPTIONS]) delete cache[name];
  for (const name of STORAGE_OPTIONS) {
    if (options[name] !== undefined) storage[name] = options[name];
  }
  return {
    cache: cache as Omit<T, keyof SignedStorageOptions>,
    signing: signingOptions(options),
    storage,
  };
}

/** The options of `options` that configure signing, for {@link signedStore}. */
export function signingOptions(options: SignedStorageOptions): SignedStoreOptions {
  const picked: Record<string, unknown> = {};
  for (const name of SIGNING_OPTIONS) {
    if (options[name] !== undefined) picked[name] = options[name];
  }
  return picked as SignedStoreOptions;
}

/** Whether `value` is a Keyv, as opposed to a store adapter (which a Keyv also resembles). */
export function isKeyv(value: unknown): value is Keyv {
  return (
    value instanceof Keyv ||
    // Another copy of the keyv package: a Keyv also looks like a store adapter, so tell it by
    // what only Keyv itself has (Keyv 5: hooks and a serializer; Keyv 6: store resolution).
    (typeof value === "object" &&
      value !== null &&
      (("hooks" in value &&
        typeof (value as { serializeData?: unknown }).serializeData === "function") ||
        typeof (value as { resolveStore?: unknown }).resolveStore === "function"))
  );
}

function isStorageValue(value: unknown): value is StorageValue {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { state?: unknown }).state === "string"
  );
}

/**
 * How long the store should keep an entry, in ms; the signed store turns it into the entry's
 * signed expiry. A response is kept for its freshness, plus — when it can still be used once
 * stale (revalidated with ETag / Last-Modified, or served by stale-while-revalidate or
 * staleIfError) — at most `maxStale` more. So every entry expires, and an old response written
 * back into the store stops being served `maxStale` after it went stale.
 */
function entryTtl(
  value: StoredValue,
  request: CacheRequestConfig | undefined,
  maxStale: number,
): number {
  if (value.state === "loading") return loadingTtl(request);
  // A freshness that is not a number (a malformed Age or max-age header, a ttl function that
  // returns NaN) counts as none: the entry still ends `maxStale` after it was made.
  const freshUntil = value.createdAt + orZero(value.ttl);
  const staleTtl = value.state === "cached" ? Math.max(orZero(value.staleTtl), 0) : 0;
  const usableStale =
    canRevalidate(value) || value.state !== "cached" || staleIfErrorOn(request)
      ? maxStale
      : Math.min(staleTtl, maxStale);
  const ttl = freshUntil + usableStale - Date.now();
  return Number.isNaN(ttl) ? 0 : ttl;
}

/**
 * `value`, or 0 when it is missing or not a number (`NaN`, or a string such as a ttl read from
 * the environment, which would concatenate); `Infinity` (never stale) is kept.
 */
function orZero(value: unknown): number {
  return typeof value === "number" && !Number.isNaN(value) ? value : 0;
}

/**
 * The most a request may wait on the store over all its calls: the signed store's own
 * `storeTimeout` (one call's bound), or no bound when that is `0`.
 */
function requestBudget(keyv: Keyv, options: SignedStorageOptions): number {
  const timeout =
    options.storeTimeout ??
    (keyv.store instanceof SignedStore ? keyv.store.storeTimeout : DEFAULT_STORE_TIMEOUT);
  return timeout === 0 ? Number.POSITIVE_INFINITY : timeout;
}

/** Whether a request may serve a stale entry when the origin fails (axios-cache-interceptor's default: yes). */
function staleIfErrorOn(request: CacheRequestConfig | undefined): boolean {
  const cache = request?.cache;
  if (cache === undefined || cache === false) return true;
  return cache.staleIfError !== false && cache.staleIfError !== 0;
}

function loadingTtl(request: CacheRequestConfig | undefined): number {
  const timeout = request?.timeout ?? 0;
  return Math.max(LOADING_TTL_MS, timeout);
}

function canRevalidate(value: Exclude<StoredValue, { state: "loading" }>): boolean {
  const headers = value.data.headers as Record<string, unknown>;
  const revalidation = value.data.meta?.revalidation;
  return (
    headers.etag !== undefined ||
    headers["last-modified"] !== undefined ||
    !!(revalidation?.etag || revalidation?.lastModified)
  );
}
