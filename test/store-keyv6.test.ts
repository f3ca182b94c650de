import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Keyv5 from "keyv5";
import Keyv6, { KeyvMemoryAdapter } from "keyv6";
import { afterAll, describe, expect, it } from "vitest";
import { BadSignature, ConfigError } from "../src/errors.ts";
import { signedStore, type WrappableStore } from "../src/store.ts";
import { storeFromUrl } from "../src/stores.ts";
import { findBackend } from "./support/backends.ts";
import { OTHER_SECRET, SECRET } from "./support/secrets.ts";

// Keyv 6 as an app installs it, beside this package's Keyv 5: the signed store must follow
// whichever major adopts it.

const dir = mkdtempSync(join(tmpdir(), "sc-keyv6-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");

let files = 0;
/** The same backend as two stores would share it: one Map, or two adapters over one file/server. */
const backends: [string, () => [WrappableStore, WrappableStore], boolean][] = [
  [
    "one Map",
    () => {
      const map = new Map<string, unknown>();
      return [map, map];
    },
    true,
  ],
  [
    "one SQLite file",
    () => {
      const url = `sqlite://${join(dir, `shared-${files++}.sqlite`)}`;
      return [storeFromUrl(url), storeFromUrl(url)];
    },
    true,
  ],
  ["one Redis server", () => [storeFromUrl(redis.url), storeFromUrl(redis.url)], redis.reachable],
];

/** An entry with a 60 s ttl stays; one with 150 ms is there, then gone once it expired. */
async function expectTtlsKept(keyv: Keyv6): Promise<void> {
  await keyv.set("long", "kept", 60_000);
  await keyv.set("short", "gone", 150);
  expect(await keyv.get("long")).toBe("kept");
  expect(await keyv.get("short")).toBe("gone");
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(await keyv.get("short")).toBeUndefined();
  expect(await keyv.get("long")).toBe("kept");
}

const unique = () => `k6-${Math.random().toString(36).slice(2, 10)}`;

describe.each(backends)("Keyv 6 over %s", (_name, open, reachable) => {
  it.runIf(reachable)("keeps two namespaces apart: each reads its own entry", async () => {
    const [first, second] = open();
    const ns = unique();
    const a = new Keyv6({ store: signedStore(first, SECRET), namespace: `${ns}-a` });
    const b = new Keyv6({ store: signedStore(second, SECRET), namespace: `${ns}-b` });
    try {
      await a.set("user:1", "from a");
      await b.set("user:1", "from b");
      expect(await a.get("user:1")).toBe("from a");
      expect(await b.get("user:1")).toBe("from b");
      // Read again: neither read deleted the other's entry as a bad signature.
      expect(await a.get("user:1")).toBe("from a");
      expect(await b.get("user:1")).toBe("from b");
    } finally {
      await a.clear();
      await b.clear();
      await a.disconnect();
      await b.disconnect();
    }
  });

  it.runIf(reachable)(
    "lists its own entries with iterator() and clear() clears only them",
    async () => {
      const [first, second] = open();
      const ns = unique();
      const a = new Keyv6({ store: signedStore(first, SECRET), namespace: `${ns}-a` });
      const b = new Keyv6({ store: signedStore(second, SECRET), namespace: `${ns}-b` });
      try {
        await a.set("x", 1);
        await a.set("y", 2);
        await b.set("x", 3);
        const listed: [unknown, unknown][] = [];
        for await (const entry of a.iterator()) listed.push(entry as [unknown, unknown]);
        expect(listed.sort()).toEqual([
          ["x", 1],
          ["y", 2],
        ]);
        await a.clear();
        expect(await a.get("x")).toBeUndefined();
        expect(await b.get("x")).toBe(3);
      } finally {
        await b.clear();
        await a.disconnect();
        await b.disconnect();
      }
    },
  );

  it.runIf(reachable)("keeps an entry with a ttl until it expires", async () => {
    const [store] = open();
    const keyv = new Keyv6({ store: signedStore(store, SECRET), namespace: unique() });
    try {
      await expectTtlsKept(keyv);
    } finally {
      await keyv.clear();
      await keyv.disconnect();
    }
  });
});

describe("Keyv 6 over an adapter of its own contract (absolute expires, its own namespace)", () => {
  it("passes the adapter an absolute expiry: an entry with a ttl stays until it expires", async () => {
    const adapter = new KeyvMemoryAdapter(new Map());
    const keyv = new Keyv6({ store: signedStore(adapter as never, SECRET), namespace: "ttl" });
    await expectTtlsKept(keyv);
  });

  it("lists and clears through the adapter's own namespace", async () => {
    const map = new Map();
    const a = new Keyv6({
      store: signedStore(new KeyvMemoryAdapter(map) as never, SECRET),
      namespace: "a",
    });
    const b = new Keyv6({
      store: signedStore(new KeyvMemoryAdapter(map) as never, SECRET),
      namespace: "b",
    });
    await a.set("k", "A");
    await b.set("k", "B");
    const listed: unknown[] = [];
    for await (const entry of a.iterator()) listed.push(entry);
    expect(listed).toEqual([["k", "A"]]);
    await a.clear();
    expect(await a.get("k")).toBeUndefined();
    expect(await b.get("k")).toBe("B");
  });

  it("rejects an entry tampered with in the adapter", async () => {
    const map = new Map<string, { value: string }>();
    const keyv = new Keyv6({
      store: signedStore(new KeyvMemoryAdapter(map) as never, SECRET, { strict: true }),
      namespace: "t",
    });
    await keyv.set("k", "genuine");
    const held = map.get("t::k");
    expect(held?.value).toContain("genuine");
    map.set("t::k", { ...held, value: String(held?.value).replace("genuine", "forged!") });
    await expect(keyv.get("k")).rejects.toBeInstanceOf(BadSignature);
  });
});

describe("faults the adapter reports as events, under Keyv 6", () => {
  it("never throw back into the adapter (a driver's event), even while nobody listens to Keyv", () => {
    const adapter = new KeyvMemoryAdapter(new Map());
    // Keyv 6 listens to its store and rethrows what it hears while nobody listens to it.
    new Keyv6({ store: signedStore(adapter as never, SECRET), namespace: "events" });
    expect(() => adapter.emit("error", new Error("Socket closed unexpectedly"))).not.toThrow();
  });

  it("a failed read reaches a listener on the Keyv once", async () => {
    const adapter = new KeyvMemoryAdapter(new Map());
    adapter.get = async () => {
      throw new Error("connection reset");
    };
    const keyv = new Keyv6({ store: signedStore(adapter as never, SECRET), namespace: "once" });
    const heard: unknown[] = [];
    keyv.on("error", (error: unknown) => heard.push(error));
    expect(await keyv.get("k")).toBeUndefined();
    expect(heard).toHaveLength(1);
  });

  it("reach a listener on the Keyv", () => {
    const adapter = new KeyvMemoryAdapter(new Map());
    const keyv = new Keyv6({ store: signedStore(adapter as never, SECRET), namespace: "events" });
    const heard: unknown[] = [];
    keyv.on("error", (error: unknown) => heard.push(error));
    adapter.emit("error", new Error("Socket closed unexpectedly"));
    expect(heard).toEqual([expect.objectContaining({ message: "Socket closed unexpectedly" })]);
  });
});

describe("the same logical entry under Keyv 5 and Keyv 6", () => {
  it("binds namespace and key identically: what one major wrote, the other reads", async () => {
    const map = new Map<string, unknown>();
    const five = new Keyv5({ store: signedStore(map, SECRET), namespace: "shared" });
    const six = new Keyv6({ store: signedStore(map, SECRET), namespace: "shared" });
    await five.set("from-5", { n: 5 });
    await six.set("from-6", { n: 6 });
    expect(await six.get("from-5")).toEqual({ n: 5 });
    expect(await five.get("from-6")).toEqual({ n: 6 });
    // One stored key per entry, namespaced the same way.
    expect([...map.keys()].sort()).toEqual(["shared:from-5", "shared:from-6"]);
  });

  it("keeps an aliasing namespace's entries: a read, a clear or a write elsewhere never removes them", async () => {
    const map = new Map<string, unknown>();
    const file = `sqlite://${join(dir, "alias.sqlite")}`;
    // One Map shared, or one SQLite file through an adapter per namespace.
    for (const backend of [() => map, () => storeFromUrl(file)]) {
      const outer = new Keyv6({ store: signedStore(backend(), SECRET), namespace: "a" });
      const inner = new Keyv6({ store: signedStore(backend(), SECRET), namespace: "a:b" });
      await inner.set("c", "inner's");
      // Stored as `a:b:c` too: what the outer namespace calls `b:c`.
      expect(await outer.get("b:c")).toBeUndefined();
      expect(await inner.get("c")).toBe("inner's");
      await outer.set("own", 1);
      await outer.clear();
      expect(await outer.get("own")).toBeUndefined();
      expect(await inner.get("c")).toBe("inner's");
      // Keyv 6 names no namespace by default: its `keyv:x` is the `x` of namespace `keyv`.
      const bare = new Keyv6({ store: signedStore(backend(), SECRET) });
      const named = new Keyv6({ store: signedStore(backend(), SECRET), namespace: "keyv" });
      await named.set("x", "named");
      expect(await bare.get("keyv:x")).toBeUndefined();
      expect(await named.get("x")).toBe("named");
      await inner.clear();
      await named.clear();
    }
  });

  it("refuses to change contract once Keyv 5 (or a direct call) has used the store", async () => {
    const store = signedStore(new Map(), SECRET);
    const five = new Keyv5({ store, namespace: "app" });
    await five.set("user", "kept");
    expect(() => new Keyv6({ store, namespace: "app" })).toThrow(ConfigError);
    expect(await five.get("user")).toBe("kept");
  });

  it("deleteMany tells, key by key, which entries existed, over a Keyv 5 adapter too", async () => {
    for (const backend of [
      new Map<string, unknown>(),
      storeFromUrl(`sqlite://${join(dir, "many.sqlite")}`),
    ]) {
      const keyv = new Keyv6({ store: signedStore(backend, SECRET), namespace: "many" });
      await keyv.set("there", 1);
      expect(await keyv.deleteMany(["there", "never"])).toEqual([true, false]);
      await keyv.disconnect();
    }
  });

  it("never reads one namespace's entry as another's when their stored keys coincide", async () => {
    const map = new Map<string, unknown>();
    const six = new Keyv6({ store: signedStore(map, SECRET), namespace: "a" });
    await six.set("b:k", "bare key b:k in a");
    const other = new Keyv6({ store: signedStore(map, SECRET), namespace: "a:b" });
    // "a:b:k" is the stored key of both; the MAC binds the namespace, so it never crosses over.
    expect(await other.get("k")).toBeUndefined();
  });
});

describe("strict mode on each major", () => {
  const plantForged = async (map: Map<string, unknown>, key: string) => {
    const forger = new Keyv5({ store: signedStore(new Map(), OTHER_SECRET), namespace: "s" });
    await forger.set("k", "forged");
    const forgedMap = (forger.store as unknown as { backend: Map<string, unknown> }).backend;
    map.set(key, forgedMap.get("s:k"));
  };

  it("Keyv 6 without an error listener: get rejects with BadSignature", async () => {
    const map = new Map<string, unknown>();
    const keyv = new Keyv6({ store: signedStore(map, SECRET, { strict: true }), namespace: "s" });
    await keyv.set("k", "genuine");
    await plantForged(map, "s:k");
    await expect(keyv.get("k")).rejects.toBeInstanceOf(BadSignature);
  });

  it("Keyv 6 with an error listener: the listener hears BadSignature and get is a miss", async () => {
    const map = new Map<string, unknown>();
    const keyv = new Keyv6({ store: signedStore(map, SECRET, { strict: true }), namespace: "s" });
    const heard: unknown[] = [];
    keyv.on("error", (error: unknown) => heard.push(error));
    await keyv.set("k", "genuine");
    await plantForged(map, "s:k");
    expect(await keyv.get("k")).toBeUndefined();
    expect(heard).toHaveLength(1);
    expect(heard[0]).toBeInstanceOf(BadSignature);
  });

  it("Keyv 5: get rejects with throwOnErrors, and is a miss without it", async () => {
    const map = new Map<string, unknown>();
    const store = signedStore(map, SECRET, { strict: true });
    const throwing = new Keyv5({ store, namespace: "s", throwOnErrors: true });
    await throwing.set("k", "genuine");
    await plantForged(map, "s:k");
    await expect(throwing.get("k")).rejects.toBeInstanceOf(BadSignature);
    await plantForged(map, "s:k");
    const quiet = new Keyv5({ store: signedStore(map, SECRET, { strict: true }), namespace: "s" });
    quiet.on("error", () => {});
    expect(await quiet.get("k")).toBeUndefined();
  });
});
