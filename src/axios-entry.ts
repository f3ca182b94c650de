/**
 * How an axios-cache-interceptor entry is written as text inside the Keyvs that the axios
 * storage builds: the response body kept out of Keyv's JSON.
 *
 * Keyv's default serializer escapes a whole response body into JSON on every write and parses it
 * back, with a reviver visiting every node, on every read. For a 1 MB text body that is several
 * milliseconds per cache hit, far more than verifying the signature. Here the entry is written as
 *
 *     ~ax1<kind><the entry, body left out, as Keyv's default serializer writes it>\n<body>
 *
 * and read back by parsing up to the first newline (Keyv's JSON never contains a raw one) and
 * slicing the rest. `kind` is `t` for a text body, stored as is; `j` for a parsed JSON body,
 * stored as `JSON.stringify` writes it and read with a plain `JSON.parse`; or `b` for a binary
 * body (a Buffer, Uint8Array or ArrayBuffer, as axios returns for `responseType: "arraybuffer"`),
 * stored as one type letter and base64, and read back as the same type with the same bytes —
 * Keyv's serializer would turn a Uint8Array or an ArrayBuffer into a plain object. The signed
 * store signs the whole string, header and body, bound to its key, as it signs any other value.
 *
 * Anything else (no body, a text body holding NUL characters, which some SQL text columns
 * refuse, or lone surrogates, an object holding a Buffer) is written as before, by Keyv's
 * default serializer; entries written that way, by this or an earlier version, still read back.
 */
import Keyv, { type Deserialize, type DeserializedData } from "keyv";
import { BadPayload } from "./errors.js";

const FORMAT = "~ax1";
const TEXT = "t";
const JSON_BODY = "j";
const BINARY = "b";
// The binary body's first character names its type, so that it reads back as what was cached.
const BINARY_TYPES = { B: "Buffer", U: "Uint8Array", A: "ArrayBuffer" } as const;
const BODY_AT = FORMAT.length + 1;
// JSON.stringify writes a nested Buffer as this object, which would read back as a plain object:
// such bodies stay on Keyv's serializer, which revives Buffers.
const BUFFER_JSON = '"type":"Buffer"';

// Keyv does not export its default serializer pair; a Keyv instance carries it.
const defaults = new Keyv();
const keyvSerialize = defaults.serialize as NonNullable<Keyv["serialize"]>;
const keyvDeserialize = defaults.deserialize as NonNullable<Keyv["deserialize"]>;

type Entry = DeserializedData<unknown>;

/**
 * Keyv `serialize` for axios-cache-interceptor entries: a text or parsed-JSON response body is
 * written after the rest of the entry instead of inside its JSON; anything else as Keyv writes it.
 */
export function serializeEntry(data: Entry): string {
  const value = data.value as { data?: unknown } | null | undefined;
  const response = typeof value === "object" && value !== null ? value.data : undefined;
  if (typeof response !== "object" || response === null || !("data" in response)) {
    return keyvSerialize(data) as string;
  }
  const body = (response as { data: unknown }).data;
  let kind: string | undefined;
  let text: string | undefined;
  if (typeof body === "string") {
    if (!body.includes("\0") && body.isWellFormed()) {
      kind = TEXT;
      text = body;
    }
  } else if (binaryTag(body) !== undefined) {
    kind = BINARY;
    text = `${binaryTag(body)}${Buffer.from(bytesOf(body as ArrayBuffer | Uint8Array)).toString("base64")}`;
  } else if (isJsonBody(body)) {
    // undefined when a toJSON method returns nothing: left to Keyv's serializer.
    text = JSON.stringify(body) as string | undefined;
    if (text !== undefined && !text.includes(BUFFER_JSON)) kind = JSON_BODY;
  }
  if (kind === undefined) return keyvSerialize(data) as string;
  // Keyv's serializer leaves out properties whose value is undefined, so the body is not written.
  const head = keyvSerialize({
    value: { ...value, data: { ...response, data: undefined } },
    expires: data.expires,
  }) as string;
  return `${FORMAT}${kind}${head}\n${text}`;
}

/**
 * Keyv `deserialize` matching {@link serializeEntry}; reads entries Keyv's default serializer
 * wrote, too.
 *
 * @throws {BadPayload} When an entry in this layout is cut short or its body does not parse.
 */
export function deserializeEntry(stored: string): Entry | undefined {
  if (!stored.startsWith(FORMAT)) return keyvDeserialize(stored) as Entry | undefined;
  const kind = stored[FORMAT.length];
  const newline = stored.indexOf("\n", BODY_AT);
  if (newline === -1 || (kind !== TEXT && kind !== JSON_BODY && kind !== BINARY)) {
    throw new BadPayload("cached axios entry is malformed");
  }
  const body = stored.slice(newline + 1);
  let entry: Entry | undefined;
  let data: unknown;
  try {
    entry = keyvDeserialize(stored.slice(BODY_AT, newline)) as Entry | undefined;
    data = kind === TEXT ? body : kind === JSON_BODY ? JSON.parse(body) : binaryFrom(body);
  } catch (cause) {
    throw new BadPayload("cached axios entry could not be decoded", { cause });
  }
  const response = (entry?.value as { data?: unknown } | undefined)?.data;
  if (typeof response !== "object" || response === null) {
    throw new BadPayload("cached axios entry has no response");
  }
  (response as { data: unknown }).data = data;
  return entry;
}

/**
 * Makes `keyv` write axios-cache-interceptor entries with {@link serializeEntry}. Only for Keyvs
 * the axios storage owns: another reader of the same store with Keyv's default serializer could
 * not read these entries.
 */
export function useEntryFormat(keyv: Keyv): void {
  keyv.serialize = serializeEntry;
  // Keyv types its deserializer as generic in the value; an axios entry's value is unknown here.
  keyv.deserialize = deserializeEntry as Deserialize;
}

function binaryTag(body: unknown): keyof typeof BINARY_TYPES | undefined {
  if (Buffer.isBuffer(body)) return "B";
  if (body instanceof ArrayBuffer) return "A";
  // Only a plain Uint8Array: other views (Int16Array, DataView…) keep Keyv's layout.
  if (body instanceof Uint8Array && body.constructor === Uint8Array) return "U";
  return undefined;
}

function bytesOf(body: ArrayBuffer | Uint8Array): Uint8Array {
  return body instanceof ArrayBuffer ? new Uint8Array(body) : body;
}

function binaryFrom(text: string): Buffer | Uint8Array | ArrayBuffer {
  const tag = text[0];
  const base64 = text.slice(1);
  const bytes = Buffer.from(base64, "base64");
  // Lenient base64 decoding would accept two texts for one body; only the canonical one passes.
  if (!(tag !== undefined && tag in BINARY_TYPES) || bytes.toString("base64") !== base64) {
    throw new BadPayload("cached axios entry has a malformed binary body");
  }
  if (tag === "B") return bytes;
  const copy = new Uint8Array(bytes);
  return tag === "U" ? copy : copy.buffer;
}

/** A body that `JSON.parse` could have produced: what axios hands over after parsing JSON. */
function isJsonBody(body: unknown): boolean {
  if (body === null || typeof body === "number" || typeof body === "boolean") return true;
  if (typeof body !== "object") return false;
  if (Array.isArray(body)) return true;
  const proto = Object.getPrototypeOf(body);
  return proto === Object.prototype || proto === null;
}
