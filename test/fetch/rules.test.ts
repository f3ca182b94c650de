/**
 * createCachedFetch end to end: a real node:http origin on 127.0.0.1, the cache on a Map, a
 * SQLite file and the Redis at REDIS_URL (default redis://127.0.0.1:6379). Every caching rule is
 * http-cache-semantics' (private cache); these tests check that the fetch wiring applies it.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { inspectEnvelope } from "../../src/envelope.ts";
import { describeBackend, findBackend } from "../support/backends.ts";
import { type FetchOrigin, startFetchOrigin } from "./origin.ts";
import {
  entryFor,
  type FetchBackend,
  instances,
  rawEntries,
  uniqueNamespace,
  uniquePath,
} from "./support.ts";

const dir = mkdtempSync(join(tmpdir(), "sc_fetch_rules-"));
const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");

let origin: FetchOrigin;
beforeAll(async () => {
  origin = await startFetchOrigin();
});
afterAll(async () => {
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

const sharedMap = new Map<string, unknown>();
const backends: FetchBackend[] = [
  { name: "Map", where: () => ({ store: sharedMap }) },
  { name: "SQLite file", where: () => ({ url: `sqlite://${join(dir, "fetch.sqlite")}` }) },
];

const text = (body: string, headers: Record<string, string>) =>
  ((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain", ...headers });
    res.end(body);
  }) satisfies Parameters<FetchOrigin["route"]>[1];

function rules(backend: FetchBackend) {
  const set = instances(backend, uniqueNamespace(backend.name.replace(/\W/g, "")));
  afterEach(() => {
    expect(set.faults.splice(0).map((error) => error.message)).toEqual([]);
  });
  afterAll(() => set.closeAll());

  it("a miss, then a hit: one upstream call, a real Response, its final URL", async () => {
    const path = uniquePath("hit");
    const url = origin.route(path, (_req, res, n) => {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=60" });
      res.end(JSON.stringify({ n }));
    });
    const cachedFetch = set.make();
    const first = await cachedFetch(url);
    expect(first.headers.get("x-signed-cache")).toBe("miss");
    expect(await first.json()).toEqual({ n: 1 });
    const second = await cachedFetch(url);
    expect(second).toBeInstanceOf(Response);
    expect(second.headers.get("x-signed-cache")).toBe("hit");
    expect(second.url).toBe(url);
    expect(second.status).toBe(200);
    expect(second.headers.get("content-type")).toBe("application/json");
    expect(second.headers.get("age")).toMatch(/^\d+$/);
    expect(await second.json()).toEqual({ n: 1 });
    expect(second.bodyUsed).toBe(true);
    await expect(second.text()).rejects.toThrow();
    // Another instance on the same store (another process) reads it too.
    expect((await set.make()(url)).headers.get("x-signed-cache")).toBe("hit");
    expect(origin.hits(path)).toBe(1);
  });

  it("signs every entry for the fetch purpose, with an expiry of freshness + at most maxStale", async () => {
    const fresh = uniquePath("bound");
    const revalidatable = uniquePath("bound-etag");
    const freshUrl = origin.route(fresh, text("x", { "cache-control": "max-age=60" }));
    const etagUrl = origin.route(
      revalidatable,
      text("y", { "cache-control": "max-age=5", etag: '"e"' }),
    );
    const cachedFetch = set.make({ maxStale: 30_000 });
    const before = Date.now();
    await (await cachedFetch(freshUrl)).text();
    await (await cachedFetch(etagUrl)).text();
    const after = Date.now();
    const [, freshText] = await entryFor(cachedFetch, freshUrl);
    const [, etagText] = await entryFor(cachedFetch, etagUrl);
    const freshEnvelope = inspectEnvelope(freshText);
    expect(freshEnvelope.purpose).toBe("fetch");
    // No validator, no stale window: it ends with its freshness.
    expect(freshEnvelope.expiresAt).toBeGreaterThanOrEqual(before + 59_000);
    expect(freshEnvelope.expiresAt).toBeLessThanOrEqual(after + 60_000 + 5);
    // A validator: kept maxStale longer, to be revalidated.
    const etagEnvelope = inspectEnvelope(etagText);
    expect(etagEnvelope.expiresAt).toBeGreaterThanOrEqual(before + 34_000);
    expect(etagEnvelope.expiresAt).toBeLessThanOrEqual(after + 35_000 + 5);
  });

  it("no-store: never stored", async () => {
    const path = uniquePath("no-store");
    const url = origin.route(path, text("x", { "cache-control": "no-store" }));
    const cachedFetch = set.make();
    expect((await cachedFetch(url)).headers.get("x-signed-cache")).toBe("miss");
    expect((await cachedFetch(url)).headers.get("x-signed-cache")).toBe("miss");
    expect(origin.hits(path)).toBe(2);
    expect([...(await rawEntries(cachedFetch)).values()].some((t) => t.includes(path))).toBe(false);
  });

  it("s-maxage is ignored (a private cache): no other freshness, not reused", async () => {
    const path = uniquePath("s-maxage");
    const url = origin.route(path, text("x", { "cache-control": "s-maxage=600" }));
    const cachedFetch = set.make();
    await (await cachedFetch(url)).text();
    expect((await cachedFetch(url)).headers.get("x-signed-cache")).toBe("miss");
    expect(origin.hits(path)).toBe(2);
  });

  it("private: cached, as in any private cache", async () => {
    const path = uniquePath("private");
    const url = origin.route(path, text("mine", { "cache-control": "private, max-age=60" }));
    const cachedFetch = set.make();
    await (await cachedFetch(url)).text();
    const second = await cachedFetch(url);
    expect(second.headers.get("x-signed-cache")).toBe("hit");
    expect(await second.text()).toBe("mine");
    expect(origin.hits(path)).toBe(1);
  });

  it("no-cache with a validator: stored, revalidated on every request (304 keeps the body)", async () => {
    const path = uniquePath("no-cache");
    const url = origin.route(path, (req, res) => {
      if (req.headers["if-none-match"] === '"v1"') {
        res.writeHead(304, { etag: '"v1"', "cache-control": "no-cache" });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"v1"', "cache-control": "no-cache" });
      res.end("body v1");
    });
    const cachedFetch = set.make();
    expect(await (await cachedFetch(url)).text()).toBe("body v1");
    for (let i = 0; i < 2; i++) {
      const again = await cachedFetch(url);
      expect(again.headers.get("x-signed-cache")).toBe("revalidated");
      expect(again.status).toBe(200);
      expect(await again.text()).toBe("body v1");
    }
    expect(origin.hits(path)).toBe(3);
    expect(origin.seen(path).map((headers) => headers["if-none-match"])).toEqual([
      undefined,
      '"v1"',
      '"v1"',
    ]);
  });

  it("Expires: in the future is fresh, in the past is not", async () => {
    const future = uniquePath("expires-future");
    const past = uniquePath("expires-past");
    const futureUrl = origin.route(
      future,
      text("f", { expires: new Date(Date.now() + 120_000).toUTCString() }),
    );
    const pastUrl = origin.route(
      past,
      text("p", { expires: new Date(Date.now() - 120_000).toUTCString() }),
    );
    const cachedFetch = set.make();
    for (const url of [futureUrl, pastUrl, futureUrl, pastUrl])
      await (await cachedFetch(url)).text();
    expect(origin.hits(future)).toBe(1);
    expect(origin.hits(past)).toBe(2);
  });

  it("heuristic freshness from Last-Modified, as http-cache-semantics computes it (10%)", async () => {
    const path = uniquePath("heuristic");
    const tenDaysAgo = new Date(Date.now() - 10 * 86_400_000).toUTCString();
    const url = origin.route(path, text("old", { "last-modified": tenDaysAgo }));
    const cachedFetch = set.make();
    await (await cachedFetch(url)).text();
    expect((await cachedFetch(url)).headers.get("x-signed-cache")).toBe("hit");
    expect(origin.hits(path)).toBe(1);
  });

  it("Vary: each Accept-Language its own entry, never another's variant", async () => {
    const path = uniquePath("vary");
    const url = origin.route(path, (req, res) => {
      res.writeHead(200, { "cache-control": "max-age=60", vary: "Accept-Language" });
      res.end(`hello in ${req.headers["accept-language"]}`);
    });
    const cachedFetch = set.make();
    const get = async (language: string) => {
      const response = await cachedFetch(url, { headers: { "accept-language": language } });
      return [response.headers.get("x-signed-cache"), await response.text()];
    };
    expect(await get("fr")).toEqual(["miss", "hello in fr"]);
    expect(await get("en")).toEqual(["miss", "hello in en"]);
    expect(await get("fr")).toEqual(["hit", "hello in fr"]);
    expect(await get("en")).toEqual(["hit", "hello in en"]);
    expect(await get("de")).toEqual(["miss", "hello in de"]);
    expect(origin.hits(path)).toBe(3);
  });

  it("ETag: a stale entry is revalidated; the 304 keeps the body and updates headers", async () => {
    const path = uniquePath("etag");
    const url = origin.route(path, (req, res, n) => {
      if (req.headers["if-none-match"] === '"abc"') {
        res.writeHead(304, { etag: '"abc"', "cache-control": "max-age=0", "x-version": `v${n}` });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"abc"', "cache-control": "max-age=0", "x-version": `v${n}` });
      res.end("payload");
    });
    const cachedFetch = set.make();
    const first = await cachedFetch(url);
    expect(first.headers.get("x-version")).toBe("v1");
    await first.text();
    const second = await cachedFetch(url);
    expect(second.headers.get("x-signed-cache")).toBe("revalidated");
    expect(second.headers.get("x-version")).toBe("v2");
    expect(await second.text()).toBe("payload");
    // The rewrite kept the updated headers.
    const third = await cachedFetch(url);
    expect(third.headers.get("x-version")).toBe("v3");
    expect(origin.seen(path)[1]?.["if-none-match"]).toBe('"abc"');
  });

  it("Last-Modified: revalidated with If-Modified-Since", async () => {
    const path = uniquePath("lm");
    const modified = new Date(Date.UTC(2024, 0, 1)).toUTCString();
    const url = origin.route(path, (req, res) => {
      if (req.headers["if-modified-since"] === modified) {
        res.writeHead(304, { "last-modified": modified, "cache-control": "max-age=0" });
        res.end();
        return;
      }
      res.writeHead(200, { "last-modified": modified, "cache-control": "max-age=0" });
      res.end("lm body");
    });
    const cachedFetch = set.make();
    await (await cachedFetch(url)).text();
    const second = await cachedFetch(url);
    expect(second.headers.get("x-signed-cache")).toBe("revalidated");
    expect(await second.text()).toBe("lm body");
    expect(origin.seen(path)[1]?.["if-modified-since"]).toBe(modified);
  });

  it("stale-while-revalidate: served stale at once, refreshed in the background", async () => {
    const path = uniquePath("swr");
    const url = origin.route(path, (_req, res, n) => {
      res.writeHead(200, { "cache-control": "max-age=0, stale-while-revalidate=60" });
      res.end(`version ${n}`);
    });
    const cachedFetch = set.make();
    expect(await (await cachedFetch(url)).text()).toBe("version 1");
    const stale = await cachedFetch(url);
    expect(stale.headers.get("x-signed-cache")).toBe("stale");
    expect(await stale.text()).toBe("version 1");
    await cachedFetch.idle();
    expect(origin.hits(path)).toBe(2);
    const refreshed = await cachedFetch(url);
    expect(refreshed.headers.get("x-signed-cache")).toBe("stale");
    expect(await refreshed.text()).toBe("version 2");
    await cachedFetch.idle();
  });

  it("stale-if-error: a 5xx or a network failure serves the stale entry; without it, they pass", async () => {
    const path = uniquePath("sie");
    const plain = uniquePath("no-sie");
    let failing = false;
    const handler =
      (cacheControl: string) =>
      (
        _req: Parameters<Parameters<FetchOrigin["route"]>[1]>[0],
        res: Parameters<Parameters<FetchOrigin["route"]>[1]>[1],
      ) => {
        if (failing) {
          res.writeHead(503, { "content-type": "text/plain" });
          res.end("down");
          return;
        }
        res.writeHead(200, { "cache-control": cacheControl });
        res.end("good");
      };
    const url = origin.route(path, handler("max-age=0, stale-if-error=600"));
    const plainUrl = origin.route(plain, handler("max-age=0, must-revalidate"));
    const cachedFetch = set.make();
    await (await cachedFetch(url)).text();
    await (await cachedFetch(plainUrl)).text();
    failing = true;
    const stale = await cachedFetch(url);
    expect(stale.headers.get("x-signed-cache")).toBe("stale");
    expect(stale.status).toBe(200);
    expect(await stale.text()).toBe("good");
    const passed = await cachedFetch(plainUrl);
    expect(passed.status).toBe(503);
    expect(await passed.text()).toBe("down");

    // A network failure: the origin cannot be reached at all.
    let down = false;
    const failingFetch: typeof fetch = (input, init) =>
      down ? Promise.reject(new TypeError("fetch failed")) : fetch(input, init);
    const offline = set.make({ fetch: failingFetch });
    failing = false;
    const path2 = uniquePath("sie-net");
    const url2 = origin.route(path2, handler("max-age=0, stale-if-error=600"));
    await (await offline(url2)).text();
    down = true;
    const fromStore = await offline(url2);
    expect(fromStore.headers.get("x-signed-cache")).toBe("stale");
    expect(await fromStore.text()).toBe("good");
    await expect(offline(`${origin.url}${uniquePath("never-cached")}`)).rejects.toThrow(
      "fetch failed",
    );
  });

  it("POST is never served from the cache, and invalidates the URL's entry", async () => {
    const path = uniquePath("post");
    const url = origin.route(path, (req, res, n) => {
      res.writeHead(200, { "cache-control": "max-age=60" });
      res.end(`${req.method} ${n}`);
    });
    const cachedFetch = set.make();
    expect(await (await cachedFetch(url)).text()).toBe("GET 1");
    expect(await (await cachedFetch(url)).text()).toBe("GET 1");
    const posted = await cachedFetch(url, { method: "POST", body: "x" });
    expect(posted.headers.get("x-signed-cache")).toBe("bypass");
    expect(await posted.text()).toBe("POST 2");
    const again = await cachedFetch(url, { method: "POST", body: "x" });
    expect(await again.text()).toBe("POST 3");
    const after = await cachedFetch(url);
    expect(after.headers.get("x-signed-cache")).toBe("miss");
    expect(await after.text()).toBe("GET 4");
  });

  it("Authorization: responses are reused only for the same credentials, which are never stored", async () => {
    const path = uniquePath("auth");
    // The origin answers with the user the token names, not the token: what the cache stores
    // of the response is the origin's to choose; the request's credentials are never stored.
    const users: Record<string, string> = {
      "Bearer alice-token-123": "alice",
      "Bearer bob-token-456": "bob",
    };
    const url = origin.route(path, (req, res) => {
      res.writeHead(200, { "cache-control": "max-age=60" });
      res.end(`for ${users[req.headers.authorization ?? ""] ?? "anonymous"}`);
    });
    const cachedFetch = set.make();
    const as = async (token?: string) => {
      const response = await cachedFetch(url, {
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      });
      return [response.headers.get("x-signed-cache"), await response.text()];
    };
    expect(await as("alice-token-123")).toEqual(["miss", "for alice"]);
    expect(await as("alice-token-123")).toEqual(["hit", "for alice"]);
    expect(await as("bob-token-456")).toEqual(["miss", "for bob"]);
    expect(await as()).toEqual(["miss", "for anonymous"]);
    expect(await as("bob-token-456")).toEqual(["hit", "for bob"]);
    const stored = [...(await rawEntries(cachedFetch)).values()].join("\n");
    expect(stored).not.toContain("alice-token-123");
    expect(stored).not.toContain("bob-token-456");
  });

  it("HEAD is cached apart from GET, with no body", async () => {
    const path = uniquePath("head");
    const url = origin.route(path, text("full body", { "cache-control": "max-age=60" }));
    const cachedFetch = set.make();
    const head = await cachedFetch(url, { method: "HEAD" });
    expect(head.headers.get("x-signed-cache")).toBe("miss");
    expect(head.body).toBeNull();
    const headAgain = await cachedFetch(url, { method: "HEAD" });
    expect(headAgain.headers.get("x-signed-cache")).toBe("hit");
    expect(headAgain.body).toBeNull();
    const get = await cachedFetch(url);
    expect(get.headers.get("x-signed-cache")).toBe("miss");
    expect(await get.text()).toBe("full body");
    expect(origin.hits(path)).toBe(2);
  });

  it("binary bodies round-trip byte for byte; a 5 MB body too", async () => {
    const small = uniquePath("binary");
    const large = uniquePath("large");
    const bytes = Buffer.from(Array.from({ length: 256 * 64 }, (_, i) => i % 256));
    const big = randomBytes(5 * 1024 * 1024);
    const binary = (body: Buffer) =>
      ((_req, res) => {
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "cache-control": "max-age=60",
        });
        res.end(body);
      }) satisfies Parameters<FetchOrigin["route"]>[1];
    const smallUrl = origin.route(small, binary(bytes));
    const largeUrl = origin.route(large, binary(big));
    const cachedFetch = set.make();
    for (const [url, body] of [
      [smallUrl, bytes],
      [largeUrl, big],
    ] as const) {
      const miss = await cachedFetch(url);
      expect(Buffer.from(await miss.arrayBuffer()).equals(body)).toBe(true);
      const hit = await cachedFetch(url);
      expect(hit.headers.get("x-signed-cache")).toBe("hit");
      expect(Buffer.from(await hit.arrayBuffer()).equals(body)).toBe(true);
    }
    expect(origin.hits(large)).toBe(1);
  });

  it("gzip: the decoded bytes are cached, as fetch gives them", async () => {
    const path = uniquePath("gzip");
    const body = "compressible ".repeat(1000);
    const url = origin.route(path, (_req, res) => {
      res.writeHead(200, {
        "content-type": "text/plain",
        "content-encoding": "gzip",
        "cache-control": "max-age=60",
      });
      res.end(gzipSync(body));
    });
    const cachedFetch = set.make();
    expect(await (await cachedFetch(url)).text()).toBe(body);
    const hit = await cachedFetch(url);
    expect(hit.headers.get("x-signed-cache")).toBe("hit");
    expect(await hit.text()).toBe(body);
  });

  it("redirects: the final response is cached under the URL asked for, with its final URL", async () => {
    const from = uniquePath("redirect-from");
    const to = uniquePath("redirect-to");
    origin.route(from, (_req, res) => {
      res.writeHead(302, { location: to });
      res.end();
    });
    const finalUrl = origin.route(to, text("arrived", { "cache-control": "max-age=60" }));
    const cachedFetch = set.make();
    const first = await cachedFetch(`${origin.url}${from}`);
    expect(first.url).toBe(finalUrl);
    expect(first.redirected).toBe(true);
    await first.text();
    const second = await cachedFetch(`${origin.url}${from}`);
    expect(second.headers.get("x-signed-cache")).toBe("hit");
    expect(second.url).toBe(finalUrl);
    expect(second.redirected).toBe(true);
    expect(await second.text()).toBe("arrived");
    expect(origin.hits(from)).toBe(1);
  });

  it("request identity: two URLs never share an entry; a fragment is not part of it", async () => {
    const path = uniquePath("identity");
    const url = origin.route(path, (req, res) => {
      res.writeHead(200, { "cache-control": "max-age=60" });
      res.end(String(req.url));
    });
    origin.route(`${path}/`, (req, res) => {
      res.writeHead(200, { "cache-control": "max-age=60" });
      res.end(String(req.url));
    });
    const cachedFetch = set.make();
    const body = async (input: string) => (await cachedFetch(input)).text();
    expect(await body(`${url}?x=1`)).toBe(`${path}?x=1`);
    expect(await body(`${url}?x=2`)).toBe(`${path}?x=2`);
    expect(await body(`${url}?x=1#part`)).toBe(`${path}?x=1`);
    expect(await body(`${url}/`)).toBe(`${path}/`);
    expect(await body(`${url}?x=2`)).toBe(`${path}?x=2`);
    expect(origin.hits(path)).toBe(2);
  });

  it("coalesces 20 identical concurrent requests into one upstream call", async () => {
    const path = uniquePath("coalesce");
    const url = origin.route(path, (_req, res, n) => {
      setTimeout(() => {
        res.writeHead(200, { "cache-control": "max-age=60" });
        res.end(`only ${n}`);
      }, 100);
    });
    const cachedFetch = set.make();
    const responses = await Promise.all(Array.from({ length: 20 }, () => cachedFetch(url)));
    const bodies = await Promise.all(responses.map((response) => response.text()));
    expect(new Set(bodies)).toEqual(new Set(["only 1"]));
    expect(origin.hits(path)).toBe(1);
    // Uncacheable responses are shared too, each waiter reading its own copy of the stream.
    const streamed = uniquePath("coalesce-no-store");
    const streamedUrl = origin.route(streamed, (_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { "cache-control": "no-store" });
        res.end("streamed");
      }, 100);
    });
    const shared = await Promise.all(Array.from({ length: 20 }, () => cachedFetch(streamedUrl)));
    expect(new Set(await Promise.all(shared.map((response) => response.text())))).toEqual(
      new Set(["streamed"]),
    );
    expect(origin.hits(streamed)).toBe(1);
  });

  it("request cache modes: no-store bypasses, reload refetches, only-if-cached never fetches", async () => {
    const path = uniquePath("modes");
    const url = origin.route(path, (_req, res, n) => {
      res.writeHead(200, { "cache-control": "max-age=60" });
      res.end(`n${n}`);
    });
    const cachedFetch = set.make();
    // Node's RequestInit type lacks `cache`, which its fetch and Request take.
    const mode = (cache: string) => ({ cache, mode: "same-origin" }) as RequestInit;
    const missing = await cachedFetch(`${url}?nothing`, mode("only-if-cached"));
    expect(missing.status).toBe(504);
    expect(origin.hits(path)).toBe(0);
    expect(await (await cachedFetch(url)).text()).toBe("n1");
    const bypass = await cachedFetch(url, mode("no-store"));
    expect(bypass.headers.get("x-signed-cache")).toBe("bypass");
    expect(await bypass.text()).toBe("n2");
    expect(await (await cachedFetch(url)).text()).toBe("n1");
    const reload = await cachedFetch(url, mode("reload"));
    expect(await reload.text()).toBe("n3");
    const cached = await cachedFetch(url, mode("only-if-cached"));
    expect(await cached.text()).toBe("n3");
  });
}

for (const backend of backends)
  describe(`createCachedFetch on ${backend.name}`, () => rules(backend));
describeBackend(redis, "createCachedFetch on Redis", () =>
  rules({ name: "Redis", where: () => ({ url: redis.url }) }),
);
