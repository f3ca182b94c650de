import Keyv, { type KeyvStoreAdapter } from "keyv";
import { afterEach, describe, expect, it, vi } from "vitest";
import { BadData, BadSignature, ConfigError, StoreError } from "../src/errors.ts";
import { type SignedStoreOptions, signedStore } from "../src/store.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "./support/secrets.ts";

function setup(options: SignedStoreOptions = {}, secret = SECRET) {
  const map = new Map<string, unknown>();
  const store = signedStore(map, secret, options);
  const keyv = new Keyv({ store, throwOnErrors: options.strict ?? false });
  return { map, store, keyv };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("signedStore over a Map", () => {
  it("writes envelopes, never plain values", async () => {
    const { map, keyv } = setup();
    await keyv.set("foo", { hello: "world" });
    const stored = map.get("keyv:foo");
    expect(typeof stored).toBe("string");
    expect(stored).toMatch(/^sc1\.hs256\./);
    expect(await keyv.get("foo")).toEqual({ hello: "world" });
  });

  it("lax: a tampered entry is a miss, is deleted and is reported", async () => {
    const onInvalid = vi.fn();
    const { map, keyv } = setup({ onInvalid });
    await keyv.set("foo", "bar");
    map.set("keyv:foo", String(map.get("keyv:foo")).replace("bar", "baz"));
    expect(await keyv.get("foo")).toBeUndefined();
    expect(map.has("keyv:foo")).toBe(false);
    expect(onInvalid).toHaveBeenCalledOnce();
    expect(onInvalid.mock.calls[0]?.[0]).toBeInstanceOf(BadSignature);
    expect(onInvalid.mock.calls[0]?.[0]).toMatchObject({ reason: "mismatch", key: "keyv:foo" });
  });

  it("strict: a tampered entry rejects with BadSignature and is kept as evidence", async () => {
    const onInvalid = vi.fn();
    const { map, keyv } = setup({ strict: true, onInvalid });
    await keyv.set("foo", "bar");
    map.set("keyv:foo", String(map.get("keyv:foo")).replace("bar", "baz"));
    await expect(keyv.get("foo")).rejects.toMatchObject({
      name: "BadSignature",
      code: "ERR_SIGNED_CACHE_BAD_SIGNATURE",
      reason: "mismatch",
    });
    expect(map.has("keyv:foo")).toBe(true);
    expect(onInvalid).toHaveBeenCalledOnce();
  });

  it("an onInvalid that throws neither breaks the read nor escapes", async () => {
    const errors: unknown[] = [];
    const { map, keyv } = setup({
      onInvalid: () => {
        throw new Error("logger down");
      },
    });
    keyv.on("error", (error) => errors.push(error));
    map.set("keyv:foo", "planted");
    expect(await keyv.get("foo")).toBeUndefined();
    expect(errors).toHaveLength(1);
  });

  it("has() verifies: a tampered entry is not present", async () => {
    const { map, store, keyv } = setup();
    await keyv.set("foo", "bar");
    expect(await keyv.has("foo")).toBe(true);
    map.set("keyv:foo", `${map.get("keyv:foo")}x`);
    expect(await store.has("keyv:foo")).toBe(false);
    expect(await keyv.has("missing")).toBe(false);
  });

  it("an entry past its signed expiry is a plain miss, deleted, never an error", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const onInvalid = vi.fn();
    const { map, store } = setup({ strict: true, onInvalid });
    await store.set("k", "v", 1000);
    expect(await store.get("k")).toBe("v");
    vi.setSystemTime(1_000_000 + 1000);
    expect(await store.get("k")).toBe("v");
    vi.setSystemTime(1_000_000 + 1001);
    expect(await store.get("k")).toBeUndefined();
    expect(map.has("k")).toBe(false);
    expect(onInvalid).not.toHaveBeenCalled();
  });

  it("a ttl of 0, negative or absent means no expiry", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { store } = setup();
    await store.set("a", "v", 0);
    await store.set("b", "v", -5);
    await store.set("c", "v");
    vi.setSystemTime(9_000_000_000_000);
    expect(await store.getMany(["a", "b", "c"])).toEqual(["v", "v", "v"]);
  });

  it("fallback keys verify; resign rewrites under the current key keeping the remaining TTL", async () => {
    vi.useFakeTimers({ now: 5_000_000 });
    const map = new Map<string, unknown>();
    await signedStore(map, OLD_SECRET).set("k", "v", 10_000);
    const oldEnvelope = map.get("k");

    const noResign = signedStore(map, SECRET, { fallbacks: [OLD_SECRET] });
    expect(await noResign.get("k")).toBe("v");
    expect(map.get("k")).toBe(oldEnvelope);

    vi.setSystemTime(5_004_000);
    const resigning = signedStore(map, SECRET, { fallbacks: [OLD_SECRET], resign: true });
    expect(await resigning.get("k")).toBe("v");
    const resigned = String(map.get("k"));
    expect(resigned).not.toBe(oldEnvelope);
    expect(resigned).toContain(`.${resigning.kids[0]}.`);
    expect(resigned).toContain(".5010000.");
    // The current key alone now reads it.
    expect(await signedStore(map, SECRET).get("k")).toBe("v");
  });

  it("without the old secret as fallback, old entries are unknown-key misses", async () => {
    const map = new Map<string, unknown>();
    await signedStore(map, OLD_SECRET).set("k", "v");
    const onInvalid = vi.fn();
    expect(await signedStore(map, SECRET, { onInvalid }).get("k")).toBeUndefined();
    expect(onInvalid.mock.calls[0]?.[0]).toMatchObject({ reason: "unknown-key" });
  });

  it("signs non-string values faithfully when Keyv does not serialize", async () => {
    const map = new Map<string, unknown>();
    const keyv = new Keyv({
      store: signedStore(map, SECRET),
      serialize: undefined,
      deserialize: undefined,
    });
    const value = { when: new Date(5), bytes: new Uint8Array([9, 8]) };
    await keyv.set("k", value);
    expect(typeof map.get("keyv:k")).toBe("string");
    expect(await keyv.get("k")).toEqual(value);
  });

  it("getMany, setMany and deleteMany verify and sign each entry", async () => {
    const { map, store } = setup();
    await store.setMany([
      { key: "a", value: "1" },
      { key: "b", value: "2", ttl: 60_000 },
      { key: "c", value: "3" },
    ]);
    map.set("b", "planted");
    expect(await store.getMany(["a", "b", "c", "d"])).toEqual(["1", undefined, "3", undefined]);
    expect(await store.deleteMany(["a", "c"])).toBe(true);
    expect(await store.deleteMany(["a", "c"])).toBe(false);
    expect(map.size).toBe(0);
  });

  it("clear() on a Map empties only its own namespace", async () => {
    const map = new Map<string, unknown>();
    const one = new Keyv({ store: signedStore(map, SECRET), namespace: "one" });
    const two = new Keyv({ store: signedStore(map, SECRET), namespace: "two" });
    await one.set("k", "1");
    await two.set("k", "2");
    await one.clear();
    expect(await one.get("k")).toBeUndefined();
    expect(await two.get("k")).toBe("2");
  });

  it("iterates only valid entries of its namespace", async () => {
    const onInvalid = vi.fn();
    const map = new Map<string, unknown>();
    const store = signedStore(map, SECRET, { onInvalid });
    const keyv = new Keyv({ store, namespace: "ns" });
    await keyv.set("a", "1");
    await keyv.set("b", "2");
    await new Keyv({ store: signedStore(map, SECRET), namespace: "other" }).set("c", "3");
    map.set("ns:planted", "not signed");
    const seen: Array<[string, unknown]> = [];
    for await (const entry of store.iterator("ns")) seen.push(entry);
    expect(seen.map(([key]) => key).sort()).toEqual(["ns:a", "ns:b"]);
    expect(onInvalid).toHaveBeenCalledOnce();
    expect(map.has("ns:planted")).toBe(false);
  });

  it("binds the namespace Keyv sets: same key, other namespace does not verify", async () => {
    const map = new Map<string, unknown>();
    const a = new Keyv({ store: signedStore(map, SECRET), namespace: "a", useKeyPrefix: false });
    const b = new Keyv({ store: signedStore(map, SECRET), namespace: "b", useKeyPrefix: false });
    await a.set("k", "from-a");
    expect(await b.get("k")).toBeUndefined();
  });
});

describe("signedStore construction", () => {
  it("refuses a short secret at construction, not on first use", () => {
    expect(() => signedStore(new Map(), "short")).toThrow(ConfigError);
    expect(() => signedStore(new Map(), SECRET, { fallbacks: ["short"] })).toThrow(ConfigError);
  });

  it("refuses something that is not a store", () => {
    expect(() => signedStore({ get() {} } as never, SECRET)).toThrow(ConfigError);
  });

  it("refuses an unknown algorithm and a bad timeout", () => {
    expect(() => signedStore(new Map(), SECRET, { algorithm: "md5" as never })).toThrow(
      ConfigError,
    );
    expect(() => signedStore(new Map(), SECRET, { storeTimeout: -1 })).toThrow(ConfigError);
  });

  it("reads entries in every algorithm, whatever it writes", async () => {
    const map = new Map<string, unknown>();
    await signedStore(map, SECRET, { algorithm: "sha512" }).set("a", "1");
    await signedStore(map, SECRET, { algorithm: "blake2b512" }).set("b", "2");
    await signedStore(map, SECRET, { encrypt: true }).set("c", "3");
    expect(await signedStore(map, SECRET).getMany(["a", "b", "c"])).toEqual(["1", "2", "3"]);
  });

  it("an entry from another secret is rejected", async () => {
    const map = new Map<string, unknown>();
    await signedStore(map, OTHER_SECRET).set("k", "v");
    await expect(signedStore(map, SECRET, { strict: true }).get("k")).rejects.toBeInstanceOf(
      BadData,
    );
  });
});

/** A minimal adapter standing in for a backend that misbehaves: only its failure is simulated. */
function faultyAdapter(behaviour: "hang" | "throw"): KeyvStoreAdapter {
  const fail = () =>
    behaviour === "hang" ? new Promise<never>(() => {}) : Promise.reject(new Error("ECONNREFUSED"));
  return {
    opts: { dialect: "faulty" },
    namespace: undefined,
    get: fail,
    set: fail,
    delete: fail,
    clear: fail,
    on() {
      return this;
    },
  } as unknown as KeyvStoreAdapter;
}

describe("signedStore over an adapter that fails", () => {
  it("bounds every call by storeTimeout with a StoreError", async () => {
    const store = signedStore(faultyAdapter("hang"), SECRET, { storeTimeout: 20 });
    await expect(store.get("k")).rejects.toBeInstanceOf(StoreError);
    await expect(store.set("k", "v")).rejects.toThrow(/within 20 ms/);
  });

  it("Keyv turns a failing store into a miss unless throwOnErrors is on", async () => {
    const lax = new Keyv({ store: signedStore(faultyAdapter("throw"), SECRET) });
    expect(await lax.get("k")).toBeUndefined();
    const strict = new Keyv({
      store: signedStore(faultyAdapter("throw"), SECRET),
      throwOnErrors: true,
    });
    await expect(strict.get("k")).rejects.toThrow("ECONNREFUSED");
  });

  it("forwards the adapter's error events and the namespace", () => {
    const adapter = faultyAdapter("throw");
    let listener: ((error: unknown) => void) | undefined;
    adapter.on = (_event: string, fn: (error: unknown) => void) => {
      listener = fn;
      return adapter;
    };
    const store = signedStore(adapter, SECRET);
    const keyv = new Keyv({ store, namespace: "ns" });
    expect(adapter.namespace).toBe("ns");
    const seen: unknown[] = [];
    keyv.on("error", (error) => seen.push(error));
    listener?.(new Error("connection reset"));
    expect(seen).toHaveLength(1);
  });
});
