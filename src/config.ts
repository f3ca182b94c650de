import { readFileSync } from "node:fs";
import {
  DEFAULT_MAC_ALGORITHM,
  ENTRY_ALGORITHMS,
  type EntryAlgorithm,
  isEntryAlgorithm,
  isMacAlgorithm,
  MAC_BY_DIGEST,
  type MacAlgorithm,
} from "./algorithms.js";
import { ConfigError } from "./errors.js";
import { type Secret, secretToBytes } from "./keyring.js";
import { checkStoreUrl, DEFAULT_STORE_URL, STORE_SCHEMES } from "./stores.js";

/** Bound in ms on each store call when neither an option nor the environment sets one. */
export const DEFAULT_STORE_TIMEOUT = 1000;

/** Longest an HTTP entry is kept past its freshness, in ms (24 h): the replay bound. */
export const DEFAULT_MAX_STALE = 86_400_000;

/** Largest stored entry, in bytes, when neither an option nor the environment sets one. */
export const DEFAULT_MAX_ENTRY_BYTES = 32 * 1024 * 1024;

/** Smallest `maxEntryBytes` accepted: below it not even a small HTTP response fits. */
export const MIN_MAX_ENTRY_BYTES = 1024;

/** Settings read from the environment by {@link readConfig}, defaults filled in. */
export interface SignedCacheConfig {
  /**
   * `SIGNED_CACHE_SECRET` (a string) or the bytes of `SIGNED_CACHE_SECRET_FILE` (a `Buffer`),
   * at least 32 bytes; `undefined` when unset.
   */
  secret: Secret | undefined;
  /**
   * `SIGNED_CACHE_SECRET_FALLBACKS`: comma-separated (in a `_FILE` also newline-separated),
   * newest first. Strings from the variable, `Buffer`s from the file. @default []
   */
  fallbacks: Secret[];
  /** `SIGNED_CACHE_URL`: where entries live; see {@link storeFromUrl}. @default "sqlite://http_cache.sqlite" */
  url: string;
  /** `SIGNED_CACHE_NAMESPACE`; `undefined` leaves Keyv's own default, `"keyv"`. */
  namespace: string | undefined;
  /** `SIGNED_CACHE_TTL`: default time to live in ms; `undefined` means entries do not expire. */
  ttl: number | undefined;
  /** `SIGNED_CACHE_STRICT`: reads of a bad entry throw instead of missing. @default false */
  strict: boolean;
  /** `SIGNED_CACHE_ENCRYPT`: encrypt payloads with AES-256-GCM. @default false */
  encrypt: boolean;
  /** `SIGNED_CACHE_RESIGN`: re-sign entries read under a fallback secret. @default false */
  resign: boolean;
  /** `SIGNED_CACHE_STORE_TIMEOUT`: bound in ms on each store call, `0` for none. @default 1000 */
  storeTimeout: number;
  /** `SIGNED_CACHE_ALGORITHM`: HMAC digest for new entries. @default "sha256" */
  algorithm: MacAlgorithm;
  /** `SIGNED_CACHE_ALGORITHMS`: algorithms accepted on read; `undefined` when unset. */
  algorithms: EntryAlgorithm[] | undefined;
  /** `SIGNED_CACHE_MAX_STALE`: longest in ms an HTTP entry is kept past its freshness. @default 86400000 */
  maxStale: number;
  /** `SIGNED_CACHE_MAX_ENTRY_BYTES`: largest stored entry, at least 1024. @default 33554432 */
  maxEntryBytes: number;
}

type Env = Readonly<Record<string, string | undefined>>;

/** One variable's value after trimming, and how a message may refer to it. */
interface Setting {
  /** `NAME` or `NAME_FILE`. */
  readonly name: string;
  /** The file the value came from; `undefined` for a value given in the variable itself. */
  readonly path: string | undefined;
  /** The variable's text, or the file's bytes. */
  readonly raw: string | Buffer;
}

// The one trimming rule for every source: only these, so no byte of a secret is ever lost to
// a wider notion of whitespace (Unicode spaces, a BOM, or bytes that merely decode as space).
const ASCII_WHITESPACE = new Set([0x20, 0x09, 0x0d, 0x0a]);
// Direct values are echoed only when too short to hold a secret (secrets are 32 bytes or more;
// a long fragment of one is no better).
const ECHO_LIMIT = 16;

/**
 * Reads signed-cache's settings from environment variables. Every variable may instead be given
 * as `NAME_FILE`, the path of a file holding the value, as Docker and Kubernetes secrets are
 * mounted; secret files are read as raw bytes. One rule trims every value, whether from a
 * variable, a file or a list item: ASCII whitespace (space, tab, CR, LF) at both ends is removed,
 * nothing else. Empty variables count as unset. Nothing but the named files is read, and nothing
 * is written.
 *
 * @param env - The environment to read. @default process.env
 * @throws {ConfigError} On any invalid value, naming the variable and what it accepts; secret
 *   values and anything read from a file are never echoed.
 * @example
 * ```ts
 * const config = readConfig(); // { secret, url: "sqlite://http_cache.sqlite", strict: false, … }
 * ```
 */
export function readConfig(env: Env = process.env): SignedCacheConfig {
  return {
    secret: secret(read(env, "SIGNED_CACHE_SECRET")),
    fallbacks: fallbacks(read(env, "SIGNED_CACHE_SECRET_FALLBACKS")),
    url: url(read(env, "SIGNED_CACHE_URL")),
    namespace: namespace(read(env, "SIGNED_CACHE_NAMESPACE")),
    ttl: integer(read(env, "SIGNED_CACHE_TTL"), 1, "milliseconds"),
    strict: boolean(read(env, "SIGNED_CACHE_STRICT")) ?? false,
    encrypt: boolean(read(env, "SIGNED_CACHE_ENCRYPT")) ?? false,
    resign: boolean(read(env, "SIGNED_CACHE_RESIGN")) ?? false,
    storeTimeout:
      integer(read(env, "SIGNED_CACHE_STORE_TIMEOUT"), 0, "milliseconds") ?? DEFAULT_STORE_TIMEOUT,
    algorithm: algorithm(read(env, "SIGNED_CACHE_ALGORITHM")) ?? DEFAULT_MAC_ALGORITHM,
    algorithms: algorithms(read(env, "SIGNED_CACHE_ALGORITHMS")),
    maxStale: readMaxStale(env),
    maxEntryBytes:
      integer(read(env, "SIGNED_CACHE_MAX_ENTRY_BYTES"), MIN_MAX_ENTRY_BYTES, "bytes") ??
      DEFAULT_MAX_ENTRY_BYTES,
  };
}

/**
 * `SIGNED_CACHE_MAX_STALE` alone, for storages that take everything else explicitly: an unrelated
 * variable cannot break them.
 *
 * @throws {ConfigError} When it is not a whole, non-negative number of milliseconds.
 */
export function readMaxStale(env: Env = process.env): number {
  return integer(read(env, "SIGNED_CACHE_MAX_STALE"), 0, "milliseconds") ?? DEFAULT_MAX_STALE;
}

/**
 * Rejects namespaces Keyv cannot round-trip: it joins namespace and key with `:` and splits on
 * the first one when listing keys.
 */
export function checkNamespace(namespace: unknown, label: string): void {
  if (typeof namespace !== "string" || namespace === "" || namespace.includes(":")) {
    throw new ConfigError(`${label} must be a non-empty string without ':'`);
  }
}

function read(env: Env, name: string): Setting | undefined {
  const direct = trimText(env[name] ?? "");
  const path = env[`${name}_FILE`] ?? "";
  if (direct !== "" && path !== "") throw new ConfigError(`set ${name} or ${name}_FILE, not both`);
  if (direct !== "") return { name, path: undefined, raw: direct };
  if (path === "") return undefined;
  const setting = { name: `${name}_FILE`, path, raw: trimBytes(readFile(`${name}_FILE`, path)) };
  if (setting.raw.length === 0) throw new ConfigError(`${label(setting)} is empty`);
  return setting;
}

function readFile(name: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    // Only the code: the error's own message repeats the path and may grow other details.
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ConfigError(`${name}: cannot read ${path} (${code})`);
  }
}

/** How messages name a setting: the variable, and for a file its path, never its contents. */
function label(setting: Setting, item = ""): string {
  return setting.path === undefined
    ? `${setting.name}${item}`
    : `${setting.name}${item} (${setting.path})`;
}

/** `must …` plus, for a value typed into the variable itself, what it was. */
function invalid(setting: Setting, accepts: string): ConfigError {
  // Only a value too short to be a secret is echoed: a secret pasted into the wrong variable
  // (SIGNED_CACHE_ENCRYPT=<the key>) must not end up in a log. Files are never echoed.
  const short = typeof setting.raw === "string" && setting.raw.length <= ECHO_LIMIT;
  const got = short
    ? `; got ${JSON.stringify(setting.raw)}`
    : typeof setting.raw === "string"
      ? `; got a value of ${setting.raw.length} characters (not shown)`
      : "";
  return new ConfigError(`${label(setting)} must be ${accepts}${got}`);
}

/** A non-secret value as text; a file must hold valid UTF-8, decoded without replacement. */
function text(setting: Setting): string {
  if (typeof setting.raw === "string") return setting.raw;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(setting.raw);
  } catch {
    throw new ConfigError(`${label(setting)} must hold UTF-8 text`);
  }
}

function trimmedRange(length: number, codeAt: (index: number) => number): [number, number] {
  let start = 0;
  let end = length;
  while (start < end && ASCII_WHITESPACE.has(codeAt(start))) start++;
  while (end > start && ASCII_WHITESPACE.has(codeAt(end - 1))) end--;
  return [start, end];
}

function trimText(value: string): string {
  return value.slice(...trimmedRange(value.length, (index) => value.charCodeAt(index)));
}

function trimBytes(bytes: Buffer): Buffer {
  return bytes.subarray(...trimmedRange(bytes.length, (index) => bytes[index] as number));
}

function secret(setting: Setting | undefined): Secret | undefined {
  if (setting === undefined) return undefined;
  secretToBytes(setting.raw, label(setting));
  return setting.raw;
}

/** Splits bytes on commas and newlines, as text would be split, without decoding them. */
function splitBytes(bytes: Buffer): Buffer[] {
  const items: Buffer[] = [];
  let start = 0;
  for (let index = 0; index <= bytes.length; index++) {
    if (index === bytes.length || bytes[index] === 0x2c || bytes[index] === 0x0a) {
      items.push(bytes.subarray(start, index));
      start = index + 1;
    }
  }
  return items;
}

function fallbacks(setting: Setting | undefined): Secret[] {
  if (setting === undefined) return [];
  const { raw } = setting;
  const items: Secret[] =
    typeof raw === "string"
      ? raw
          .split(",")
          .map(trimText)
          .filter((item) => item !== "")
      : splitBytes(raw)
          .map(trimBytes)
          .filter((item) => item.length > 0);
  items.forEach((item, index) => {
    secretToBytes(item, label(setting, `[${index}]`));
  });
  return items;
}

function url(setting: Setting | undefined): string {
  if (setting === undefined) return DEFAULT_STORE_URL;
  const value = text(setting);
  try {
    checkStoreUrl(value);
  } catch (error) {
    // checkStoreUrl names the scheme it saw; from a file even that is not repeated.
    if (setting.path !== undefined) {
      throw new ConfigError(
        `${label(setting)} must hold a store URL; supported: ${Object.keys(STORE_SCHEMES)
          .map((scheme) => `${scheme}//`)
          .join(", ")}`,
      );
    }
    throw new ConfigError(`${setting.name}: ${(error as Error).message}`);
  }
  return value;
}

function namespace(setting: Setting | undefined): string | undefined {
  if (setting === undefined) return undefined;
  const value = text(setting);
  checkNamespace(value, label(setting));
  return value;
}

function boolean(setting: Setting | undefined): boolean | undefined {
  if (setting === undefined) return undefined;
  const normalized = text(setting).toLowerCase();
  if (normalized === "true" || normalized === "1") return true;
  if (normalized === "false" || normalized === "0") return false;
  throw invalid(setting, "true, false, 1 or 0");
}

function integer(setting: Setting | undefined, min: number, unit: string): number | undefined {
  if (setting === undefined) return undefined;
  const value = text(setting);
  const number = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min) {
    throw invalid(setting, `a whole number of ${unit}${min > 0 ? `, at least ${min}` : ""}`);
  }
  return number;
}

function algorithm(setting: Setting | undefined): MacAlgorithm | undefined {
  if (setting === undefined) return undefined;
  const value = text(setting).toLowerCase();
  if (isMacAlgorithm(value)) return value;
  throw invalid(setting, `one of ${Object.keys(MAC_BY_DIGEST).join(", ")}`);
}

function algorithms(setting: Setting | undefined): EntryAlgorithm[] | undefined {
  if (setting === undefined) return undefined;
  const names = text(setting)
    .split(",")
    .map((name) => trimText(name).toLowerCase())
    .filter((name) => name !== "");
  const accepts = `a comma-separated list of ${ENTRY_ALGORITHMS.join(", ")}`;
  if (names.length === 0 || !names.every(isEntryAlgorithm)) throw invalid(setting, accepts);
  return [...new Set(names)];
}
