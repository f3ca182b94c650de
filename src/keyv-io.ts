/**
 * Reading and writing entries through a Keyv's store exactly as that Keyv would, on Keyv 5 and
 * Keyv 6 alike. The HTTP caches use it instead of `keyv.get` / `keyv.set`, whose handling of store
 * faults differs between the majors (Keyv 5 throws with `throwOnErrors`; Keyv 6 hands every fault
 * to its `error` listeners when it has any, and answers a miss or `false`): called this way, a
 * store fault or a rejected entry always reaches the cache, whatever listeners the app adds.
 */
import type Keyv from "keyv";
import type { SignedStore } from "./store.js";

/** What an entry's text decodes to: Keyv's `{ value, expires }` wrapper. */
export interface KeyvEntry {
  value?: unknown;
  expires?: number | null;
}

/** What an entry is written from: Keyv's wrapper as both majors build it. */
type Stringify = (entry: { value?: unknown; expires?: number }) => string;
type Parse = (text: string) => KeyvEntry | undefined;

/**
 * Which Keyv contract `keyv` follows, told by what it does rather than by its version string:
 * Keyv 6 resolves stores through `resolveStore` and serializes through a `serialization`
 * adapter; Keyv 5 has neither.
 */
export function keyvMajor(keyv: Keyv): 5 | 6 {
  return typeof (keyv as { resolveStore?: unknown }).resolveStore === "function" ? 6 : 5;
}

/** Makes `keyv` write and read entries as `stringify` and `parse` do, on either major. */
export function useSerialization(keyv: Keyv, stringify: Stringify, parse: Parse): void {
  if (keyvMajor(keyv) === 6) {
    (keyv as unknown as { serialization: unknown }).serialization = { stringify, parse };
    return;
  }
  const five = keyv as unknown as { serialize: Stringify; deserialize: Parse };
  five.serialize = stringify;
  five.deserialize = parse;
}

/** The key `keyv` hands its store for `key`: Keyv 5 prefixes its namespace, Keyv 6 does not. */
export function storeKeyOf(keyv: Keyv, key: string): string {
  if (keyvMajor(keyv) === 6) return key;
  const five = keyv as unknown as { useKeyPrefix?: boolean; namespace?: string };
  return five.useKeyPrefix !== false && five.namespace ? `${five.namespace}:${key}` : key;
}

/**
 * Entry I/O over a Keyv's signed store in that Keyv's terms. Faults reject: a {@link StoreError}
 * from the store, {@link BadSignature}/{@link BadPayload} from a strict store or the parser.
 */
export class KeyvEntries {
  readonly #keyv: Keyv;
  readonly #store: SignedStore;
  readonly #stringify: Stringify;
  readonly #parse: Parse;
  readonly #major: 5 | 6;

  constructor(keyv: Keyv, store: SignedStore, stringify: Stringify, parse: Parse) {
    this.#keyv = keyv;
    this.#store = store;
    this.#stringify = stringify;
    this.#parse = parse;
    this.#major = keyvMajor(keyv);
    useSerialization(keyv, stringify, parse);
  }

  /** The entry under `key`, with its Keyv-level expiry; `undefined` for a miss or an expired one. */
  async get(key: string): Promise<KeyvEntry | undefined> {
    const text: unknown = await this.#store.get(storeKeyOf(this.#keyv, key));
    if (typeof text !== "string") return undefined;
    const entry = this.#parse(text);
    if (entry === undefined) return undefined;
    // The signed expiry already ends the entry at the same time; this mirrors Keyv's own check.
    if (typeof entry.expires === "number" && Date.now() > entry.expires) return undefined;
    return entry;
  }

  /** Writes `value` to live `ttl` ms (none: no expiry), as `keyv.set(key, value, ttl)` would. */
  async set(key: string, value: unknown, ttl?: number): Promise<unknown> {
    const lives = typeof ttl === "number" && ttl > 0 && Number.isFinite(ttl);
    const expires = lives ? Math.ceil(Date.now() + ttl) : undefined;
    const text = this.#stringify({ value, expires });
    const stored = storeKeyOf(this.#keyv, key);
    // Keyv 5 hands its store a ttl; Keyv 6 the absolute expiry.
    return this.#store.set(stored, text, this.#major === 6 ? expires : lives ? ttl : undefined);
  }

  async delete(key: string): Promise<boolean> {
    return this.#store.delete(storeKeyOf(this.#keyv, key));
  }

  async clear(): Promise<void> {
    await this.#store.clear();
  }
}
