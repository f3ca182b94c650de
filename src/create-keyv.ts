import Keyv from "keyv";
import type { EntryAlgorithm, MacAlgorithm } from "./algorithms.js";
import { checkNamespace, readConfig } from "./config.js";
import { type BadData, ConfigError } from "./errors.js";
import type { Secret } from "./keyring.js";
import { keyvMajor } from "./keyv-io.js";
import { type SignedStoreOptions, signedStore, type WrappableStore } from "./store.js";
import { storeFromUrl } from "./stores.js";

/** Keyv 5's own default namespace, used on either major. */
export const KEYV_DEFAULT_NAMESPACE = "keyv";

/**
 * Options of {@link createKeyv}. Each one left out is read from the environment
 * (see {@link readConfig}); an option given here, even `false`, wins.
 */
export interface CreateKeyvOptions {
  /** Store URL, e.g. `redis://localhost:6379`. @default "sqlite://http_cache.sqlite" */
  url?: string;
  /** A Keyv store adapter or `Map` to sign, instead of `url`. */
  store?: WrappableStore;
  /** At least 32 bytes. @default process.env.SIGNED_CACHE_SECRET */
  secret?: Secret;
  /** Older secrets, newest first, still accepted on read. @default [] */
  fallbacks?: readonly Secret[];
  /** Keyv namespace: entries of other namespaces are neither read nor cleared. @default "keyv" */
  namespace?: string;
  /** Default time to live in ms. @default undefined (no expiry) */
  ttl?: number;
  /**
   * Reads of a bad entry reject with `BadSignature` and store faults reject with `StoreError`,
   * instead of both being a miss. On Keyv 5 this sets `throwOnErrors`. Keyv 6 has no such
   * switch: it rejects only while no `error` listener is attached (`onError` attaches one), and
   * otherwise hands the error to the listeners and answers a miss.
   * @default false
   */
  strict?: boolean;
  /** Re-sign entries read under a fallback secret. @default false */
  resign?: boolean;
  /** Encrypt payloads with AES-256-GCM. @default false */
  encrypt?: boolean;
  /** HMAC digest for new entries. @default "sha256", or SIGNED_CACHE_ALGORITHM */
  algorithm?: MacAlgorithm;
  /**
   * Algorithms accepted on read; see {@link SignedStoreOptions.algorithms}.
   * @default only what the store writes, or SIGNED_CACHE_ALGORITHMS
   */
  algorithms?: readonly EntryAlgorithm[];
  /**
   * What the entries are for, bound into every MAC; see {@link SignedStoreOptions.purpose}.
   * @default "keyv"
   */
  purpose?: string;
  /** Largest stored entry in bytes. @default 33554432 (32 MiB), or SIGNED_CACHE_MAX_ENTRY_BYTES */
  maxEntryBytes?: number;
  /** Called with every rejected entry's error. */
  onInvalid?: (error: BadData) => void;
  /** Called with every error Keyv reports: store faults such as a timeout or a backend down. */
  onError?: (error: unknown) => void;
  /** Bound in ms on each store call, `0` for none, so a dead store never hangs a caller. @default 1000 */
  storeTimeout?: number;
  /** The environment to fall back on. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Builds a ready `Keyv` over a signed store: explicit options first, then `SIGNED_CACHE_*`
 * environment variables, then defaults. `keyv.iterator()` works on every store, `Map` included.
 *
 * @throws {ConfigError} When no secret is set or one is under 32 bytes, when both `url` and
 *   `store` are given, on an invalid option or environment variable, or when the store URL's
 *   adapter package is not installed.
 * @example
 * ```ts
 * import { createKeyv } from "signed-cache";
 *
 * const cache = createKeyv({ url: "redis://localhost:6379", namespace: "http" });
 * await cache.set("user:42", { role: "user" }, 60_000);
 * ```
 */
export function createKeyv(options: CreateKeyvOptions = {}): Keyv {
  const config = readConfig(options.env ?? process.env);
  if (options.url !== undefined && options.store !== undefined) {
    throw new ConfigError("createKeyv: pass url or store, not both");
  }
  // Keyv 5's default, set explicitly: Keyv 6 has none, and the entries of an app that moves to
  // it stay where they were.
  const namespace = options.namespace ?? config.namespace ?? KEYV_DEFAULT_NAMESPACE;
  checkNamespace(namespace, "namespace");
  const ttl = options.ttl ?? config.ttl;
  if (ttl !== undefined && !(Number.isFinite(ttl) && ttl > 0)) {
    throw new ConfigError("ttl must be a positive number of milliseconds");
  }
  const strict = options.strict ?? config.strict;
  const secret = options.secret ?? (config.secret as Secret);
  const signing: SignedStoreOptions = {
    fallbacks: options.fallbacks ?? config.fallbacks,
    strict,
    resign: options.resign ?? config.resign,
    encrypt: options.encrypt ?? config.encrypt,
    storeTimeout: options.storeTimeout ?? config.storeTimeout,
    algorithm: options.algorithm ?? config.algorithm,
    maxEntryBytes: options.maxEntryBytes ?? config.maxEntryBytes,
    ...((options.algorithms ?? config.algorithms) === undefined
      ? {}
      : { algorithms: options.algorithms ?? config.algorithms }),
    ...(options.purpose === undefined ? {} : { purpose: options.purpose }),
    ...(options.onInvalid === undefined ? {} : { onInvalid: options.onInvalid }),
  };
  // Every setting is checked on a throwaway Map before a URL opens a file or a connection.
  try {
    signedStore(new Map(), secret, signing);
  } catch (error) {
    // A list read from the environment can clash with an algorithm chosen in code: say where.
    if (error instanceof ConfigError && options.algorithms === undefined && config.algorithms) {
      throw new ConfigError(`SIGNED_CACHE_ALGORITHMS: ${error.message}`);
    }
    throw error;
  }
  const store = signedStore(
    options.store ?? storeFromUrl(options.url ?? config.url),
    secret,
    signing,
  );
  const keyv = new Keyv({
    store,
    throwOnErrors: strict,
    namespace,
    ...(ttl === undefined ? {} : { ttl }),
  });
  if (options.onError) keyv.on("error", options.onError);
  // Keyv 6 throws an error it emits while nobody listens, where Keyv 5 without throwOnErrors
  // answers a miss: lax means a miss on both majors.
  else if (!strict && keyvMajor(keyv) === 6) keyv.on("error", () => {});
  // Keyv 5 builds its iterator only for a raw Map or an adapter whose dialect it recognizes
  // (Keyv 6 always has one).
  keyv.iterator ??= keyv.generateIterator(store.iterator.bind(store));
  return keyv;
}
