import { readFileSync } from "node:fs";
import { ConfigError } from "./errors.js";
import { secretToBytes } from "./keyring.js";
import { checkStoreUrl, DEFAULT_STORE_URL } from "./stores.js";

/** Bound in ms on each store call when neither an option nor the environment sets one. */
export const DEFAULT_STORE_TIMEOUT = 1000;

/** Settings read from the environment by {@link readConfig}, defaults filled in. */
export interface SignedCacheConfig {
  /** `SIGNED_CACHE_SECRET`, at least 32 bytes; `undefined` when unset. */
  secret: string | undefined;
  /** `SIGNED_CACHE_SECRET_FALLBACKS`, comma-separated, newest first. @default [] */
  fallbacks: string[];
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
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads signed-cache's settings from environment variables. Every variable may instead be given
 * as `NAME_FILE`, the path of a file holding the value (trimmed), as Docker and Kubernetes
 * secrets are mounted. Empty variables count as unset. Nothing but the named files is read, and
 * nothing is written.
 *
 * @param env - The environment to read. @default process.env
 * @throws {ConfigError} On any invalid value, naming the variable and what it accepts; secret
 *   values are never echoed.
 * @example
 * ```ts
 * const config = readConfig(); // { secret, url: "sqlite://http_cache.sqlite", strict: false, … }
 * ```
 */
export function readConfig(env: Env = process.env): SignedCacheConfig {
  const secret = read(env, "SIGNED_CACHE_SECRET");
  if (secret !== undefined) secretToBytes(secret, "SIGNED_CACHE_SECRET");
  const url = read(env, "SIGNED_CACHE_URL") ?? DEFAULT_STORE_URL;
  try {
    checkStoreUrl(url);
  } catch (error) {
    throw new ConfigError(`SIGNED_CACHE_URL: ${(error as Error).message}`);
  }
  const namespace = read(env, "SIGNED_CACHE_NAMESPACE");
  if (namespace !== undefined) checkNamespace(namespace, "SIGNED_CACHE_NAMESPACE");
  return {
    secret,
    fallbacks: fallbacks(read(env, "SIGNED_CACHE_SECRET_FALLBACKS")),
    url,
    namespace,
    ttl: integer(env, "SIGNED_CACHE_TTL", 1),
    strict: boolean(env, "SIGNED_CACHE_STRICT") ?? false,
    encrypt: boolean(env, "SIGNED_CACHE_ENCRYPT") ?? false,
    resign: boolean(env, "SIGNED_CACHE_RESIGN") ?? false,
    storeTimeout: integer(env, "SIGNED_CACHE_STORE_TIMEOUT", 0) ?? DEFAULT_STORE_TIMEOUT,
  };
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

function read(env: Env, name: string): string | undefined {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  const hasDirect = direct !== undefined && direct !== "";
  const hasFile = file !== undefined && file !== "";
  if (hasDirect && hasFile) throw new ConfigError(`set ${name} or ${name}_FILE, not both`);
  if (hasDirect) return direct;
  if (!hasFile) return undefined;
  let contents: string;
  try {
    contents = readFileSync(file, "utf8").trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ConfigError(`${name}_FILE: cannot read ${file} (${code})`);
  }
  if (contents === "") throw new ConfigError(`${name}_FILE: ${file} is empty`);
  return contents;
}

function fallbacks(list: string | undefined): string[] {
  if (list === undefined) return [];
  const secrets = list
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  secrets.forEach((secret, index) => {
    secretToBytes(secret, `SIGNED_CACHE_SECRET_FALLBACKS[${index}]`);
  });
  return secrets;
}

function boolean(env: Env, name: string): boolean | undefined {
  const value = read(env, name);
  if (value === undefined) return undefined;
  const normalized = value.trim().toLowerCase();
  if (normalized === "true" || normalized === "1") return true;
  if (normalized === "false" || normalized === "0") return false;
  throw new ConfigError(`${name} must be true, false, 1 or 0; got ${JSON.stringify(value)}`);
}

function integer(env: Env, name: string, min: number): number | undefined {
  const value = read(env, name);
  if (value === undefined) return undefined;
  const number = /^\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min) {
    throw new ConfigError(
      `${name} must be a whole number of milliseconds${min > 0 ? `, at least ${min}` : ""}; got ${JSON.stringify(value)}`,
    );
  }
  return number;
}
