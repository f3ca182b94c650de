/** Shared set-up of the fetch cache's suites: backends, instances, raw access to entries. */
import { randomBytes } from "node:crypto";
import type { KeyvStoreAdapter } from "keyv";
import type { StoreError } from "../../src/errors.ts";
import {
  type CachedFetch,
  type CachedFetchOptions,
  createCachedFetch,
} from "../../src/fetch/index.ts";
import type { SignedStore } from "../../src/store.ts";
import { adapterKey, fullKeyOf } from "../support/adapters.ts";
import { SECRET } from "../support/secrets.ts";

/** Where a suite's instances keep their entries. */
export interface FetchBackend {
  readonly name: string;
  /** The `url` or `store` option: instances of one suite share what it points at. */
  readonly where: () => Pick<CachedFetchOptions, "url" | "store">;
}

/** Builds instances for one backend and closes them all at the end. */
export function instances(backend: FetchBackend, namespace: string) {
  const opened: CachedFetch[] = [];
  const faults: StoreError[] = [];
  return {
    faults,
    make(options: CachedFetchOptions = {}): CachedFetch {
      const cached = createCachedFetch({
        ...backend.where(),
        secret: SECRET,
        namespace,
        env: {},
        onError: (error) => faults.push(error),
        ...options,
      });
      opened.push(cached);
      return cached;
    },
    async closeAll() {
      for (const cached of opened.splice(0)) {
        await cached.keyv.clear().catch(() => {});
        await cached.close().catch(() => {});
      }
    },
  };
}

/** The stored text of every entry of `cached`'s namespace, by its full (namespaced) key. */
export async function rawEntries(cached: CachedFetch): Promise<Map<string, string>> {
  const backend = (cached.keyv.store as SignedStore).backend;
  const namespace = cached.keyv.namespace as string;
  const out = new Map<string, string>();
  if (backend instanceof Map) {
    for (const [key, value] of backend) {
      if (key.startsWith(`${namespace}:`)) out.set(key, String(value));
    }
    return out;
  }
  const adapter = backend as KeyvStoreAdapter;
  for await (const [listed, value] of adapter.iterator?.(namespace) ?? []) {
    const key = fullKeyOf(adapter, namespace, String(listed));
    if (key.startsWith(`${namespace}:`)) out.set(key, String(value));
  }
  return out;
}

/** Writes `text` under a full key, below the signed store, as an attacker with store access. */
export async function rawWrite(cached: CachedFetch, key: string, text: string): Promise<void> {
  const backend = (cached.keyv.store as SignedStore).backend;
  if (backend instanceof Map) backend.set(key, text);
  else {
    const adapter = backend as KeyvStoreAdapter;
    await adapter.set(adapterKey(adapter, cached.keyv.namespace as string, key), text);
  }
}

/** The key and text of the one response entry stored for `url`. */
export async function entryFor(cached: CachedFetch, url: string): Promise<[string, string]> {
  const found = [...(await rawEntries(cached))].filter(([, text]) =>
    text.includes(`"u":${JSON.stringify(url)}`),
  );
  if (found.length !== 1) throw new Error(`expected one entry for ${url}, found ${found.length}`);
  return found[0] as [string, string];
}

export function uniqueNamespace(label: string): string {
  return `sc_fetch_${label}_${process.pid}_${randomBytes(3).toString("hex")}`;
}

let seq = 0;
/** A path no other test (or run) uses. */
export function uniquePath(label: string): string {
  return `/${label}/${process.pid}-${++seq}`;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
