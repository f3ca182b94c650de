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
