/**
 * The signed envelope: pure encode and decode, no I/O.
 *
 * ```
 * sc1.<alg>.<kid>.<exp>.<kind>.<tag>.<body>
 * ```
 * - `sc1`  format version
 * - `alg`  `hs256` | `hs512` | `hb512` (HMAC) or `a256gcm` (encrypted)
 * - `kid`  8 base64url characters naming the secret that signed it
 * - `exp`  absolute expiry in ms since the epoch, `0` for none
 * - `kind` `s` the body is the stored string itself, `v` a structured-clone of any other value
 * - `tag`  base64url MAC (or GCM tag)
 * - `body` the payload: raw text for `s` when signing, base64url otherwise
 *
 * The MAC covers the header up to the tag, the namespace and key the entry is stored under, and
 * the body. Every header field has a fixed grammar without dots, and the namespace and key are
 * length-prefixed and fed as UTF-16 code units, so distinct tuples never share a MAC input.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { deserialize, serialize } from "node:v8";
import {
  AEAD,
  type AlgorithmSpec,
  MAC_BY_DIGEST,
  type MacAlgorithm,
  SPEC_BY_ID,
} from "./algorithms.js";
import { BadPayload, BadSignature } from "./errors.js";
import type { Keyring, KeyringEntry } from "./keyring.js";

/** Version prefix of every envelope this build writes. */
export const ENVELOPE_PREFIX = "sc1.";

const IV_BYTES = 12;
// Longest possible header: "sc1." + alg (7) + kid (8) + exp (16) + kind (1) + tag (86) + 5 dots.
const MAX_TAG_CHARS = 86;
const MAX_HEADER_CHARS = 4 + 7 + 8 + 16 + 1 + MAX_TAG_CHARS + 5;
const KID_PATTERN = /^[A-Za-z0-9_-]{8}$/;
const EXP_PATTERN = /^(?:0|[1-9][0-9]{0,15})$/;
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]*$/;
const VERSIONED_PATTERN = /^sc[0-9]+(?:\.|$)/;

/** Where and how an entry is written. */
export interface SealOptions {
  /** The namespace the store is bound to, if any. */
  readonly namespace: string | undefined;
  /** HMAC digest; ignored when `encrypt` is on. */
  readonly algorithm: MacAlgorithm;
  /** Encrypt the body with AES-256-GCM instead of only signing it. */
  readonly encrypt: boolean;
}

/** A verified entry. */
export interface OpenedEnvelope {
  /** The stored value: the original string, or the original non-string value. */
  readonly value: unknown;
  /** Signed absolute expiry in ms since the epoch, or `undefined` for none. */
  readonly expiresAt: number | undefined;
  /** Key id that signed it. */
  readonly kid: string;
  /** False when it verified under a fallback secret. */
  readonly current: boolean;
}

interface ParsedHeader {
  readonly spec: AlgorithmSpec;
  readonly kid: string;
  readonly expiresAt: number | undefined;
  readonly kind: "s" | "v";
  /** Everything before the tag, exactly as stored: the signed header. */
  readonly header: string;
  readonly tag: string;
  readonly body: string;
}

/**
 * Wraps a value in a signed (or encrypted) envelope bound to `key` and `options.namespace`.
 *
 * @param value - A string is stored as is; anything else is structured-cloned (`node:v8`).
 * @param expiresAt - Absolute expiry in ms since the epoch; `undefined` for none.
 * @throws {BadPayload} When the value cannot be structured-cloned (a function, a symbol…).
 */
export function sealEnvelope(
  keyring: Keyring,
  key: string,
  value: unknown,
  expiresAt: number | undefined,
  options: SealOptions,
): string {
  const signer = keyring.current;
  const spec = options.encrypt ? AEAD : MAC_BY_DIGEST[options.algorithm];
  // A string with a lone surrogate has no faithful UTF-8 form, so it goes the structured-clone way.
  const kind = typeof value === "string" && value.isWellFormed() ? "s" : "v";
  const exp = expiresAt === undefined ? "0" : String(Math.max(1, Math.floor(expiresAt)));
  const header = `${ENVELOPE_PREFIX}${spec.id}.${signer.kid}.${exp}.${kind}.`;
  const plain = kind === "s" ? (value as string) : cloneToBytes(value, key);

  if (spec.kind === "aead") {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", signer.key(spec.purpose), iv);
    cipher.setAAD(associatedData(header, options.namespace, key));
    const encrypted = Buffer.concat([
      iv,
      typeof plain === "string" ? cipher.update(plain, "utf8") : cipher.update(plain),
      cipher.final(),
    ]);
    return `${header}${cipher.getAuthTag().toString("base64url")}.${encrypted.toString("base64url")}`;
  }
  const body = typeof plain === "string" ? plain : plain.toString("base64url");
  const tag = computeMac(spec, signer.key(spec.purpose), header, options.namespace, key, body);
  return `${header}${tag}.${body}`;
}

/**
 * Parses and verifies an envelope read from `key`. Structure is validated before any crypto.
 *
 * @throws {BadSignature} When the entry is not a valid envelope for this key and keyring.
 * @throws {BadPayload} When it verifies but its body cannot be decoded.
 */
export function openEnvelope(
  keyring: Keyring,
  key: string,
  stored: unknown,
  namespace: string | undefined,
): OpenedEnvelope {
  const parsed = parseEnvelope(stored, key);
  const signer = keyring.get(parsed.kid);
  if (signer === undefined) {
    throw new BadSignature("unknown-key", "entry is signed with a key that is not configured", {
      key,
    });
  }
  const value =
    parsed.spec.kind === "aead"
      ? decrypt(parsed, signer, namespace, key)
      : verifyMac(parsed, signer, namespace, key);
  return {
    value,
    expiresAt: parsed.expiresAt,
    kid: parsed.kid,
    current: signer === keyring.current,
  };
}

/**
 * Reads an envelope's header without verifying it: for diagnostics only, never for trust.
 *
 * @throws {BadSignature} With reason `malformed`, `unsigned` or `unsupported-version`.
 */
export function inspectEnvelope(
  stored: unknown,
  key?: string,
): { algorithm: string; kid: string; expiresAt: number | undefined; kind: "s" | "v" } {
  const { spec, kid, expiresAt, kind } = parseEnvelope(stored, key);
  return { algorithm: spec.id, kid, expiresAt, kind };
}

function parseEnvelope(stored: unknown, key: string | undefined): ParsedHeader {
  if (typeof stored !== "string") {
    throw new BadSignature(
      "unsigned",
      `entry is a plain ${describe(stored)}, not a signed envelope`,
      { key },
    );
  }
  if (!stored.startsWith(ENVELOPE_PREFIX)) {
    if (VERSIONED_PATTERN.test(stored.slice(0, 24))) {
      throw new BadSignature(
        "unsupported-version",
        "entry has an envelope version this build does not read",
        {
          key,
        },
      );
    }
    throw new BadSignature("unsigned", "entry is a plain string, not a signed envelope", { key });
  }
  // Only the bounded header is scanned, so a huge malformed entry costs no more than a small one.
  // (A slice of a flat string is a view, not a copy.) Fields are found without an array.
  const head = stored.slice(0, MAX_HEADER_CHARS + 1);
  const algEnd = fieldEnd(head, ENVELOPE_PREFIX.length, key);
  const kidEnd = fieldEnd(head, algEnd + 1, key);
  const expEnd = fieldEnd(head, kidEnd + 1, key);
  const kindEnd = fieldEnd(head, expEnd + 1, key);
  const tagEnd = fieldEnd(head, kindEnd + 1, key);
  const algId = head.slice(ENVELOPE_PREFIX.length, algEnd);
  const kid = head.slice(algEnd + 1, kidEnd);
  const exp = head.slice(kidEnd + 1, expEnd);
  const kind = head.slice(expEnd + 1, kindEnd);
  const tag = head.slice(kindEnd + 1, tagEnd);
  const start = tagEnd + 1;

  const spec = SPEC_BY_ID.get(algId);
  if (spec === undefined) {
    throw new BadSignature(
      "unsupported-version",
      "entry uses an algorithm this build does not accept",
      { key },
    );
  }
  if (!KID_PATTERN.test(kid)) throw malformed(key, "key id");
  if (!EXP_PATTERN.test(exp) || Number(exp) > Number.MAX_SAFE_INTEGER)
    throw malformed(key, "expiry");
  if (kind !== "s" && kind !== "v") throw malformed(key, "payload kind");
  if (tag.length !== spec.tagChars || !BASE64URL_PATTERN.test(tag)) throw malformed(key, "tag");

  const body = stored.slice(start);
  // Bodies that are bytes must be canonical base64url, so that no two texts decode alike.
  const bodyIsText = kind === "s" && spec.kind === "hmac";
  if (bodyIsText ? !body.isWellFormed() : !BASE64URL_PATTERN.test(body) || body.length % 4 === 1) {
    throw malformed(key, "body encoding");
  }
  const expiresAt = exp === "0" ? undefined : Number(exp);
  const header = stored.slice(0, start - tag.length - 1);
  return { spec, kid, expiresAt, kind, header, tag, body };
}

/** Where the header field starting at `from` ends: the index of its closing dot. */
function fieldEnd(head: string, from: number, key: string | undefined): number {
  const dot = head.indexOf(".", from);
  if (dot === -1) throw malformed(key, "truncated header");
  return dot;
}

// A plain function rather than a closure made on every read: the read path allocates nothing
// it does not return.
function malformed(key: string | undefined, what: string): BadSignature {
  return new BadSignature("malformed", `malformed envelope: ${what}`, { key });
}

function verifyMac(
  parsed: ParsedHeader,
  signer: KeyringEntry,
  namespace: string | undefined,
  key: string,
): unknown {
  const { spec, header, tag, body } = parsed;
  const expected = computeMac(spec, signer.key(spec.purpose), header, namespace, key, body);
  if (!tagsEqual(expected, tag)) {
    throw new BadSignature("mismatch", "entry signature does not match", { key });
  }
  if (parsed.kind === "s") return body;
  return cloneFromBytes(Buffer.from(body, "base64url"), key);
}

function decrypt(
  parsed: ParsedHeader,
  signer: KeyringEntry,
  namespace: string | undefined,
  key: string,
): unknown {
  const { header, tag, body } = parsed;
  const bytes = Buffer.from(body, "base64url");
  if (bytes.length < IV_BYTES || bytes.toString("base64url") !== body) {
    throw new BadSignature("malformed", "malformed envelope: body encoding", { key });
  }
  const decipher = createDecipheriv(
    "aes-256-gcm",
    signer.key(AEAD.purpose),
    bytes.subarray(0, IV_BYTES),
  );
  decipher.setAAD(associatedData(header, namespace, key));
  decipher.setAuthTag(Buffer.from(tag, "base64url"));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES)), decipher.final()]);
  } catch (cause) {
    throw new BadSignature("mismatch", "entry authentication tag does not match", { key, cause });
  }
  return parsed.kind === "v" ? cloneFromBytes(plain, key) : plain.toString("utf8");
}

function computeMac(
  spec: AlgorithmSpec,
  macKey: KeyObject,
  header: string,
  namespace: string | undefined,
  key: string,
  body: string,
): string {
  const ns = namespace ?? "";
  // The header and the length prefix are one latin1 run: every `update` is a native call with a
  // fixed cost that matters at 1 KB, and one run feeds exactly the same bytes as two.
  return createHmac(spec.primitive, macKey)
    .update(`${header}${ns.length}:${key.length}:`, "latin1")
    .update(ns + key, "utf16le")
    .update(body, "utf8")
    .digest("base64url");
}

// Scratch space for comparing tags without allocating two Buffers on every read. Reads are
// synchronous, so one pair per module (per thread) is never shared by two comparisons at once.
const TAG_A = Buffer.alloc(MAX_TAG_CHARS);
const TAG_B = Buffer.alloc(MAX_TAG_CHARS);
const TAG_VIEWS = new Map<number, readonly [Buffer, Buffer]>();

/** Constant-time equality of two base64url tags whose length the parser already checked. */
function tagsEqual(expected: string, actual: string): boolean {
  const length = actual.length;
  if (expected.length !== length || length > MAX_TAG_CHARS) return false;
  let views = TAG_VIEWS.get(length);
  if (views === undefined) {
    views = [TAG_A.subarray(0, length), TAG_B.subarray(0, length)];
    TAG_VIEWS.set(length, views);
  }
  TAG_A.write(expected, 0, length, "latin1");
  TAG_B.write(actual, 0, length, "latin1");
  return timingSafeEqual(views[0], views[1]);
}

function associatedData(header: string, namespace: string | undefined, key: string): Buffer {
  const ns = namespace ?? "";
  return Buffer.concat([
    Buffer.from(header, "latin1"),
    Buffer.from(`${ns.length}:${key.length}:`, "latin1"),
    Buffer.from(ns + key, "utf16le"),
  ]);
}

function cloneToBytes(value: unknown, key: string): Buffer {
  try {
    return serialize(value);
  } catch (cause) {
    throw new BadPayload(`value of type ${describe(value)} cannot be stored`, { key, cause });
  }
}

function cloneFromBytes(bytes: Buffer, key: string): unknown {
  try {
    return deserialize(bytes);
  } catch (cause) {
    throw new BadPayload("entry verified but its payload could not be decoded", { key, cause });
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value === "object" ? (value.constructor?.name ?? "object") : typeof value;
}
