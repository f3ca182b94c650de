import { describe, expect, it } from "vitest";
import {
  BadData,
  BadPayload,
  BadSignature,
  ConfigError,
  SignedCacheError,
  StoreError,
} from "../src/errors.ts";

describe("errors", () => {
  const cases = [
    [new ConfigError("x"), "ConfigError", "ERR_SIGNED_CACHE_CONFIG"],
    [new BadData("x"), "BadData", "ERR_SIGNED_CACHE_BAD_DATA"],
    [new BadSignature("mismatch", "x"), "BadSignature", "ERR_SIGNED_CACHE_BAD_SIGNATURE"],
    [new BadPayload("x"), "BadPayload", "ERR_SIGNED_CACHE_BAD_PAYLOAD"],
    [new StoreError("x"), "StoreError", "ERR_SIGNED_CACHE_STORE"],
  ] as const;

  it.each(cases)("%s has its class name and a stable code", (error, name, code) => {
    expect(error).toBeInstanceOf(SignedCacheError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
  });

  it("BadSignature and BadPayload are BadData, as in itsdangerous", () => {
    expect(new BadSignature("unsigned", "x")).toBeInstanceOf(BadData);
    expect(new BadPayload("x")).toBeInstanceOf(BadData);
    expect(new ConfigError("x")).not.toBeInstanceOf(BadData);
  });

  it("BadSignature carries its reason and key", () => {
    const error = new BadSignature("unknown-key", "nope", { key: "ns:k" });
    expect(error.reason).toBe("unknown-key");
    expect(error.key).toBe("ns:k");
    expect(String(error)).toBe("BadSignature: nope");
  });
});
