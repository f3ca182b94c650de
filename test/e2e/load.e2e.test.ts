/**
 * Reliability under load and under failure (a short version of `npm run bench`'s load section,
 * see bench/load.ts and docs/reliability.md):
 *
 * - 1,000 requests at concurrency 50 through `setupCache` on Redis and on a SQLite file: zero
 *   errors, exactly the upstream calls the deterministic mix makes, heap back where it was after
 *   warm-up. Latencies are printed, never asserted.
 * - The same load against a private redis-server killed and restarted mid-way, and against a
 *   store that accepts connections and never answers: no request fails or hangs, and after the
 *   restart the cache is used again.
 * - Several processes writing and reading one key: every value read is exactly one value
 *   written, whole, and no entry is ever rejected.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Axios from "axios";
import { afterAll, describe, expect, it } from "vitest";
import { setupCache } from "../../src/axios/index.ts";
import { backendOrSkip, findBackend } from "../support/backends.ts";
import {
  HANG_MS,
  heapTolerance,
  type LoadResult,
  raceOneKey,
  runLoad,
  runWithRestart,
  runWithStall,
} from "../support/load.ts";
import { hasRedisServer, startRedisServer } from "../support/redis-server.ts";
import { SECRET } from "../support/secrets.ts";

const dir = mkdtempSync(join(tmpdir(), "sc_load_e2e-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");
const redisUp = backendOrSkip(redis, "the Redis load test");
const privateRedis = await hasRedisServer();
if (!privateRedis) {
  const message = "redis-server is not installed: the fault tests under load are SKIPPED";
  if (process.env.CI === "true") throw new Error(`${message} — a failure when CI=true`);
  console.warn(`\n!!! ${message} !!!\n`);
}

// Unique per run: the shared Redis outlives it, and other suites use it at the same time.
const prefix = `sc_load_${process.pid}_${Date.now().toString(36)}`;
const REQUESTS = 1000;
const CONCURRENCY = 50;

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
function summary(name: string, result: LoadResult): string {
  const { upstream } = result;
  return (
    `${name}: ${result.requests} requests at ${result.concurrency} in ${result.seconds.toFixed(1)} s, ` +
    `${result.errors} errors, upstream ${upstream.actual} (expected ${upstream.expected}: ` +
    `${upstream.full}/${upstream.expectedFull} full, ${upstream.notModified}/${upstream.expectedNotModified} 304), ` +
    `hits ${result.hits}/${result.expectedHits}, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, ` +
    `max ${result.max.toFixed(0)} ms, heap ${mb(result.heapWarm)} → ${mb(result.heapAfter)} MiB, ` +
    `store faults reported ${result.storeFaults}` +
    (result.circuit.length === 0
      ? ""
      : `, circuit: ${result.circuit.map((c) => `${c.state} at ${(c.atMs / 1000).toFixed(1)} s`).join(", ")}`) +
    (result.phases.length === 0
      ? ""
      : `, by phase: ${result.phases.map((p) => `${p.label} ${p.requests} requests p50 ${p.p50.toFixed(1)} p99 ${p.p99.toFixed(1)} ms`).join("; ")}`)
  );
}

/** What every run must show, faults or not: every request answered, in time, with its body. */
function expectNoFailedRequest(result: LoadResult): void {
  expect(result.errorSamples).toEqual([]);
  expect(result.errors).toBe(0);
  expect(result.hung).toBe(0);
  expect(result.wrongBodies).toBe(0);
  expect(result.invalid).toBe(0);
  // A hang, not a slow request: timings are otherwise never asserted.
  expect(result.max).toBeLessThan(HANG_MS);
}

describe("under load", () => {
  const backends = [
    { name: "Redis", store: () => redis.url, enabled: redisUp },
    { name: "SQLite file", store: () => `sqlite://${join(dir, "load.sqlite")}`, enabled: true },
  ];
  for (const backend of backends) {
    it.skipIf(!backend.enabled)(
      `${backend.name}: ${REQUESTS} requests at concurrency ${CONCURRENCY}, zero errors, exactly the expected upstream calls, a stable heap`,
      async () => {
        const result = await runLoad({
          store: backend.store(),
          secret: SECRET,
          namespace: `${prefix}_${backend.name === "Redis" ? "redis" : "sqlite"}`,
          requests: REQUESTS,
          concurrency: CONCURRENCY,
        });
        console.log(summary(backend.name, result));
        expectNoFailedRequest(result);
        expect(result.emptyNotModified).toBe(0);
        expect(result.storeFaults).toBe(0);
        // The mix makes these exact: each key fetched once, each later ETag request a 304.
        expect(result.upstream.full).toBe(result.upstream.expectedFull);
        expect(result.upstream.notModified).toBe(result.upstream.expectedNotModified);
        expect(result.hits).toBe(result.expectedHits);
        expect(result.revalidated).toBe(result.upstream.notModified);
        expect(result.heapAfter - result.heapWarm).toBeLessThan(heapTolerance(result.heapWarm));
      },
      120_000,
    );
  }
});

describe.skipIf(!privateRedis)("faults under load", () => {
  it("a redis-server killed and restarted mid-run: no request fails, and the cache is used again after the restart", async () => {
    // Paced (100 requests a round, a round at least 0.5 s) so that the run goes on for seconds
    // after the restart; if the store serves no hit by the last request, uncounted requests go
    // on until it does (at most 20 s).
    const result = await runWithRestart({
      secret: SECRET,
      namespace: `${prefix}_restart`,
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      roundSize: 100,
      minRoundMs: 500,
    });
    const after = result.steps
      .map((step) => `${step.hitsAfter} of ${step.requestsAfter} after "${step.label}"`)
      .join(", ");
    console.log(
      `${summary("Redis killed and restarted", result)}; killed at request ${result.killAt} ` +
        `(${result.killedAtMs?.toFixed(0)} ms into the run), restarted at ${result.restartAt} ` +
        `(answering at ${result.restartedAtMs?.toFixed(0)} ms); after the restart the store was written again in ` +
        `${result.storeWrittenAgainMs?.toFixed(0)} ms and served a hit in ${result.storeHitAgainMs?.toFixed(0)} ms ` +
        `(${result.tailRequests} requests after the run); hits: ${after}; ` +
        `empty 304s: ${result.emptyNotModified}`,
    );
    expectNoFailedRequest(result);
    // Known bug, pinned below: a revalidation in flight when the store dies may hand the
    // caller the origin's empty 304 (`emptyNotModified`). Reported, not asserted here.
    const restarted = result.steps.find((step) => step.label === "restarted");
    expect(restarted).toBeDefined();
    expect(restarted?.hitsAfter).toBeGreaterThan(0);
    // The restarted server is empty: what it holds and serves was written after the restart.
    expect(result.storeWrittenAgainMs).toBeDefined();
    expect(result.storeHitAgainMs).toBeDefined();
    expect(result.storeHitsAfterRestart).toBeGreaterThan(0);
    expect(result.keysAtEnd).toBeGreaterThan(0);
    // The cache lost entries (and stopped deduplicating across the outage): more upstream
    // calls, never fewer, and never more than one per request.
    expect(result.upstream.actual).toBeGreaterThanOrEqual(result.upstream.expectedFull);
    expect(result.upstream.actual).toBeLessThanOrEqual(result.requests);
  }, 120_000);

  it("a store that accepts connections and never answers: no request fails or hangs", async () => {
    const result = await runWithStall({
      secret: SECRET,
      namespace: `${prefix}_stall`,
      requests: REQUESTS,
      concurrency: CONCURRENCY,
    });
    console.log(
      `${summary("stalled store", result)}; the stalled server accepted ${result.connections} connection(s)`,
    );
    expectNoFailedRequest(result);
    expect(result.emptyNotModified).toBe(0);
    expect(result.connections).toBeGreaterThan(0);
    expect(result.upstream.actual).toBeGreaterThanOrEqual(result.upstream.expected);
    expect(result.upstream.actual).toBeLessThanOrEqual(result.requests);
  }, 180_000);

  // The store fails between a revalidation being sent and its 304 arriving: the caller still
  // gets the cached response, never the origin's bare 304 with an empty body.
  it("the store dying while a revalidation is on the wire still answers with the cached response", async () => {
    const server = await startRedisServer();
    const origin = createServer(async (request, response) => {
      if (request.headers["if-none-match"] === '"v1"') {
        await server.stop();
        response.writeHead(304, { etag: '"v1"', "cache-control": "max-age=0" });
        response.end();
        return;
      }
      response.writeHead(200, {
        "content-type": "application/json",
        etag: '"v1"',
        "cache-control": "max-age=0",
      });
      response.end(JSON.stringify({ hello: "world" }));
    });
    await new Promise<void>((done) => origin.listen(0, "127.0.0.1", done));
    const { port } = origin.address() as AddressInfo;
    const axios = setupCache(Axios.create({ baseURL: `http://127.0.0.1:${port}` }), SECRET, {
      store: server.url,
      namespace: `${prefix}_304`,
    });
    try {
      expect((await axios.get("/x")).data).toEqual({ hello: "world" });
      const revalidated = await axios.get("/x");
      expect({ status: revalidated.status, data: revalidated.data }).toEqual({
        status: 200,
        data: { hello: "world" },
      });
    } finally {
      await axios.storage.keyv.disconnect().catch(() => {});
      await new Promise((done) => origin.close(done));
      await server.close();
    }
  }, 30_000);
});

describe("several processes, one key", () => {
  const stores = [
    { name: "SQLite file", url: () => `sqlite://${join(dir, "race.sqlite")}`, enabled: true },
    { name: "Redis", url: () => redis.url, enabled: redisUp },
  ];
  for (const store of stores) {
    it.skipIf(!store.enabled)(
      `${store.name}: 4 processes write and read one key; every value read is one value written, whole; zero BadData`,
      async () => {
        const result = await raceOneKey({
          url: store.url(),
          secret: SECRET,
          namespace: `${prefix}_race_${store.name === "Redis" ? "redis" : "sqlite"}`,
          processes: 4,
          durationMs: 1500,
        });
        console.log(`${store.name}, one key, 4 processes: ${JSON.stringify(result)}`);
        expect(result.samples).toEqual([]);
        expect(result.torn).toBe(0);
        expect(result.badData).toBe(0);
        expect(result.misses).toBe(0);
        expect(result.writes).toBeGreaterThan(0);
        expect(result.values).toBeGreaterThan(0);
        // The processes really did overwrite each other.
        expect(result.foreign).toBeGreaterThan(0);
      },
      60_000,
    );
  }
});
