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
