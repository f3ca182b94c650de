import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { inspect, isDeepStrictEqual } from "node:util";
import Axios from "axios";
import {
  type CachedResponseMeta,
  type CacheRequestConfig,
  defaultKeyGenerator,
  setupCache as setupAxiosCache,
} from "axios-cache-interceptor";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requestKey, setupCache, signedStorage } from "../../src/axios/index.ts";
import { SECRET } from "../support/secrets.ts";

const A = "/users/ZHESuB0z";
const B = "/users/M_8pITUK";

const key = (request: object, meta?: object) =>
  requestKey(request as CacheRequestConfig, meta as CachedResponseMeta | undefined);

interface Origin {
  url: string;
  hits: Map<string, number>;
  close(): Promise<void>;
}

/**
 * A real origin on 127.0.0.1: `/users/<id>` answers `{ id }`; `/lang` answers the request's
 * Accept-Language with `Vary: Accept-Language`. Both cacheable for a minute.
 */
async function startOrigin(port = 0): Promise<Origin> {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const headers = { "content-type": "application/json", "cache-control": "max-age=60" };
    if (path.startsWith("/echo")) {
      res.writeHead(200, { ...headers, vary: "Authorization" });
      res.end(JSON.stringify({ url: req.url, auth: req.headers.authorization ?? null }));
      return;
    }
    if (path === "/lang") {
      res.writeHead(200, { ...headers, vary: "Accept-Language" });
      res.end(JSON.stringify({ lang: req.headers["accept-language"] ?? null }));
      return;
    }
    res.writeHead(200, headers);
    res.end(JSON.stringify({ id: path.split("/")[2] ?? "" }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const defaultKey = (url: string) => defaultKeyGenerator({ url, method: "get" } as never, {});

/**
 * An origin on a port of 127.0.0.1 where the default generator gives A and B one key: the
 * 32-bit hash covers the whole URL, port included, so the pair collides on some ports only.
 */
async function startCollidingOrigin(): Promise<Origin> {
  for (let port = 20_000; port < 65_536; port++) {
    const base = `http://127.0.0.1:${port}`;
    if (defaultKey(`${base}${A}`) !== defaultKey(`${base}${B}`)) continue;
    try {
      return await startOrigin(port);
    } catch {
      // In use: try the next colliding port.
    }
  }
  throw new Error("no free port where the default keys collide");
}

let origin: Origin;
let colliding: Origin;
beforeAll(async () => {
  [origin, colliding] = await Promise.all([startOrigin(), startCollidingOrigin()]);
});
afterAll(() => Promise.all([origin.close(), colliding.close()]));

describe("requestKey", () => {
  it("tells apart the pair the default 32-bit key gives one entry", () => {
    const [a, b] = [`${colliding.url}${A}`, `${colliding.url}${B}`];
    expect(defaultKey(a)).toBe(defaultKey(b));
    expect(key({ url: a, method: "get" }, {})).not.toBe(key({ url: b, method: "get" }, {}));
  });

  it("is a SHA-256 in base64url, the same for the same request", () => {
    const request = { baseURL: "https://api.example/", url: "/users", params: { page: 2 } };
    expect(key(request)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(key(request)).toBe(key(structuredClone(request)));
    // Method case, an absent method and absent meta key alike; the URL is the one axios sends.
    const same = { baseURL: "https://api.example/", url: "/users", params: { page: 2 } };
    expect(key({ ...same, method: "GET" }, { vary: undefined })).toBe(key(request));
    expect(key({ ...same, url: "/users/" })).not.toBe(key(request));
  });

  it("gives distinct requests distinct keys, whatever the types", () => {
    const pairs: [object, object][] = [
      [{ params: { a: "1" } }, { params: { a: 1 } }],
      [{ data: "x" }, { data: ["x"] }],
      [{ data: undefined }, { data: null }],
      [{ data: "bytes" }, { data: Buffer.from("bytes") }],
      [{ data: Buffer.from("bytes") }, { data: new Uint8Array(Buffer.from("bytes")) }],
      [{ data: new Uint8Array([1]) }, { data: new Uint8Array([1]).buffer }],
      [{ data: ["ab", "c"] }, { data: ["a", "bc"] }],
      [{ params: { a: "b" } }, { params: { b: "a" } }],
      [{ params: { a: 0 } }, { params: { a: -0 } }],
      [{ data: 1 }, { data: 1n }],
      // biome-ignore lint/suspicious/noSparseArray: a hole is not an undefined item
      [{ data: [undefined] }, { data: [,] }],
      [{ data: {} }, { data: Object.create(null) }],
      [{ data: "\ud800" }, { data: "\ufffd" }],
      [{ data: new Date(0) }, { data: new Date(1) }],
      [{ params: new URLSearchParams("a=1") }, { params: new URLSearchParams("a=2") }],
      [{ params: new URLSearchParams("a=1") }, { params: { a: "1" } }],
      [{ data: new Map([[1, 2]]) }, { data: new Map([[2, 1]]) }],
      [{ data: Object(1) }, { data: Object(2) }],
      [{ data: /a/ }, { data: /b/ }],
      [{ data: { toJSON: () => 1 } }, { data: { toJSON: () => 2 } }],
      [{ method: "get" }, { method: "head" }],
      [{ url: "/a/b" }, { url: "/a", params: "b" }],
    ];
    for (const [left, right] of pairs) {
      expect(key(left), inspect(left)).not.toBe(key(right));
    }
    const vary = (lang: string | undefined) => ({ vary: { "accept-language": lang } });
    expect(key({ url: "/a" }, vary("en"))).not.toBe(key({ url: "/a" }, vary("fr")));
    expect(key({ url: "/a" }, vary(undefined))).not.toBe(key({ url: "/a" }, {}));
  });

  it("never throws, and keys odd data stably", () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    const form = new FormData();
    form.append("field", "value");
    form.append("file", new Blob(["contents"]), "name.txt");
    const odd = [
      Buffer.from("x"),
      new Uint8Array([1, 2]),
      new Float64Array([-0, Number.NaN]),
      new ArrayBuffer(3),
      new DataView(new ArrayBuffer(2)),
      new URLSearchParams("a=1&a=2"),
      new Date(Number.NaN),
      form,
      new Blob(["x"]),
      cycle,
      [cycle, [cycle]],
      new Set([cycle]),
      Symbol("s"),
      () => 1,
      new (class Point {
        x = 1;
      })(),
      new Error("boom"),
    ];
    for (const data of odd) {
      expect(key({ url: "/a", data })).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(key({ url: "/a", data })).toBe(key({ url: "/a", data }));
    }
    const other: Record<string, unknown> = { a: 1 };
    other.self = { back: other };
    expect(key({ data: cycle })).not.toBe(key({ data: other }));
  });

  it("gives unreadable requests a key of their own, never shared", () => {
    const throwing = Object.defineProperty({}, "boom", {
      enumerable: true,
      get: () => {
        throw new Error("getter");
      },
    });
    const proxy = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error("trap");
        },
      },
    );
    for (const data of [throwing, proxy]) {
      const first = key({ url: "/a", data });
      expect(typeof first).toBe("string");
      expect(key({ url: "/a", data })).not.toBe(first);
    }
  });

  it("property: distinct request fields give distinct keys", () => {
    const value = fc.anything({
      key: fc.constantFrom("a", "b", "", "__proto__", "toJSON"),
      values: [
        fc.constantFrom("", "a", "1", ":", "a,b", "\ud800", "\ufffd"),
        fc.constantFrom(0, -0, 1, Number.NaN, 1.5),
        fc.constantFrom(true, false, null, undefined),
      ],
      maxDepth: 3,
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withSparseArray: true,
      withTypedArray: true,
    });
    const request = fc.record({
      method: fc.constantFrom(undefined, "get", "GET", "post"),
      baseURL: fc.constantFrom(undefined, "", "http://h", "http://h/"),
      url: fc.constantFrom(undefined, "", "/a", "a", "a/", "a/b"),
      params: value,
      data: value,
      vary: fc.option(
        fc.dictionary(fc.constantFrom("accept", "x"), fc.option(fc.string(), { nil: undefined })),
        { nil: undefined },
      ),
    });
    type Request = typeof request extends fc.Arbitrary<infer R> ? R : never;
    // What a request is to the default generator: normalised method and URL, then the values.
    const fields = (r: Request) => [
      (r.method ?? "get").toLowerCase(),
      [r.baseURL, r.url]
        .map((part) => (part ?? "").replace(/^\/|\/$/g, ""))
        .filter(Boolean)
        .join("/"),
      r.params,
      r.data,
      r.vary,
    ];
    fc.assert(
      fc.property(
        fc.uniqueArray(request, {
          minLength: 2,
          maxLength: 20,
          comparator: (x, y) => isDeepStrictEqual(fields(x), fields(y)),
        }),
        (requests) => {
          const keys = requests.map(({ vary, ...r }) => key(r, { vary }));
          expect(new Set(keys).size).toBe(requests.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("property: the order of a body's object keys does not matter", () => {
    const reversed = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(reversed);
      if (typeof value !== "object" || value === null) return value;
      const copy = Object.create(Object.getPrototypeOf(value));
      for (const [k, v] of Object.entries(value).reverse()) {
        // Defined, not assigned: a `__proto__` key stays a key.
        Object.defineProperty(copy, k, { value: reversed(v), enumerable: true, writable: true });
      }
      return copy;
    };
    fc.assert(
      // Params are part of the URL axios sends, in the order it serializes them.
      fc.property(fc.jsonValue(), (data) => {
        expect(key({ url: "/a", data: reversed(data) })).toBe(key({ url: "/a", data }));
      }),
    );
  });
});

describe("requestKey in setupCache", () => {
  it("answers each of the colliding pair with its own body", async () => {
    const axios = setupCache(Axios.create(), SECRET, { store: new Map() });
    const first = await axios.get(`${colliding.url}${A}`);
    const second = await axios.get(`${colliding.url}${B}`);
    expect(first.data).toEqual({ id: "ZHESuB0z" });
    expect(second.data).toEqual({ id: "M_8pITUK" });
    expect(second.cached).toBe(false);
    expect((await axios.get(`${colliding.url}${B}`)).cached).toBe(true);
  });

  it("is what signed-cache/axios exports for axios-cache-interceptor's own setupCache", async () => {
    const storage = signedStorage(new Map(), SECRET);
    const axios = setupAxiosCache(Axios.create(), { storage, generateKey: requestKey });
    expect((await axios.get(`${colliding.url}${A}`)).data).toEqual({ id: "ZHESuB0z" });
    expect((await axios.get(`${colliding.url}${B}`)).data).toEqual({ id: "M_8pITUK" });
  });

  it("lets a user generateKey share one entry between URLs", async () => {
    const axios = setupCache(Axios.create({ baseURL: origin.url }), SECRET, {
      store: new Map(),
      generateKey: () => "one entry",
    });
    await axios.get("/users/shared-a");
    const second = await axios.get("/users/shared-b");
    expect(second.cached).toBe(true);
    expect(second.data).toEqual({ id: "shared-a" });
  });

  it("lets a request's own id win", async () => {
    const axios = setupCache(Axios.create({ baseURL: origin.url }), SECRET, { store: new Map() });
    await axios.get("/users/id-a", { id: "mine" });
    const second = await axios.get("/users/id-b", { id: "mine" });
    expect(second.cached).toBe(true);
    expect(second.data).toEqual({ id: "id-a" });
    expect(second.id).toBe("mine");
  });

  it("keeps one entry per Accept-Language when the origin varies on it", async () => {
    const axios = setupCache(Axios.create({ baseURL: origin.url }), SECRET, { store: new Map() });
    const get = (lang: string) => axios.get("/lang", { headers: { "Accept-Language": lang } });
    const responses = [];
    for (const lang of ["en", "fr", "en", "fr"]) responses.push(await get(lang));
    expect(responses.map((response) => response.data.lang)).toEqual(["en", "fr", "en", "fr"]);
    expect(responses.map((response) => response.cached)).toEqual([false, false, true, true]);
    expect(new Set(responses.map((response) => response.id)).size).toBe(2);
    expect(origin.hits.get("/lang")).toBe(2);
  });
});

describe("requestKey: options that shape the response", () => {
  it.each([
    ["responseEncoding", { responseEncoding: "latin1" }],
    ["decompress", { decompress: false }],
    ["transitional", { transitional: { forcedJSONParsing: false } }],
    ["maxRedirects", { maxRedirects: 0 }],
    ["maxContentLength", { maxContentLength: 5 }],
    ["socketPath", { socketPath: "/tmp/other.sock" }],
  ])("%s gives the request its own key", (_, option) => {
    expect(key({ url: "/a", ...option })).not.toBe(key({ url: "/a" }));
  });

  it("keys the same request alike in every process: no function identity in the key", () => {
    const fn = () => true;
    expect(key({ url: "/a", validateStatus: fn })).toBe(
      key({ url: "/a", validateStatus: () => 1 }),
    );
  });
});

describe("requestKey: the request axios actually sends", () => {
  const cached = () =>
    setupCache(Axios.create({ baseURL: origin.url }), SECRET, { store: new Map() });

  it("keeps users apart when credentials come from axios's auth option", async () => {
    const axios = cached();
    const alice = await axios.get("/echo/me", { auth: { username: "alice", password: "a" } });
    const bob = await axios.get("/echo/me", { auth: { username: "bob", password: "b" } });
    expect(bob.cached).toBe(false);
    expect(alice.data.auth).not.toBe(bob.data.auth);
    expect(bob.data.auth).toBe(`Basic ${Buffer.from("bob:b").toString("base64")}`);
  });

  it("never gives a path that embeds another origin that origin's entry", async () => {
    const axios = cached();
    const other = `${colliding.url}/users/x`;
    const embedded = await axios.get(`/${other}`);
    const absolute = await axios.get(other);
    expect(absolute.cached).toBe(false);
    expect(absolute.data).toEqual({ id: "x" });
    expect(embedded.id).not.toBe(absolute.id);
  });

  it("keeps URLs that differ by a trailing slash apart", async () => {
    const axios = cached();
    await axios.get("/echo/files/x/");
    const bare = await axios.get("/echo/files/x");
    expect(bare.cached).toBe(false);
    expect(bare.data.url).toBe("/echo/files/x");
  });

  it("keeps representations apart: bytes are never served for JSON", async () => {
    const axios = cached();
    await axios.get("/users/r", { responseType: "arraybuffer" });
    const json = await axios.get("/users/r");
    expect(json.cached).toBe(false);
    expect(json.data).toEqual({ id: "r" });
  });

  it("keys the URL a custom paramsSerializer makes", async () => {
    const axios = cached();
    const params = { q: "a b" };
    await axios.get("/echo/search", { params });
    const custom = await axios.get("/echo/search", {
      params,
      paramsSerializer: { serialize: () => "q=something-else" },
    });
    expect(custom.cached).toBe(false);
    expect(custom.data.url).toBe("/echo/search?q=something-else");
  });
});
