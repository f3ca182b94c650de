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
