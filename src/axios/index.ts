import type { AxiosInstance } from "axios";
import {
  type AxiosCacheInstance,
  type CacheOptions,
  setupCache as setupAxiosCache,
} from "axios-cache-interceptor";
import type Keyv from "keyv";
import { readConfig } from "../config.js";
import { createKeyv } from "../create-keyv.js";
import { ConfigError } from "../errors.js";
import type { Secret } from "../keyring.js";
import { SignedStore, type SignedStoreOptions, type WrappableStore } from "../store.js";
import { requestKey } from "./request-key.js";
import {
  AXIOS_PURPOSE,
  isKeyv,
  type SignedAxiosStorage,
  type SignedStorageOptions,
  signedStorage,
  splitOptions,
} from "./storage.js";
import {
  ChainedWaiting,
  settleFollowersOnFailure,
  settleFollowersOnForeignErrors,
} from "./waiting.js";

/**
 * Options of {@link setupCache}: every option of axios-cache-interceptor's `setupCache` except
 * `storage`, plus where and how entries are signed.
 */
export interface SetupCacheOptions extends Omit<CacheOptions, "storage">, SignedStorageOptions {
  /**
   * Where entries live: a `Keyv`, a Keyv store adapter, a `Map`, or a store URL
   * (`sqlite://…`, `redis://…`, `memory://`…).
   * @default process.env.SIGNED_CACHE_URL, else "sqlite://http_cache.sqlite"
   */
  store?: Keyv | WrappableStore | string;
  /**
   * Not accepted: an unsigned storage would defeat the point. Use `store`, or build a signed
   * storage with {@link signedStorage} and axios-cache-interceptor's own `setupCache`.
   */
  storage?: never;
}

/** The axios instance {@link setupCache} returns: axios-cache-interceptor's, with a signed storage. */
export type SignedAxiosCacheInstance = AxiosCacheInstance & { storage: SignedAxiosStorage };

/**
 * Adds a signed HTTP cache to an axios instance: a drop-in for axios-cache-interceptor's
 * `setupCache`, whose options all pass through unchanged, over a store in which every entry is
 * signed. Store faults (down, slow, erroring) never fail or hang a request: they are reported
 * through `onError` and the request goes to the network.
 *
 * Requests are keyed by {@link requestKey} unless `generateKey` is given: unlike the default
 * 32-bit hash, two different requests never share an entry.
 *
 * @param axios - An axios instance (`axios.create()`), set up once.
 * @param secret - At least 32 bytes. Default: `SIGNED_CACHE_SECRET`.
 * @throws {ConfigError} When no secret is given or set, it is too short, an option is invalid,
 *   or `storage` is passed.
 * @example
 * ```ts
 * import Axios from "axios";
 * import { setupCache } from "signed-cache/axios";
 *
 * const axios = setupCache(Axios.create(), process.env.SIGNED_CACHE_SECRET);
 * const { data, cached } = await axios.get("https://api.example.com/users/42");
 * ```
 */
export function setupCache(
  axios: AxiosInstance,
  secret?: Secret,
  options: SetupCacheOptions = {},
): SignedAxiosCacheInstance {
  if ((options as { storage?: unknown }).storage !== undefined) {
    throw new ConfigError(
      "setupCache does not take `storage`: pass `store` (a Keyv, a store adapter, a Map or a URL)",
    );
  }
  const { store, register, waiting, ...given } = options;
  const { cache, signing, storage: storageOnly } = splitOptions(given);
  const key = secret === undefined || secret === "" ? readConfig().secret : secret;
  if (key === undefined) {
    throw new ConfigError("no secret: pass one to setupCache or set SIGNED_CACHE_SECRET");
  }
  // A Keyv is signed (or checked) by signedStorage; anything else is opened by createKeyv, which
  // also reads the SIGNED_CACHE_* environment for whatever is not given here. Either way the
  // storage builds its own Keyv over it, bound to the axios purpose.
  const storage = isKeyv(store)
    ? signedStorage(store, key, {
        // A Keyv that is already signed keeps its own settings; any other Keyv is signed here,
        // with the same SIGNED_CACHE_* environment a URL, an adapter or a Map would get.
        ...(store.store instanceof SignedStore ? signing : withEnvironment(signing)),
        ...storageOnly,
      })
    : signedStorage(
        openKeyv(store as string | WrappableStore | undefined, key, signing, storageOnly.namespace),
        key,
        { ...storageOnly, namespace: undefined },
      );
  // Only axios-cache-interceptor's own options reach it: secrets and callbacks stay out of
  // `axios.defaults.cache`, which applications log and inspect.
  const instance = setupAxiosCache(axios, {
    ...cache,
    generateKey: cache.generateKey ?? requestKey,
    storage,
    waiting: waiting ?? new ChainedWaiting(),
    register: false,
  }) as SignedAxiosCacheInstance;
  const onResponse = settleFollowersOnFailure(instance, instance.responseInterceptor);
  instance.responseInterceptor = onResponse;
  instance.requestInterceptor = settleFollowersOnForeignErrors(
    instance,
    instance.requestInterceptor,
  );
  if (register ?? true) {
    instance.interceptors.request.use(
      instance.requestInterceptor.onFulfilled,
      instance.requestInterceptor.onRejected,
    );
    instance.interceptors.response.use(onResponse.onFulfilled, onResponse.onRejected);
  }
  return instance;
}

/** Signing options with what is not given read from the environment, as createKeyv does. */
function withEnvironment(signing: SignedStoreOptions): SignedStoreOptions {
  const config = readConfig();
  return {
    fallbacks: config.fallbacks,
    strict: config.strict,
    resign: config.resign,
    encrypt: config.encrypt,
    algorithm: config.algorithm,
    ...(config.algorithms === undefined ? {} : { algorithms: config.algorithms }),
    maxEntryBytes: config.maxEntryBytes,
    storeTimeout: config.storeTimeout,
    ...signing,
  };
}

function openKeyv(
  store: string | WrappableStore | undefined,
  secret: Secret,
  signing: SignedStoreOptions,
  namespace: string | undefined,
): Keyv {
  // Signed for the axios purpose from the start: signedStorage then uses this store as it is
  // instead of wrapping its backend a second time.
  return createKeyv({
    ...(typeof store === "string" ? { url: store } : store === undefined ? {} : { store }),
    secret,
    ...signing,
    purpose: AXIOS_PURPOSE,
    ...(namespace === undefined ? {} : { namespace }),
  });
}

export { requestKey } from "./request-key.js";
export {
  type SignedAxiosStorage,
  type SignedStorageOptions,
  signedStorage,
} from "./storage.js";
