/**
 * The latest time each cached response may still be served, as this process last saw it.
 *
 * An HTTP cache rewrites entries without new data from the origin: an entry turning stale, a
 * stale entry served because the origin failed, a `loading` marker carrying the previous
 * response. Such a rewrite must not give the old response a new life: its signed expiry is
 * capped at the expiry of the entry it was made from. The cache always reads an entry before
 * rewriting it, so the bound of what was read is at hand here.
 */
export class ReplayBounds {
  readonly #until = new Map<string, number | null>();
  readonly #maxEntries: number;

  constructor(maxEntries = 10_000) {
    this.#maxEntries = maxEntries;
  }

  /** Records the expiry (ms since the epoch, `null` for none) of the entry read or written. */
  remember(key: string, until: number | null): void {
    this.#until.delete(key);
    this.#until.set(key, until);
    // Oldest first: a Map iterates in insertion order and every record re-inserts.
    for (const oldest of this.#until.keys()) {
      if (this.#until.size <= this.#maxEntries) break;
      this.#until.delete(oldest);
    }
  }

  /** The expiry last seen under `key`: ms since the epoch, `null` for none, `undefined` if unseen. */
  until(key: string): number | null | undefined {
    return this.#until.get(key);
  }

  /** Forgets a key whose entry is gone. */
  forget(key: string): void {
    this.#until.delete(key);
  }

  /**
   * The ttl (ms from now) of a rewrite of the entry last seen under `key`: it ends when that
   * entry ends, neither later (no new life for an old response) nor earlier. `ttl`, what the
   * rewrite would get on its own, is used when that entry never expires or none was seen.
   */
  inherit(key: string, ttl: number, now = Date.now()): number {
    const until = this.#until.get(key);
    return until === undefined || until === null ? ttl : until - now;
  }
}
