import { getAdapter, isAxiosError } from "axios";
import type { AxiosCacheInstance } from "axios-cache-interceptor";

type Waiting = AxiosCacheInstance["waiting"];
type ResponseInterceptor = AxiosCacheInstance["responseInterceptor"];
type Deferred = NonNullable<ReturnType<Waiting["get"]>>;

/**
 * The map of in-flight requests that followers wait on, hardened for shared stores.
 *
 * When a `loading` entry disappears from a shared store while its request is in flight (evicted,
 * overwritten by another process), a new request for the same key starts and replaces the
 * leader's deferred here. The leader's followers would then wait on a deferred nobody settles;
 * instead, a replaced deferred settles with the one that replaced it.
 */
export class ChainedWaiting extends Map<string, Deferred> implements Waiting {
  override set(key: string, deferred: Deferred): this {
    const previous = super.get(key);
    if (previous !== undefined && previous !== deferred) {
      deferred.then(
        () => previous.resolve(),
        (error: unknown) => previous.reject(error),
      );
    }
    return super.set(key, deferred);
  }
}

/**
 * Wraps axios-cache-interceptor's response interceptor so that when caching a response fails
 * (a strict-mode `BadSignature`, a store fault with `throwOnStoreError`) the requests waiting on
 * it are rejected with the same error instead of waiting forever.
 */
export function settleFollowersOnFailure(
  axios: AxiosCacheInstance,
  inner: ResponseInterceptor,
): ResponseInterceptor {
  const fail = (id: string | undefined, error: unknown) => {
    if (id === undefined) return;
    const deferred = axios.waiting.get(id);
    if (deferred === undefined) return;
    axios.waiting.delete(id);
    deferred.reject(error);
  };
  return {
    onFulfilled: async (response) => {
      try {
        return await inner.onFulfilled(response);
      } catch (error) {
        fail(response?.config?.id, error);
        throw error;
      }
    },
    onRejected: async (error) => {
      if (inner.onRejected === undefined) throw error;
      try {
        return await inner.onRejected(error);
      } catch (thrown) {
        // The interceptor rethrows the request's own error after settling followers itself.
        if (thrown !== error) fail((error as { config?: { id?: string } })?.config?.id, thrown);
        throw thrown;
      }
    },
  };
}

type RequestInterceptor = AxiosCacheInstance["requestInterceptor"];
type RequestConfig = Parameters<RequestInterceptor["onFulfilled"]>[0];

/**
 * Wraps axios-cache-interceptor's request interceptor so that an error thrown where no axios
 * config travels with it — by an adapter or a `transformResponse` function, as a plain
 * `TypeError`, say — still settles the requests waiting on this one and removes its `loading`
 * entry. axios-cache-interceptor only settles waiters for axios errors that carry their config;
 * for anything else they, and every later request for the same key, would wait until the
 * `loading` entry expired.
 */
export function settleFollowersOnForeignErrors(
  axios: AxiosCacheInstance,
  inner: RequestInterceptor,
): RequestInterceptor {
  return {
    ...inner,
    onFulfilled: async (config) => {
      const ready = await inner.onFulfilled(config);
      const id = ready.id;
      // Only a request that leads (wrote `loading`, others may wait on it) has followers.
      if (id === undefined || axios.waiting.get(id) === undefined) return ready;
      const settle = (error: unknown) => {
        if (isAxiosError(error) && error.config !== undefined) return;
        const deferred = axios.waiting.get(id);
        axios.waiting.delete(id);
        deferred?.reject(error);
        // Errors of the store itself are reported by the storage; nothing else to do here.
        void Promise.resolve(axios.storage.remove(id, ready)).catch(() => {});
      };
      ready.adapter = guardedAdapter(ready, settle);
      ready.transformResponse = guardedTransforms(ready.transformResponse, settle);
      return ready;
    },
  };
}

/** The request's adapter, resolved as axios resolves it, reporting what it throws to `settle`. */
function guardedAdapter(config: RequestConfig, settle: (error: unknown) => void) {
  const adapter = getAdapter(config.adapter ?? []);
  return async (request: Parameters<typeof adapter>[0]) => {
    try {
      return await adapter(request);
    } catch (error) {
      settle(error);
      throw error;
    }
  };
}

/** `transformResponse` functions that report what they throw to `settle`, `this` kept. */
function guardedTransforms(
  transforms: RequestConfig["transformResponse"],
  settle: (error: unknown) => void,
): RequestConfig["transformResponse"] {
  if (transforms === undefined) return undefined;
  const list = Array.isArray(transforms) ? transforms : [transforms];
  return list.map(
    (transform) =>
      function (this: ThisParameterType<typeof transform>, ...args: Parameters<typeof transform>) {
        try {
          return transform.apply(this, args);
        } catch (error) {
          settle(error);
          throw error;
        }
      },
  );
}
