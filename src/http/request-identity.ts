/**
 * Request identity for HTTP caches: SHA-256 over a canonical encoding of a list of fields.
 *
 * Each field is written as a one-letter tag and, for text, its length in UTF-16 code units
 * before the text itself, so that no two lists share an encoding: `["ab", "c"]` and
 * `["a", "bc"]`, a missing field (`null`) and an empty one (`""`) all differ. Text is hashed as
 * UTF-16 code units, so lone surrogates stay distinct. A `domain` label comes first, so that
 * keys made for one use (a response, a variant, an in-flight request) never equal keys made for
 * another from the same fields.
 */
import { createHash } from "node:crypto";

/** One field of an identity: text, or `null` for "absent". */
export type IdentityField = string | null;

/**
 * The SHA-256 (base64url, 43 characters) of `domain` and `fields` in the canonical encoding.
 *
 * @example
 * ```ts
 * identityKey("fetch/1", ["GET", "https://api.example.com/users/42", null]);
 * ```
 */
export function identityKey(domain: string, fields: readonly IdentityField[]): string {
  let text = token("d", domain);
  text += token("n", String(fields.length));
  for (const field of fields) text += field === null ? "u" : token("s", field);
  // UTF-16LE writes every code unit as is: lone surrogates are not replaced as in UTF-8.
  return createHash("sha256").update(text, "utf16le").digest("base64url");
}

/**
 * A one-way stand-in for a header value (a credential, a cookie) that a cache must compare but
 * should not store: equal values give equal digests.
 */
export function valueDigest(value: string): string {
  return `sha256:${createHash("sha256").update(value, "utf16le").digest("base64url")}`;
}

/** A tag, then `text` prefixed by its length, so that where it ends is never in doubt. */
export function token(tag: string, text: string): string {
  return `${tag}${text.length}:${text}`;
}
