import { EventEmitter } from "node:events";
import { inspect } from "node:util";
import fc from "fast-check";
// The decorator under Keyv 5, whatever Keyv the run installed; test/store-keyv6.test.ts has
// it under Keyv 6.
import Keyv, { type KeyvStoreAdapter } from "keyv5";
import { afterEach, describe, expect, it, vi } from "vitest";
import { inspectEnvelope } from "../src/envelope.ts";
import {
  BadData,
  BadSignature,
  ConfigError,
  EntryTooLarge,
  InvalidKey,
  StoreError,
} from "../src/errors.ts";
import { KEY_LIMITS } from "../src/key-limits.ts";
import { Keyring } from "../src/keyring.ts";
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
    expect(stored).toMatch(/^sc2\.hs256\.[\w-]{8}\.0\.keyv\.s\./);
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

  it("reads only what it writes, unless algorithms lists more (no silent downgrade)", async () => {
    const map = new Map<string, unknown>();
    await signedStore(map, SECRET, { algorithm: "sha512" }).set("a", "1");
    await signedStore(map, SECRET, { algorithm: "blake2b512" }).set("b", "2");
    await signedStore(map, SECRET, { encrypt: true }).set("c", "3");
    await signedStore(map, SECRET).set("d", "4");
    const snapshot = new Map(map);
    const migrating = signedStore(new Map(snapshot), SECRET, {
      algorithms: ["sha256", "sha512", "blake2b512", "aes-256-gcm"],
    });
    expect(await migrating.getMany(["a", "b", "c", "d"])).toEqual(["1", "2", "3", "4"]);
    const reasons: string[] = [];
    const plain = signedStore(new Map(snapshot), SECRET, {
      onInvalid: (error) => reasons.push((error as BadSignature).reason),
    });
    expect(await plain.getMany(["a", "b", "c", "d"])).toEqual([
      undefined,
      undefined,
      undefined,
      "4",
    ]);
    expect(reasons).toEqual(["unsupported-version", "unsupported-version", "unsupported-version"]);
    // An encrypting store refuses entries that are only signed: encryption is not optional.
    const sealed = signedStore(new Map(snapshot), SECRET, { encrypt: true, strict: true });
    expect(await sealed.get("c")).toBe("3");
    await expect(sealed.get("d")).rejects.toMatchObject({ reason: "unsupported-version" });
  });

  it("refuses algorithms that leave out what the store writes, or name unknown ones", () => {
    expect(() => signedStore(new Map(), SECRET, { algorithms: ["sha512"] })).toThrow(ConfigError);
    expect(() => signedStore(new Map(), SECRET, { encrypt: true, algorithms: ["sha256"] })).toThrow(
      ConfigError,
    );
    expect(() =>
      signedStore(new Map(), SECRET, { algorithms: ["sha256", "md5" as "sha256"] }),
    ).toThrow(ConfigError);
    expect(() => signedStore(new Map(), SECRET, { algorithms: [] })).toThrow(ConfigError);
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

describe("integrity at the edges", () => {
  it("keeps purposes apart: a plain value never verifies as an HTTP entry, nor back", async () => {
    const map = new Map<string, unknown>();
    const reasons: string[] = [];
    const onInvalid = (error: BadData) => reasons.push((error as BadSignature).reason);
    const plain = signedStore(map, SECRET, { onInvalid });
    const http = plain.withPurpose("axios");
    expect(http.purpose).toBe("axios");
    await plain.set("k", '{"value":{"state":"cached"}}');
    expect(await http.get("k")).toBeUndefined();
    await http.set("k", "an http entry");
    expect(await plain.get("k")).toBeUndefined();
    expect(reasons).toEqual(["mismatch", "mismatch"]);
    const strict = signedStore(map, SECRET, { strict: true, purpose: "fetch" });
    await plain.set("k", "v");
    await expect(strict.get("k")).rejects.toMatchObject({ reason: "mismatch" });
    expect(() => signedStore(map, SECRET, { purpose: "Not A Label" })).toThrow(ConfigError);
  });

  it("whatever ttl set accepts, get returns the value (fake clock)", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: 1_800_000_000_000 });
    const { keyv, store, map } = setup();
    const ttls = fc.oneof(
      fc.double(),
      fc.constantFrom(
        Number.MAX_SAFE_INTEGER,
        Number.MAX_VALUE,
        1e21,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        Number.NaN,
        0,
        -0,
        0.5,
        1,
      ),
      fc.integer(),
    );
    const values = fc.oneof(fc.jsonValue(), fc.string({ unit: "binary" }));
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: "grapheme", maxLength: 30 }),
        values,
        ttls,
        async (key, value, ttl) => {
          // Keyv itself reads a negative ttl as "already expired"; every other ttl round-trips.
          if (!(ttl < 0)) {
            await keyv.set(key, value, ttl);
            // Keyv's JSON serializer writes -0 as 0: compare with what JSON keeps.
            expect(await keyv.get(key)).toEqual(JSON.parse(JSON.stringify(value)));
          }
          // The adapter itself, without Keyv's own ttl handling in front.
          await store.set(`raw:${key}`, "v", ttl);
          expect(await store.get(`raw:${key}`)).toBe("v");
        },
      ),
      { numRuns: 400 },
    );
    expect(
      [...map.values()].every((stored) =>
        /^sc2\.hs256\.[\w-]{8}\.(0|[1-9]\d*)\./.test(String(stored)),
      ),
    ).toBe(true);
  });

  it("turns huge and non-finite ttls into no expiry, and keeps finite ones", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: 1_800_000_000_000 });
    const { store, map } = setup();
    for (const ttl of [Number.MAX_SAFE_INTEGER, 1e21, Number.POSITIVE_INFINITY]) {
      await store.set("k", "v", ttl);
      expect(String(map.get("k"))).toMatch(/^sc2\.hs256\.[\w-]{8}\.0\./);
    }
    await store.set("k", "v", 1.2);
    expect(String(map.get("k"))).toContain(".1800000000002.");
    vi.setSystemTime(1_800_000_000_003);
    expect(await store.get("k")).toBeUndefined();
  });

  it("refuses keys with no faithful UTF-8 form at set, and never reads their alias", async () => {
    const onInvalid = vi.fn();
    const { store, map } = setup({ onInvalid });
    await expect(store.set("a\uD800", "1")).rejects.toBeInstanceOf(InvalidKey);
    await store.set("a\uFFFD", "2");
    expect(await store.get("a\uD800")).toBeUndefined();
    expect(await store.has("a\uD800")).toBe(false);
    expect(await store.delete("a\uD800")).toBe(false);
    expect(await store.get("a\uFFFD")).toBe("2");
    expect(map.size).toBe(1);
    expect(onInvalid).not.toHaveBeenCalled();
  });

  it("refuses keys over what the backend declares it stores, and NUL where it drops it", async () => {
    const map = new Map<string, unknown>();
    const adapter = Object.assign(new EventEmitter(), {
      opts: { url: "test://" },
      namespace: undefined as string | undefined,
      get: async (key: string) => map.get(key),
      set: async (key: string, value: unknown) => void map.set(key, value),
      delete: async (key: string) => map.delete(key),
      clear: async () => map.clear(),
      [KEY_LIMITS]: { maxBytes: 16, nul: false },
    });
    const store = signedStore(adapter as unknown as KeyvStoreAdapter, SECRET);
    await store.set("é".repeat(8), "fits");
    expect(await store.get("é".repeat(8))).toBe("fits");
    await expect(store.set("é".repeat(9), "v")).rejects.toThrow(/16 bytes/);
    await expect(store.set("a\0b", "v")).rejects.toBeInstanceOf(InvalidKey);
  });

  it("does not cache an entry over maxEntryBytes, and removes the older one", async () => {
    const errors: unknown[] = [];
    const { store, map } = setup({ maxEntryBytes: 4096 });
    store.on("error", (error) => errors.push(error));
    await store.set("k", "small");
    await expect(store.set("k", "é".repeat(2100))).rejects.toBeInstanceOf(EntryTooLarge);
    expect(map.has("k")).toBe(false);
    expect(await store.get("k")).toBeUndefined();
    expect(() => signedStore(new Map(), SECRET, { maxEntryBytes: 10 })).toThrow(ConfigError);
  });

  it("rejects a planted entry over maxEntryBytes before any parsing, in both modes", async () => {
    const planted = `sc2.hs256.AAAAAAAA.0.keyv.s.${"x".repeat(2_000_000)}`;
    const reasons: string[] = [];
    const lax = setup({ maxEntryBytes: 1_000_000, onInvalid: (e) => reasons.push(e.message) });
    lax.map.set("k", planted);
    expect(await lax.store.get("k")).toBeUndefined();
    expect(lax.map.has("k")).toBe(false);
    expect(reasons[0]).toMatch(/maxEntryBytes/);
    const strict = setup({ maxEntryBytes: 1_000_000, strict: true });
    strict.map.set("k", planted);
    await expect(strict.store.get("k")).rejects.toMatchObject({ reason: "malformed" });
    expect(strict.map.has("k")).toBe(true);
  });

  it("reads an entry of the previous format (sc1) as a plain miss: deleted, never an error", async () => {
    const onInvalid = vi.fn();
    const sc1 = "sc1.hs256.TN14a4nL.0.s.CmUgBcQxYD_fM0V45aRfOnW-gBC9kBF2kfgeUkCwLJI.{}";
    for (const strict of [false, true]) {
      const { store, map } = setup({ strict, onInvalid });
      map.set("keyv:k", sc1);
      expect(await store.get("keyv:k")).toBeUndefined();
      expect(map.has("keyv:k")).toBe(false);
      map.set("keyv:k", sc1);
      const reports = [];
      for await (const report of store.audit()) reports.push(report);
      const [report] = reports;
      expect(report).toMatchObject({ status: "expired" });
    }
    expect(onInvalid).not.toHaveBeenCalled();
  });

  it("keeps the key out of messages and out of an error's enumerable properties", async () => {
    const { store, map } = setup({ strict: true });
    map.set("session:tok_abc123", "planted");
    const error = await store.get("session:tok_abc123").catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(BadSignature);
    expect((error as BadSignature).key).toBe("session:tok_abc123");
    expect(JSON.stringify(error)).not.toContain("tok_abc123");
    expect(inspect(error)).not.toContain("tok_abc123");
  });

  it("prints no password, secret or derived key when inspected", () => {
    const adapter = Object.assign(new EventEmitter(), {
      opts: { url: "redis://app:hunter2-password@127.0.0.1:6379", dialect: "redis" },
      get: async () => undefined,
      set: async () => true,
      delete: async () => true,
      clear: async () => undefined,
    });
    const store = signedStore(adapter as unknown as KeyvStoreAdapter, SECRET, {
      fallbacks: [OLD_SECRET],
    });
    const keyv = new Keyv({ store });
    for (const shown of [
      inspect(store, { depth: 8 }),
      inspect(keyv, { depth: 8 }),
      JSON.stringify(store.opts),
    ]) {
      expect(shown).not.toContain("hunter2");
      expect(shown).not.toContain(SECRET.slice(0, 12));
      expect(shown).not.toContain(OLD_SECRET.slice(0, 12));
    }
  });

  it("re-signs under the current key keeping purpose, expiry and protection", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: 1_800_000_000_000 });
    const map = new Map<string, unknown>();
    await signedStore(map, OLD_SECRET, { purpose: "axios", encrypt: true }).set("a", "x", 60_000);
    await signedStore(map, OLD_SECRET, { purpose: "axios", algorithm: "sha512" }).set(
      "b",
      "y",
      60_000,
    );
    const rotated = signedStore(map, SECRET, {
      fallbacks: [OLD_SECRET],
      resign: true,
      purpose: "axios",
      algorithms: ["sha256", "sha512", "aes-256-gcm"],
    });
    expect(await rotated.getMany(["a", "b"])).toEqual(["x", "y"]);
    const current = new Keyring(SECRET).current.kid;
    expect(inspectEnvelope(map.get("a"))).toMatchObject({
      algorithm: "a256gcm",
      kid: current,
      purpose: "axios",
      expiresAt: 1_800_000_060_000,
    });
    expect(inspectEnvelope(map.get("b"))).toMatchObject({ algorithm: "hs512", kid: current });
  });
});

describe("one adapter under several signed stores", () => {
  function sharedAdapter() {
    const map = new Map<string, unknown>();
    return Object.assign(new EventEmitter(), {
      opts: { url: "test://shared" },
      namespace: undefined as string | undefined,
      get: async (key: string) => map.get(key),
      set: async (key: string, value: unknown) => void map.set(key, value),
      delete: async (key: string) => map.delete(key),
      clear: async () => map.clear(),
    });
  }

  it("refuses a second namespace on the same adapter instead of mixing their keys", () => {
    const shared = sharedAdapter();
    const adapter = shared as unknown as KeyvStoreAdapter;
    new Keyv({ store: signedStore(adapter, SECRET), namespace: "a" });
    expect(() => new Keyv({ store: signedStore(adapter, SECRET), namespace: "b" })).toThrow(
      ConfigError,
    );
    // The same namespace twice (an HTTP cache beside plain values, say) is fine.
    const again = new Keyv({ store: signedStore(adapter, SECRET), namespace: "a" });
    expect(again.namespace).toBe("a");
    expect(shared.namespace).toBe("a");
  });

  it("adds one error listener to the adapter, however many stores wrap it", () => {
    const shared = sharedAdapter();
    const heard: unknown[] = [];
    for (let i = 0; i < 50; i++) {
      const store = signedStore(shared as unknown as KeyvStoreAdapter, SECRET);
      if (i === 0) store.on("error", (error) => heard.push(error));
    }
    expect(shared.listenerCount("error")).toBe(1);
    shared.emit("error", new Error("connection reset"));
    expect(heard).toHaveLength(1);
  });
});

describe("walks bounded per step, not per walk", () => {
  /** An adapter whose iterator answers each entry after `delayMs`, or never past `stallAt`. */
  function slowAdapter(delayMs: number, stallAt = Number.POSITIVE_INFINITY) {
    const map = new Map<string, unknown>();
    const adapter = {
      opts: { url: "test://slow" },
      namespace: undefined as string | undefined,
      get: async (key: string) => map.get(key),
      set: async (key: string, value: unknown) => void map.set(key, value),
      delete: async (key: string) => map.delete(key),
      deleteMany: async (keys: string[]) => keys.every((key) => map.delete(key)),
      clear: async () => map.clear(),
      async *iterator() {
        let index = 0;
        for (const entry of [...map]) {
          if (index++ >= stallAt) await new Promise(() => {});
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          yield entry;
        }
      },
    };
    return { map, adapter: adapter as unknown as KeyvStoreAdapter };
  }

  it("clears a namespace whose walk takes longer than storeTimeout in all", async () => {
    const { map, adapter } = slowAdapter(10);
    const keyv = new Keyv({
      store: signedStore(adapter, SECRET, { storeTimeout: 150 }),
      namespace: "n",
    });
    for (let i = 0; i < 40; i++) await keyv.set(`k${i}`, i);
    const started = Date.now();
    await keyv.clear();
    expect(Date.now() - started).toBeGreaterThan(150);
    expect(map.size).toBe(0);
  });

  it("fails a walk whose store stops answering within storeTimeout of the stalled step", async () => {
    const { adapter } = slowAdapter(1, 5);
    const store = signedStore(adapter, SECRET, { storeTimeout: 100, strict: true });
    const keyv = new Keyv({ store, namespace: "n", throwOnErrors: true });
    for (let i = 0; i < 10; i++) await keyv.set(`k${i}`, i);
    await expect(keyv.clear()).rejects.toBeInstanceOf(StoreError);
  });
});

describe("iterating through any Keyv", () => {
  it("gives a hand-built Keyv over a signed Map an iterator of valid entries", async () => {
    const map = new Map<string, unknown>();
    const keyv = new Keyv({ store: signedStore(map, SECRET), namespace: "n" });
    await keyv.set("a", 1);
    await keyv.set("b", { two: 2 });
    map.set("n:planted", "not signed");
    expect(keyv.iterator).toBeTypeOf("function");
    const seen: [string, unknown][] = [];
    for await (const entry of keyv.iterator?.(undefined) ?? [])
      seen.push(entry as [string, unknown]);
    expect(seen.sort()).toEqual([
      ["a", 1],
      ["b", { two: 2 }],
    ]);
  });
});

describe("maintenance racing live writers", () => {
  /** An adapter over a Map whose walk reads each entry just before the application rewrites it. */
  function racingAdapter(map: Map<string, unknown>, fresh: (key: string) => unknown) {
    return {
      opts: { url: "test://racing" },
      namespace: undefined as string | undefined,
      get: async (key: string) => map.get(key),
      set: async (key: string, value: unknown) => void map.set(key, value),
      delete: async (key: string) => map.delete(key),
      clear: async () => map.clear(),
      async *iterator() {
        for (const [key, raw] of [...map]) {
          map.set(key, fresh(key)); // the application's write lands after the walk's read
          yield [key, raw];
        }
      },
    } as unknown as KeyvStoreAdapter;
  }

  it("resign never writes an old value over a fresher one, and purge never deletes it", async () => {
    const map = new Map<string, unknown>();
    const old = new Keyv({ store: signedStore(map, OLD_SECRET), namespace: "n" });
    await old.set("role", "admin");
    map.set("n:junk", "not an envelope");
    const freshRole = await (async () => {
      const scratch = new Map<string, unknown>();
      const keyv = new Keyv({ store: signedStore(scratch, SECRET), namespace: "n" });
      await keyv.set("role", "user");
      return scratch.get("n:role");
    })();
    const store = signedStore(
      racingAdapter(map, (key) => (key === "n:role" ? freshRole : "fresh junk")),
      SECRET,
      {
        fallbacks: [OLD_SECRET],
      },
    );
    store.namespace = "n";
    const actions = [];
    for await (const entry of store.audit("n", { resign: true, purge: true }))
      actions.push(entry.action);
    expect(map.get("n:role")).toBe(freshRole);
    expect(map.get("n:junk")).toBe("fresh junk");
    // The junk entry was chosen for deletion; its rewrite since is kept all the same.
    expect(actions).toEqual([undefined, "deleted"]);
  });
});
