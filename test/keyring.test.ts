import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.ts";
import { generateSecret, Keyring, secretToBytes } from "../src/keyring.ts";
import { OLD_SECRET, SECRET } from "./support/secrets.ts";

describe("generateSecret", () => {
  it("returns 32 random bytes as base64url by default", () => {
    const secret = generateSecret();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret, "base64url")).toHaveLength(32);
    expect(generateSecret()).not.toBe(secret);
  });

  it("accepts a larger size and refuses a short one", () => {
    expect(Buffer.from(generateSecret(64), "base64url")).toHaveLength(64);
    expect(() => generateSecret(16)).toThrow(ConfigError);
    expect(() => generateSecret(32.5)).toThrow(ConfigError);
  });
});

describe("secretToBytes", () => {
  it("counts a string's UTF-8 bytes", () => {
    // 11 × "é" is 11 characters but 22 bytes: still too short.
    expect(() => secretToBytes("é".repeat(11))).toThrow(/22 bytes/);
    expect(secretToBytes("é".repeat(16))).toHaveLength(32);
  });

  it("accepts a Uint8Array of 32 bytes and refuses 31", () => {
    expect(secretToBytes(new Uint8Array(32).fill(7))).toHaveLength(32);
    expect(() => secretToBytes(new Uint8Array(31))).toThrow(ConfigError);
  });

  it("explains how to make a secret without echoing the bad one", () => {
    const short = "hunter2-is-my-password";
    let error: unknown;
    try {
      secretToBytes(short);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/keygen/);
    expect((error as Error).message).not.toContain(short);
  });

  it("names a missing secret and a wrong type", () => {
    expect(() => secretToBytes(undefined)).toThrow(/SIGNED_CACHE_SECRET/);
    expect(() => secretToBytes(42)).toThrow(/string or a Uint8Array/);
  });
});

describe("Keyring", () => {
  it("derives a short kid that does not contain the secret", () => {
    const keyring = new Keyring(SECRET);
    expect(keyring.current.kid).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(SECRET).not.toContain(keyring.current.kid);
    expect(new Keyring(SECRET).current.kid).toBe(keyring.current.kid);
    expect(new Keyring(OLD_SECRET).current.kid).not.toBe(keyring.current.kid);
  });

  it("finds every configured secret by kid, current first", () => {
    const keyring = new Keyring(SECRET, [OLD_SECRET]);
    const old = new Keyring(OLD_SECRET).current.kid;
    expect(keyring.kids).toEqual([keyring.current.kid, old]);
    expect(keyring.get(old)?.kid).toBe(old);
    expect(keyring.get("AAAAAAAA")).toBeUndefined();
  });

  it("lists a repeated secret once", () => {
    expect(new Keyring(SECRET, [SECRET, OLD_SECRET, OLD_SECRET]).kids).toHaveLength(2);
  });

  it("derives different keys per purpose and per secret", () => {
    const a = new Keyring(SECRET).current;
    const b = new Keyring(OLD_SECRET).current;
    const mac = a.key("mac:hs256").export();
    expect(mac).toHaveLength(32);
    expect(a.key("enc:a256gcm").export().equals(mac)).toBe(false);
    expect(b.key("mac:hs256").export().equals(mac)).toBe(false);
    expect(mac.equals(Buffer.from(SECRET).subarray(0, 32))).toBe(false);
  });

  it("rejects a short fallback at construction, naming its position", () => {
    expect(() => new Keyring(SECRET, [OLD_SECRET, "short"])).toThrow(/fallbacks\[1\]/);
  });

  it("does not reveal the secret when inspected or serialized", () => {
    const keyring = new Keyring(SECRET);
    expect(inspect(keyring, { depth: 10, showHidden: true })).not.toContain(SECRET.slice(0, 12));
    expect(JSON.stringify(keyring)).not.toContain(SECRET.slice(0, 12));
  });

  it("is unaffected by later changes to the caller's buffer", () => {
    const bytes = new Uint8Array(32).fill(1);
    const keyring = new Keyring(bytes);
    bytes.fill(2);
    // Keys are derived on first use: this one is derived after the caller's buffer changed.
    const fresh = new Keyring(new Uint8Array(32).fill(1)).current;
    expect(keyring.current.key("enc:a256gcm").export()).toEqual(fresh.key("enc:a256gcm").export());
  });
});
