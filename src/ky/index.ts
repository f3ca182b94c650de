/**
 * `signed-cache/ky`: a ky instance whose requests go through the signed HTTP cache of
 * `signed-cache/fetch`. ky 1 and ky 2 alike: the cache is plugged in as ky's own `fetch` option,
 * so the instance's hooks, retries, timeouts, prefix URL and every other option stay as they were.
 */

import { ConfigError } from "../errors.js";
import {
  type CachedFetch,
  type CachedFetchControls,
  type CachedFetchOptions,
  createCachedFetch,
} from "../fetch/index.js";
import type { Secret } from "../keyring.js";

type KyDefaults = { fetch?: unknown };

/** The slice of a ky instance `withCache` needs: `extend`, given a function of its options. */
export interface KyLike<Instance> {
  extend(options: (defaults: KyDefaults) => { fetch: typeof globalThis.fetch }): Instance;
}

/** Options of {@link withCache}: those of `createCachedFetch`; `secret` may come first instead. */
export type WithCacheOptions = Omit<CachedFetchOptions, "fetch">;

/**
 * A ky instance like `ky`, whose requests are cached in a signed store: the same HTTP caching
 * rules, options and `SIGNED_CACHE_*` environment as `createCachedFetch`. The instance's hooks
 * (they see cached responses too), retries, timeouts and `prefixUrl` keep working. Requests go
 * out through the `fetch` the instance was given, or the global one.
 *
 * @param ky - A ky instance (`ky`, or one from `ky.create()` / `ky.extend()`), ky 1 or ky 2.
 * @param secret - At least 32 bytes. Default: `SIGNED_CACHE_SECRET`.
 * @returns The new instance, with `cache` — the cached fetch, whose `close()` closes the store.
 * @throws {ConfigError} When no secret is given or set, or an option is invalid.
 * @example
 * ```ts
 * import ky from "ky";
 * import { withCache } from "signed-cache/ky";
 *
 * const api = withCache(ky.create({ prefixUrl: "https://api.example.com" }), process.env.SIGNED_CACHE_SECRET);
 * const user = await api.get("users/42").json();
 * await api.cache.close(); // on shutdown
 * ```
 */
export function withCache<Instance>(
  ky: KyLike<Instance>,
  secret?: Secret,
  options: WithCacheOptions = {},
): Instance & { readonly cache: CachedFetch } {
  if (typeof ky?.extend !== "function") {
    throw new ConfigError("withCache needs a ky instance (ky, ky.create() or ky.extend())");
  }
  // The instance's own `fetch` option, if it has one, still sends the requests: ky hands it to
  // `extend` with the rest of the instance's options.
  let underlying: typeof globalThis.fetch | undefined;
  const cache = createCachedFetch({
    ...options,
    ...(secret === undefined || secret === "" ? {} : { secret }),
    fetch: (input, init) => (underlying ?? globalThis.fetch)(input, init),
  });
  const instance = ky.extend((defaults) => {
    underlying =
      typeof defaults.fetch === "function"
        ? (defaults.fetch as typeof globalThis.fetch)
        : undefined;
    return { fetch: cache };
  });
  return Object.assign(instance as object, { cache }) as Instance & { readonly cache: CachedFetch };
}

export type { CachedFetch, CachedFetchControls };
