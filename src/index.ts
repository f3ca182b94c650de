export {
  DEFAULT_MAC_ALGORITHM,
  ENTRY_ALGORITHMS,
  type EntryAlgorithm,
  type MacAlgorithm,
} from "./algorithms.js";
export {
  DEFAULT_MAX_ENTRY_BYTES,
  DEFAULT_MAX_STALE,
  DEFAULT_STORE_TIMEOUT,
  readConfig,
  type SignedCacheConfig,
} from "./config.js";
export { type CreateKeyvOptions, createKeyv } from "./create-keyv.js";
export { DEFAULT_PURPOSE, ENVELOPE_PREFIX, inspectEnvelope } from "./envelope.js";
export {
  BadData,
  BadPayload,
  BadSignature,
  type BadSignatureReason,
  ConfigError,
  EntryTooLarge,
  InvalidKey,
  SignedCacheError,
  type SignedCacheErrorCode,
  StoreError,
} from "./errors.js";
export { KEY_LIMITS, type KeyLimits } from "./key-limits.js";
export { generateSecret, Keyring, KeyringEntry, MIN_SECRET_BYTES, type Secret } from "./keyring.js";
export {
  type AuditActions,
  type EntryAudit,
  SignedStore,
  type SignedStoreOptions,
  signedStore,
  type WrappableStore,
} from "./store.js";
export { DEFAULT_STORE_URL, redactUrl, STORE_SCHEMES, storeFromUrl } from "./stores.js";
