export { DEFAULT_MAC_ALGORITHM, type MacAlgorithm } from "./algorithms.js";
export {
  DEFAULT_STORE_TIMEOUT,
  readConfig,
  type SignedCacheConfig,
} from "./config.js";
export { type CreateKeyvOptions, createKeyv } from "./create-keyv.js";
export { ENVELOPE_PREFIX, inspectEnvelope } from "./envelope.js";
export {
  BadData,
  BadPayload,
  BadSignature,
  type BadSignatureReason,
  ConfigError,
  SignedCacheError,
  type SignedCacheErrorCode,
  StoreError,
} from "./errors.js";
export { generateSecret, Keyring, KeyringEntry, MIN_SECRET_BYTES, type Secret } from "./keyring.js";
export {
  type EntryAudit,
  SignedStore,
  type SignedStoreOptions,
  signedStore,
  type WrappableStore,
} from "./store.js";
export { DEFAULT_STORE_URL, STORE_SCHEMES, storeFromUrl } from "./stores.js";
