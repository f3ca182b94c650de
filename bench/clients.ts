/**
 * A cache hit through every client the package serves, in one interleaved run per store and
 * size: axios-cache-interceptor over an unsigned Keyv (the baseline), the signed `setupCache`,
 * `createCachedFetch` and `withCache(ky)`, plus an uncached `fetch` to the same local origin as a
 * reference. Text bodies; each client has its own namespace in the same store.
 */
import Axios from "axios";
import { setupCache as setupPlain } from "axios-cache-interceptor";
import Keyv from "keyv";
import ky from "ky";
import { setupCache } from "../src/axios/index.ts";
import { CACHE_STATUS_HEADER, createCachedFetch } from "../src/fetch/index.ts";
import { generateSecret, storeFromUrl } from "../src/index.ts";
import { withCache } from "../src/ky/index.ts";
import { keyvStorage, startServer } from "./axios.ts";
import { sizeLabel } from "./payload.ts";
import { interleave, median, type RoundTimes, type TimingPlan } from "./timing.ts";

/** The arms of a case, in table order. */
export const CLIENT_ARMS = ["axiosUnsigned", "axiosSigned", "fetch", "ky", "plainFetch"] as const;
export type ClientArm = (typeof CLIENT_ARMS)[number];

/** One backend × size: per-arm medians over the same rounds, ns per request. */
export interface ClientRow {
  readonly backend: string;
  readonly body: "text";
  readonly bytes: number;
  /** Wall-clock medians. */
  readonly wall: Readonly<Record<ClientArm, number>>;
  /** Medians of this process's CPU time. */
  readonly cpu: Readonly<Record<ClientArm, number>>;
  readonly rounds: number;
}

/** Text cache hits through every client, interleaved, for one store URL at every size. */
export async function benchClients(
  backend: { name: string; url: string },
  sizes: readonly number[],
  plan: TimingPlan,
  progress: (line: string) => void,
): Promise<ClientRow[]> {
  const { server, base } = await startServer();
  const ns = `clbench${process.pid}`;
  const secret = generateSecret();
  const plainStore = storeFromUrl(backend.url);
  const signedInner = storeFromUrl(backend.url);
  const plainKeyv = new Keyv({ store: plainStore, namespace: `${ns}u` });
  const unsigned = setupPlain(Axios.create(), { storage: keyvStorage(plainKeyv) });
  // Every signed client as users get it: its own defaults (store-call timeout and so on).
  const signed = setupCache(Axios.create(), secret, { store: signedInner, namespace: `${ns}s` });
  const cachedFetch = createCachedFetch({ secret, url: backend.url, namespace: `${ns}f` });
  const cachedKy = withCache(ky, secret, { url: backend.url, namespace: `${ns}k` });
  const rows: ClientRow[] = [];
  try {
    for (const bytes of sizes) {
      const url = `${base}/${bytes}?clients`;
      const config = { responseType: "text" } as const;
      const arms: Record<ClientArm, () => Promise<unknown>> = {
        axiosUnsigned: () => unsigned.get(url, config),
        axiosSigned: () => signed.get(url, config),
        fetch: () => cachedFetch(url).then((response) => response.text()),
        ky: () => cachedKy.get(url).text(),
        plainFetch: () => fetch(url).then((response) => response.text()),
      };
      await checkHits(backend.name, bytes, {
        axiosUnsigned: async () => {
          const response = await unsigned.get(url, config);
          return { hit: response.cached, text: String(response.data) };
        },
        axiosSigned: async () => {
          const response = await signed.get(url, config);
          return { hit: response.cached, text: String(response.data) };
        },
        fetch: async () => {
          const response = await cachedFetch(url);
          return { hit: isHit(response), text: await response.text() };
        },
        ky: async () => {
          const response = await cachedKy.get(url);
          return { hit: isHit(response), text: await response.text() };
        },
      });
      const cpu: RoundTimes = {};
      const times = await interleave(
        CLIENT_ARMS.map((name) => ({ name, run: arms[name] })),
        plan,
        cpu,
      );
      const medians = (source: RoundTimes) =>
        Object.fromEntries(CLIENT_ARMS.map((name) => [name, median(source[name] ?? [])])) as Record<
          ClientArm,
          number
        >;
      rows.push({
        backend: backend.name,
        body: "text",
        bytes,
        wall: medians(times),
        cpu: medians(cpu),
        rounds: times.plainFetch?.length ?? 0,
      });
      progress(`clients ${backend.name} text hit ${bytes} B`);
    }
  } finally {
    await Promise.allSettled([
      plainKeyv.clear(),
      signed.storage.clear(),
      cachedFetch.keyv.clear(),
      cachedKy.cache.keyv.clear(),
    ]);
    for (const store of [plainStore, signedInner]) {
      if (!(store instanceof Map)) await store.disconnect?.().catch(() => {});
    }
    await Promise.allSettled([cachedFetch.close(), cachedKy.cache.close()]);
    server.close();
  }
  return rows;
}

function isHit(response: Response): boolean {
  return response.headers.get(CACHE_STATUS_HEADER) === "hit";
}

/** Fills every cache, then checks that the next request of each client is a hit with the body. */
async function checkHits(
  backend: string,
  bytes: number,
  clients: Record<string, () => Promise<{ hit: boolean; text: string }>>,
): Promise<void> {
  for (const [name, request] of Object.entries(clients)) {
    await request();
    const again = await request();
    if (!again.hit || again.text.length !== bytes) {
      throw new Error(`${backend}: the second ${bytes} B request through ${name} was not a hit`);
    }
  }
}

/** Prints the rows as one table, with run.ts's table and µs formatters. */
export function printClients(
  rows: readonly ClientRow[],
  rounds: number,
  print: {
    title: (text: string) => string;
    note: (text: string) => string;
    table: (header: readonly string[], rows: readonly (readonly string[])[], left?: number) => void;
    us: (ns: number) => string;
  },
): void {
  if (rows.length === 0) return;
  console.log(
    print.title(
      `\nCache hit by client, text body, µs per request (median of up to ${rounds} interleaved rounds)`,
    ),
  );
  print.table(
    [
      "store",
      "size",
      "axios-cache-interceptor (unsigned)",
      "signed setupCache",
      "signed fetch",
      "signed ky",
      "plain fetch",
    ],
    rows.map((row) => [
      row.backend,
      sizeLabel(row.bytes),
      ...CLIENT_ARMS.map((arm) => print.us(row.wall[arm])),
    ]),
    2,
  );
  console.log(
    print.note(
      "All five arms interleaved in the same rounds against one local origin (this process); each cached\n" +
        "client has its own namespace in the store. signed fetch = createCachedFetch, body read with .text();\n" +
        "signed ky = withCache(ky), .text(). plain fetch = uncached fetch to the origin, for reference.",
    ),
  );
}
