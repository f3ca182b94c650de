/**
 * get/set through a signed Keyv on a local 3-master Redis Cluster against one local Redis, both
 * started here on free ports of 127.0.0.1: `npx tsx bench/scaling.ts`. Prints ops/s and p50/p99.
 */
import { createKeyv } from "../src/create-keyv.ts";
import { startRedisCluster } from "../test/support/local-cluster.ts";
import { startRedisServer } from "../test/support/redis-server.ts";

const SECRET = "bench-secret-0123456789abcdefghijklmnop";
const OPS = 5000;
const CONCURRENCY = 50;
const value = { body: "x".repeat(1024) };

async function measure(label: string, url: string): Promise<void> {
  const cache = createKeyv({ url, secret: SECRET, namespace: "bench" });
  for (const op of ["set", "get"] as const) {
    const times: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < OPS) {
          const key = `k${next++}`;
          const at = performance.now();
          if (op === "set") await cache.set(key, value, 60_000);
          else await cache.get(key);
          times.push(performance.now() - at);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    times.sort((a, b) => a - b);
    const p = (q: number) => (times[Math.floor(q * (times.length - 1))] ?? 0).toFixed(2);
    console.log(
      `${label.padEnd(22)} ${op}  ${Math.round(OPS / seconds)} ops/s  p50 ${p(0.5)} ms  p99 ${p(0.99)} ms`,
    );
  }
  await cache.disconnect();
}

const single = await startRedisServer();
const cluster = await startRedisCluster(3);
try {
  console.log(`${OPS} ops, ${CONCURRENCY} concurrent, 1 KiB values, signed (sha256)`);
  await measure("Redis (1 server)", single.url);
  await measure("Redis Cluster (3)", cluster.url);
} finally {
  await single.close();
  await cluster.close();
}
process.exit(0);
