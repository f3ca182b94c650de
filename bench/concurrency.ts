/**
 * Large entries under concurrency: 1 MB cache hits with many requests in flight, signed against
 * unsigned, and whether hashing on worker threads would raise the signed throughput.
 */
import { createHmac, createSecretKey, randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { Worker } from "node:worker_threads";
import Axios from "axios";
import { setupCache as setupPlain } from "axios-cache-interceptor";
import Keyv from "keyv";
import { setupCache } from "../src/axios/index.ts";
import { DEFAULT_MAC_ALGORITHM, generateSecret, storeFromUrl } from "../src/index.ts";
import { keyvStorage, startServer } from "./axios.ts";
import { jsonText } from "./payload.ts";
import { median, type TimingPlan } from "./timing.ts";

/** Requests (or MACs) in flight at once. */
export const CONCURRENCY = 16;
const BYTES = 1024 * 1024;

/** Throughput of each arm, operations per second: medians over interleaved rounds. */
export interface ConcurrencyResult {
  readonly backend: string;
  readonly bytes: number;
  readonly concurrency: number;
  readonly rounds: number;
  /** Cache hits per second through axios-cache-interceptor over an unsigned Keyv. */
  readonly unsignedHits: number;
  /** Cache hits per second through the signed `setupCache`. */
  readonly signedHits: number;
  /** 1 MB HMACs per second on the main thread, `concurrency` requested at once. */
  readonly macInline: number;
  /** The same MACs sent to a pool of worker threads (the string copied to the worker). */
  readonly macWorkers: number;
  readonly workers: number;
}

/** Runs both measurements on one store URL. */
export async function benchConcurrency(
  backend: { name: string; url: string },
  plan: TimingPlan,
  progress: (line: string) => void,
): Promise<ConcurrencyResult> {
  const hits = await hitThroughput(backend, plan);
  progress(`concurrency ${backend.name}: ${CONCURRENCY} × 1 MB hits`);
  const macs = await macThroughput(plan);
  progress(`concurrency: ${CONCURRENCY} × 1 MB MACs inline and on workers`);
  return {
    backend: backend.name,
    bytes: BYTES,
    concurrency: CONCURRENCY,
    ...hits,
    ...macs,
  };
}

/** Ops per second of `run`, `CONCURRENCY` at a time, `total` in all. */
async function throughput(run: () => Promise<unknown>, total: number): Promise<number> {
  const started = process.hrtime.bigint();
  let next = 0;
  const lane = async () => {
    while (next++ < total) await run();
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return (total * 1e9) / Number(process.hrtime.bigint() - started);
}

/** Interleaves the arms round by round (alternating order) and returns each arm's median. */
async function rounds(
  arms: Record<string, () => Promise<number>>,
  plan: TimingPlan,
): Promise<{ medians: Record<string, number>; rounds: number }> {
  const names = Object.keys(arms);
  const seen: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  const count = Math.max(plan.minRounds, Math.min(plan.rounds, 15));
  for (let round = 0; round < plan.warmup + count; round++) {
    for (const name of round % 2 === 0 ? names : [...names].reverse()) {
      const value = await (arms[name] as () => Promise<number>)();
      if (round >= plan.warmup) seen[name]?.push(value);
    }
  }
  return {
    medians: Object.fromEntries(names.map((name) => [name, median(seen[name] ?? [])])),
    rounds: count,
  };
}

async function hitThroughput(
  backend: { name: string; url: string },
  plan: TimingPlan,
): Promise<{ unsignedHits: number; signedHits: number; rounds: number }> {
  const { server, base } = await startServer();
  const plainStore = storeFromUrl(backend.url);
  const signedInner = storeFromUrl(backend.url);
  const plainKeyv = new Keyv({ store: plainStore, namespace: `ccbench${process.pid}` });
  const unsigned = setupPlain(Axios.create(), { storage: keyvStorage(plainKeyv) });
  const signed = setupCache(Axios.create(), generateSecret(), {
    store: signedInner,
    namespace: `ccbench${process.pid}s`,
  });
  const url = `${base}/${BYTES}?concurrency`;
  const config = { responseType: "text" } as const;
  try {
    for (const client of [unsigned, signed]) {
      await client.get(url, config);
      const again = await client.get(url, config);
      if (!again.cached || String(again.data).length !== BYTES) {
        throw new Error(`${backend.name}: the second 1 MB request was not a hit`);
      }
    }
    // A round: about batchMs × 10 of hits per arm, at least two per lane.
    const perHit = await timeOne(() => signed.get(url, config));
    const total = Math.max(
      2 * CONCURRENCY,
      Math.round((plan.batchMs * 10 * 1e6) / Math.max(perHit, 1)),
    );
    const { medians, rounds: count } = await rounds(
      {
        unsigned: () => throughput(() => unsigned.get(url, config), total),
        signed: () => throughput(() => signed.get(url, config), total),
      },
      plan,
    );
    return {
      unsignedHits: medians.unsigned ?? Number.NaN,
      signedHits: medians.signed ?? Number.NaN,
      rounds: count,
    };
  } finally {
    await Promise.allSettled([plainKeyv.clear(), signed.storage.clear()]);
    for (const store of [plainStore, signedInner]) {
      if (!(store instanceof Map)) await store.disconnect?.().catch(() => {});
    }
    server.close();
  }
}

async function timeOne(run: () => Promise<unknown>): Promise<number> {
  await run();
  const started = process.hrtime.bigint();
  for (let i = 0; i < 3; i++) await run();
  return Number(process.hrtime.bigint() - started) / 3;
}

// A worker that MACs each string it is sent, as the envelope does (UTF-8, the same digest).
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHmac, createSecretKey } = require("node:crypto");
const key = createSecretKey(Buffer.from(workerData.key));
parentPort.on("message", ({ id, text }) => {
  parentPort.postMessage({ id, tag: createHmac(workerData.digest, key).update(text, "utf8").digest("base64url") });
});
`;

async function macThroughput(
  plan: TimingPlan,
): Promise<{ macInline: number; macWorkers: number; workers: number }> {
  const raw = randomBytes(32);
  const key = createSecretKey(raw);
  const text = jsonText(BYTES);
  // Fresh strings per call would measure allocation; one string, as a backend read returns it.
  const inline = () =>
    Promise.resolve(
      createHmac(DEFAULT_MAC_ALGORITHM, key).update(text, "utf8").digest("base64url"),
    );
  // One worker per core beyond the main thread's, at least one.
  const count = Math.max(1, cpus().length - 1);
  const pool = Array.from(
    { length: count },
    () =>
      new Worker(WORKER, { eval: true, workerData: { key: raw, digest: DEFAULT_MAC_ALGORITHM } }),
  );
  const waiting = new Map<number, (tag: string) => void>();
  for (const worker of pool) {
    worker.on("message", ({ id, tag }: { id: number; tag: string }) => {
      waiting.get(id)?.(tag);
      waiting.delete(id);
    });
  }
  let ids = 0;
  const offloaded = () =>
    new Promise<string>((resolve) => {
      const id = ids++;
      waiting.set(id, resolve);
      (pool[id % count] as Worker).postMessage({ id, text });
    });
  try {
    if ((await offloaded()) !== (await inline())) throw new Error("worker MAC differs");
    const perMac = await timeOne(inline);
    const total = Math.max(
      4 * CONCURRENCY,
      Math.round((plan.batchMs * 10 * 1e6) / Math.max(perMac, 1)),
    );
    const { medians } = await rounds(
      {
        inline: () => throughput(inline, total),
        workers: () => throughput(offloaded, total),
      },
      plan,
    );
    return {
      macInline: medians.inline ?? Number.NaN,
      macWorkers: medians.workers ?? Number.NaN,
      workers: count,
    };
  } finally {
    await Promise.all(pool.map((worker) => worker.terminate()));
  }
}
