/**
 * How an axios-cache-interceptor entry is written as text inside the Keyvs that the axios
 * storage builds. Keyv's default serializer is not used: it calls any `toJSON` it meets (a JSON
 * body with a `"toJSON": 1` key crashed it), turns strings starting with ':' and Buffer-shaped
 * objects into something else, and escapes a whole response body on every write and revives it
 * node by node on every read. Here an entry is written as
 *
 *     ~ax2<kind><head>\n<body>
 *
 * `head` is Keyv's `{ value, expires }` without the response body, in the tagged JSON below (it
 * never holds a raw newline); `kind` says what follows the newline:
 *
 * - `t` a text body as is (well-formed Unicode without NUL, which some SQL text columns refuse);
 * - `s` any other text body, as a JSON string literal;
 * - `j` a body `JSON.stringify` writes exactly, read back with one plain `JSON.parse`;
 * - `r` any other supported body, in the tagged JSON;
 * - `b` a Buffer, Uint8Array or ArrayBuffer body: a type letter, then base64;
 * - `u` an undefined body; `-` an entry without a response. Nothing follows the newline.
 *
 * The tagged JSON writes every array as `["a", ...items]`, so that an array starting with another
 * letter is a value JSON has no syntax for: `["u"]` undefined, `["n", "-0"]` a number JSON cannot
 * write (-0, ±Infinity, NaN), `["i", "12"]` a bigint, `["D", "ms"]` a Date, `["B" | "U" | "A",
 * base64]` bytes, `["M", k, v, …]` a Map, `["S", …]` a Set. Objects are written as they are: no
 * key (`__proto__`, `toJSON`, `type`…) and no string means anything special, and reading one back
 * only ever creates own properties.
 *
 * A value holding anything else (a class instance, a function, a symbol, a cycle, a sparse array)
 * would not read back as it was: the entry is then written as `~ax2x`, which reads back as a
 * miss, so that response is simply not cached. The signed store signs the whole text, bound to
 * its key, as it signs any other value.
 */
import type Keyv from "keyv";
import type { DeserializedData } from "keyv";
import { BadPayload } from "../errors.js";
import { useSerialization } from "../keyv-io.js";

const FORMAT = "~ax2";
const KIND_AT = FORMAT.length;
const HEAD_AT = KIND_AT + 1;
/** What a value that cannot be cached is written as: it reads back as a miss. */
const NOT_CACHED = `${FORMAT}x`;
// The binary body's first character names its type, so that it reads back as what was cached.
const BINARY_TYPES = { B: "Buffer", U: "Uint8Array", A: "ArrayBuffer" } as const;
type BinaryTag = keyof typeof BINARY_TYPES;
/** Deeper values are not cached: walking them must not overflow the stack. */
const MAX_DEPTH = 2_000;
const SPECIAL_NUMBERS: Record<string, number> = {
  "-0": -0,
  Infinity: Number.POSITIVE_INFINITY,
  "-Infinity": Number.NEGATIVE_INFINITY,
  NaN: Number.NaN,
};
/** Returned by the encoder for a value it cannot write faithfully. */
const UNSUPPORTED: unique symbol = Symbol("unsupported");

type Entry = DeserializedData<unknown>;
type Encoded = unknown;

/**
 * Keyv `serialize` for axios-cache-interceptor entries, in the layout described above. Never
 * throws: an entry that cannot be written faithfully is written as a miss.
 *
 * @example
 * ```ts
 * const text = serializeEntry({ value: { state: "loading", previous: "empty" }, expires: 5 });
 * ```
 */
export function serializeEntry(data: Entry): string {
  try {
    return writeEntry(data) ?? NOT_CACHED;
  } catch {
    // A getter that throws or a value too deep for the stack: not cached, rather than a
    // response that fails or a store fault reported for what is the origin's data.
    return NOT_CACHED;
  }
}

/**
 * Keyv `deserialize` matching {@link serializeEntry}. Entries in older layouts are not read.
 *
 * @returns The entry, or `undefined` (a miss) for an entry written as not cached.
 * @throws {BadPayload} When the text is not an entry in this layout, or is cut short or altered.
 * @example
 * ```ts
 * const entry = deserializeEntry(serializeEntry({ value: { state: "empty" }, expires: 5 }));
 * ```
 */
export function deserializeEntry(stored: string): Entry | undefined {
  if (stored === NOT_CACHED) return undefined;
  const newline = stored.indexOf("\n", HEAD_AT);
  if (!stored.startsWith(FORMAT) || newline === -1) {
    throw new BadPayload("cached axios entry is malformed");
  }
  const kind = stored[KIND_AT] as string;
  let head: unknown;
  let body: unknown;
  try {
    head = decode(JSON.parse(stored.slice(HEAD_AT, newline)));
    body = readBody(kind, stored.slice(newline + 1));
  } catch (error) {
    if (error instanceof BadPayload) throw error;
    // No cause attached: a parser's message quotes the text it choked on, which is cached data.
    const kind = error instanceof Error ? error.name : typeof error;
    throw new BadPayload(`cached axios entry could not be decoded (${kind})`);
  }
  return joinEntry(head, kind, body);
}

/**
 * Makes `keyv` write axios-cache-interceptor entries with {@link serializeEntry}. Only for Keyvs
 * the axios storage owns: another reader of the same store with Keyv's default serializer could
 * not read these entries.
 *
 * @example
 * ```ts
 * useEntryFormat(keyv);
 * ```
 */
export function useEntryFormat(keyv: Keyv): void {
  useSerialization(keyv, serializeEntry, deserializeEntry);
}

// ---- writing ---------------------------------------------------------------------------------

function writeEntry(data: Entry): string | undefined {
  const value = data.value as Record<string, unknown> | null | undefined;
  const response = isObject(value) ? value.data : undefined;
  if (!isObject(value) || !isObject(response) || !Object.hasOwn(response, "data")) {
    const head = taggedJson({ value, expires: data.expires });
    return head === undefined ? undefined : `${FORMAT}-${head}\n`;
  }
  const { data: body, ...rest } = response;
  if (Object.hasOwn(rest, "headers")) rest.headers = plainHeaders(rest.headers);
  const head = taggedJson({ value: { ...value, data: rest }, expires: data.expires });
  const written = head === undefined ? undefined : writeBody(body);
  return written === undefined ? undefined : `${FORMAT}${written[0]}${head}\n${written[1]}`;
}

/** `[kind, text]` of a response body, or `undefined` when it cannot be cached. */
function writeBody(body: unknown): [string, string] | undefined {
  if (body === undefined) return ["u", ""];
  if (typeof body === "string") {
    return !body.includes("\0") && body.isWellFormed() ? ["t", body] : ["s", JSON.stringify(body)];
  }
  const tag = binaryTag(body);
  if (tag !== undefined) return ["b", `${tag}${base64(body as ArrayBuffer | Uint8Array)}`];
  if (isPlainJson(body, 0)) return ["j", JSON.stringify(body)];
  const tagged = taggedJson(body);
  return tagged === undefined ? undefined : ["r", tagged];
}

/**
 * Response headers as a plain record of their own properties: axios hands over an `AxiosHeaders`,
 * whose methods (its own `toJSON` among them) are not data.
 */
function plainHeaders(headers: unknown): unknown {
  return isObject(headers) ? Object.fromEntries(Object.entries(headers)) : headers;
}

function taggedJson(value: unknown): string | undefined {
  const encoded = encode(value, new Set(), 0);
  return encoded === UNSUPPORTED ? undefined : JSON.stringify(encoded);
}

/**
 * Whether `JSON.stringify` then `JSON.parse` gives `value` back exactly: what axios hands over for
 * a JSON body, unless the body holds -0 or a number too large for a double.
 */
function isPlainJson(value: unknown, depth: number): boolean {
  if (typeof value === "string" || typeof value === "boolean" || value === null) return true;
  if (typeof value === "number") return Number.isFinite(value) && !Object.is(value, -0);
  if (typeof value !== "object" || depth > MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    for (let i = 0; i < value.length; i++) {
      // undefined, or a hole: JSON writes null.
      if (value[i] === undefined || !isPlainJson(value[i], depth + 1)) return false;
    }
    return true;
  }
  if (!isPlainObject(value)) return false;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!isPlainJson(record[key], depth + 1)) return false;
  }
  return true;
}

/** `value` in the tagged JSON, or {@link UNSUPPORTED}. */
function encode(value: unknown, path: Set<object>, depth: number): Encoded {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      // String(-0) is "0".
      if (Object.is(value, -0)) return ["n", "-0"];
      return Number.isFinite(value) ? value : ["n", String(value)];
    case "bigint":
      return ["i", String(value)];
    case "undefined":
      return ["u"];
    case "object":
      if (value === null) return null;
      if (path.has(value) || depth > MAX_DEPTH) return UNSUPPORTED;
      path.add(value);
      try {
        return encodeObject(value, path, depth + 1);
      } finally {
        path.delete(value);
      }
    default:
      return UNSUPPORTED;
  }
}

function encodeObject(value: object, path: Set<object>, depth: number): Encoded {
  const tag = binaryTag(value);
  if (tag !== undefined) return [tag, base64(value as ArrayBuffer | Uint8Array)];
  const proto = Object.getPrototypeOf(value);
  if (proto === Date.prototype) return ["D", String((value as Date).getTime())];
  const items = (values: Iterable<unknown>, first: string): Encoded => {
    const out: Encoded[] = [first];
    for (const item of values) {
      const encoded = encode(item, path, depth);
      if (encoded === UNSUPPORTED) return UNSUPPORTED;
      out.push(encoded);
    }
    return out;
  };
  if (Array.isArray(value)) {
    return proto === Array.prototype && isDense(value) ? items(value, "a") : UNSUPPORTED;
  }
  if (proto === Map.prototype) return items([...(value as Map<unknown, unknown>)].flat(), "M");
  if (proto === Set.prototype) return items(value as Set<unknown>, "S");
  if (!isPlainObject(value)) return UNSUPPORTED;
  const entries: [string, Encoded][] = [];
  for (const [key, item] of Object.entries(value)) {
    const encoded = encode(item, path, depth);
    if (encoded === UNSUPPORTED) return UNSUPPORTED;
    entries.push([key, encoded]);
  }
  // fromEntries defines own properties: a `__proto__` key stays a key.
  return Object.fromEntries(entries);
}

/** Whether `array` has no holes, which would read back as `undefined`. */
function isDense(array: unknown[]): boolean {
  for (let i = 0; i < array.length; i++) if (!(i in array)) return false;
  return true;
}

// ---- reading ---------------------------------------------------------------------------------

function readBody(kind: string, text: string): unknown {
  switch (kind) {
    case "t":
      return text;
    case "s":
      return stringFrom(JSON.parse(text));
    case "j":
      return JSON.parse(text);
    case "r":
      return decode(JSON.parse(text));
    case "b":
      return binaryFrom(text);
    case "u":
    case "-":
      if (text !== "") throw new BadPayload("cached axios entry has text after an empty body");
      return undefined;
    default:
      throw new BadPayload("cached axios entry has an unknown body kind");
  }
}

function joinEntry(head: unknown, kind: string, body: unknown): Entry {
  if (!isObject(head) || !isPlainObject(head) || !Object.hasOwn(head, "value")) {
    throw new BadPayload("cached axios entry has no value");
  }
  const { value, expires } = head as { value: unknown; expires: unknown };
  if (expires !== undefined && typeof expires !== "number") {
    throw new BadPayload("cached axios entry has a malformed expiry");
  }
  if (kind !== "-") {
    const response = isObject(value) ? value.data : undefined;
    if (!isObject(response)) throw new BadPayload("cached axios entry has no response");
    response.data = body;
  }
  return { value, expires } as Entry;
}

/** Undoes {@link encode}; plain objects are rewritten in place. */
function decode(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return decodeTagged(value);
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const item = record[key];
    // Assigning to an existing own property, `__proto__` included, only sets that property.
    if (typeof item === "object" && item !== null) record[key] = decode(item);
  }
  return record;
}

function decodeTagged(array: unknown[]): unknown {
  const [tag, ...rest] = array;
  const one = rest.length === 1 && typeof rest[0] === "string" ? rest[0] : undefined;
  switch (tag) {
    case "a":
      return rest.map(decode);
    case "u":
      if (rest.length === 0) return undefined;
      break;
    case "n":
      if (one !== undefined && Object.hasOwn(SPECIAL_NUMBERS, one)) return SPECIAL_NUMBERS[one];
      break;
    case "i":
      if (one !== undefined && /^-?\d+$/.test(one)) return BigInt(one);
      break;
    case "D":
      if (one !== undefined && (one === "NaN" || String(Number(one)) === one)) {
        return new Date(Number(one));
      }
      break;
    case "B":
    case "U":
    case "A":
      if (one !== undefined) return binaryFrom(`${tag}${one}`);
      break;
    case "M":
      if (rest.length % 2 === 0) return new Map(pairs(rest.map(decode)));
      break;
    case "S":
      return new Set(rest.map(decode));
  }
  throw new BadPayload("cached axios entry holds a malformed tagged value");
}

function pairs(flat: unknown[]): [unknown, unknown][] {
  const out: [unknown, unknown][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}

function stringFrom(value: unknown): string {
  if (typeof value !== "string") throw new BadPayload("cached axios entry's text is not text");
  return value;
}

// ---- shared ----------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** An object `JSON.parse` could have made: no class, and no symbol keys JSON would drop. */
function isPlainObject(value: unknown): boolean {
  if (!isObject(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return (
    (proto === Object.prototype || proto === null) &&
    Object.getOwnPropertySymbols(value).length === 0
  );
}

function binaryTag(body: unknown): BinaryTag | undefined {
  if (!isObject(body)) return undefined;
  // Exact types only: a subclass or another view (Int16Array, DataView…) would read back as
  // something else.
  const proto = Object.getPrototypeOf(body);
  if (proto === Buffer.prototype) return "B";
  if (proto === Uint8Array.prototype) return "U";
  if (proto === ArrayBuffer.prototype) return "A";
  return undefined;
}

function base64(body: ArrayBuffer | Uint8Array): string {
  const bytes = body instanceof ArrayBuffer ? new Uint8Array(body) : body;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

function binaryFrom(text: string): Buffer | Uint8Array | ArrayBuffer {
  const tag = text[0];
  const base64Text = text.slice(1);
  const bytes = Buffer.from(base64Text, "base64");
  // Lenient base64 decoding would accept two texts for one body; only the canonical one passes.
  if (!(tag !== undefined && tag in BINARY_TYPES) || bytes.toString("base64") !== base64Text) {
    throw new BadPayload("cached axios entry has a malformed binary body");
  }
  if (tag === "B") return bytes;
  const copy = new Uint8Array(bytes);
  return tag === "U" ? copy : copy.buffer;
}
