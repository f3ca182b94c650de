/**
 * `signed-cache/fetch`: a `fetch` with a private HTTP cache whose entries are signed envelopes
 * in any Keyv store. See docs/fetch.md.
 */
export {
  deserializeEntry,
  type ResponseEntry,
  type StoredValue,
  serializeEntry,
  type VaryIndex,
} from "./entry.js";
export {
  CACHE_STATUS_HEADER,
  type CachedFetch,
  type CachedFetchControls,
  type CachedFetchOptions,
  type CacheStatus,
  createCachedFetch,
  FETCH_PURPOSE,
} from "./fetch.js";
