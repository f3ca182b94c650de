/**
 * Load and fault runs shared by test/e2e/load.e2e.test.ts and bench/load.ts.
 *
 * - {@link runLoad}: N requests at concurrency C through `setupCache` against a local node:http
 *   origin, with a deterministic mix — repeated keys (hits), new keys (misses), ETag
 *   revalidations (304) — and bodies of 1 KB to 1 MB. It counts errors, wrong bodies and what
 *   reached the origin against what the mix makes exact, and measures latency and the heap.
 * - {@link raceOneKey}: several processes write and read one key through `createKeyv`.
 *
 * Run directly (`node --import tsx test/support/load.ts <args>`), this file is the child process
 * of {@link raceOneKey}.
 */
import { fork } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import Axios from "axios";
import { setupCache } from "../../src/axios/index.ts";
import { createKeyv } from "../../src/create-keyv.ts";
import { BadData, StoreError } from "../../src/errors.ts";
import type { WrappableStore } from "../../src/store.ts";
import { storeFromUrl } from "../../src/stores.ts";
import { startRedisServer, startStallingServer } from "./redis-server.ts";

const KB = 1024;
/** Body sizes and how often a key gets each: mostly small, a few large. */
const SIZE_WEIGHTS: readonly (readonly [number, number])[] = [
  [KB, 0.7],
  [16 * KB, 0.2],
  [128 * KB, 0.08],
  [1024 * KB, 0.02],
];
/** Share of each kind of request in every round. */
export const MIX = { hot: 0.6, fresh: 0.2, revalidate: 0.2 } as const;
/** Requests per round: rounds are separated by a barrier (see {@link buildSchedule}). */
const ROUND_SIZE = 1000;
/** A request slower than this counts as hung (it is an error, and the run goes on). */
export const HANG_MS = 15_000;

type Kind = "hot" | "fresh" | "revalidate";

interface Planned {
  readonly path: string;
  readonly kind: Kind;
}

/**
 * The requests, round by round, and what a healthy cache must send upstream for them.
 *
 * Within a round requests run at concurrency C in any order; a round starts when the previous
 * one has finished. The mix is built so that the upstream count does not depend on timing:
 * - `hot`: a few hundred keys, `max-age=3600`, picked with repetition (skewed towards low
 *   indexes). Each is fetched once, the first time it appears; concurrent requests for it share
 *   that fetch, later ones are hits.
 * - `fresh`: a key never requested before: one fetch each.
 * - `revalidate`: `ETag` keys with `max-age=0`, each at most once per round, so two requests
 *   for one never overlap: the first ever is a 200, each later one a revalidation answered 304.
 */
export interface Schedule {
  readonly warmup: readonly (readonly Planned[])[];
  readonly rounds: readonly (readonly Planned[])[];
  /** Upstream calls of the main rounds (warm-up excluded), given what warm-up fetched. */
  readonly expected: { full: number; notModified: number; hits: number };
  readonly counts: Record<Kind, number>;
}

export function buildSchedule(
  requests: number,
  warmup: number,
  seed = 1,
  roundSize = Math.min(ROUND_SIZE, Math.max(50, Math.ceil(requests / 4))),
): Schedule {
  const random = mulberry32(seed);
  const hotKeys = Math.max(20, Math.min(200, Math.round(requests / 50)));
  const etagKeys = Math.ceil(roundSize * MIX.revalidate * 1.25);
  let freshCounter = 0;
  const counts: Record<Kind, number> = { hot: 0, fresh: 0, revalidate: 0 };

  const round = (size: number): Planned[] => {
    const hot = Math.round(size * MIX.hot);
    const revalidate = Math.min(etagKeys, Math.round(size * MIX.revalidate));
    const list: Planned[] = [];
    for (let i = 0; i < hot; i++) {
      // Skewed: a few keys take most of the traffic, as in a real cache.
      list.push({ path: `/hot/${Math.floor(hotKeys * random() ** 2)}`, kind: "hot" });
    }
    for (const key of shuffle(range(etagKeys), random).slice(0, revalidate)) {
      list.push({ path: `/etag/${key}`, kind: "revalidate" });
    }
    while (list.length < size) list.push({ path: `/new/${freshCounter++}`, kind: "fresh" });
    return shuffle(list, random);
  };
  const split = (total: number): Planned[][] => {
    const out: Planned[][] = [];
    for (let left = total; left > 0; left -= roundSize) out.push(round(Math.min(roundSize, left)));
    return out;
  };

  const warm = split(warmup);
  const rounds = split(requests);
  const seen = new Set<string>();
  for (const planned of warm.flat()) seen.add(planned.path);
  const expected = { full: 0, notModified: 0, hits: 0 };
  for (const list of rounds) {
    const firstInRound = new Set<string>();
    for (const { path, kind } of list) {
      counts[kind]++;
      if (kind === "revalidate") {
        if (seen.has(path)) expected.notModified++;
        else expected.full++;
      } else if (!seen.has(path) && !firstInRound.has(path)) {
        expected.full++;
        firstInRound.add(path);
      } else {
        expected.hits++;
      }
    }
    for (const path of firstInRound) seen.add(path);
    for (const { path } of list) seen.add(path);
  }
  return { warmup: warm, rounds, expected, counts };
}

/** Body size of a path: fixed by the path, 1 KB to 1 MB. */
export function sizeOf(path: string): number {
  let u = hash(path) / 2 ** 32;
  for (const [size, weight] of SIZE_WEIGHTS) {
    if (u < weight) return size;
    u -= weight;
  }
  return KB;
}

/** The `pad` field of a path's body, so that the JSON body is exactly `sizeOf(path)` bytes. */
function padOf(path: string): string {
  const size = sizeOf(path);
  const overhead = JSON.stringify({ path, pad: "" }).length;
  const token = `${path}|`;
  return token.repeat(Math.ceil((size - overhead) / token.length)).slice(0, size - overhead);
}

/** What reached the origin. */
export interface OriginCounts {
  full: number;
  notModified: number;
}

export interface LoadOrigin {
  readonly url: string;
  readonly counts: OriginCounts;
  reset(): void;
  close(): Promise<void>;
}

/**
 * The origin: `/hot/<k>` and `/new/<k>` are `max-age=3600`; `/etag/<k>` carries an ETag and
 * `max-age=0` and answers 304 to a matching `If-None-Match`. Keeps counters only, so that it
 * adds nothing to the heap as the run goes on.
 */
export async function startLoadOrigin(): Promise<LoadOrigin> {
  const counts: OriginCounts = { full: 0, notModified: 0 };
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://127.0.0.1").pathname;
    const route = path.split("/")[1];
    if (route === "etag") {
      const etag = `"${path.split("/")[2]}-v1"`;
      if (request.headers["if-none-match"] === etag) {
        counts.notModified++;
        response.writeHead(304, { etag, "cache-control": "max-age=0" });
        response.end();
        return;
      }
      counts.full++;
      response.writeHead(200, {
        "content-type": "application/json",
        etag,
        "cache-control": "max-age=0",
      });
      response.end(JSON.stringify({ path, pad: padOf(path) }));
      return;
    }
    if (route === "hot" || route === "new") {
      counts.full++;
      response.writeHead(200, {
        "content-type": "application/json",
        "cache-control": "max-age=3600",
      });
      response.end(JSON.stringify({ path, pad: padOf(path) }));
      return;
    }
    response.writeHead(404);
    response.end();
  });
  // Keep-alive connections from a pool of 100 concurrent requests.
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    reset() {
      counts.full = 0;
      counts.notModified = 0;
    },
    close() {
      server.closeAllConnections();
      return new Promise((done) => server.close(() => done()));
    },
  };
}

/** Something to do when the main run dispatches request number `at` (0-based). */
export interface FaultStep {
  readonly at: number;
  readonly label: string;
  readonly run: () => Promise<unknown>;
}

export interface LoadOptions {
  /** Store URL, or an adapter (which the run disconnects when done). */
  readonly store: string | WrappableStore;
  readonly secret: string;
  readonly namespace: string;
  readonly requests: number;
  readonly concurrency: number;
  /** Requests before the heap baseline; default: a tenth of `requests`, at least 2 × C. */
  readonly warmup?: number;
  /** Requests per round (rounds are separated by a barrier); default 1000, fewer for short runs. */
  readonly roundSize?: number;
  /** Shortest time a round of the main run takes: paces the load (default: none, flat out). */
  readonly minRoundMs?: number;
  readonly storeTimeout?: number;
  readonly seed?: number;
  /** Fault injection during the main run. */
  readonly steps?: readonly FaultStep[];
  /** Clear the namespace when done (default true). */
  readonly clear?: boolean;
  /**
   * After the main run (and its heap reading), keep sending uncounted rounds of C requests —
   * hot keys and new ones — until `until()` holds or `maxMs` passed: for a fault run whose
   * recovery must be seen even if it comes after the last counted request.
   */
  readonly tail?: { readonly until: () => boolean; readonly maxMs: number };
}

/** When a step finished, and how the cache served requests dispatched after it. */
export interface StepOutcome {
  readonly label: string;
  /** ms from the start of the main run to the end of the step. */
  readonly doneAtMs: number;
  /** ms from the start of the main run to the dispatch that set the step off. */
  readonly startedAtMs: number;
  /** Requests dispatched after the step finished, and how many were cache hits (no origin call). */
  readonly requestsAfter: number;
  readonly hitsAfter: number;
  /** ms from the end of the step to the first cache hit dispatched after it, if any. */
  readonly firstHitAfterMs: number | undefined;
}

/** The circuit breaker of the storage (`onCircuit`) changing state, ms into the main run. */
export interface CircuitChange {
  readonly state: string;
  readonly atMs: number;
}

/** Latency of the requests dispatched in one phase of a fault run, ms. */
export interface Phase {
  readonly label: string;
  readonly requests: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly concurrency: number;
  readonly warmup: number;
  /** Requests that rejected or outlived {@link HANG_MS}. */
  readonly errors: number;
  readonly errorSamples: readonly string[];
  /** Responses whose body was not the path's body, whole (empty 304s apart). */
  readonly wrongBodies: number;
  /** Responses that were the origin's bare 304, with no body, instead of the cached response. */
  readonly emptyNotModified: number;
  readonly hung: number;
  readonly mix: Record<Kind, number>;
  /** What a healthy cache sends upstream for the main run, and what reached the origin. */
  readonly upstream: {
    readonly expected: number;
    readonly actual: number;
    readonly expectedFull: number;
    readonly full: number;
    readonly expectedNotModified: number;
    readonly notModified: number;
  };
  /** Responses served from the cache without asking the origin, and how many the mix makes. */
  readonly hits: number;
  readonly expectedHits: number;
  /** Revalidations answered 304 and served from the cached entry. */
  readonly revalidated: number;
  /** Latency of the main run's requests, ms. */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** heapUsed after a full GC, bytes: after warm-up, and after the run. */
  readonly heapWarm: number;
  readonly heapAfter: number;
  /** StoreErrors reported through onError, and entries rejected (onInvalid). */
  readonly storeFaults: number;
  readonly invalid: number;
  readonly seconds: number;
  readonly steps: readonly StepOutcome[];
  /** Latency of the requests dispatched before the first step, and after each (fault runs). */
  readonly phases: readonly Phase[];
  /** The store's circuit breaker changing state during the main run (and its tail). */
  readonly circuit: readonly CircuitChange[];
  /** Uncounted requests sent after the run (see `tail`). */
  readonly tailRequests: number;
}

/** A full garbage collection, with or without `--expose-gc`. */
export function collectGarbage(): void {
  let gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
  gc();
}

async function settledHeap(): Promise<number> {
  // Let pending callbacks and sockets settle before collecting.
  await new Promise((done) => setTimeout(done, 50));
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

/** Runs the mix through `setupCache` on `options.store` and reports what happened. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const warmupCount =
    options.warmup ?? Math.max(2 * options.concurrency, Math.round(options.requests / 10));
  const schedule = buildSchedule(options.requests, warmupCount, options.seed, options.roundSize);
  const origin = await startLoadOrigin();
  let storeFaults = 0;
  let invalid = 0;
  let runStart = performance.now();
  const circuit: CircuitChange[] = [];
  const client = setupCache(Axios.create({ baseURL: origin.url }), options.secret, {
    store: options.store,
    namespace: options.namespace,
    ...(options.storeTimeout === undefined ? {} : { storeTimeout: options.storeTimeout }),
    onError: () => {
      storeFaults++;
    },
    onInvalid: () => {
      invalid++;
    },
    onCircuit: (state) => {
      circuit.push({ state, atMs: performance.now() - runStart });
    },
  });

  const latencies = new Float64Array(options.requests);
  const startedAt = new Float64Array(options.requests);
  const cachedFlags = new Uint8Array(options.requests);
  const errorSamples: string[] = [];
  let errors = 0;
  let wrongBodies = 0;
  let hung = 0;
  let emptyNotModified = 0;
  let hits = 0;
  let revalidated = 0;

  const one = async (planned: Planned, index: number | undefined): Promise<void> => {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const response = await Promise.race([
        client.get<{ path?: unknown; pad?: unknown }>(planned.path),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            hung++;
            reject(new Error(`no answer within ${HANG_MS} ms`));
          }, HANG_MS);
        }),
      ]);
      const body = response.data;
      if (response.status === 304 && (body === undefined || (body as unknown) === "")) {
        // The origin's empty 304 handed to the caller instead of the cached body (see
        // docs/reliability.md): counted apart from other wrong bodies.
        emptyNotModified++;
      } else if (body?.path !== planned.path || body.pad !== padOf(planned.path)) {
        wrongBodies++;
        if (errorSamples.length < 5) {
          errorSamples.push(
            `wrong body for ${planned.path} (${response.status}, cached ${response.cached}): ${describeBody(body)}`,
          );
        }
      }
      if (index !== undefined) {
        latencies[index] = performance.now() - started;
        startedAt[index] = started;
        // A 304 also comes back `cached`, but only after asking the origin: counted apart.
        if (response.cached && planned.kind === "revalidate") revalidated++;
        else if (response.cached) {
          cachedFlags[index] = 1;
          hits++;
        }
      }
    } catch (error) {
      if (index !== undefined) {
        errors++;
        latencies[index] = performance.now() - started;
        startedAt[index] = started;
        if (errorSamples.length < 5) errorSamples.push(String(error));
      }
    } finally {
      clearTimeout(timer);
    }
  };

  const runRounds = async (
    rounds: readonly (readonly Planned[])[],
    counted: boolean,
    onDispatch?: (index: number) => void,
  ) => {
    let base = 0;
    for (const list of rounds) {
      const roundStart = performance.now();
      let next = 0;
      const offset = base;
      const worker = async () => {
        while (next < list.length) {
          const i = next++;
          onDispatch?.(offset + i);
          await one(list[i] as Planned, counted ? offset + i : undefined);
        }
      };
      await Promise.all(Array.from({ length: Math.min(options.concurrency, list.length) }, worker));
      base += list.length;
      const pause = (counted ? (options.minRoundMs ?? 0) : 0) - (performance.now() - roundStart);
      if (pause > 0) await new Promise((done) => setTimeout(done, pause));
    }
  };

  try {
    await runRounds(schedule.warmup, false);
    const heapWarm = await settledHeap();
    origin.reset();
    storeFaults = 0;
    invalid = 0;
    circuit.length = 0;

    const steps = [...(options.steps ?? [])].sort((a, b) => a.at - b.at);
    const running: Promise<void>[] = [];
    const done: { label: string; at: number; started: number }[] = [];
    runStart = performance.now();
    let stepIndex = 0;
    await runRounds(schedule.rounds, true, (index) => {
      while (stepIndex < steps.length && (steps[stepIndex] as FaultStep).at <= index) {
        const step = steps[stepIndex++] as FaultStep;
        const started = performance.now();
        running.push(
          step.run().then(() => {
            done.push({ label: step.label, at: performance.now(), started });
          }),
        );
      }
    });
    const seconds = (performance.now() - runStart) / 1000;
    await Promise.all(running);
    const heapAfter = await settledHeap();
    const counts = { ...origin.counts };
    let tailRequests = 0;
    if (options.tail !== undefined) {
      const deadline = performance.now() + options.tail.maxMs;
      while (!options.tail.until() && performance.now() < deadline) {
        const list = Array.from(
          { length: options.concurrency },
          (_, i): Planned =>
            i % 2 === 0
              ? { path: `/hot/${i % 20}`, kind: "hot" }
              : { path: `/new/tail${tailRequests + i}`, kind: "fresh" },
        );
        tailRequests += list.length;
        await runRounds([list], false);
        await new Promise((done) => setTimeout(done, 50));
      }
    }

    // Latency by phase: the requests dispatched before the first step, then between each step's
    // dispatch and the next one's.
    const bounds = [runStart, ...done.map((step) => step.started), Number.POSITIVE_INFINITY];
    const phases = bounds.slice(0, -1).map((from, i): Phase => {
      const to = bounds[i + 1] as number;
      const inPhase: number[] = [];
      for (let j = 0; j < options.requests; j++) {
        const at = startedAt[j] as number;
        if (at >= from && at < to) inPhase.push(latencies[j] as number);
      }
      inPhase.sort((a, b) => a - b);
      return {
        label: i === 0 ? "before" : `after ${done[i - 1]?.label}`,
        requests: inPhase.length,
        p50: percentile(inPhase, 0.5),
        p99: percentile(inPhase, 0.99),
        max: inPhase[inPhase.length - 1] ?? Number.NaN,
      };
    });

    const stepOutcomes = done.map(({ label, at, started }): StepOutcome => {
      let requestsAfter = 0;
      let hitsAfter = 0;
      let firstHit = Number.POSITIVE_INFINITY;
      for (let i = 0; i < options.requests; i++) {
        if ((startedAt[i] as number) < at) continue;
        requestsAfter++;
        if (cachedFlags[i] === 1) {
          hitsAfter++;
          firstHit = Math.min(firstHit, startedAt[i] as number);
        }
      }
      return {
        label,
        doneAtMs: at - runStart,
        startedAtMs: started - runStart,
        requestsAfter,
        hitsAfter,
        firstHitAfterMs: Number.isFinite(firstHit) ? firstHit - at : undefined,
      };
    });

    const sorted = Array.from(latencies).sort((a, b) => a - b);
    const { expected } = schedule;
    return {
      requests: options.requests,
      concurrency: options.concurrency,
      warmup: warmupCount,
      errors,
      errorSamples,
      wrongBodies,
      emptyNotModified,
      hung,
      mix: schedule.counts,
      upstream: {
        expected: expected.full + expected.notModified,
        actual: counts.full + counts.notModified,
        expectedFull: expected.full,
        full: counts.full,
        expectedNotModified: expected.notModified,
        notModified: counts.notModified,
      },
      hits,
      expectedHits: expected.hits,
      revalidated,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? Number.NaN,
      heapWarm,
      heapAfter,
      storeFaults,
      invalid,
      seconds,
      steps: stepOutcomes,
      phases: done.length === 0 ? [] : phases,
      circuit: [...circuit],
      tailRequests,
    };
  } finally {
    if (options.clear ?? true) await Promise.resolve(client.storage.clear()).catch(() => {});
    await client.storage.keyv.disconnect().catch(() => {});
    await origin.close();
  }
}

function describeBody(body: unknown): string {
  if (typeof body !== "object" || body === null)
    return `${typeof body} ${String(body).slice(0, 80)}`;
  const { path, pad } = body as { path?: unknown; pad?: unknown };
  return `path ${String(path)}, pad of ${typeof pad === "string" ? pad.length : typeof pad}`;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank] as number;
}

/**
 * Heap growth allowed between warm-up and the end of a run: 16 MiB, or 25 % of the warm heap if
 * that is more. What may legitimately remain: the storage's replay bounds (one small record per
 * key seen, capped at 10,000 keys, ~2 MiB) and what V8 keeps of compiled code and inline caches.
 */
export function heapTolerance(heapWarm: number): number {
  return Math.max(16 * 1024 * 1024, heapWarm * 0.25);
}

// ---------------------------------------------------------------------------------------------
// Faults under load.

/** A run against a private redis-server killed and restarted mid-way. */
export interface RestartResult extends LoadResult {
  /** Requests dispatched when the server was killed, and when its restart began. */
  readonly killAt: number;
  readonly restartAt: number;
  /** ms from the start of the main run: the kill done, the server answering again. */
  readonly killedAtMs: number | undefined;
  readonly restartedAtMs: number | undefined;
  /** ms from the restart to the first entry written to the restarted (empty) server. */
  readonly storeWrittenAgainMs: number | undefined;
  /**
   * ms from the restart to the first cached response read back from the restarted server: the
   * cache serving from the store again (hits in between come from the process's own memory of
   * writes that failed during the outage). If that came only after the last counted request,
   * uncounted requests went on until it did (`tailRequests`, at most 20 s).
   */
  readonly storeHitAgainMs: number | undefined;
  /** Cached responses read from the store after the restart, counted and tail requests. */
  readonly storeHitsAfterRestart: number;
  /** Keys the restarted server held at the end. */
  readonly keysAtEnd: number;
}

type FaultRunOptions = Omit<LoadOptions, "store" | "steps" | "tail">;

/**
 * The load on a private redis-server (see redis-server.ts) that is SIGKILLed when a quarter of
 * the requests have been dispatched and started again, empty, at half. Pace the run
 * (`minRoundMs`) so that it goes on for a while after the restart.
 */
export async function runWithRestart(options: FaultRunOptions): Promise<RestartResult> {
  const redis = await startRedisServer();
  const killAt = Math.floor(options.requests / 4);
  const restartAt = Math.floor(options.requests / 2);
  let restartedAt: number | undefined;
  let writtenAgainAt: number | undefined;
  let hitAgainAt: number | undefined;
  let storeHitsAfterRestart = 0;
  // The adapter setupCache would build from the URL, watched: a read that returns a cached
  // response (not a `loading` marker) after the restart is the store serving a hit again.
  const adapter = storeFromUrl(redis.url) as WrappableStore & {
    get: (key: string) => Promise<unknown>;
  };
  const get = adapter.get.bind(adapter);
  adapter.get = async (key: string) => {
    const value = await get(key);
    if (
      restartedAt !== undefined &&
      typeof value === "string" &&
      value.includes('"state":"cached"')
    ) {
      storeHitsAfterRestart++;
      hitAgainAt ??= performance.now();
    }
    return value;
  };
  let watching = true;
  const watch = async () => {
    // The restarted server starts empty: its first key is the cache writing to it again.
    while (watching) {
      if ((await redis.dbsize().catch(() => 0)) > 0) {
        writtenAgainAt = performance.now();
        return;
      }
      await new Promise((done) => setTimeout(done, 25));
    }
  };
  let watcher: Promise<void> = Promise.resolve();
  try {
    const result = await runLoad({
      ...options,
      store: adapter,
      steps: [
        { at: killAt, label: "killed", run: () => redis.stop("SIGKILL") },
        {
          at: restartAt,
          label: "restarted",
          run: async () => {
            await redis.start();
            restartedAt = performance.now();
            watcher = watch();
          },
        },
      ],
      tail: { until: () => hitAgainAt !== undefined, maxMs: 20_000 },
      clear: false,
    });
    watching = false;
    await watcher;
    const doneAt = (label: string) => result.steps.find((step) => step.label === label)?.doneAtMs;
    const since = (at: number | undefined) =>
      at === undefined || restartedAt === undefined ? undefined : at - restartedAt;
    return {
      ...result,
      killAt,
      restartAt,
      killedAtMs: doneAt("killed"),
      restartedAtMs: doneAt("restarted"),
      storeWrittenAgainMs: since(writtenAgainAt),
      storeHitAgainMs: since(hitAgainAt),
      storeHitsAfterRestart,
      keysAtEnd: await redis.dbsize().catch(() => 0),
    };
  } finally {
    watching = false;
    await redis.close();
  }
}

/** A run against a store that accepts connections and never answers. */
export interface StallResult extends LoadResult {
  /** Connections the stalling server accepted, and bytes it was sent. */
  readonly connections: number;
  readonly bytesReceived: number;
}

/**
 * The load against `redis://127.0.0.1:<port>` of a server that accepts and never answers, from
 * the first request on: no warm-up unless asked, so that every request is measured.
 */
export async function runWithStall(options: FaultRunOptions): Promise<StallResult> {
  const stall = await startStallingServer();
  try {
    const result = await runLoad({ warmup: 0, ...options, store: stall.url, clear: false });
    return { ...result, connections: stall.connections, bytesReceived: stall.bytesReceived };
  } finally {
    await stall.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Several processes, one key.

/** What the writers of {@link raceOneKey} saw, summed over processes. */
export interface RaceResult {
  readonly processes: number;
  readonly writes: number;
  readonly reads: number;
  /** Reads that returned a value: each must be exactly one written value, whole. */
  readonly values: number;
  /** Of those, values another process wrote: proof the processes really interleaved. */
  readonly foreign: number;
  /** Values that were not exactly one written value. */
  readonly torn: number;
  /** Entries rejected (onInvalid) or reads that threw BadData. */
  readonly badData: number;
  /** Reads that found nothing once the key had been written. */
  readonly misses: number;
  /** Store faults: StoreError thrown, or a write the store did not acknowledge. */
  readonly storeFaults: number;
  readonly samples: readonly string[];
}

const RACE_KEY = "the-one-key";
/** Value sizes by writer: from a few hundred bytes to most of a megabyte. */
const RACE_SIZES = [512, 32 * KB, 256 * KB, 768 * KB];

function raceBody(writer: number, seq: number): string {
  const size = RACE_SIZES[writer % RACE_SIZES.length] as number;
  const token = `w${writer}s${seq}.`;
  return token.repeat(Math.ceil(size / token.length)).slice(0, size);
}

/**
 * Forks `processes` children (`--import tsx`) that, for `durationMs`, write their own values to
 * one key of `url` through `createKeyv` (strict) and read it back, checking every value read.
 */
export async function raceOneKey(options: {
  url: string;
  secret: string;
  namespace: string;
  processes: number;
  durationMs: number;
}): Promise<RaceResult> {
  const file = fileURLToPath(import.meta.url);
  const children = Array.from({ length: options.processes }, (_, writer) =>
    fork(file, [options.url, options.namespace, String(writer), String(options.durationMs)], {
      execArgv: ["--import", "tsx"],
      env: { PATH: process.env.PATH ?? "", LOAD_RACE_SECRET: options.secret },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    }),
  );
  try {
    const ready = children.map(
      (child) =>
        new Promise<void>((done, fail) => {
          child.once("message", () => done());
          child.once("exit", (code) => fail(new Error(`race child exited early (${code})`)));
        }),
    );
    await Promise.all(ready);
    const reports = children.map(
      (child) =>
        new Promise<RaceResult>((done, fail) => {
          child.once("message", (report) => done(report as RaceResult));
          child.once("exit", (code) => fail(new Error(`race child exited (${code})`)));
        }),
    );
    for (const child of children) child.send("go");
    const all = await Promise.all(reports);
    const sum = (field: keyof RaceResult) =>
      all.reduce((total, report) => total + (report[field] as number), 0);
    return {
      processes: options.processes,
      writes: sum("writes"),
      reads: sum("reads"),
      values: sum("values"),
      foreign: sum("foreign"),
      torn: sum("torn"),
      badData: sum("badData"),
      misses: sum("misses"),
      storeFaults: sum("storeFaults"),
      samples: all.flatMap((report) => report.samples).slice(0, 10),
    };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill();
    // The key outlives the children: remove it (and only this namespace) from the store.
    const keyv = createKeyv({
      url: options.url,
      secret: options.secret,
      namespace: options.namespace,
      env: {},
    });
    await keyv.clear().catch(() => {});
    await keyv.disconnect().catch(() => {});
  }
}

/** The child of {@link raceOneKey}. */
async function raceChild(args: string[]): Promise<void> {
  const [url, namespace, writerText, durationText] = args as [string, string, string, string];
  const writer = Number(writerText);
  const counts = {
    writes: 0,
    reads: 0,
    values: 0,
    foreign: 0,
    torn: 0,
    badData: 0,
    misses: 0,
    storeFaults: 0,
  };
  const samples: string[] = [];
  const note = (text: string) => {
    if (samples.length < 3) samples.push(`w${writer}: ${text}`);
  };
  const keyv = createKeyv({
    url,
    secret: process.env.LOAD_RACE_SECRET as string,
    namespace,
    strict: true,
    env: {},
    onInvalid: (error) => {
      counts.badData++;
      note(`onInvalid ${error.name} ${(error as { reason?: string }).reason ?? ""}`);
    },
  });
  let written = false;
  const read = async () => {
    counts.reads++;
    try {
      const value = (await keyv.get(RACE_KEY)) as
        | { writer?: unknown; seq?: unknown; body?: unknown }
        | undefined;
      if (value === undefined) {
        if (written) counts.misses++;
        return;
      }
      counts.values++;
      const { writer: by, seq, body } = value;
      if (
        typeof by !== "number" ||
        typeof seq !== "number" ||
        !Number.isInteger(by) ||
        by < 0 ||
        body !== raceBody(by, seq)
      ) {
        counts.torn++;
        note(`torn value: ${JSON.stringify(value).slice(0, 120)}`);
        return;
      }
      if (by !== writer) counts.foreign++;
      else written = true;
    } catch (error) {
      if (error instanceof BadData) {
        counts.badData++;
        note(`read threw ${error.name}`);
      } else if (error instanceof StoreError) {
        counts.storeFaults++;
      } else {
        counts.storeFaults++;
        note(`read threw ${String(error)}`);
      }
    }
  };

  process.send?.("ready");
  await new Promise<void>((done) => process.once("message", () => done()));
  const deadline = Date.now() + Number(durationText);
  let seq = 0;
  while (Date.now() < deadline) {
    const value = { writer, seq, body: raceBody(writer, seq) };
    seq++;
    try {
      counts.writes++;
      if ((await keyv.set(RACE_KEY, value, 60_000)) === false) counts.storeFaults++;
      else written = true;
    } catch (error) {
      counts.storeFaults++;
      if (!(error instanceof StoreError)) note(`write threw ${String(error)}`);
    }
    await read();
    await read();
  }
  await keyv.disconnect().catch(() => {});
  process.send?.({ ...counts, samples });
  process.disconnect?.();
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await raceChild(process.argv.slice(2));
}

// ---------------------------------------------------------------------------------------------

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/** A small seeded PRNG: the same seed gives the same mix on every machine. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** FNV-1a, 32 bits. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
