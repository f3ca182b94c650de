/**
 * setupCache end to end: a real node:http origin, and the cache on a Map, a SQLite file and the
 * Redis at REDIS_URL (default redis://127.0.0.1:6379). Several axios instances on one store
 * stand in for several processes sharing it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Axios from "axios";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type SetupCacheOptions,
  type SignedAxiosCacheInstance,
  setupCache,
} from "../../src/axios/index.ts";
import { BadSignature } from "../../src/errors.ts";
import type { SignedStore } from "../../src/store.ts";
import { adapterKey } from "../support/adapters.ts";
import { backendOrSkip, findBackend } from "../support/backends.ts";
import { type Origin, startOrigin } from "../support/origin.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "../support/secrets.ts";

const dir = mkdtempSync(join(tmpdir(), "sc_axios_e2e-"));

const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");
const redisUp = backendOrSkip(redis, "the Redis end-to-end suite");
const REDIS_URL = redis.url;

let origin: Origin;
// Every store fault any instance reports: none is expected on healthy backends.
const faults: Error[] = [];
const instances: SignedAxiosCacheInstance[] = [];
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(async () => {
  for (const instance of instances) {
    await instance.storage.clear();
    await instance.storage.keyv.disconnect();
  }
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Backend {
  name: string;
  /** A store every instance of one test shares, as processes share a real store. */
  store: () => SetupCacheOptions["store"];
  enabled: boolean;
}

const sharedMap = new Map<string, unknown>();
const backends: Backend[] = [
  { name: "Map", store: () => sharedMap, enabled: true },
  { name: "SQLite file", store: () => `sqlite://${join(dir, "cache.sqlite")}`, enabled: true },
  { name: "Redis", store: () => REDIS_URL, enabled: redisUp },
];

let seq = 0;
const unique = (route: string) => `/${route}/sc_axios_${process.pid}_${++seq}`;
const timeout = <T>(ms: number, what: string) =>
  new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not settle`)), ms));

for (const backend of backends) {
  describe.skipIf(!backend.enabled)(`setupCache end to end on ${backend.name}`, () => {
    const namespace = `sc_axios_e2e_${process.pid}`;
    afterEach(() => {
      expect(faults.splice(0).map((error) => error.message)).toEqual([]);
    });

    function instance(secret = SECRET, options: SetupCacheOptions = {}) {
      const axios = setupCache(Axios.create({ baseURL: origin.url }), secret, {
        store: backend.store(),
        namespace,
        onError: (error) => faults.push(error),
        ...options,
      });
      instances.push(axios);
      return axios;
    }

    /** The raw envelope the backend holds for a request id. */
    function backendOf(axios: SignedAxiosCacheInstance) {
      const signed = axios.storage.keyv.store as SignedStore;
      const raw = signed.backend as Map<string, unknown>;
      // A 6.x adapter takes the key without the namespace it holds itself.
      const at = (id: string) => adapterKey(raw, namespace, `${namespace}:${id}`);
      return {
        get: async (id: string) => String(await raw.get(at(id))),
        set: async (id: string, value: string) => {
          await raw.set(at(id), value);
        },
      };
    }

    it("misses, then hits, and stores a signed envelope", async () => {
      const axios = instance();
      const path = unique("json");
      const miss = await axios.get(path);
      const hit = await axios.get(path);
      expect([miss.cached, hit.cached]).toEqual([false, true]);
      expect(hit.data).toEqual(miss.data);
      expect(origin.hits(path)).toBe(1);
      expect(await backendOf(axios).get(hit.id)).toMatch(
        /^sc2\.hs256\.[\w-]{8}\.[1-9]\d*\.axios\.s\./,
      );
      // Another instance on the same store (another process) hits too.
      expect((await instance().get(path)).cached).toBe(true);
    });

    it("sends 20 parallel GETs to the origin once", async () => {
      const axios = instance();
      // A fresh Redis client rejects calls made while it connects (reported through onError);
      // connect first, since this test is about de-duplication.
      await axios.get(unique("json"));
      const path = unique("slow");
      const responses = await Promise.all(
        Array.from({ length: 20 }, () => axios.get(`${path}?ms=100`)),
      );
      expect(origin.hits(path)).toBe(1);
      expect(responses.filter((response) => !response.cached)).toHaveLength(1);
      expect(new Set(responses.map((response) => response.data.hit))).toEqual(new Set([1]));
    });

    it("revalidates with ETag (304) and with Last-Modified", async () => {
      const axios = instance();
      const etag = unique("etag");
      const first = await axios.get(etag);
      const before = origin.notModified();
      const second = await axios.get(etag);
      expect(origin.requests.at(-1)?.headers["if-none-match"]).toBe('"v1"');
      expect(origin.notModified()).toBe(before + 1);
      expect(second).toMatchObject({ cached: true, status: 200, data: first.data });

      const lastModified = unique("lm");
      const lax = instance(SECRET, { etag: false });
      await lax.get(lastModified);
      const revalidated = await lax.get(lastModified);
      expect(origin.requests.at(-1)?.headers["if-modified-since"]).toBeDefined();
      expect(revalidated.cached).toBe(true);
    });

    it("caches neither no-store responses nor POST", async () => {
      const axios = instance();
      const noStore = unique("no-store");
      const post = unique("json");
      await axios.get(noStore);
      await axios.post(post, { a: 1 });
      expect((await axios.get(noStore)).cached).toBe(false);
      expect((await axios.post(post, { a: 1 })).cached).toBe(false);
      expect(origin.hits(noStore) + origin.hits(post)).toBe(4);
    });

    it("serves the stale entry when the origin fails (staleIfError)", async () => {
      const axios = instance();
      const path = unique("flaky");
      const first = await axios.get(path);
      origin.failing = true;
      try {
        const second = await axios.get(path);
        expect(second).toMatchObject({ cached: true, stale: true, data: first.data });
      } finally {
        origin.failing = false;
      }
    });

    it("strict: an entry signed with another key rejects with BadSignature", async () => {
      const path = unique("json");
      const { id } = await instance().get(path);
      // Someone with write access to the store, but not the secret, plants a response.
      const attacker = instance(OTHER_SECRET);
      await attacker.storage.set(id, {
        state: "cached",
        ttl: 60_000,
        createdAt: Date.now(),
        data: { status: 200, statusText: "OK", headers: {}, data: { name: "forged" } },
      });
      const failure = await instance(SECRET, { strict: true })
        .get(path)
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(BadSignature);
      expect(failure).toMatchObject({ name: "BadSignature", reason: "unknown-key" });
    });

    it("lax: an altered entry is refetched, reported and replaced", async () => {
      const axios = instance();
      const path = unique("json");
      const { id, data } = await axios.get(path);
      const raw = backendOf(axios);
      const envelope = await raw.get(id);
      await raw.set(id, envelope.replace(`"hit":${data.hit}`, '"hit":999'));
      const reasons: string[] = [];
      const lax = instance(SECRET, {
        onInvalid: (error) => reasons.push((error as BadSignature).reason),
      });
      const response = await lax.get(path);
      expect(response.cached).toBe(false);
      expect(response.data).toEqual({ name: data.name, hit: 2 });
      expect(reasons).toEqual(["mismatch"]);
      expect((await lax.get(path)).cached).toBe(true);
      expect(await raw.get(id)).not.toContain('"hit":999');
    });

    it("rotates keys: fallback entries are accepted and re-signed", async () => {
      const path = unique("json");
      const { id } = await instance(OLD_SECRET).get(path);
      const rotated = instance(SECRET, { fallbacks: [OLD_SECRET], resign: true });
      const before = await backendOf(rotated).get(id);
      expect((await rotated.get(path)).cached).toBe(true);
      expect(await backendOf(rotated).get(id)).not.toBe(before);
      expect((await instance().get(path)).cached).toBe(true);
      expect(origin.hits(path)).toBe(1);
    });

    /** Resolves with the key once `axios` has read a `loading` entry `count` times. */
    function loadingReads(axios: SignedAxiosCacheInstance, count: number) {
      const get = axios.storage.get.bind(axios.storage);
      let reads = 0;
      return new Promise<string>((resolve) => {
        axios.storage.get = async (key, request) => {
          const value = await get(key, request);
          if (value.state === "loading" && ++reads === count) resolve(key);
          return value;
        };
      });
    }

    it("settles local followers when another instance fills the shared store first", async () => {
      const first = instance();
      const second = instance();
      const path = unique("gate");
      const leader = first.get(path);
      await origin.arrived(path);
      const waiting = loadingReads(first, 1);
      const follower = first.get(path);
      await waiting;
      const other = await second.get(path);
      expect(other).toMatchObject({ cached: false, data: { hit: 2 } });
      origin.open(path);
      await leader;
      const settled = await Promise.race([follower, timeout<never>(2_000, "the follower")]);
      expect(settled).toMatchObject({ cached: true, data: { hit: 2 } });
      expect(origin.hits(path)).toBe(2);
    });

    it("retries once, not per follower, when the loading entry is evicted", async () => {
      const axios = instance();
      const path = unique("gate");
      const leader = axios.get(path);
      await origin.arrived(path);
      const waiting = loadingReads(axios, 3);
      const followers = [axios.get(path), axios.get(path), axios.get(path)];
      // The store evicts the leader's loading entry while its request is in flight.
      await axios.storage.keyv.delete(await waiting);
      origin.open(path);
      const responses = await Promise.race([
        Promise.all([leader, ...followers]),
        timeout<never>(2_000, "the followers"),
      ]);
      expect(responses[0].data.hit).toBe(1);
      expect(responses.slice(1).map((response) => response.data.hit)).toEqual([2, 2, 2]);
      expect(origin.hits(path)).toBe(2);
      expect(axios.waiting.size).toBe(0);
    });

    it("never strands followers when a new request replaces the evicted leader", async () => {
      const axios = instance();
      const path = unique("gate");
      const leader = axios.get(path);
      await origin.arrived(path);
      const waiting = loadingReads(axios, 1);
      const follower = axios.get(path);
      // The store evicts the leader's loading entry while its request is in flight.
      await axios.storage.keyv.delete(await waiting);
      const newcomer = await axios.get(path);
      expect(newcomer).toMatchObject({ cached: false, data: { hit: 2 } });
      const settled = await Promise.race([follower, timeout<never>(2_000, "the follower")]);
      expect(settled).toMatchObject({ cached: true, data: { hit: 2 } });
      origin.open(path);
      expect((await leader).data.hit).toBe(1);
      expect(axios.waiting.size).toBe(0);
    });
  });
}
