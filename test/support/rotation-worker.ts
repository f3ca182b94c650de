/**
 * One application process of the rolling-rotation test: it caches HTTP responses through
 * `setupCache` and plain values through `createKeyv` on a shared store, and reopens both with
 * the secrets the parent sends, as a process restarted with new environment variables would.
 *
 * argv: <store URL> <origin URL> <worker name> <namespace prefix>. IPC in: `{ secret, fallbacks }` (a phase) or
 * `"stop"`. IPC out: `"ready"` after each phase is applied, then the final counts.
 */
import Axios from "axios";
import type Keyv from "keyv";
import { setupCache } from "../../src/axios/index.ts";
import { createKeyv } from "../../src/create-keyv.ts";

const [url, origin, name, prefix] = process.argv.slice(2) as [string, string, string, string];
const counts = { requests: 0, failed: 0, hits: 0, invalid: 0, storeFaults: 0, values: 0, lost: 0 };
const reasons: string[] = [];
const failures: string[] = [];

interface Caches {
  axios: ReturnType<typeof setupCache>;
  keyv: Keyv;
}
let caches: Caches | undefined;
let stopping = false;

function open(secret: string, fallbacks: string[]): Caches {
  const onInvalid = (error: { reason?: string; message: string; key?: string }) => {
    counts.invalid++;
    reasons.push(`${error.reason ?? error.message} ${error.key}`);
  };
  const onError = () => {
    counts.storeFaults++;
  };
  const axios = setupCache(Axios.create({ baseURL: origin }), secret, {
    store: url,
    namespace: `${prefix}-http`,
    fallbacks,
    onInvalid,
    onError,
  });
  const keyv = createKeyv({
    url,
    secret,
    fallbacks,
    namespace: `${prefix}-kv`,
    onInvalid,
    onError,
  });
  return { axios, keyv };
}

async function close(old: Caches | undefined): Promise<void> {
  await Promise.allSettled([old?.axios.storage.keyv.disconnect(), old?.keyv.disconnect()]);
}

async function work(): Promise<void> {
  let round = 0;
  while (!stopping) {
    const active = caches;
    if (active === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      continue;
    }
    const item = round++ % 12;
    try {
      counts.requests++;
      const response = await active.axios.get(`/item/${item}`);
      if (response.cached) counts.hits++;
      if (response.data?.item !== item) failures.push(`wrong body for item ${item}`);
    } catch (error) {
      counts.failed++;
      failures.push(String(error));
    }
    // Plain values: each worker writes its own keys and reads what every worker wrote.
    try {
      // A write the store refused (a busy SQLite file) is a fault, reported; what it stored must
      // read back.
      if (await active.keyv.set(`${name}:${item}`, { item, by: name })) {
        counts.values++;
        const mine = await active.keyv.get(`${name}:${item}`);
        if (mine?.item !== item) counts.lost++;
      }
      await active.keyv.get(`shared:${item}`);
      await active.keyv.set(`shared:${item}`, { item, by: name });
    } catch (error) {
      failures.push(String(error));
    }
  }
}

process.on("message", async (message: unknown) => {
  if (message === "stop") {
    stopping = true;
    await running;
    await close(caches);
    process.send?.({ counts, reasons, failures: failures.slice(0, 5) });
    return;
  }
  const { secret, fallbacks } = message as { secret: string; fallbacks: string[] };
  const old = caches;
  caches = open(secret, fallbacks);
  // The loop may still be inside a request on the old caches: let it finish before closing.
  setTimeout(() => void close(old), 500);
  process.send?.("ready");
});

const running = work();
