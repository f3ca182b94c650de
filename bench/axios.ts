/**
 * End to end: an axios cache hit through `signed-cache/axios`'s `setupCache` against
 * axios-cache-interceptor's own `setupCache` over the same kind of unsigned Keyv store.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Axios from "axios";
import { type AxiosStorage, buildStorage, setupCache as setupPlain } from "axios-cache-interceptor";
import Keyv from "keyv";
import { setupCache } from "../src/axios/index.ts";
import { generateSecret, storeFromUrl } from "../src/index.ts";
import { jsonText } from "./payload.ts";
import { interleave, type RoundTimes, signedVsUnsigned, type TimingPlan } from "./timing.ts";

/** One backend × size: medians in ns per cache hit. */
export interface AxiosRow {
  readonly backend: string;
  /** `text`: the body stays a string (as requests-cache returns bytes); `json`: axios parses it. */
  readonly body: "text" | "json";
  readonly bytes: number;
  readonly unsigned: number;
  readonly signed: number;
  readonly added: number;
  readonly addedSpread: number;
  /** `added` in CPU time of this process. */
  readonly addedCpu: number;
  readonly rounds: number;
}

/**
 * A local HTTP server answering `/<bytes>` with a cacheable JSON body of that size. Also the
 * origin of the requests-cache peer (bench/peers.ts), so both cache the same response.
 */
export async function startServer(): Promise<{ server: Server; base: string }> {
  const bodies = new Map<number, string>();
  const server = createServer((request, response) => {
    const bytes = Number.parseInt((request.url ?? "/").slice(1), 10) || 1024;
    let body = bodies.get(bytes);
    if (body === undefined) {
      body = jsonText(bytes);
      bodies.set(bytes, body);
    }
    response.writeHead(200, {
      "content-type": "application/json",
      "cache-control": "max-age=3600",
    });
    response.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, base: `http://127.0.0.1:${port}` };
}

/** The storage axios-cache-interceptor's documentation builds over a Keyv: no signing. */
export function keyvStorage(keyv: Keyv): AxiosStorage {
  return buildStorage({
    find: (key) => keyv.get(key),
    set: async (key, value) => {
      await keyv.set(key, value);
    },
    remove: async (key) => {
      await keyv.delete(key);
    },
  });
}

/** Cache-hit latency, signed against unsigned, for one store URL at every size. */
export async function benchAxios(
  backend: { name: string; url: string },
  sizes: readonly number[],
  bodies: readonly ("text" | "json")[],
  plan: TimingPlan,
  progress: (line: string) => void,
): Promise<AxiosRow[]> {
  const { server, base } = await startServer();
  const plainStore = await storeFromUrl(backend.url);
  const signedInner = await storeFromUrl(backend.url);
  const plainKeyv = new Keyv({ store: plainStore, namespace: `axbench${process.pid}` });
  const unsigned = setupPlain(Axios.create(), { storage: keyvStorage(plainKeyv) });
  // As users get it: setupCache's own defaults (store-call timeout, local read-your-writes…).
  const signed = setupCache(Axios.create(), generateSecret(), {
    store: signedInner,
    namespace: `axbench${process.pid}s`,
  });
  const rows: AxiosRow[] = [];
  try {
    for (const body of bodies) {
      for (const bytes of sizes) {
        // Each body kind gets its own URL, so the cache holds one entry per kind and size.
        const url = `${base}/${bytes}?${body}`;
        const config = { responseType: body } as const;
        for (const client of [unsigned, signed]) {
          await client.get(url, config);
          const again = await client.get(url, config);
          const size = typeof again.data === "string" ? again.data.length : 0;
          if (
            !again.cached ||
            (body === "text" ? size !== bytes : typeof again.data !== "object")
          ) {
            throw new Error(
              `${backend.name}: the second ${body} request of ${bytes} B was not a hit`,
            );
          }
        }
        const cpu: RoundTimes = {};
        const times = await interleave(
          [
            { name: "unsigned", run: () => unsigned.get(url, config) },
            { name: "signed", run: () => signed.get(url, config) },
          ],
          plan,
          cpu,
        );
        rows.push({ backend: backend.name, body, bytes, ...signedVsUnsigned(times, cpu) });
        progress(`axios ${backend.name} ${body} hit ${bytes} B`);
      }
    }
  } finally {
    await Promise.allSettled([plainKeyv.clear(), signed.storage.clear()]);
    for (const store of [plainStore, signedInner]) {
      if (!(store instanceof Map)) await store.disconnect?.().catch(() => {});
    }
    server.close();
  }
  return rows;
}
