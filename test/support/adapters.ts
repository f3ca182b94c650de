import { createRequire } from "node:module";

const load = createRequire(import.meta.url);

/**
 * The contract of the installed adapter package: 6 for the 6.x lines (they declare Keyv 6's
 * `capabilities`, keep their own namespace and lay rows out differently), 5 otherwise. Tests
 * that look at rows with the backend's own client ask this, as `storeFromUrl` does.
 */
export function adapterMajor(packageName: string): 5 | 6 {
  const loaded = load(packageName) as { default?: { prototype: object } };
  const adapter = loaded.default as { prototype: object };
  return "capabilities" in adapter.prototype ? 6 : 5;
}

const { Keyv } = load("keyv") as { Keyv: { prototype: object } };

/**
 * The contract of the installed `keyv` (the one the app, here the test run, resolves): 6 when it
 * resolves stores through `resolveStore`, as the library itself tells them apart.
 */
export const KEYV_MAJOR: 5 | 6 = "resolveStore" in Keyv.prototype ? 6 : 5;

/**
 * Whether an adapter instance is of a 6.x line: it prefixes its own namespace, so it takes and
 * lists keys without the `namespace:` that Keyv 5 (and the signed store) put in front.
 */
export function ownsNamespace(adapter: object): boolean {
  return "capabilities" in adapter;
}

/** The key an adapter takes (and lists) for the entry stored as `fullKey` in `namespace`. */
export function adapterKey(adapter: object, namespace: string, fullKey: string): string {
  return ownsNamespace(adapter) && fullKey.startsWith(`${namespace}:`)
    ? fullKey.slice(namespace.length + 1)
    : fullKey;
}

/** The full (`namespace:`) key of what an adapter listed in `namespace`. */
export function fullKeyOf(adapter: object, namespace: string, listed: string): string {
  return ownsNamespace(adapter) ? `${namespace}:${listed}` : listed;
}
