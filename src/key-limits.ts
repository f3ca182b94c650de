/**
 * What a backend stores faithfully as a key. A store adapter built by `storeFromUrl` carries its
 * limits under {@link KEY_LIMITS}; the signed store refuses at `set` any key the backend would
 * change (truncate, pad, fold, replace), because a changed key reads back as another entry.
 */
export interface KeyLimits {
  /** Longest namespaced key, in UTF-8 bytes, the backend keeps intact. */
  readonly maxBytes: number;
  /** Whether a NUL character survives the round trip. */
  readonly nul: boolean;
}

/** Where a store adapter carries its {@link KeyLimits}. */
export const KEY_LIMITS: unique symbol = Symbol.for("signed-cache.keyLimits");

/**
 * Where a store adapter that retries on its own learns the longest its caller waits for one
 * call, in ms (the signed store's `storeTimeout`). It stops retrying by then: a call its caller
 * gave up on, and reported as failed, must not land later over a newer write.
 */
export const CALL_BOUND: unique symbol = Symbol.for("signed-cache.callBound");

/** An adapter that takes {@link CALL_BOUND}. */
export interface CallBounded {
  [CALL_BOUND](ms: number): void;
}
