import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Axios from "axios";
import type { CachedStorageValue, StorageValue } from "axios-cache-interceptor";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type SetupCacheOptions, setupCache } from "../../src/axios/index.ts";
import { signedStorage } from "../../src/axios/storage.ts";
import { createKeyv } from "../../src/create-keyv.ts";
import { inspectEnvelope } from "../../src/envelope.ts";
import { BadSignature, ConfigError, EntryTooLarge } from "../../src/errors.ts";
import { SECRET } from "../support/secrets.ts";

const NS = "sc_entry";
const MARKER = "~ax2";

function cachedValue(body: unknown, extra: Partial<CachedStorageValue> = {}): CachedStorageValue {
  return {
    state: "cached",
    ttl: 60_000,
    createdAt: Date.now(),
    data: {
      data: body,
      headers: { "content-type": "text/plain", "set-cookie": ["a=1", "b=2"] } as never,
      status: 200,
      statusText: "OK",
      meta: { revalidation: { etag: '"v1"' }, vary: { accept: "text/plain" } },
    },
    ...extra,
  };
}

/** Writes `value` with one storage, reads it with another over the same Map, as a new process. */
async function writeThenRead(value: StorageValue): Promise<StorageValue> {
  const map = new Map<string, unknown>();
  await signedStorage(map, SECRET, { namespace: NS }).set("k", value as never);
  return signedStorage(map, SECRET, { namespace: NS }).get("k");
}

describe("signedStorage: every state round-trips", () => {
  const now = Date.now();
  const response = cachedValue("body\nwith lines").data;
  const states: [string, StorageValue][] = [
    ["cached", cachedValue("body\nwith lines", { staleTtl: 5_000 })],
    ["stale", { state: "stale", createdAt: now, ttl: 60_000, data: response }],
    ["must-revalidate", { state: "must-revalidate", createdAt: now, ttl: 0, data: response }],
    ["loading, first fetch", { state: "loading", previous: "empty" }],
    [
      "loading, over a stale entry",
      { state: "loading", previous: "stale", createdAt: now, data: response },
    ],
  ];
  it.each(states)("%s", async (_, value) => {
    const read = await writeThenRead(value);
    expect(read).toStrictEqual(value);
    if (value.data) expect(read.data?.data).toBe("body\nwith lines");
  });

  it("empty", async () => {
    const storage = signedStorage(new Map(), SECRET, { namespace: NS });
    await storage.keyv.set("k", { state: "empty" });
    expect(await storage.get("k")).toStrictEqual({ state: "empty" });
  });
});

describe("signedStorage: bodies", () => {
  const bodies: [string, unknown][] = [
    ["empty text", ""],
    ["text with newlines", "\nline one\nline two\n\n"],
    ["text with NULs", "a\0b\0"],
    ["text with a lone surrogate", "half \ud83d of an emoji"],
    ["non-ASCII text", "naïve café 日本語 😀"],
    ["text that looks like the entry header", `${MARKER}t{"value":1}\n`],
    ["parsed JSON object", { id: 1, name: "x\ny", tags: ["a", ":b"], nested: { n: null } }],
    ["parsed JSON array", [1, "two", { three: 3 }]],
    ["parsed JSON number", 42],
    ["parsed JSON null", null],
    ["JSON that looks like a Buffer", { type: "Buffer", data: [1, 2] }],
    ["Buffer", Buffer.from([0, 10, 13, 255])],
    ["object holding a Buffer", { file: Buffer.from("bytes\n") }],
    ["no body", undefined],
  ];
  it.each(bodies)("%s reads back as it was written", async (_, body) => {
    const value = cachedValue(body);
    const read = await writeThenRead(value);
    expect(read.data?.data).toStrictEqual(body);
    expect(read).toStrictEqual(value);
  });

  it.each([
    ["ArrayBuffer", new Uint8Array([1, 2, 3]).buffer],
    ["Uint8Array", new Uint8Array([1, 2, 3])],
  ])("%s reads back as the same type with the same bytes", async (_, body) => {
    const read = await writeThenRead(cachedValue(body));
    expect(read.data?.data).toStrictEqual(body);
  });

  it("keeps a text body unescaped in the store, signed as one payload", async () => {
    const map = new Map<string, unknown>();
    const body = `"quoted"\n${"x".repeat(64 * 1024)}`;
    await signedStorage(map, SECRET, { namespace: NS }).set("k", cachedValue(body));
    const stored = String(map.get(`${NS}:k`));
    // The envelope ends with `.<tag>`: the body sits right before it, unescaped.
    expect(stored).toMatch(/\.[\w-]{43}$/);
    expect(stored.slice(0, -44).endsWith(`\n${body}`)).toBe(true);
    expect(stored.length - body.length).toBeLessThan(600);
  });
});

describe("signedStorage: tampering with either part of an entry", () => {
  async function planted(bodies: Record<string, string>) {
    const map = new Map<string, unknown>();
    const writer = signedStorage(map, SECRET, { namespace: NS });
    for (const [key, body] of Object.entries(bodies)) await writer.set(key, cachedValue(body));
    const stored = (key: string) => String(map.get(`${NS}:${key}`));
    for (const key of Object.keys(bodies)) expect(stored(key)).toContain(MARKER);
    return { map, stored };
  }

  async function expectRejected(map: Map<string, unknown>, key = "a") {
    const strict = signedStorage(map, SECRET, { namespace: NS, strict: true });
    const failure = await Promise.resolve()
      .then(() => strict.get(key))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BadSignature);
    expect(failure).toMatchObject({ reason: "mismatch" });
    const onInvalid = vi.fn();
    const lax = signedStorage(map, SECRET, { namespace: NS, onInvalid });
    expect(await lax.get(key)).toStrictEqual({ state: "empty" });
    expect(onInvalid).toHaveBeenCalledWith(expect.objectContaining({ reason: "mismatch" }));
    expect(map.has(`${NS}:${key}`)).toBe(false);
  }

  it("a changed body", async () => {
    const { map, stored } = await planted({ a: "pay alice 10" });
    map.set(`${NS}:a`, stored("a").replace("alice 10", "mallory 1000"));
    await expectRejected(map);
  });

  it("changed metadata", async () => {
    const { map, stored } = await planted({ a: "body" });
    expect(stored("a")).toContain('"status":200');
    map.set(`${NS}:a`, stored("a").replace('"status":200', '"status":201'));
    await expectRejected(map);
  });

  it("the newline moved between metadata and body", async () => {
    const { map, stored } = await planted({ a: "xbody" });
    const original = stored("a");
    const cut = original.indexOf("\n", original.indexOf(MARKER));
    // The same characters, with the first body character counted as metadata instead.
    const moved = `${original.slice(0, cut)}x\n${original.slice(cut + 2)}`;
    expect(moved.length).toBe(original.length);
    expect(moved).not.toBe(original);
    map.set(`${NS}:a`, moved);
    await expectRejected(map);
  });

  it("bodies swapped between keys, and whole entries moved to another key", async () => {
    const { map, stored } = await planted({ a: "alpha body", b: "bravo body" });
    const a = stored("a");
    const b = stored("b");
    map.set(`${NS}:a`, a.replace("alpha body", "bravo body"));
    await expectRejected(map, "a");
    map.set(`${NS}:b`, a);
    await expectRejected(map, "b");
    expect(b).toContain("bravo body");
  });
});

describe("signedStorage: Keyv's expiry", () => {
  afterEach(() => vi.useRealTimers());

  it("is written with the entry and ends it", async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const map = new Map<string, unknown>();
    const storage = signedStorage(map, SECRET, { namespace: NS, maxStale: 0 });
    // No validators and no time to be served stale: an entry lives exactly its ttl.
    const value = cachedValue("short-lived", { ttl: 1_000 });
    await storage.set("k", { ...value, data: { ...value.data, meta: undefined } });
    const raw = (await storage.keyv.getRaw("k")) as { expires?: number };
    expect(raw.expires).toBe(1_700_000_001_000);
    expect((await storage.get("k")).data?.data).toBe("short-lived");
    vi.setSystemTime(1_700_000_001_001);
    expect(await storage.keyv.get("k")).toBeUndefined();
    expect(await storage.get("k")).toStrictEqual({ state: "empty" });
  });
});

describe("signedStorage over a Keyv passed in", () => {
  it("binds its entries to the axios purpose, apart from the Keyv's own values", async () => {
    const map = new Map<string, unknown>();
    const keyv = createKeyv({ store: map, secret: SECRET, namespace: NS });
    const storage = signedStorage(keyv, SECRET);
    await storage.set("k", cachedValue("through your own Keyv\n"));
    await keyv.set("plain", { mine: true });
    expect((await storage.get("k")).data?.data).toBe("through your own Keyv\n");
    expect(inspectEnvelope(map.get(`${NS}:k`)).purpose).toBe("axios");
    expect(await keyv.get("plain")).toEqual({ mine: true });
    // Neither reads as the other: the Keyv does not see an HTTP entry, nor the storage a value.
    expect(await keyv.get("k")).toBeUndefined();
    expect(await storage.get("plain")).toStrictEqual({ state: "empty" });
  });
});

describe("setupCache: response bodies served from the cache", () => {
  const bodies: Record<string, Buffer> = {
    "/text": Buffer.from("line one\nline two\r\n\0after a NUL\n日本語 😀"),
    "/json": Buffer.from(JSON.stringify({ list: [1, 2, 3], note: "multi\nline", emoji: "😀" })),
    "/bytes": Buffer.from([0, 1, 2, 10, 128, 255]),
    "/empty": Buffer.alloc(0),
  };
  let server: Server;
  let base: string;
  let served = 0;
  beforeAll(async () => {
    server = createServer((request, response) => {
      served++;
      const body = bodies[request.url ?? ""] ?? Buffer.alloc(0);
      response.writeHead(200, { "content-type": "text/plain", "cache-control": "max-age=60" });
      response.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it.each([
    ["/text", "text", "http"],
    ["/json", "json", "http"],
    ["/bytes", "arraybuffer", "http"],
    // The fetch adapter hands over an ArrayBuffer, not a Buffer.
    ["/bytes", "arraybuffer", "fetch"],
    ["/empty", "text", "http"],
  ] as const)(
    "%s as %s (%s adapter): the hit returns what the network did",
    async (path, responseType, adapter) => {
      const map = new Map<string, unknown>();
      const first = setupCache(Axios.create({ baseURL: base, adapter }), SECRET, { store: map });
      const fresh = await first.get(path, { responseType });
      const before = served;
      // Another instance over the same store reads the entry back from its stored text.
      const second = setupCache(Axios.create({ baseURL: base, adapter }), SECRET, { store: map });
      const hit = await second.get(path, { responseType });
      expect(hit.cached).toBe(true);
      expect(served).toBe(before);
      expect(hit.data).toStrictEqual(fresh.data);
      expect(hit.data?.constructor).toBe(fresh.data?.constructor);
      expect(hit.status).toBe(200);
      expect(hit.headers["content-type"]).toBe("text/plain");
    },
  );
});

describe("setupCache: integrity at the edges", () => {
  let server: Server;
  let base: string;
  let calls = 0;
  let failing = false;
  let version = "v1";
  beforeAll(async () => {
    server = createServer((request, response) => {
      calls++;
      const url = request.url ?? "";
      if (failing) {
        response.writeHead(503).end("down");
      } else if (url.startsWith("/etag")) {
        response.writeHead(200, {
          "content-type": "application/json",
          etag: `"${version}"`,
          "cache-control": "max-age=1",
        });
        response.end(JSON.stringify({ version }));
      } else if (url.startsWith("/nan-age")) {
        response.writeHead(200, { "cache-control": "max-age=1", age: "abc" });
        response.end(`nan ${version}`);
      } else if (url.startsWith("/swr")) {
        response.writeHead(200, {
          "cache-control": "max-age=1, stale-while-revalidate=31536000",
          etag: `"${version}"`,
        });
        response.end(`swr ${version}`);
      } else if (url.startsWith("/forever")) {
        response.writeHead(200, { "cache-control": "max-age=9007199254740" });
        response.end(`forever ${url}`);
      } else if (url.startsWith("/big")) {
        response.writeHead(200, { "cache-control": "max-age=60" });
        response.end("x".repeat(10_000));
      } else {
        response.writeHead(200, { "content-type": "text/plain" });
        response.end(`plain ${url}`);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  afterEach(() => {
    vi.useRealTimers();
    failing = false;
    version = "v1";
  });

  /** A signed cache over a fresh Map, with Date frozen at a fixed instant. */
  function frozenCache(options: SetupCacheOptions) {
    vi.useFakeTimers({ toFake: ["Date"], now: 1_800_000_000_000 });
    const map = new Map<string, unknown>();
    const axios = setupCache(Axios.create({ baseURL: base }), SECRET, { store: map, ...options });
    return { map, axios };
  }

  it("gives every entry a signed expiry: freshness plus at most maxStale", async () => {
    const { map, axios } = frozenCache({ ttl: 1_000, maxStale: 5_000 });
    await axios.get("/etag/a", { id: "etag" });
    await axios.get("/plain", { id: "plain" });
    const etag = inspectEnvelope(map.get("keyv:etag"));
    const plain = inspectEnvelope(map.get("keyv:plain"));
    // max-age=1 plus maxStale: an ETag makes it revalidatable, yet it still expires.
    expect(etag.expiresAt).toBe(1_800_000_000_000 + 1_000 + 5_000);
    expect(plain.expiresAt).toBe(1_800_000_000_000 + 1_000 + 5_000);
    expect(etag.purpose).toBe("axios");
  });

  it("stops serving a replayed old response once maxStale has passed, even with staleIfError", async () => {
    const { map, axios } = frozenCache({ maxStale: 60_000 });
    await axios.get("/etag/r", { id: "r" });
    const v1 = map.get("keyv:r");
    version = "v2";
    vi.setSystemTime(1_800_000_002_000);
    expect((await axios.get("/etag/r", { id: "r" })).data).toEqual({ version: "v2" });
    // Whoever can write to the store puts v1 back, and the origin starts failing.
    map.set("keyv:r", v1);
    failing = true;
    // Within the bound, staleIfError still serves what the store holds, as it is designed to.
    expect((await axios.get("/etag/r", { id: "r" })).data).toEqual({ version: "v1" });
    map.set("keyv:r", v1);
    vi.setSystemTime(1_800_000_000_000 + 1_000 + 60_001);
    await expect(axios.get("/etag/r", { id: "r" })).rejects.toMatchObject({
      response: { status: 503 },
    });
  });

  it("refetches an entry of the previous format once: a plain miss, even in strict mode", async () => {
    const map = new Map<string, unknown>();
    map.set(
      "keyv:old",
      'sc1.hs256.TN14a4nL.0.s.CmUgBcQxYD_fM0V45aRfOnW-gBC9kBF2kfgeUkCwLJI.{"value":{"state":"cached"}}',
    );
    const onInvalid = vi.fn();
    const axios = setupCache(Axios.create({ baseURL: base }), SECRET, {
      store: map,
      strict: true,
      onInvalid,
    });
    const first = await axios.get("/plain/old", { id: "old" });
    expect(first.cached).toBe(false);
    expect(first.data).toBe("plain /plain/old");
    expect((await axios.get("/plain/old", { id: "old" })).cached).toBe(true);
    expect(String(map.get("keyv:old"))).toMatch(/^sc2\./);
    expect(onInvalid).not.toHaveBeenCalled();
  });

  it("keeps the replay bound when staleIfError serves an entry again and again", async () => {
    const { map, axios } = frozenCache({ maxStale: 2_000 });
    await axios.get("/etag/chain", { id: "chain" });
    const v1 = map.get("keyv:chain");
    version = "v2";
    vi.setSystemTime(1_800_000_001_500);
    await axios.get("/etag/chain", { id: "chain" });
    map.set("keyv:chain", v1);
    failing = true;
    // v1 was made at 0 with max-age=1 and maxStale 2 s: it may be served until 3 s, no later,
    // however often serving it rewrites the entry.
    for (const at of [1_600, 2_100, 2_600, 2_900]) {
      vi.setSystemTime(1_800_000_000_000 + at);
      const served = await axios
        .get("/etag/chain", { id: "chain" })
        .catch((e) => `failed at ${at}: ${e.message}`);
      expect(typeof served === "string" ? served : served.data).toEqual({ version: "v1" });
      expect(inspectEnvelope(map.get("keyv:chain")).expiresAt).toBeLessThanOrEqual(
        1_800_000_003_000,
      );
    }
    vi.setSystemTime(1_800_000_003_001);
    await expect(axios.get("/etag/chain", { id: "chain" })).rejects.toMatchObject({
      response: { status: 503 },
    });
  });

  it("never lets an entry turning stale outlive freshness plus maxStale", async () => {
    const { map, axios } = frozenCache({ maxStale: 60_000 });
    await axios.get("/swr", { id: "swr" });
    const bound = 1_800_000_000_000 + 1_000 + 60_000;
    expect(inspectEnvelope(map.get("keyv:swr")).expiresAt).toBe(bound);
    vi.setSystemTime(1_800_000_005_000);
    // Reading it now rewrites it as stale (stale-while-revalidate of a year), then revalidates.
    await axios.storage.get("swr");
    expect(inspectEnvelope(map.get("keyv:swr")).expiresAt).toBeLessThanOrEqual(bound);
  });

  it("counts a freshness that is not a number as none: the entry still expires", async () => {
    const { map, axios } = frozenCache({ maxStale: 1_000 });
    await axios.get("/nan-age", { id: "nan" });
    expect(inspectEnvelope(map.get("keyv:nan")).expiresAt).toBe(1_800_000_001_000);
    version = "v2";
    vi.setSystemTime(1_800_000_001_001);
    const later = await axios.get("/nan-age", { id: "nan" });
    expect(later.cached).toBe(false);
    expect(later.data).toBe("nan v2");
  });

  it("never serves a plain Keyv value as an HTTP entry (domain separation)", async () => {
    const map = new Map<string, unknown>();
    const invalid: string[] = [];
    const planted = createKeyv({ store: map, secret: SECRET });
    await planted.set("victim", {
      state: "cached",
      ttl: 60_000,
      createdAt: Date.now(),
      data: { data: "planted", headers: {}, status: 200, statusText: "OK" },
    });
    const axios = setupCache(Axios.create({ baseURL: base }), SECRET, {
      store: map,
      onInvalid: (error) => invalid.push((error as BadSignature).reason),
    });
    const before = calls;
    const response = await axios.get("/plain/victim", { id: "victim" });
    expect(response.cached).toBe(false);
    expect(response.data).toBe("plain /plain/victim");
    expect(calls).toBe(before + 1);
    expect(invalid).toEqual(["mismatch"]);
  });

  it.each([
    [
      "ttl: Number.MAX_SAFE_INTEGER",
      { ttl: Number.MAX_SAFE_INTEGER, interpretHeader: false },
      "/plain/max",
    ],
    ["ttl: Infinity", { ttl: Number.POSITIVE_INFINITY, interpretHeader: false }, "/plain/inf"],
    ["Cache-Control: max-age=9007199254740", {}, "/forever"],
  ])("caches with %s, and strict mode reads it back", async (_, options, path) => {
    const map = new Map<string, unknown>();
    const axios = setupCache(Axios.create({ baseURL: base }), SECRET, {
      store: map,
      strict: true,
      ...options,
    });
    const first = await axios.get(path);
    const second = await axios.get(path);
    expect(first.cached).toBe(false);
    expect(second.cached).toBe(true);
    expect(second.data).toBe(first.data);
  });

  it("does not cache a response over maxEntryBytes, reports it, and never fails the request", async () => {
    const errors: unknown[] = [];
    const axios = setupCache(Axios.create({ baseURL: base }), SECRET, {
      store: new Map(),
      maxEntryBytes: 4096,
      throwOnStoreError: true,
      onError: (error) => errors.push(error),
    });
    const before = calls;
    // Requests waiting on the download share it…
    const burst = await Promise.all(Array.from({ length: 5 }, () => axios.get("/big")));
    expect(burst.every((response) => response.data.length === 10_000)).toBe(true);
    expect(calls).toBe(before + 1);
    expect(errors[0]).toBeInstanceOf(EntryTooLarge);
    // …but it is not cached: a request a little later downloads it again.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 1_100 });
    expect((await axios.get("/big")).cached).toBe(false);
    expect(calls).toBe(before + 2);
  });

  it("keeps serving a stale copy through a long outage, up to maxStale and no further", async () => {
    const { map, axios } = frozenCache({ ttl: 1_000, maxStale: 600_000 });
    await axios.get("/etag/outage", { id: "outage" });
    failing = true;
    for (const at of [2_000, 32_000, 62_000, 120_000, 300_000, 600_900]) {
      vi.setSystemTime(1_800_000_000_000 + at);
      const served = await axios.get("/etag/outage", { id: "outage" });
      expect(served.data).toEqual({ version: "v1" });
      expect(inspectEnvelope(map.get("keyv:outage")).expiresAt).toBeLessThanOrEqual(
        1_800_000_000_000 + 1_000 + 600_000,
      );
    }
    vi.setSystemTime(1_800_000_000_000 + 601_001);
    await expect(axios.get("/etag/outage", { id: "outage" })).rejects.toMatchObject({
      response: { status: 503 },
    });
  });

  it.each([
    ["a numeric string", "60000"],
    ["a function returning a string", () => "60000"],
    ["an array", [60_000]],
  ])("counts a ttl that is %s as no freshness: the entry still expires", async (_, ttl) => {
    const { map, axios } = frozenCache({
      ttl: ttl as never,
      interpretHeader: false,
      maxStale: 5_000,
    });
    await axios.get("/plain/odd-ttl", { id: "odd" });
    expect(inspectEnvelope(map.get("keyv:odd")).expiresAt).toBe(1_800_000_005_000);
  });
});

describe("signedStorage options", () => {
  it("refuses a namespace Keyv cannot keep apart (with ':')", () => {
    expect(() => signedStorage(new Map(), SECRET, { namespace: "app:tenantB" })).toThrow(
      ConfigError,
    );
  });
});

describe("signedStorage and the environment", () => {
  it("reads SIGNED_CACHE_MAX_STALE, and no unrelated variable can break an explicit setup", async () => {
    vi.stubEnv("SIGNED_CACHE_TTL", "not a number");
    vi.stubEnv("SIGNED_CACHE_MAX_STALE", "1000");
    try {
      vi.useFakeTimers({ toFake: ["Date"], now: 1_800_000_000_000 });
      const map = new Map<string, unknown>();
      const storage = signedStorage(map, SECRET, { namespace: NS });
      await storage.set("k", cachedValue("body", { ttl: 500 }));
      expect(inspectEnvelope(map.get(`${NS}:k`)).expiresAt).toBe(1_800_000_001_500);
    } finally {
      vi.unstubAllEnvs();
      vi.useRealTimers();
    }
  });
});
