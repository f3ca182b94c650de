import { createSecretKey, hkdfSync, type KeyObject, randomBytes } from "node:crypto";
import { ConfigError } from "./errors.js";

/** A secret: a string (its UTF-8 bytes count) or raw bytes. At least 32 bytes. */
export type Secret = string | Uint8Array;

/** Shortest secret accepted, in bytes: the output size of the MAC it keys. */
export const MIN_SECRET_BYTES = 32;

const HOW_TO_MAKE_ONE =
  "generate one with `npx signed-cache keygen` or `node -e \"console.log(crypto.randomBytes(32).toString('base64url'))\"`";

// A fixed, versioned salt: the input secret is already high-entropy, so HKDF needs no random
// salt, only domain separation from any other use of the same secret.
const HKDF_SALT = Buffer.from("signed-cache/v1");
const KID_BYTES = 6;

/**
 * Generates a random secret suitable for `SIGNED_CACHE_SECRET`.
 *
 * @param bytes - Number of random bytes, at least 32.
 * @returns The secret as base64url text.
 * @throws {ConfigError} When `bytes` is below 32 or not an integer.
 * @example
 * ```ts
 * const secret = generateSecret(); // 43 base64url characters
 * ```
 */
export function generateSecret(bytes = MIN_SECRET_BYTES): string {
  if (!Number.isInteger(bytes) || bytes < MIN_SECRET_BYTES || bytes > 1024) {
    throw new ConfigError(
      `generateSecret(bytes): bytes must be an integer from ${MIN_SECRET_BYTES} to 1024`,
    );
  }
  return randomBytes(bytes).toString("base64url");
}

/**
 * Checks a secret and returns its bytes.
 *
 * @param label - How the message names the secret, e.g. `"secret"` or `"fallbacks[1]"`.
 * @throws {ConfigError} When the secret is missing, of the wrong type or shorter than 32 bytes.
 */
export function secretToBytes(secret: unknown, label = "secret"): Buffer {
  let bytes: Buffer;
  if (typeof secret === "string") {
    bytes = Buffer.from(secret, "utf8");
  } else if (secret instanceof Uint8Array) {
    bytes = Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength);
  } else if (secret === undefined || secret === null) {
    throw new ConfigError(
      `${label} is missing; set SIGNED_CACHE_SECRET or pass one (${HOW_TO_MAKE_ONE})`,
    );
  } else {
    throw new ConfigError(`${label} must be a string or a Uint8Array, got ${typeof secret}`);
  }
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new ConfigError(
      `${label} is ${bytes.length} bytes; at least ${MIN_SECRET_BYTES} are required (${HOW_TO_MAKE_ONE})`,
    );
  }
  return bytes;
}

/** One secret's derived keys, each made on first use and then reused. */
export class KeyringEntry {
  /** Key id written into envelopes: derived from the secret, reveals nothing about it. */
  readonly kid: string;
  // Held as a KeyObject so that logging or inspecting the keyring never prints the secret.
  readonly #ikm: KeyObject;
  readonly #derived = new Map<string, KeyObject>();

  constructor(secret: Secret, label: string) {
    // createSecretKey copies the bytes: a caller mutating its buffer later changes nothing here.
    this.#ikm = createSecretKey(secretToBytes(secret, label));
    this.kid = Buffer.from(this.#derive("kid", KID_BYTES)).toString("base64url");
  }

  /**
   * The key for one purpose, e.g. `"mac:hs256"` or `"enc:a256gcm"`. Each purpose gets its own
   * HKDF output, so no two algorithms ever share key material.
   */
  key(purpose: string): KeyObject {
    let key = this.#derived.get(purpose);
    if (key === undefined) {
      key = createSecretKey(Buffer.from(this.#derive(purpose, 32)));
      this.#derived.set(purpose, key);
    }
    return key;
  }

  #derive(purpose: string, length: number): ArrayBuffer {
    return hkdfSync("sha256", this.#ikm, HKDF_SALT, `signed-cache/v1 ${purpose}`, length);
  }
}

/**
 * The current secret, used to sign, and older fallback secrets, used only to verify.
 * Entries carry the key id they were signed with, so verification looks up exactly one key.
 *
 * @example
 * ```ts
 * const keyring = new Keyring(process.env.NEW_SECRET!, [process.env.OLD_SECRET!]);
 * keyring.current.kid; // e.g. "Zq3k9xQa"
 * ```
 */
export class Keyring {
  /** The signing key. */
  readonly current: KeyringEntry;
  readonly #byKid = new Map<string, KeyringEntry>();

  /**
   * @param secret - The current secret.
   * @param fallbacks - Older secrets, newest first, accepted when verifying.
   * @throws {ConfigError} When any secret is shorter than 32 bytes.
   */
  constructor(secret: Secret, fallbacks: readonly Secret[] = []) {
    if (!Array.isArray(fallbacks)) {
      throw new ConfigError("fallbacks must be an array of secrets");
    }
    this.current = new KeyringEntry(secret, "secret");
    this.#byKid.set(this.current.kid, this.current);
    fallbacks.forEach((fallback, index) => {
      const entry = new KeyringEntry(fallback, `fallbacks[${index}]`);
      // The same secret listed twice derives the same kid: keep the first, it is the same key.
      if (!this.#byKid.has(entry.kid)) this.#byKid.set(entry.kid, entry);
    });
  }

  /** The entry for a key id, or `undefined` when no configured secret has it. */
  get(kid: string): KeyringEntry | undefined {
    return this.#byKid.get(kid);
  }

  /** Key ids of every configured secret, current first. */
  get kids(): string[] {
    return [...this.#byKid.keys()];
  }
}
