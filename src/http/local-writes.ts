/**
 * Read-your-writes for one process over an asynchronous store.
 *
 * axios-cache-interceptor de-duplicates requests by writing a `loading` entry and reading it back
 * from concurrent requests; over a store with its own latency (SQLite, Redis) a read issued while
 * that write is in flight would miss it and start a duplicate request. A write here is visible to
 * this process from the moment it is issued until the store acknowledges it. A write the store
 * rejected stays visible for a short grace period so that requests woken by it read what the
 * leader fetched instead of each going back to the network.
 */

/** Marks a key this process removed and whose removal the store has not acknowledged. */
export const REMOVED: unique symbol = Symbol("removed");

interface LocalWrite<T> {
  readonly value: T | typeof REMOVED;
  readonly token: number;
  /** Epoch ms after which the write is forgotten; `Infinity` while it is in flight. */
  until: number;
}

/** Pending and recently failed writes of one process, newest per key. */
export class LocalWrites<T> {
  readonly #writes = new Map<string, LocalWrite<T>>();
  readonly #maxEntries: number;
  #nextToken = 0;

  constructor(maxEntries = 1024) {
    this.#maxEntries = maxEntries;
  }

  /** Records a write about to be issued; returns the token that settles it. */
  begin(key: string, value: T | typeof REMOVED): number {
    const token = ++this.#nextToken;
    this.#writes.delete(key);
    this.#writes.set(key, { value, token, until: Number.POSITIVE_INFINITY });
    this.#sweep();
    this.#evict();
    return token;
  }

  /** The store acknowledged the write: the store is the source of truth again. */
  succeeded(key: string, token: number): void {
    if (this.#writes.get(key)?.token === token) this.#writes.delete(key);
  }

  /** The store rejected the write: keep it visible locally for `graceMs`. */
  failed(key: string, token: number, graceMs: number): void {
    const write = this.#writes.get(key);
    if (write?.token === token) write.until = Date.now() + graceMs;
  }

  /** The local value for `key`, {@link REMOVED}, or `undefined` when the store should be asked. */
  read(key: string): T | typeof REMOVED | undefined {
    const write = this.#writes.get(key);
    if (write === undefined) return undefined;
    if (Date.now() > write.until) {
      this.#writes.delete(key);
      return undefined;
    }
    return write.value;
  }

  clear(): void {
    this.#writes.clear();
  }

  get size(): number {
    return this.#writes.size;
  }

  /**
   * Drops writes whose grace has passed. Without it they would stay until their key is read
   * again or a thousand newer writes push them out: a response body each, held for nothing.
   */
  #sweep(): void {
    const now = Date.now();
    for (const [key, write] of this.#writes) if (now > write.until) this.#writes.delete(key);
  }

  #evict(): void {
    // Oldest first: a Map iterates in insertion order and `begin` re-inserts on every write.
    for (const key of this.#writes.keys()) {
      if (this.#writes.size <= this.#maxEntries) return;
      this.#writes.delete(key);
    }
  }
}
