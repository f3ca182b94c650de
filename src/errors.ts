/**
 * Every error signed-cache throws. Each class has a stable `code` to branch on and a `name`
 * equal to the class name. Messages never contain secret material or cached values.
 */

/** Stable machine-readable codes, one per error class. */
export type SignedCacheErrorCode =
  | "ERR_SIGNED_CACHE"
  | "ERR_SIGNED_CACHE_CONFIG"
  | "ERR_SIGNED_CACHE_BAD_DATA"
  | "ERR_SIGNED_CACHE_BAD_SIGNATURE"
  | "ERR_SIGNED_CACHE_BAD_PAYLOAD"
  | "ERR_SIGNED_CACHE_STORE"
  | "ERR_SIGNED_CACHE_ENTRY_TOO_LARGE"
  | "ERR_SIGNED_CACHE_INVALID_KEY";

/** Base class of every error signed-cache throws. */
export class SignedCacheError extends Error {
  /** Stable code, safe to branch on. */
  readonly code: SignedCacheErrorCode = "ERR_SIGNED_CACHE";

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A setting is missing or invalid: a short secret, a bad environment value, an unknown URL. */
export class ConfigError extends SignedCacheError {
  override readonly code = "ERR_SIGNED_CACHE_CONFIG";
}

/**
 * A cache entry could not be trusted. Parent of {@link BadSignature} and {@link BadPayload},
 * as in itsdangerous; catch this to handle both.
 */
export class BadData extends SignedCacheError {
  override readonly code: SignedCacheErrorCode = "ERR_SIGNED_CACHE_BAD_DATA";
  /**
   * The namespaced cache key of the rejected entry, when known. Keys can hold tokens, so it is
   * never part of the message and is not enumerable: loggers that serialize an error's own
   * properties leave it out. Read it deliberately when you need it.
   */
  declare readonly key: string | undefined;

  constructor(message: string, options?: ErrorOptions & { key?: string }) {
    super(message, options);
    Object.defineProperty(this, "key", { value: options?.key, enumerable: false });
  }
}

/** Why an entry failed verification. */
export type BadSignatureReason =
  /** Not an envelope this version can parse: truncated, wrong field, bad encoding. */
  | "malformed"
  /** Signed by a key that is neither the current secret nor a fallback. */
  | "unknown-key"
  /** The MAC does not match: the entry was altered, moved to another key, or forged. */
  | "mismatch"
  /** An envelope version or algorithm this build does not accept. */
  | "unsupported-version"
  /** A plain value with no envelope at all, e.g. written before signing was enabled. */
  | "unsigned";

/** The entry's envelope or MAC did not verify. */
export class BadSignature extends BadData {
  override readonly code = "ERR_SIGNED_CACHE_BAD_SIGNATURE";
  /** Why verification failed. */
  readonly reason: BadSignatureReason;

  constructor(
    reason: BadSignatureReason,
    message: string,
    options?: ErrorOptions & { key?: string },
  ) {
    super(message, options);
    this.reason = reason;
  }
}

/** The entry verified but its payload could not be decoded or decrypted into a value. */
export class BadPayload extends BadData {
  override readonly code = "ERR_SIGNED_CACHE_BAD_PAYLOAD";
}

/** The backing store failed or did not answer within `storeTimeout`. */
export class StoreError extends SignedCacheError {
  override readonly code: SignedCacheErrorCode = "ERR_SIGNED_CACHE_STORE";
}

/**
 * A value whose envelope is larger than `maxEntryBytes`: it is not cached (and any older entry
 * under its key is removed, so no stale value is left behind).
 */
export class EntryTooLarge extends StoreError {
  override readonly code = "ERR_SIGNED_CACHE_ENTRY_TOO_LARGE";
}

/**
 * A key the backend could not store faithfully: not well-formed Unicode (a lone surrogate), too
 * long for the backend, or holding a character it drops. Refused at `set` rather than stored
 * under a changed key, which would read back as another entry.
 */
export class InvalidKey extends SignedCacheError {
  override readonly code = "ERR_SIGNED_CACHE_INVALID_KEY";
}

/**
 * What is safe to keep of a driver's error: its class, message and codes. Not the SQL statement
 * or parameters some drivers attach (`sql`, `parameters`), which quote cache keys and values.
 */
export function driverFault(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const fault = new Error(error.message);
  fault.name = error.name;
  for (const field of ["code", "errno", "sqlState", "syscall", "address", "port"] as const) {
    const value = (error as unknown as Record<string, unknown>)[field];
    if (typeof value === "string" || typeof value === "number") {
      Object.defineProperty(fault, field, { value, enumerable: true });
    }
  }
  return fault;
}
