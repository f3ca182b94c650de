import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect, isDeepStrictEqual } from "node:util";
import Axios, { type AxiosRequestConfig } from "axios";
import Keyv from "keyv";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { useEntryFormat } from "../../src/axios/entry.ts";
import { setupCache } from "../../src/axios/index.ts";
import { ENVELOPE_PREFIX } from "../../src/envelope.ts";
import { BadSignature, ConfigError, StoreError } from "../../src/errors.ts";
import { type SignedStore, signedStore } from "../../src/store.ts";
import { type Origin, startOrigin } from "../support/origin.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "../support/secrets.ts";

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(() => origin.close());
afterEach(() => {
  vi.unstubAllEnvs();
  origin.failing = false;
});

/** The purpose the axios storage binds into its entries. */
const AXIOS_PURPOSE = "axios";

let seq = 0;
const unique = (prefix: string) => `${prefix}/sc_axios_${++seq}`;

function cached(map = new Map<string, unknown>(), options = {}) {
  return setupCache(Axios.create({ baseURL: origin.url }), SECRET, {
    store: map,
    namespace: "sc_axios",
    ...options,
  });
}

describe("setupCache: configuration", () => {
  it("refuses to start without a secret, naming SIGNED_CACHE_SECRET", () => {
    vi.stubEnv("SIGNED_CACHE_SECRET", "");
    expect(() => setupCache(Axios.create(), undefined, { store: new Map() })).toThrow(ConfigError);
    expect(() => setupCache(Axios.create(), undefined, { store: new Map() })).toThrow(
      /SIGNED_CACHE_SECRET/,
    );
  });

  it("takes the secret from SIGNED_CACHE_SECRET", async () => {
    vi.stubEnv("SIGNED_CACHE_SECRET", SECRET);
    const map = new Map<string, unknown>();
    const axios = setupCache(Axios.create({ baseURL: origin.url }), undefined, { store: map });
    const path = unique("/json");
    await axios.get(path);
    // An entry the env secret signed verifies under the same secret given explicitly.
    const again = setupCache(Axios.create({ baseURL: origin.url }), SECRET, { store: map });
    expect((await again.get(path)).cached).toBe(true);
  });

  it("rejects a short secret at setup, not on first request", () => {
    expect(() => setupCache(Axios.create(), "too-short", { store: new Map() })).toThrow(
      ConfigError,
    );
  });

  it("refuses its own storage option and points to store", () => {
    const call = () =>
      setupCache(Axios.create(), SECRET, { storage: {} } as unknown as Parameters<
        typeof setupCache
      >[2]);
    expect(call).toThrow(ConfigError);
    expect(call).toThrow(/`store`/);
  });
});

describe("setupCache: caching over a Map", () => {
  it("misses, then hits; what the Map holds is an envelope", async () => {
    const map = new Map<string, unknown>();
    const axios = cached(map);
    const path = unique("/json");
    const first = await axios.get(path);
    const second = await axios.get(path);
    expect(first.cached).toBe(false);
    expect(second.cached).toBe(true);
    expect(second.data).toEqual(first.data);
    expect(origin.hits(path)).toBe(1);
    const [stored] = [...map.values()];
    expect(String(stored).startsWith(`${ENVELOPE_PREFIX}hs256.`)).toBe(true);
  });

  it("keeps per-request cache options: cache: false bypasses, override refetches", async () => {
    const axios = cached();
    const path = unique("/json");
    await axios.get(path);
    expect((await axios.get(path, { cache: false })).cached).toBe(false);
    const overridden = await axios.get(path, { cache: { override: true } });
    expect(overridden.cached).toBe(false);
    expect(origin.hits(path)).toBe(3);
  });

  it("passes axios-cache-interceptor options through: methods", async () => {
    const axios = cached(new Map(), { methods: ["get", "post"] });
    const path = unique("/json");
    await axios.post(path, { a: 1 });
    expect((await axios.post(path, { a: 1 })).cached).toBe(true);
    expect(origin.hits(path)).toBe(1);
  });

  it("does not cache POST by default, nor no-store responses", async () => {
    const axios = cached();
    const post = unique("/json");
    await axios.post(post, {});
    expect((await axios.post(post, {})).cached).toBe(false);
    const noStore = unique("/no-store");
    await axios.get(noStore);
    expect((await axios.get(noStore)).cached).toBe(false);
    expect(origin.hits(post) + origin.hits(noStore)).toBe(4);
  });

  it("sends 20 parallel GETs to the origin once", async () => {
    const axios = cached();
    const path = unique("/slow");
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => axios.get(`${path}?ms=50`)),
    );
    expect(origin.hits(path)).toBe(1);
    expect(responses.filter((response) => response.cached)).toHaveLength(19);
    expect(new Set(responses.map((response) => JSON.stringify(response.data))).size).toBe(1);
  });

  it("revalidates with If-None-Match and serves the 304 from cache", async () => {
    const axios = cached();
    const path = unique("/etag");
    const first = await axios.get(path);
    const before = origin.notModified();
    const second = await axios.get(path);
    expect(origin.requests.at(-1)?.headers["if-none-match"]).toBe('"v1"');
    expect(origin.notModified()).toBe(before + 1);
    expect(second.cached).toBe(true);
    expect(second.status).toBe(200);
    expect(second.data).toEqual(first.data);
  });

  it("revalidates with If-Modified-Since when etag is off", async () => {
    const axios = cached(new Map(), { etag: false });
    const path = unique("/lm");
    const first = await axios.get(path);
    const second = await axios.get(path);
    expect(origin.requests.at(-1)?.headers["if-modified-since"]).toBeDefined();
    expect(second.cached).toBe(true);
    expect(second.data).toEqual(first.data);
  });

  it("serves the stale entry when the origin fails (staleIfError)", async () => {
    const axios = cached();
    const path = unique("/flaky");
    const first = await axios.get(path);
    origin.failing = true;
    const second = await axios.get(path);
    expect(second.cached).toBe(true);
    expect(second.stale).toBe(true);
    expect(second.data).toEqual(first.data);
  });
});

describe("setupCache: tampered entries", () => {
  async function plantForged(map: Map<string, unknown>, path: string) {
    await cached(map).get(path);
    const key = [...map.keys()][0] as string;
    const id = key.slice("sc_axios:".length);
    const reader = new Keyv({
      store: signedStore(map, SECRET, { purpose: AXIOS_PURPOSE }),
      namespace: "sc_axios",
    });
    useEntryFormat(reader);
    const value = await reader.get(id);
    const forged = structuredClone(value) as { data: { data: { name: string } } };
    forged.data.data.name = "forged";
    // The attacker knows the format but not the secret, and signs with their own.
    const scratch = new Map<string, unknown>();
    const forger = new Keyv({
      store: signedStore(scratch, OTHER_SECRET, { purpose: AXIOS_PURPOSE }),
      namespace: "sc_axios",
    });
    useEntryFormat(forger);
    await forger.set(id, forged);
    map.set(key, scratch.get(key));
    return key;
  }

  it("strict: the request rejects with BadSignature and its reason", async () => {
    const map = new Map<string, unknown>();
    const path = unique("/json");
    await plantForged(map, path);
    const strict = cached(map, { strict: true });
    const failure = await strict.get(path).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BadSignature);
    expect(failure).toMatchObject({
      name: "BadSignature",
      code: "ERR_SIGNED_CACHE_BAD_SIGNATURE",
      reason: "unknown-key",
    });
  });

  it("lax: the request goes to the network, gets the real data, and replaces the entry", async () => {
    const map = new Map<string, unknown>();
    const path = unique("/json");
    const key = await plantForged(map, path);
    const onInvalid = vi.fn();
    const lax = cached(map, { onInvalid });
    const response = await lax.get(path);
    expect(response.cached).toBe(false);
    expect(response.data.name).not.toBe("forged");
    expect(onInvalid).toHaveBeenCalledWith(expect.objectContaining({ reason: "unknown-key" }));
    expect((await lax.get(path)).cached).toBe(true);
    expect(String(map.get(key))).not.toContain("forged");
  });
});

describe("setupCache: key rotation", () => {
  it("accepts entries signed with a fallback secret and re-signs them with resign", async () => {
    const map = new Map<string, unknown>();
    const path = unique("/json");
    await setupCache(Axios.create({ baseURL: origin.url }), OLD_SECRET, {
      store: map,
      namespace: "sc_axios",
    }).get(path);
    const before = String([...map.values()][0]);
    const rotated = cached(map, { fallbacks: [OLD_SECRET], resign: true });
    expect((await rotated.get(path)).cached).toBe(true);
    expect(String([...map.values()][0])).not.toBe(before);
    // Once re-signed, the old secret is no longer needed.
    expect((await cached(map).get(path)).cached).toBe(true);
    expect(origin.hits(path)).toBe(1);
  });
});

describe("setupCache: store faults", () => {
  // A TCP endpoint that accepts connections and never answers: a partitioned or hung Redis.
  let blackhole: Server;
  let blackholeUrl: string;
  beforeAll(async () => {
    blackhole = createServer(() => undefined);
    await new Promise<void>((done) => blackhole.listen(0, "127.0.0.1", done));
    blackholeUrl = `redis://127.0.0.1:${(blackhole.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    blackhole.close();
  });

  async function burst(store: string, options = {}) {
    const errors: StoreError[] = [];
    const axios = setupCache(Axios.create({ baseURL: origin.url }), SECRET, {
      store,
      storeTimeout: 200,
      onError: (error) => errors.push(error),
      ...options,
    });
    const path = unique("/slow");
    const started = performance.now();
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => axios.get(`${path}?ms=20`)),
    );
    return { axios, errors, path, responses, ms: performance.now() - started };
  }

  it("falls back to the network when the store is down; waiters still share one request", async () => {
    // Nothing listens on port 1: connection refused, as with a Redis that is down.
    const { errors, path, responses, ms } = await burst("redis://127.0.0.1:1");
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(responses.map((response) => response.data.hit))).toEqual(new Set([1]));
    expect(origin.hits(path)).toBe(1);
    expect(errors[0]).toBeInstanceOf(StoreError);
    expect(ms).toBeLessThan(5_000);
  });

  it("bounds a store that never answers by storeTimeout", async () => {
    const { errors, path, responses, ms } = await burst(blackholeUrl);
    expect(responses.every((response) => response.status === 200)).toBe(true);
    expect(origin.hits(path)).toBe(1);
    expect(errors.some((error) => /within 200 ms/.test(error.message))).toBe(true);
    expect(ms).toBeLessThan(5_000);
  });

  it("with throwOnStoreError, a store fault rejects the request with StoreError", async () => {
    const axios = setupCache(Axios.create({ baseURL: origin.url }), SECRET, {
      store: blackholeUrl,
      storeTimeout: 100,
      throwOnStoreError: true,
    });
    await expect(axios.get(unique("/json"))).rejects.toMatchObject({
      name: "StoreError",
      code: "ERR_SIGNED_CACHE_STORE",
    });
  });
});

describe("setupCache: environment", () => {
  it("reads the store, namespace and strict mode from SIGNED_CACHE_*", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc_axios_env-"));
    try {
      vi.stubEnv("SIGNED_CACHE_SECRET", SECRET);
      vi.stubEnv("SIGNED_CACHE_URL", `sqlite://${join(dir, "env.sqlite")}`);
      vi.stubEnv("SIGNED_CACHE_NAMESPACE", "sc_axios_env");
      vi.stubEnv("SIGNED_CACHE_STRICT", "true");
      const axios = setupCache(Axios.create({ baseURL: origin.url }));
      const path = unique("/json");
      const { id } = await axios.get(path);
      expect((await axios.get(path)).cached).toBe(true);
      const backend = (axios.storage.keyv.store as SignedStore).backend as Map<string, unknown>;
      const envelope = String(await backend.get(`sc_axios_env:${id}`));
      expect(envelope.startsWith(ENVELOPE_PREFIX)).toBe(true);
      await backend.set(`sc_axios_env:${id}`, envelope.replace('"hit":', '"hit":9'));
      await expect(axios.get(path)).rejects.toMatchObject({ reason: "mismatch" });
      await axios.storage.keyv.disconnect();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rejects an unknown store URL scheme at setup", () => {
    expect(() => setupCache(Axios.create(), SECRET, { store: "ftp://example" })).toThrow(
      ConfigError,
    );
  });
});

/** An origin on 127.0.0.1 whose routes answer exactly the bytes and headers a test gives them. */
async function startEcho() {
  const routes = new Map<string, { body: string | Buffer; headers: Record<string, string> }>();
  const hits = new Map<string, number>();
  const server = createHttpServer((req, res) => {
    const path = req.url ?? "/";
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const route = routes.get(path);
    if (route === undefined) {
      res.writeHead(404).end();
      return;
    }
    for (const [name, value] of Object.entries(route.headers)) res.setHeader(name, value);
    res.setHeader("cache-control", "max-age=60");
    res.end(route.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    serve(path: string, body: string | Buffer, headers: Record<string, string>): string {
      routes.set(path, { body, headers });
      return path;
    },
    hits: (path: string) => hits.get(path) ?? 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Deep equality that holds for own `constructor` keys too (toStrictEqual reads them as classes). */
function expectSame(actual: unknown, expected: unknown): void {
  const message = `${inspect(actual, { depth: 8 })} is not ${inspect(expected, { depth: 8 })}`;
  expect(isDeepStrictEqual(actual, expected), message).toBe(true);
}

describe("setupCache: whatever the origin sends", () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  beforeAll(async () => {
    echo = await startEcho();
  });
  afterAll(() => echo.close());
  afterEach(() => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("toJSON");
  });

  const JSON_TYPE = { "content-type": "application/json" };

  /** Requests one response twice through a fresh cache: a miss, then (if cacheable) a hit. */
  async function twice(
    body: string | Buffer,
    headers: Record<string, string>,
    config: AxiosRequestConfig = {},
  ) {
    const path = echo.serve(unique("/echo"), body, headers);
    const onError = vi.fn();
    const axios = setupCache(Axios.create({ baseURL: echo.url }), SECRET, {
      store: new Map(),
      onError,
    });
    const miss = await axios.get(path, config);
    const hit = await axios.get(path, config);
    return { miss, hit, onError, hits: echo.hits(path) };
  }

  const jsonBodies: [string, string][] = [
    ["a Buffer-shaped object with a toJSON key", '{"type":"Buffer","data":[1,2,3],"toJSON":1}'],
    [
      "nested Buffer-shaped objects",
      '{"a":{"type":"Buffer","data":[104]},"b":[{"type":"Buffer","data":[],"toJSON":{}}]}',
    ],
    [
      "__proto__, constructor and prototype keys at every depth",
      '{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":2}},' +
        '"prototype":[{"__proto__":{"toJSON":3}}],"toJSON":{"constructor":4}}',
    ],
    ["strings starting with ':'", '{":k":":v","list":[":base64:AAAA","::x",":"]}'],
    ["numbers beyond a double, and -0", "[1e400,-1e400,-0,123456789012345678901234567890,5e-400]"],
    ["null", "null"],
    ["a top-level string that looks like JSON", '"{\\"type\\":\\"Buffer\\",\\"data\\":[1]}"'],
    ["a string with an escaped NUL", '"a\\u0000b"'],
    ["a string with an escaped lone surrogate", '{"s":"half \\ud83d an emoji"}'],
  ];

  it.each(jsonBodies)("JSON, %s: the hit is what axios parsed", async (_, text) => {
    const { miss, hit, onError, hits } = await twice(text, JSON_TYPE);
    expect(hit.cached).toBe(true);
    expect(hits).toBe(1);
    expectSame(hit.data, miss.data);
    expect(onError).not.toHaveBeenCalled();
  });

  const textBodies: [string, string | Buffer][] = [
    ["an empty body", ""],
    ["text with NUL", "a\0b\0"],
    ["bytes that are not UTF-8", Buffer.from([0x66, 0xff, 0xfe, 0x00, 0xed, 0xa0, 0x80])],
    ["text that looks like an entry", "~ax2j{}\n{}"],
  ];

  it.each(textBodies)("text, %s: the hit is what axios decoded", async (_, body) => {
    const { miss, hit, onError, hits } = await twice(body, { "content-type": "text/plain" });
    expect(hit.cached).toBe(true);
    expect(hits).toBe(1);
    expectSame(hit.data, miss.data);
    expect(onError).not.toHaveBeenCalled();
  });

  it("response headers named or valued toJSON, __proto__ or constructor read back as data", async () => {
    const headers = {
      ...JSON_TYPE,
      toJSON: "t",
      __proto__: "p",
      constructor: "c",
      prototype: "q",
      "x-json": "toJSON",
      "x-proto": "__proto__",
      "x-colon": ":v",
    };
    const { miss, hit, onError } = await twice('{"ok":true}', headers);
    expect(hit.cached).toBe(true);
    const plain = (value: object) => Object.fromEntries(Object.entries(value));
    expectSame(plain(hit.headers), plain(miss.headers));
    expect(hit.headers["x-json"]).toBe("toJSON");
    expect(onError).not.toHaveBeenCalled();
  });

  it("binary bodies read back as the same type with the same bytes", async () => {
    const bytes = Buffer.from([0, 1, 10, 13, 0xed, 0xa0, 0x80, 255]);
    const transforms: [string, (data: Buffer) => unknown][] = [
      ["Buffer", (data) => data],
      ["Uint8Array", (data) => new Uint8Array(data)],
      ["ArrayBuffer", (data) => new Uint8Array(data).buffer],
    ];
    for (const [type, transform] of transforms) {
      const { miss, hit } = await twice(
        bytes,
        { "content-type": "application/octet-stream" },
        { responseType: "arraybuffer", transformResponse: [transform] },
      );
      expect(hit.cached).toBe(true);
      expect(hit.data.constructor.name).toBe(type);
      expectSame(hit.data, miss.data);
    }
  });

  it("bodies a transformResponse makes: Dates and Maps read back, class instances are not cached", async () => {
    class Temperature {
      constructor(readonly celsius: number) {}
    }
    const cases: [(text: string) => unknown, boolean][] = [
      [(text) => new Date(JSON.parse(text).at), true],
      [(text) => new Map(Object.entries(JSON.parse(text))), true],
      [() => ({ at: new Date(0), nested: [undefined, 10n] }), true],
      [(text) => new Temperature(JSON.parse(text).celsius), false],
      [() => ({ nested: [new Temperature(1)] }), false],
      [() => ({ fn: Math.max }), false],
    ];
    for (const [transform, cacheable] of cases) {
      const { miss, hit, onError, hits } = await twice('{"at":0,"celsius":21}', JSON_TYPE, {
        transformResponse: [transform],
      });
      expect(hit.cached).toBe(cacheable);
      expect(hits).toBe(cacheable ? 1 : 2);
      expectSame(hit.data, miss.data);
      expect(onError).not.toHaveBeenCalled();
    }
  });
});

describe("errors that carry no request", () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it.each([
    [
      "an adapter",
      {
        adapter: async () => {
          await sleep(50);
          throw new TypeError("adapter broke");
        },
      },
    ],
    [
      "a transformResponse",
      {
        adapter: async (config: object) => {
          await sleep(50);
          return { data: "{}", status: 200, statusText: "OK", headers: {}, config, request: {} };
        },
        transformResponse: [
          () => {
            throw new TypeError("transform broke");
          },
        ],
      },
    ],
  ])("thrown by %s settle every waiter, and later requests go ahead", async (_, broken) => {
    const axios = setupCache(Axios.create(broken as never), SECRET, { store: new Map() });
    const settled = (promise: Promise<unknown>) =>
      Promise.race([
        promise.then(
          () => "resolved",
          (error: Error) => error.message,
        ),
        sleep(3_000).then(() => "still waiting"),
      ]);
    const [leader, follower] = await Promise.all([
      settled(axios.get("http://127.0.0.1:9/same")),
      settled(axios.get("http://127.0.0.1:9/same")),
    ]);
    expect(leader).toMatch(/broke/);
    expect(follower).toMatch(/broke/);
    expect(await settled(axios.get("http://127.0.0.1:9/same"))).toMatch(/broke/);
  });
});

describe("streamed responses", () => {
  it("are never cached, and caching them is not reported as a fault", async () => {
    const server = createHttpServer((_request, response) => {
      response.writeHead(200, { "cache-control": "max-age=60" });
      response.end("streamed body");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const errors: unknown[] = [];
    const axios = setupCache(Axios.create({ baseURL: base }), SECRET, {
      store: new Map(),
      onError: (error) => errors.push(error),
    });
    const read = async (stream: NodeJS.ReadableStream) => {
      let text = "";
      for await (const chunk of stream) text += chunk;
      return text;
    };
    try {
      for (let i = 0; i < 2; i++) {
        const response = await axios.get("/stream", { responseType: "stream" });
        expect(response.cached).toBe(false);
        expect(await read(response.data)).toBe("streamed body");
      }
      expect(errors).toEqual([]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("setupCache over a Keyv of your own and the environment", () => {
  afterEach(() => vi.unstubAllEnvs());

  it("signs it with the same SIGNED_CACHE_* settings as any other store", async () => {
    const origin = createHttpServer((_request, response) => {
      response.writeHead(200, { "cache-control": "max-age=60" });
      response.end("card 4111111111111111");
    });
    await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    try {
      vi.stubEnv("SIGNED_CACHE_ENCRYPT", "1");
      vi.stubEnv("SIGNED_CACHE_SECRET_FALLBACKS", OLD_SECRET);
      const map = new Map<string, unknown>();
      // An entry the previous secret signed, as before a rotation.
      const before = setupCache(Axios.create({ baseURL: base }), OLD_SECRET, {
        store: new Keyv({ store: map }),
      });
      await before.get("/card", { id: "card" });
      const invalid: unknown[] = [];
      const after = setupCache(Axios.create({ baseURL: base }), SECRET, {
        store: new Keyv({ store: map }),
        onInvalid: (error) => invalid.push(error),
      });
      expect((await after.get("/card", { id: "card" })).cached).toBe(true);
      expect(invalid).toEqual([]);
      // Keyv 5 keeps `keyv:card` in the Map; Keyv 6 wraps the Map in its own adapter, which
      // keeps `{ value, expires }` under the bare key.
      const held = [...map.values()][0] as unknown;
      const stored = String(
        typeof held === "object" && held !== null ? (held as { value: unknown }).value : held,
      );
      expect(stored).toMatch(/^sc2\.a256gcm\./);
      expect(stored).not.toContain("4111");
    } finally {
      await new Promise((resolve) => origin.close(resolve));
    }
  });
});

describe("a store that stalls or refuses", () => {
  let stall: Server;
  let stallPort: number;
  const sockets: import("node:net").Socket[] = [];
  let origin: import("node:http").Server;
  let base: string;
  beforeAll(async () => {
    // Accepts connections and never answers: the worst a store can do.
    stall = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => stall.listen(0, "127.0.0.1", resolve));
    stallPort = (stall.address() as AddressInfo).port;
    origin = createHttpServer((request, response) => {
      response.writeHead(200, { "cache-control": "max-age=60" });
      response.end(`body of ${request.url}`);
    });
    await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => stall.close(resolve));
    await new Promise((resolve) => origin.close(resolve));
  });

  it("costs a request at most one storeTimeout in all, then is bypassed and probed again", async () => {
    const errors: unknown[] = [];
    const states: string[] = [];
    const axios = setupCache(Axios.create({ baseURL: base }), SECRET, {
      store: `redis://127.0.0.1:${stallPort}`,
      storeTimeout: 400,
      circuitCoolDown: 1_500,
      onError: (error) => errors.push(error),
      onCircuit: (state) => states.push(state),
    });
    const durations: number[] = [];
    for (let i = 0; i < 8; i++) {
      const started = performance.now();
      const response = await axios.get(`/stalled/${i}`);
      durations.push(performance.now() - started);
      expect(response.data).toBe(`body of /stalled/${i}`);
    }
    // Three store calls a request, each once bounded by 400 ms: now 400 ms for all of them.
    expect(Math.max(...durations)).toBeLessThan(1_000);
    expect(states[0]).toBe("open");
    // Once open, requests do not wait on the store at all.
    expect(Math.min(...durations.slice(-3))).toBeLessThan(200);
    // Reported: the first fault, then the opening with its counts — not one event per call.
    expect(errors).toHaveLength(2);
    expect(errors.every((error) => error instanceof StoreError)).toBe(true);
    expect(String(errors.at(-1))).toMatch(/store failing: \d+ of \d+ calls/);
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    await axios.get("/stalled/probe");
    expect(states).toContain("half-open");
    await axios.storage.keyv.disconnect().catch(() => {});
  });
});
