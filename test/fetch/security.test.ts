/**
 * The fetch cache's security and fault semantics, end to end on a Map, a SQLite file and Redis:
 * tampered and foreign entries (lax: a miss and `onInvalid`; strict: `BadSignature`), purposes
 * kept apart, secrets rotated, a failing upstream settling every waiter, and stores that are
 * down or never answer.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Keyv from "keyv";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createKeyv } from "../../src/create-keyv.ts";
import { type BadData, BadSignature, StoreError } from "../../src/errors.ts";
import { createCachedFetch } from "../../src/fetch/index.ts";
import { Coalescer } from "../../src/http/coalesce.ts";
import { identityKey } from "../../src/http/request-identity.ts";
import type { SignedStore } from "../../src/store.ts";
import { closedPort, describeBackend, findBackend } from "../support/backends.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "../support/secrets.ts";
import { type FetchOrigin, startFetchOrigin } from "./origin.ts";
import {
  entryFor,
  type FetchBackend,
  instances,
  rawEntries,
  rawWrite,
  uniqueNamespace,
  uniquePath,
} from "./support.ts";

const dir = mkdtempSync(join(tmpdir(), "sc_fetch_security-"));
const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");

let origin: FetchOrigin;
beforeAll(async () => {
  origin = await startFetchOrigin();
});
afterAll(async () => {
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A route answering `max-age=60` JSON that says how many requests reached it. */
function counted(label: string): { path: string; url: string } {
  const path = uniquePath(label);
  const url = origin.route(path, (_req, res, n) => {
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=60" });
    res.end(JSON.stringify({ role: "user", n }));
  });
  return { path, url };
}

const sharedMap = new Map<string, unknown>();
const backends: FetchBackend[] = [
  { name: "Map", where: () => ({ store: sharedMap }) },
  { name: "SQLite file", where: () => ({ url: `sqlite://${join(dir, "fetch.sqlite")}` }) },
];

function security(backend: FetchBackend) {
  const namespace = uniqueNamespace(`sec_${backend.name.replace(/\W/g, "")}`);
  const set = instances(backend, namespace);
  afterEach(() => {
    expect(set.faults.splice(0).map((error) => error.message)).toEqual([]);
  });
  afterAll(() => set.closeAll());

  it("a tampered entry: lax → a miss, onInvalid, refetched and replaced; strict → BadSignature", async () => {
    const { path, url } = counted("tamper");
    const invalid: BadData[] = [];
    const lax = set.make({ onInvalid: (error) => invalid.push(error) });
    const strict = set.make({ strict: true });
    await (await lax(url)).text();
    const [key, stored] = await entryFor(lax, url);
    const forged = stored.replace('"status":200', '"status":201');
    expect(forged).not.toBe(stored);
    await rawWrite(lax, key, forged);

    const rejected = strict(url);
    await expect(rejected).rejects.toBeInstanceOf(BadSignature);
    await expect(rejected).rejects.toMatchObject({ name: "BadSignature", reason: "mismatch" });
    // Every waiter of a coalesced strict request gets the error.
    const all = await Promise.allSettled([strict(url), strict(url), strict(url)]);
    expect(all.map((result) => result.status)).toEqual(["rejected", "rejected", "rejected"]);

    const refetched = await lax(url);
    expect(refetched.headers.get("x-signed-cache")).toBe("miss");
    expect(refetched.status).toBe(200);
    expect(((await refetched.json()) as { n: number }).n).toBe(2);
    expect(invalid.map((error) => error.name)).toEqual(["BadSignature"]);
    expect((await lax(url)).headers.get("x-signed-cache")).toBe("hit");
    expect(origin.hits(path)).toBe(2);
  });

  it("an entry moved to another URL's key does not verify (the MAC binds the key)", async () => {
    const a = counted("moved-a");
    const b = counted("moved-b");
    const invalid: BadData[] = [];
    const cachedFetch = set.make({ onInvalid: (error) => invalid.push(error) });
    await (await cachedFetch(a.url)).text();
    await (await cachedFetch(b.url)).text();
    const [, textA] = await entryFor(cachedFetch, a.url);
    const [keyB] = await entryFor(cachedFetch, b.url);
    await rawWrite(cachedFetch, keyB, textA);
    const response = await cachedFetch(b.url);
    expect(response.headers.get("x-signed-cache")).toBe("miss");
    expect(((await response.json()) as { n: number }).n).toBe(2);
    expect(invalid).toHaveLength(1);
  });

  it("purposes apart: a plain Keyv value never reads as a fetch entry, nor a fetch entry as one", async () => {
    const { url } = counted("purpose");
    const invalid: BadData[] = [];
    const cachedFetch = set.make({ onInvalid: (error) => invalid.push(error) });
    await (await cachedFetch(url)).text();
    const [key, stored] = await entryFor(cachedFetch, url);
    const plainKey = key.slice(namespace.length + 1);
    // Same secret, store and namespace, default purpose (keyv) and the axios purpose.
    for (const purpose of ["keyv", "axios"]) {
      const plain = createKeyv({ ...backend.where(), secret: SECRET, namespace, purpose, env: {} });
      // A fetch entry is not a value of theirs…
      expect(await plain.get(plainKey)).toBeUndefined();
      await rawWrite(cachedFetch, key, stored);
      // …and what they write under the fetch entry's key is not a response.
      await plain.set(plainKey, { kind: "response", forged: true });
      const response = await cachedFetch(url);
      expect(response.headers.get("x-signed-cache")).toBe("miss");
      await response.text();
      if (!(backend.where().store instanceof Map)) await plain.disconnect();
    }
    expect(invalid.map((error) => (error as BadSignature).reason)).toEqual([
      "mismatch",
      "mismatch",
    ]);
  });

  it("rotation: entries signed with a fallback secret still hit; without it, a miss", async () => {
    const { path, url } = counted("rotation");
    const before = set.make({ secret: OLD_SECRET });
    await (await before(url)).text();
    const rotated = set.make({ secret: SECRET, fallbacks: [OLD_SECRET], resign: true });
    expect((await rotated(url)).headers.get("x-signed-cache")).toBe("hit");
    // Re-signed on read: now the current secret alone reads it.
    expect((await set.make({ secret: SECRET })(url)).headers.get("x-signed-cache")).toBe("hit");
    const invalid: BadData[] = [];
    const other = set.make({ secret: OTHER_SECRET, onInvalid: (error) => invalid.push(error) });
    const response = await other(url);
    expect(response.headers.get("x-signed-cache")).toBe("miss");
    expect((invalid[0] as BadSignature | undefined)?.reason).toBe("unknown-key");
    expect(origin.hits(path)).toBe(2);
  });

  it("encrypt: the response is not readable in the store, and still hits", async () => {
    const { url } = counted("encrypt");
    // A namespace of its own: the other tests' entries (signed only) are readable by design.
    const cachedFetch = set.make({ encrypt: true, namespace: uniqueNamespace("encrypt") });
    await (await cachedFetch(url)).text();
    const stored = [...(await rawEntries(cachedFetch)).values()].join("\n");
    expect(stored).toMatch(/^sc2\.a256gcm\./);
    expect(stored).not.toContain(url);
    expect(stored).not.toContain("role");
    expect((await cachedFetch(url)).headers.get("x-signed-cache")).toBe("hit");
  });
}

for (const backend of backends)
  describe(`fetch security on ${backend.name}`, () => security(backend));
describeBackend(redis, "fetch security on Redis", () =>
  security({ name: "Redis", where: () => ({ url: redis.url }) }),
);

describe("a failing upstream", () => {
  it("settles every coalesced waiter with its error, after one call", async () => {
    let calls = 0;
    const failing: typeof fetch = async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      throw new TypeError("fetch failed: origin unreachable");
    };
    const cachedFetch = createCachedFetch({
      store: new Map(),
      secret: SECRET,
      env: {},
      fetch: failing,
    });
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => cachedFetch(`${origin.url}/down`)),
    );
    expect(calls).toBe(1);
    for (const result of results) {
      expect(result.status).toBe("rejected");
      expect((result as PromiseRejectedResult).reason.message).toBe(
        "fetch failed: origin unreachable",
      );
    }
    // The next request starts afresh.
    await expect(cachedFetch(`${origin.url}/down`)).rejects.toThrow();
    expect(calls).toBe(2);
    await cachedFetch.close();
  });

  it("an origin that drops the connection rejects every waiter", async () => {
    const path = uniquePath("drop");
    const url = origin.route(path, (req) => {
      setTimeout(() => req.socket.destroy(), 50);
    });
    const cachedFetch = createCachedFetch({ store: new Map(), secret: SECRET, env: {} });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => cachedFetch(url)));
    expect(results.every((result) => result.status === "rejected")).toBe(true);
    expect(origin.hits(path)).toBe(1);
    await cachedFetch.close();
  });

  it("a waiter that aborts leaves; the others still get the response", async () => {
    const path = uniquePath("abort");
    const url = origin.route(path, (_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { "cache-control": "max-age=60" });
        res.end("done");
      }, 100);
    });
    const cachedFetch = createCachedFetch({ store: new Map(), secret: SECRET, env: {} });
    const controller = new AbortController();
    const leaving = cachedFetch(url, { signal: controller.signal });
    const staying = cachedFetch(url);
    controller.abort();
    await expect(leaving).rejects.toMatchObject({ name: "AbortError" });
    expect(await (await staying).text()).toBe("done");
    expect(origin.hits(path)).toBe(1);
    await cachedFetch.close();
  });
});

describe("store faults fall back to the network and onError, and never hang", () => {
  const NEVER_HANGS_MS = 5_000;
  let stalled: Server;
  let stalledPort: number;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // Accepts connections and never answers: a store that stopped responding.
    stalled = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => stalled.listen(0, "127.0.0.1", resolve));
    stalledPort = (stalled.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => stalled.close(resolve));
  });

  const adapters = {
    "an adapter that throws": {
      get: async () => {
        throw new Error("ECONNREFUSED");
      },
      set: async () => {
        throw new Error("ECONNREFUSED");
      },
      delete: async () => false,
      clear: async () => {},
    },
    "an adapter that never answers": {
      get: () => new Promise(() => {}),
      set: () => new Promise(() => {}),
      delete: () => new Promise(() => {}),
      clear: async () => {},
    },
  };

  for (const [name, adapter] of Object.entries(adapters)) {
    it(`${name}: every request is answered from the network within storeTimeout`, async () => {
      const { path, url } = counted("faulty");
      const errors: StoreError[] = [];
      const cachedFetch = createCachedFetch({
        store: new Keyv({ store: { ...adapter, on: () => {} } as never }).store,
        secret: SECRET,
        env: {},
        storeTimeout: 200,
        onError: (error) => errors.push(error),
      });
      const started = performance.now();
      for (let i = 0; i < 3; i++) {
        const response = await cachedFetch(url);
        expect(response.headers.get("x-signed-cache")).toBe("miss");
        expect(((await response.json()) as { role: string }).role).toBe("user");
      }
      // One store budget per request, in all: far below three calls' worth each.
      expect(performance.now() - started).toBeLessThan(NEVER_HANGS_MS);
      expect(origin.hits(path)).toBe(3);
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.every((error) => error instanceof StoreError)).toBe(true);
      await cachedFetch.close().catch(() => {});
    });
  }

  it("a Redis URL nobody listens on, and one that never answers", async () => {
    for (const url of [
      `redis://127.0.0.1:${await closedPort()}`,
      `redis://127.0.0.1:${stalledPort}`,
    ]) {
      const { path, url: target } = counted("redis-down");
      const errors: StoreError[] = [];
      const cachedFetch = createCachedFetch({
        url,
        secret: SECRET,
        env: {},
        storeTimeout: 200,
        onError: (error) => errors.push(error),
      });
      const started = performance.now();
      for (let i = 0; i < 2; i++) {
        const response = await cachedFetch(target);
        expect(response.status).toBe(200);
        await response.text();
      }
      expect(performance.now() - started).toBeLessThan(NEVER_HANGS_MS);
      expect(origin.hits(path)).toBe(2);
      expect(errors.length).toBeGreaterThan(0);
      const closing = cachedFetch.close().catch(() => {});
      await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    }
  });

  it("opens the circuit after repeated faults, and tells onCircuit", async () => {
    const states: string[] = [];
    const cachedFetch = createCachedFetch({
      store: new Keyv({ store: { ...adapters["an adapter that throws"], on: () => {} } as never })
        .store,
      secret: SECRET,
      env: {},
      onCircuit: (state) => states.push(state),
    });
    const { url } = counted("circuit");
    for (let i = 0; i < 8; i++) await (await cachedFetch(url)).text();
    expect(states).toContain("open");
    await cachedFetch.close().catch(() => {});
  });
});

describe("responses larger than maxEntryBytes", () => {
  it("are served whole but not cached, and onError hears EntryTooLarge", async () => {
    const body = Buffer.alloc(200 * 1024, 7);
    const declared = uniquePath("too-large");
    const chunked = uniquePath("too-large-chunked");
    const declaredUrl = origin.route(declared, (_req, res) => {
      res.writeHead(200, { "cache-control": "max-age=60", "content-length": body.length });
      res.end(body);
    });
    const chunkedUrl = origin.route(chunked, (_req, res) => {
      res.writeHead(200, { "cache-control": "max-age=60" });
      for (let i = 0; i < 4; i++) res.write(body.subarray(i * 51_200, (i + 1) * 51_200));
      res.end();
    });
    const errors: StoreError[] = [];
    const cachedFetch = createCachedFetch({
      store: new Map(),
      secret: SECRET,
      env: {},
      maxEntryBytes: 64 * 1024,
      onError: (error) => errors.push(error),
    });
    for (const url of [declaredUrl, declaredUrl, chunkedUrl, chunkedUrl]) {
      const response = await cachedFetch(url);
      expect(response.headers.get("x-signed-cache")).toBe("miss");
      expect(Buffer.from(await response.arrayBuffer()).equals(body)).toBe(true);
    }
    expect(origin.hits(declared)).toBe(2);
    expect(origin.hits(chunked)).toBe(2);
    expect(errors.map((error) => error.name)).toEqual(Array(4).fill("EntryTooLarge"));
    await cachedFetch.close();
  });
});

describe("building blocks", () => {
  it("identityKey: no two field lists share an encoding", () => {
    const keys = [
      identityKey("d", ["ab", "c"]),
      identityKey("d", ["a", "bc"]),
      identityKey("d", ["abc"]),
      identityKey("d", ["abc", null]),
      identityKey("d", ["abc", ""]),
      identityKey("e", ["abc"]),
      identityKey("d", ["\uD800"]),
      identityKey("d", ["\uFFFD"]),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(identityKey("d", ["x"])).toBe(identityKey("d", ["x"]));
  });

  it("Coalescer: one task per key, a copy per waiter, the task aborted when all waiters leave", async () => {
    let started = 0;
    let aborted = false;
    const coalescer = new Coalescer<{ n: number }>((value, count) =>
      Array.from({ length: count }, () => ({ ...value })),
    );
    const task = (signal: AbortSignal) =>
      new Promise<{ n: number }>((resolve) => {
        started++;
        signal.addEventListener("abort", () => {
          aborted = true;
        });
        setTimeout(() => resolve({ n: 1 }), 30);
      });
    const [a, b] = await Promise.all([
      coalescer.run("k", null, task),
      coalescer.run("k", null, task),
    ]);
    expect(started).toBe(1);
    expect(a).toEqual({ n: 1 });
    expect(a).not.toBe(b);
    const one = new AbortController();
    const two = new AbortController();
    const first = coalescer.run("k2", one.signal, task);
    const second = coalescer.run("k2", two.signal, task);
    const settled = Promise.allSettled([first, second]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(started).toBe(2);
    one.abort();
    expect(aborted).toBe(false);
    two.abort();
    expect(aborted).toBe(true);
    const [left, right] = await settled;
    expect(left).toMatchObject({ status: "rejected", reason: { name: "AbortError" } });
    expect(right).toMatchObject({ status: "rejected", reason: { name: "AbortError" } });
    expect(coalescer.size).toBe(0);
  });

  it("createCachedFetch: no secret is a ConfigError; the store is signed for the fetch purpose", () => {
    expect(() => createCachedFetch({ store: new Map(), env: {} })).toThrow(/secret/i);
    expect(() =>
      createCachedFetch({ store: new Map(), secret: SECRET, env: {}, maxStale: -1 }),
    ).toThrow(/maxStale/);
    const cachedFetch = createCachedFetch({
      store: new Map(),
      env: { SIGNED_CACHE_SECRET: SECRET, SIGNED_CACHE_MAX_STALE: "1000" },
    });
    expect((cachedFetch.keyv.store as SignedStore).purpose).toBe("fetch");
  });
});
