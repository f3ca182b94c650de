/**
 * How `signed-cache/fetch` entries are written as text inside its Keyv. Two kinds of value live
 * under its keys (both signed for the `fetch` purpose, bound to their key):
 *
 * - a **response**: the serialized `CachePolicy` (http-cache-semantics' `toObject()`), status,
 *   status text, headers (as name/value pairs, so that several `Set-Cookie` survive), the final
 *   URL after redirects, and the body as bytes;
 * - a **variant index** under a URL's key, when the response varies (`Vary`): the request
 *   header names it varies on and a generation, from which each variant's own key is derived.
 *
 * Layout: `~fe2` `<kind>` `<head>` `\n` `<body>` — `head` is Keyv's `{ value, expires }` as JSON
 * without the body (JSON never holds a raw newline); `kind` `t` when the body bytes are UTF-8
 * text that encodes back to the same bytes and holds no NUL (some SQL text columns refuse it):
 * the body is that text, stored as is, so a text hit costs no decoding pass and the stored entry
 * (and the MAC over it) is no larger than the body; `b` otherwise: the bytes in base64 (empty for
 * a variant index). Keyv's default serializer is not used: it would write the bytes as a JSON
 * array or a tagged string inside the JSON, and revive every header object node by node.
 */
import type Keyv from "keyv";
import type { DeserializedData } from "keyv";
import { BadPayload } from "../errors.js";
import { useSerialization } from "../keyv-io.js";

const FORMAT = "~fe2";
const TEXT = "t";
const BYTES = "b";
// Fatal: bytes that are not UTF-8 must not be stored as text (a replacement character would
// stand in for them). ignoreBOM: a leading BOM is body, not something to strip.
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A cached response. */
export interface ResponseEntry {
  readonly kind: "response";
  /**
   * http-cache-semantics' `CachePolicy#toObject()`: what it needs to judge freshness (typed
   * loosely here, so that these types need no other package's).
   */
  readonly policy: Readonly<Record<string, unknown>>;
  readonly status: number;
  readonly statusText: string;
  /** Response headers as received, in order, one pair per value (`Set-Cookie` kept apart). */
  readonly headers: readonly (readonly [string, string])[];
  /** The final URL, after redirects. */
  readonly url: string;
  /** Whether the response came after one or more redirects. */
  readonly redirected: boolean;
  /** The request header names the response varies on, lowercase; empty when it does not. */
  readonly vary: readonly string[];
  /** The body bytes as fetch gave them (content codings already decoded). */
  readonly body: Uint8Array;
}

/** Under a URL's key when its responses vary: where each variant lives. */
export interface VaryIndex {
  readonly kind: "vary";
  /** The request header names the variants are told apart by, lowercase. */
  readonly vary: readonly string[];
  /** Part of every variant's key: a new index orphans the variants of the one it replaced. */
  readonly generation: string;
}

/** What the fetch cache stores under a key. */
export type StoredValue = ResponseEntry | VaryIndex;

type Data = DeserializedData<unknown>;

/** Keyv `serialize` for {@link StoredValue}s. */
export function serializeEntry(data: Data): string {
  const value = data.value as StoredValue;
  if (value.kind === "response") {
    const { body, ...rest } = value;
    const head = JSON.stringify({ value: rest, expires: data.expires ?? null });
    const text = asText(body);
    if (text !== undefined) return `${FORMAT}${TEXT}${head}\n${text}`;
    const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    return `${FORMAT}${BYTES}${head}\n${bytes.toString("base64")}`;
  }
  return `${FORMAT}${BYTES}${JSON.stringify({ value, expires: data.expires ?? null })}\n`;
}

/**
 * Keyv `deserialize` matching {@link serializeEntry}. Only ever called on text whose signature
 * verified.
 *
 * @throws {BadPayload} When the text is not an entry in this layout.
 */
export function deserializeEntry(stored: string): Data {
  const newline = stored.indexOf("\n");
  const kind = stored[FORMAT.length];
  if (!stored.startsWith(FORMAT) || newline === -1 || (kind !== TEXT && kind !== BYTES)) {
    throw new BadPayload("cached fetch entry is malformed");
  }
  let head: unknown;
  try {
    head = JSON.parse(stored.slice(FORMAT.length + 1, newline));
  } catch {
    // No cause: a parser's message quotes the text it choked on, which is cached data.
    throw new BadPayload("cached fetch entry could not be decoded");
  }
  if (!isRecord(head) || !isRecord(head.value)) {
    throw new BadPayload("cached fetch entry has no value");
  }
  const expires = head.expires;
  if (expires !== null && typeof expires !== "number") {
    throw new BadPayload("cached fetch entry has a malformed expiry");
  }
  const value = head.value;
  const body = stored.slice(newline + 1);
  if (value.kind === "vary") {
    if (!isNames(value.vary) || typeof value.generation !== "string" || body !== "") {
      throw new BadPayload("cached fetch variant index is malformed");
    }
    return { value, expires: expires ?? undefined } as Data;
  }
  if (
    value.kind !== "response" ||
    !isRecord(value.policy) ||
    typeof value.status !== "number" ||
    typeof value.statusText !== "string" ||
    !isPairs(value.headers) ||
    typeof value.url !== "string" ||
    typeof value.redirected !== "boolean" ||
    !isNames(value.vary)
  ) {
    throw new BadPayload("cached fetch response is malformed");
  }
  const bytes = kind === TEXT ? Buffer.from(body, "utf8") : Buffer.from(body, "base64");
  return { value: { ...value, body: bytes }, expires: expires ?? undefined } as Data;
}

/** The body as text when it is UTF-8 that encodes back to the same bytes and has no NUL. */
function asText(body: Uint8Array): string | undefined {
  if (body.includes(0)) return undefined;
  try {
    return UTF8.decode(body);
  } catch {
    return undefined;
  }
}

/** Makes `keyv` read and write fetch entries. Only for the Keyv the fetch cache owns. */
export function useFetchEntryFormat(keyv: Keyv): void {
  useSerialization(keyv, serializeEntry, deserializeEntry);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNames(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((name) => typeof name === "string");
}

function isPairs(value: unknown): value is [string, string][] {
  return (
    Array.isArray(value) &&
    value.every(
      (pair) =>
        Array.isArray(pair) &&
        pair.length === 2 &&
        typeof pair[0] === "string" &&
        typeof pair[1] === "string",
    )
  );
}
