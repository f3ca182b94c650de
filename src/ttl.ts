import { MAX_EXPIRY_MS } from "./envelope.js";

/**
 * The one place a time to live becomes an expiry, so that what a writer signs is always what the
 * reader accepts and what every backend takes.
 *
 * - Not a number, `NaN`, zero or negative: no expiry (Keyv's reading of `ttl`).
 * - Fractions round up to the next whole millisecond (backends take whole ms).
 * - `Infinity`, or so large that the expiry would pass the latest time a `Date` can hold
 *   (`Number.MAX_SAFE_INTEGER` included, which some libraries use for "never"): no expiry.
 *
 * @returns A whole number of ms, at least 1, or `undefined` for "never expires".
 */
export function normalizeTtl(ttl: unknown, now = Date.now()): number | undefined {
  if (typeof ttl !== "number" || !(ttl > 0) || ttl === Number.POSITIVE_INFINITY) return undefined;
  const whole = Math.ceil(ttl);
  return now + whole > MAX_EXPIRY_MS ? undefined : whole;
}

/** The absolute expiry, in ms since the epoch, of a ttl {@link normalizeTtl} returned. */
export function expiryOf(ttl: number | undefined, now = Date.now()): number | undefined {
  return ttl === undefined ? undefined : now + ttl;
}
