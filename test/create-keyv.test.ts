import Keyv from "keyv";
import { describe, expect, it } from "vitest";
import { createKeyv } from "../src/create-keyv.ts";
import { BadSignature, ConfigError } from "../src/errors.ts";
import type { signedStore } from "../src/store.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "./support/secrets.ts";

const ENV = { SIGNED_CACHE_SECRET: SECRET, SIGNED_CACHE_URL: "memory://" };

describe("createKeyv", () => {
  it("builds a signed Keyv from the environment", async () => {
    const keyv = createKeyv({ env: { ...ENV, SIGNED_CACHE_NAMESPACE: "http" } });
    expect(keyv).toBeInstanceOf(Keyv);
    expect(keyv.namespace).toBe("http");
    await keyv.set("k", { a: 1 });
    expect(await keyv.get("k")).toEqual({ a: 1 });
    const backend = (keyv.store as ReturnType<typeof signedStore>).backend as Map<string, unknown>;
    expect(String(backend.get("http:k"))).toMatch(/^sc2\./);
  });

  it("lets explicit options win over the environment, false included", async () => {
    const env = { ...ENV, SIGNED_CACHE_SECRET: OTHER_SECRET, SIGNED_CACHE_STRICT: "true" };
    const store = new Map<string, unknown>();
    const keyv = createKeyv({ env, store, secret: SECRET, strict: false, namespace: "n" });
    await keyv.set("k", "v");
    store.set("n:k", "planted");
    expect(await keyv.get("k")).toBeUndefined();
    // The entry was signed with the explicit secret, not the environment's.
    await keyv.set("k", "v");
    expect(await createKeyv({ env: ENV, store, namespace: "n" }).get("k")).toBe("v");
  });

  it("strict (option or SIGNED_CACHE_STRICT) makes a tampered entry reject with BadSignature", async () => {
    for (const options of [{ strict: true }, { env: { ...ENV, SIGNED_CACHE_STRICT: "1" } }]) {
      const store = new Map<string, unknown>();
      const keyv = createKeyv({ env: ENV, store, ...options });
      await keyv.set("k", "v");
      store.set("keyv:k", String(store.get("keyv:k")).replace('"v"', '"w"'));
      await expect(keyv.get("k")).rejects.toBeInstanceOf(BadSignature);
    }
  });

  it("applies the default ttl from SIGNED_CACHE_TTL", async () => {
    const keyv = createKeyv({ env: { ...ENV, SIGNED_CACHE_TTL: "50" } });
    await keyv.set("k", "v");
    expect(await keyv.get("k")).toBe("v");
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(await keyv.get("k")).toBeUndefined();
  });

  it("accepts fallbacks from the environment and resigns when asked", async () => {
    const store = new Map<string, unknown>();
    await createKeyv({ env: ENV, store, secret: OLD_SECRET }).set("k", "v");
    const env = { ...ENV, SIGNED_CACHE_SECRET_FALLBACKS: OLD_SECRET, SIGNED_CACHE_RESIGN: "true" };
    expect(await createKeyv({ env, store }).get("k")).toBe("v");
    expect(await createKeyv({ env: ENV, store }).get("k")).toBe("v");
  });

  it("iterates over a memory store", async () => {
    const keyv = createKeyv({ env: ENV });
    await keyv.set("a", 1);
    await keyv.set("b", 2);
    const entries: [string, unknown][] = [];
    for await (const entry of keyv.iterator?.(undefined) ?? []) entries.push(entry);
    expect(entries.sort()).toEqual([
      ["a", 1],
      ["b", 2],
    ]);
  });

  it("refuses a missing or short secret, url together with store, and bad options", () => {
    expect(() => createKeyv({ env: { SIGNED_CACHE_URL: "memory://" } })).toThrow(
      /secret is missing/,
    );
    expect(() => createKeyv({ env: ENV, secret: "short" })).toThrow(ConfigError);
    expect(() => createKeyv({ env: ENV, url: "memory://", store: new Map() })).toThrow(
      /url or store, not both/,
    );
    expect(() => createKeyv({ env: ENV, ttl: -1 })).toThrow(/ttl/);
    expect(() => createKeyv({ env: ENV, namespace: "a:b" })).toThrow(/namespace/);
    expect(() => createKeyv({ env: ENV, storeTimeout: -1 })).toThrow(/storeTimeout/);
    expect(() => createKeyv({ env: { ...ENV, SIGNED_CACHE_TTL: "soon" } })).toThrow(
      /SIGNED_CACHE_TTL/,
    );
  });
});

describe("createKeyv: accepted algorithms", () => {
  it("reads SIGNED_CACHE_ALGORITHM(S) and names the variable when the list leaves out what is written", async () => {
    const store = new Map<string, unknown>();
    const env = {
      ...ENV,
      SIGNED_CACHE_ALGORITHM: "sha512",
      SIGNED_CACHE_ALGORITHMS: "sha512,sha256",
    };
    const keyv = createKeyv({ env, store });
    await keyv.set("k", "v");
    expect(String(store.get("keyv:k"))).toMatch(/^sc2\.hs512\./);
    await createKeyv({ env: ENV, store }).set("old", "sha256 entry");
    expect(await keyv.get("old")).toBe("sha256 entry");
    expect(() =>
      createKeyv({ env: { ...ENV, SIGNED_CACHE_ALGORITHMS: "sha512" }, store: new Map() }),
    ).toThrow(/SIGNED_CACHE_ALGORITHMS: algorithms must include sha256/);
  });
});
