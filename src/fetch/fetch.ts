/**
 * `createCachedFetch`: a `fetch` with a private HTTP cache whose entries are signed envelopes in
 * any Keyv store. Which responses are stored, when a stored one is fresh, how it is revalidated
 * and when it may be served stale is decided by http-cache-semantics (`shared: false`), the
 * library make-fetch-happen and cacheable-request use — not by a reading of RFC 9111 of our own.
 * What this module adds: where entries live and how they are keyed, signed, bounded in time,
 * coalesced and kept away from a failing store.
 */
import { randomBytes } from "node:crypto";
import CachePolicy from "http-cache-semantics";
import type Keyv from "keyv";
import { readConfig, readMaxStale } from "../config.js";
import { type CreateKeyvOptions, createKeyv } from "../create-keyv.js";
import { BadData, ConfigError, driverFault, EntryTooLarge, StoreError } from "../errors.js";
import { Coalescer } from "../http/coalesce.js";
import { identityKey, valueDigest } from "../http/request-identity.js";
import {
  type CircuitCounts,
  type CircuitState,
  isBypassed,
  reportingGuard,
} from "../http/store-guard.js";
import { KeyvEntries } from "../keyv-io.js";
import type { SignedStore } from "../store.js";
import {
  deserializeEntry,
  type ResponseEntry,
  type StoredValue,
  serializeEntry,
  type VaryIndex,
} from "./entry.js";

/** The purpose bound into every entry: no axios or plain Keyv entry verifies as one. */
export const FETCH_PURPOSE = "fetch";

/** The response header that tells how a response was obtained; see {@link CacheStatus}. */
export const CACHE_STATUS_HEADER = "x-signed-cache";

/**
 * How a response was obtained, in its `x-signed-cache` header:
 * - `hit`: from the store, fresh;
 * - `miss`: from the origin (stored when cacheable);
 * - `revalidated`: from the store, after the origin confirmed it with a 304;
 * - `stale`: from the store, past its freshness (`stale-while-revalidate`, `stale-if-error`,
 *   or a request with `cache: "force-cache"` / `"only-if-cached"`);
 * - `bypass`: the cache was not consulted (a method other than GET/HEAD, `cache: "no-store"`,
 *   a `Range` or conditional request).
 */
export type CacheStatus = "hit" | "miss" | "revalidated" | "stale" | "bypass";

/** Options of {@link createCachedFetch}. */
export interface CachedFetchOptions extends Omit<CreateKeyvOptions, "ttl" | "purpose" | "onError"> {
  /** The fetch to send requests with. @default globalThis.fetch */
  fetch?: typeof globalThis.fetch;
  /**
   * The longest, in ms, an entry is kept past its freshness to be revalidated (ETag,
   * Last-Modified) or served stale (`stale-while-revalidate`, `stale-if-error`). Every entry's
   * signed expiry is its freshness plus at most this: the replay bound.
   * @default 86400000 (24 h), or SIGNED_CACHE_MAX_STALE
   */
  maxStale?: number;
  /**
   * Called with a {@link StoreError} when the store fails or times out (the first of a streak,
   * then once when the circuit opens, with its counts), and with an {@link EntryTooLarge} for a
   * response too large to cache. The request carries on as if the entry were absent.
   */
  onError?: (error: StoreError) => void;
  /** Called when the store's circuit opens, half-opens or closes. */
  onCircuit?: (state: CircuitState, counts: CircuitCounts) => void;
  /** How long, in ms, requests bypass a failing store before one call probes it. @default 5000 */
  circuitCoolDown?: number;
}

/** The fetch {@link createCachedFetch} returns: `fetch`, plus what closes the store. */
export type CachedFetch = typeof globalThis.fetch & CachedFetchControls;

/** What {@link createCachedFetch} attaches to the fetch it returns. */
export interface CachedFetchControls {
  /** The signed Keyv entries live in (purpose `fetch`); its values are in the fetch entry layout. */
  readonly keyv: Keyv;
  /** Resolves once the background revalidations started so far (stale-while-revalidate) end. */
  idle(): Promise<void>;
  /** Stops background revalidations, stops the circuit breaker's timers and closes the store. */
  close(): Promise<void>;
}

/** What one coalesced request produced, before each waiter gets its own `Response`. */
type Outcome =
  | {
      readonly kind: "bytes";
      readonly status: number;
      readonly statusText: string;
      readonly headers: Headers;
      readonly url: string;
      readonly redirected: boolean;
      readonly body: Uint8Array | null;
    }
  | {
      readonly kind: "stream";
      readonly response: Response;
      readonly url: string;
      readonly redirected: boolean;
    };

/** An entry found in the store, with the key it lives under. */
interface Found {
  readonly entry: ResponseEntry;
  readonly key: string;
}

/** One request, as the cache sees it. */
interface Call {
  readonly request: Request;
  /** The URL keyed and matched: the request URL without its fragment. */
  readonly url: string;
  readonly method: string;
  /** The request as http-cache-semantics sees it: credentials and most values as digests. */
  readonly seen: CachePolicy.Request;
  /** Key of the URL's entry (or of its variant index). */
  readonly key: string;
  /** The object the store guard charges this request's store time to. */
  readonly ticket: object;
  /** The variant index read under `key`, if any, with its expiry. */
  index?: { value: VaryIndex; expires: number | null };
}

const CACHED_METHODS = new Set(["GET", "HEAD"]);
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
/** Request headers kept as they are in what the cache policy records; others become digests. */
const PLAIN_REQUEST_HEADERS = new Set([
  "cache-control",
  "pragma",
  "host",
  "if-none-match",
  "if-modified-since",
]);
/** Requests carrying these are passed through: http-cache-semantics does not answer them. */
const PASS_THROUGH_HEADERS = [
  "range",
  "if-none-match",
  "if-modified-since",
  "if-match",
  "if-unmodified-since",
  "if-range",
];
/** Credentials that make a request's responses its own: part of the key. */
const CREDENTIAL_HEADERS = ["authorization", "proxy-authorization", "cookie"];
const POLICY_OPTIONS: CachePolicy.Options = { shared: false };

/**
 * A `fetch` with a private HTTP cache over a signed store. Options and `SIGNED_CACHE_*`
 * environment are those of {@link createKeyv}; entries are signed for the `fetch` purpose.
 *
 * GET and HEAD responses are cached as http-cache-semantics says a private cache may; concurrent
 * identical requests share one upstream call; a tampered entry is a miss (`onInvalid` hears it)
 * or, with `strict`, rejects the call with `BadSignature`; a store that fails or stalls costs a
 * request at most `storeTimeout` in all, and the request goes to the network.
 *
 * @throws {ConfigError} When no secret is set or one is too short, or an option is invalid.
 * @example
 * ```ts
 * import { createCachedFetch } from "signed-cache/fetch";
 *
 * const cachedFetch = createCachedFetch({ url: "redis://localhost:6379" });
 * const response = await cachedFetch("https://api.example.com/users/42");
 * response.headers.get("x-signed-cache"); // "miss", then "hit"
 * await cachedFetch.close();
 * ```
 */
export function createCachedFetch(options: CachedFetchOptions = {}): CachedFetch {
  const {
    fetch: given,
    maxStale: maxStaleOption,
    onError,
    onCircuit,
    circuitCoolDown,
    ...keyvOptions
  } = options;
  const upstream = given ?? globalThis.fetch;
  if (typeof upstream !== "function") throw new ConfigError("fetch must be a function");
  const env = options.env ?? process.env;
  const maxStale = maxStaleOption ?? readMaxStale(env);
  if (!Number.isSafeInteger(maxStale) || maxStale < 0) {
    throw new ConfigError("maxStale must be a whole, non-negative number of milliseconds");
  }
  const coolDown = circuitCoolDown ?? 5_000;
  if (!Number.isFinite(coolDown) || coolDown < 0) {
    throw new ConfigError("circuitCoolDown must be a non-negative number of milliseconds");
  }
  const keyv = createKeyv({ ...keyvOptions, purpose: FETCH_PURPOSE });
  const store = keyv.store as SignedStore;
  // Reads and writes go to the store in this Keyv's terms, so that faults and strict-mode
  // rejections reach this module on either Keyv major, whatever listeners the app adds.
  const entries = new KeyvEntries(keyv, store, serializeEntry, deserializeEntry);
  const strict = store.strict;
  const timeout = store.storeTimeout;
  const maxEntryBytes = options.maxEntryBytes ?? readConfig(env).maxEntryBytes;
  // Base64 takes 4 characters for 3 bytes; what else an entry holds is small beside its body.
  const bodyLimit = Math.floor((maxEntryBytes * 3) / 4);

  // ---- store faults: reported once per streak, never failing a request -----------------------
  const tell = (error: StoreError) => {
    try {
      onError?.(error);
    } catch {
      // A throwing callback must not turn a cache fault into a failed request.
    }
  };
  const guard = reportingGuard({
    budgetMs: timeout === 0 ? Number.POSITIVE_INFINITY : timeout,
    coolDownMs: coolDown,
    tell,
    onCircuit,
  });
  const reported = new WeakSet<object>();
  let inStreak = false;
  const report = (error: unknown, operation: string): void => {
    const storeError =
      error instanceof StoreError
        ? error
        : new StoreError(
            `store ${operation} failed: ${error instanceof Error ? error.message : String(error)}`,
            { cause: driverFault(error) },
          );
    if (storeError instanceof EntryTooLarge) {
      tell(storeError);
      return;
    }
    if (isBypassed(storeError) || guard.state === "open") return;
    if (typeof error === "object" && error !== null) {
      if (reported.has(error)) return;
      reported.add(error);
    }
    if (!inStreak) tell(storeError);
    inStreak = true;
  };
  const answered = () => {
    inStreak = false;
  };
  store.on("error", (error: unknown) => report(error, "connection"));
  const invalid = (error: BadData) => {
    try {
      options.onInvalid?.(error);
    } catch {
      // Ignored, as the signed store ignores it.
    }
  };

  // ---- store calls ----------------------------------------------------------------------------
  const read = async (
    key: string,
    ticket: object,
  ): Promise<{ value: StoredValue; expires: number | null } | undefined> => {
    try {
      const raw = await guard.run(ticket, "get", () => entries.get(key));
      answered();
      if (raw === undefined || typeof raw.value !== "object" || raw.value === null)
        return undefined;
      return {
        value: raw.value as StoredValue,
        expires: typeof raw.expires === "number" ? raw.expires : null,
      };
    } catch (error) {
      if (error instanceof BadData) {
        if (strict) throw error;
        // Lax: a bad signature is already a miss inside the signed store; what arrives here is a
        // payload that verified but does not decode (only another layout could write one).
        invalid(error);
        await remove(key, ticket);
        return undefined;
      }
      report(error, "get");
      return undefined;
    }
  };
  const write = async (key: string, value: StoredValue, ttl: number, ticket: object) => {
    try {
      await guard.run(ticket, "set", () => entries.set(key, value, ttl));
      answered();
    } catch (error) {
      report(error, "set");
    }
  };
  const remove = async (key: string, ticket: object) => {
    try {
      await guard.run(ticket, "delete", () => entries.delete(key));
      answered();
    } catch (error) {
      report(error, "delete");
    }
  };

  /** The response stored for `call`: its own entry, or its variant's. */
  const lookup = async (call: Call): Promise<Found | undefined> => {
    const top = await read(call.key, call.ticket);
    if (top === undefined) return undefined;
    if (top.value.kind === "response") return { entry: top.value, key: call.key };
    call.index = { value: top.value, expires: top.expires };
    const key = variantKey(call, top.value);
    const variant = await read(key, call.ticket);
    if (variant === undefined || variant.value.kind !== "response") return undefined;
    // Written for another set of Vary names than the index's: not this variant.
    if (!sameNames(variant.value.vary, top.value.vary)) return undefined;
    return { entry: variant.value, key };
  };

  /** Stores `entry` for `call`, under its URL's key or as one of its variants. */
  const keep = async (call: Call, entry: ResponseEntry, ttl: number) => {
    if (entry.vary.length === 0) {
      await write(call.key, entry, ttl, call.ticket);
      return;
    }
    const known = call.index;
    const reuse = known !== undefined && sameNames(known.value.vary, entry.vary);
    const index: VaryIndex = reuse
      ? known.value
      : { kind: "vary", vary: entry.vary, generation: randomBytes(12).toString("base64url") };
    // The index carries no response: it may outlive a variant, and lives as long as the longest.
    const indexTtl =
      reuse && known.expires !== null
        ? Math.max(ttl, known.expires - Date.now())
        : reuse
          ? Number.POSITIVE_INFINITY
          : ttl;
    await write(variantKey(call, index), entry, ttl, call.ticket);
    await write(call.key, index, indexTtl, call.ticket);
    call.index = {
      value: index,
      expires: Number.isFinite(indexTtl) ? Date.now() + indexTtl : null,
    };
  };

  // ---- responses ------------------------------------------------------------------------------
  /** The response for a stored entry, with the headers its policy gives now. */
  const fromEntry = (
    call: Call,
    entry: ResponseEntry,
    policy: CachePolicy,
    status: CacheStatus,
  ): Outcome => ({
    kind: "bytes",
    status: entry.status,
    statusText: entry.statusText,
    headers: servedHeaders(policy, entry, status),
    url: entry.url,
    redirected: entry.redirected,
    body: call.method === "HEAD" ? null : entry.body,
  });

  /** A response from the origin: stored when http-cache-semantics says it may be. */
  const admit = async (call: Call, response: Response): Promise<Outcome> => {
    const received = headerRecord(response.headers);
    const vary = varyNames(received.vary);
    const policy = new CachePolicy(
      policyRequestFor(call.seen, vary),
      { status: response.status, headers: received },
      POLICY_OPTIONS,
    );
    const ttl = policy.storable() && !vary.includes("*") ? entryTtl(policy, maxStale) : 0;
    if (!(ttl > 0)) return passThrough(response, "miss");
    const declared = Number(response.headers.get("content-length"));
    if (declared > bodyLimit) {
      report(
        new EntryTooLarge(
          `response of ${declared} bytes is larger than maxEntryBytes allows: not cached`,
        ),
        "set",
      );
      return passThrough(response, "miss");
    }
    const collected = await collect(response.body, bodyLimit);
    if ("stream" in collected) {
      report(new EntryTooLarge("response is larger than maxEntryBytes allows: not cached"), "set");
      return passThrough(response, "miss", collected.stream);
    }
    const entry: ResponseEntry = {
      kind: "response",
      policy: { ...policy.toObject() },
      status: response.status,
      statusText: response.statusText,
      headers: [...response.headers],
      url: response.url || call.url,
      redirected: response.redirected,
      vary,
      body: collected.bytes,
    };
    await keep(call, entry, ttl);
    const headers = new Headers(response.headers);
    headers.set(CACHE_STATUS_HEADER, "miss");
    return {
      kind: "bytes",
      status: response.status,
      statusText: response.statusText,
      headers,
      url: entry.url,
      redirected: entry.redirected,
      body: call.method === "HEAD" ? null : collected.bytes,
    };
  };

  /**
   * Asks the origin about a stored response: a conditional request when it has validators. A
   * 304 gives it a new life (a new signed expiry: the origin confirmed it); a failure within its
   * `stale-if-error` window serves it stale, without rewriting it.
   */
  const revalidate = async (
    call: Call,
    found: Found,
    policy: CachePolicy,
    signal: AbortSignal,
  ): Promise<Outcome> => {
    const conditional = policy.revalidationHeaders(call.seen);
    const etag = headerText(conditional["if-none-match"]);
    const since = headerText(conditional["if-modified-since"]);
    const headers = new Headers(call.request.headers);
    if (etag !== undefined) headers.set("if-none-match", etag);
    if (since !== undefined) headers.set("if-modified-since", since);
    let response: Response;
    try {
      response = await upstream(new Request(call.request, { headers, signal }));
    } catch (error) {
      if (!signal.aborted && staleIfError(policy, call.seen, undefined)) {
        return fromEntry(call, found.entry, policy, "stale");
      }
      throw error;
    }
    if (staleIfError(policy, call.seen, response)) {
      await response.body?.cancel().catch(() => {});
      return fromEntry(call, found.entry, policy, "stale");
    }
    if (response.status !== 304 || (etag === undefined && since === undefined)) {
      return admit(call, response);
    }
    const {
      policy: updated,
      modified,
      matches,
    } = policy.revalidatedPolicy(call.seen, {
      status: 304,
      headers: headerRecord(response.headers),
    });
    if (modified || !matches) {
      // A 304 that names another validator: the stored body is all there is, but it was not
      // confirmed, so it is served as it is and not rewritten.
      return fromEntry(call, found.entry, policy, "stale");
    }
    const entry: ResponseEntry = { ...found.entry, policy: { ...updated.toObject() } };
    const ttl = entryTtl(updated, maxStale);
    if (ttl > 0) await keep(call, entry, ttl);
    return fromEntry(call, entry, updated, "revalidated");
  };

  // ---- background revalidation (stale-while-revalidate) ---------------------------------------
  const background = new Map<string, { controller: AbortController; done: Promise<void> }>();
  const revalidateLater = (call: Call, found: Found, policy: CachePolicy) => {
    if (background.has(found.key)) return;
    const controller = new AbortController();
    const own: Call = { ...call, ticket: {} };
    const done = revalidate(own, found, policy, controller.signal)
      .then(discard, () => {})
      .finally(() => background.delete(found.key));
    background.set(found.key, { controller, done });
  };

  // ---- one cacheable request ------------------------------------------------------------------
  const resolve = async (call: Call, signal: AbortSignal): Promise<Outcome> => {
    const mode = call.request.cache;
    const found = mode === "reload" ? undefined : await lookup(call);
    if (found !== undefined) {
      const policy = CachePolicy.fromObject(
        found.entry.policy as unknown as CachePolicy.CachePolicyObject,
      );
      if (mode === "force-cache" || mode === "only-if-cached") {
        return fromEntry(call, found.entry, policy, policy.stale() ? "stale" : "hit");
      }
      if (mode !== "no-cache") {
        const { revalidation, response } = policy.evaluateRequest(call.seen);
        if (revalidation === undefined) return fromEntry(call, found.entry, policy, "hit");
        if (!revalidation.synchronous && response !== undefined) {
          revalidateLater(call, found, policy);
          return fromEntry(call, found.entry, policy, "stale");
        }
      }
      return revalidate(call, found, policy, signal);
    }
    if (mode === "only-if-cached") {
      return {
        kind: "bytes",
        status: 504,
        statusText: "Gateway Timeout",
        headers: new Headers({ [CACHE_STATUS_HEADER]: "miss" }),
        url: call.url,
        redirected: false,
        body: null,
      };
    }
    return admit(call, await upstream(new Request(call.request, { signal })));
  };

  const flights = new Coalescer<Outcome>(forkOutcome, discard);

  /** After an unsafe method succeeded: its URL's entries (and Location's) are no longer current. */
  const invalidate = async (request: Request, response: Response) => {
    if (response.status < 200 || response.status >= 400) return;
    const target = new URL(request.url);
    const urls = [stripFragment(target)];
    for (const name of ["location", "content-location"]) {
      const value = response.headers.get(name);
      if (value === null) continue;
      try {
        const other = new URL(value, target);
        if (other.origin === target.origin) urls.push(stripFragment(other));
      } catch {
        // Not a URL: nothing to invalidate.
      }
    }
    const ticket = {};
    const keys = new Set<string>();
    for (const url of new Set(urls)) {
      for (const method of CACHED_METHODS) {
        for (const redirect of ["follow", "manual", "error"]) {
          keys.add(urlKey(method, url, redirect, credentials(request.headers)));
          keys.add(urlKey(method, url, redirect, credentials(new Headers())));
        }
      }
    }
    await Promise.all([...keys].map((key) => remove(key, ticket)));
  };

  const cachedFetch = async (
    input: string | URL | Request,
    init?: RequestInit,
  ): Promise<Response> => {
    const request = new Request(input, init);
    const method = request.method.toUpperCase();
    if (!CACHED_METHODS.has(method) || request.cache === "no-store" || passesThrough(request)) {
      const response = await upstream(request);
      if (!SAFE_METHODS.has(method)) await invalidate(request, response);
      return toResponse(passThrough(response, "bypass"));
    }
    const url = stripFragment(new URL(request.url));
    const seen = policyRequest(request, url, method);
    const call: Call = {
      request,
      url,
      method,
      seen,
      key: urlKey(method, url, request.redirect, credentials(request.headers)),
      ticket: {},
    };
    const flightKey = identityKey("fetch-flight/1", [
      call.key,
      request.cache,
      ...[...request.headers].flat(),
    ]);
    return toResponse(
      await flights.run(flightKey, request.signal, (signal) => resolve(call, signal)),
    );
  };

  return Object.assign(cachedFetch, {
    keyv,
    async idle() {
      while (background.size > 0)
        await Promise.all([...background.values()].map((each) => each.done));
    },
    async close() {
      for (const each of background.values()) each.controller.abort();
      await Promise.all([...background.values()].map((each) => each.done));
      guard.shutdown();
      await keyv.disconnect();
    },
  }) as CachedFetch;
}

// ---- keys ---------------------------------------------------------------------------------------

/**
 * Key of a URL's entry: SHA-256 over the method, the URL (no fragment), the redirect mode (which
 * changes the response fetch hands back) and the request's credentials — a response fetched
 * with one `Authorization` or `Cookie` is never served to a request with another, or none.
 */
function urlKey(
  method: string,
  url: string,
  redirect: string,
  credentials: (string | null)[],
): string {
  return identityKey("fetch/1", [method, url, redirect, ...credentials]);
}

function credentials(headers: Headers): (string | null)[] {
  return CREDENTIAL_HEADERS.map((name) => headers.get(name));
}

/** Key of one variant: the URL's key, the index's generation, and the values of its Vary names. */
function variantKey(call: Call, index: VaryIndex): string {
  const headers = call.seen.headers as Record<string, string | undefined>;
  return identityKey("fetch-variant/1", [
    call.key,
    index.generation,
    String(index.vary.length),
    ...index.vary.flatMap((name) => [
      name,
      Object.hasOwn(headers, name) ? (headers[name] ?? null) : null,
    ]),
  ]);
}

// ---- http-cache-semantics' view -------------------------------------------------------------

/**
 * The request as http-cache-semantics sees it. Values it only compares (the headers a response
 * varies on, credentials) are digests, so that a policy it serializes — which keeps the Vary'd
 * request headers — never holds a token or a cookie.
 */
function policyRequest(request: Request, url: string, method: string): CachePolicy.Request {
  const headers: Record<string, string> = {};
  for (const [name, value] of request.headers) {
    headers[name] = PLAIN_REQUEST_HEADERS.has(name) ? value : valueDigest(value);
  }
  headers.host ??= new URL(url).host;
  return { url, method, headers };
}

/** What the stored policy records of the request: only what it compares later. */
function policyRequestFor(seen: CachePolicy.Request, vary: readonly string[]): CachePolicy.Request {
  const all = seen.headers as Record<string, string | undefined>;
  const headers: Record<string, string> = {};
  for (const name of [...vary, "host", "cache-control", "pragma", "authorization"]) {
    const value = Object.hasOwn(all, name) ? all[name] : undefined;
    if (value !== undefined) headers[name] = value;
  }
  return { ...seen, headers };
}

/** Whether a failure (no response, or a 5xx) may be answered with the stale entry. */
function staleIfError(
  policy: CachePolicy,
  seen: CachePolicy.Request,
  response: Response | undefined,
): boolean {
  if (response !== undefined && ![500, 502, 503, 504].includes(response.status)) return false;
  try {
    // http-cache-semantics answers "keep the stored response" (the same policy, not modified)
    // for an error within stale-if-error; without a response outside it, it throws.
    const result = policy.revalidatedPolicy(
      seen,
      (response === undefined
        ? undefined
        : {
            status: response.status,
            headers: headerRecord(response.headers),
          }) as CachePolicy.Response,
    );
    return result.policy === policy && !result.modified;
  } catch {
    return false;
  }
}

/**
 * How long the store keeps an entry, in ms, which the signed store makes its signed expiry: its
 * freshness, plus — when it can still be used once stale — at most `maxStale`: all of it when it
 * can be revalidated (ETag, Last-Modified), else its stale-while-revalidate / stale-if-error
 * window. An old response written back into the store is never served past that.
 */
function entryTtl(policy: CachePolicy, maxStale: number): number {
  const fresh = Math.max(0, (policy.maxAge() - policy.age()) * 1000);
  const usable = policy.timeToLive();
  const headers = policy.responseHeaders();
  const revalidatable = headers.etag !== undefined || headers["last-modified"] !== undefined;
  const stale = revalidatable ? maxStale : Math.min(Math.max(0, usable - fresh), maxStale);
  const ttl = fresh + stale;
  return Number.isNaN(ttl) ? 0 : ttl;
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}

function varyNames(vary: string | undefined): string[] {
  if (vary === undefined) return [];
  const names = vary
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
  return [...new Set(names)].sort();
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, index) => name === b[index]);
}

/** Headers as the lowercase record http-cache-semantics takes. */
function headerRecord(headers: Headers): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [name, value] of headers) {
    record[name] = Object.hasOwn(record, name) ? `${record[name]}, ${value}` : value;
  }
  return record;
}

/** A stored response's headers as its policy gives them now (Age, Date), `Set-Cookie` kept apart. */
function servedHeaders(policy: CachePolicy, entry: ResponseEntry, status: CacheStatus): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(policy.responseHeaders())) {
    if (name === "set-cookie" || value === undefined) continue;
    headers.append(name, Array.isArray(value) ? value.join(", ") : String(value));
  }
  for (const [name, value] of entry.headers) if (name === "set-cookie") headers.append(name, value);
  headers.set(CACHE_STATUS_HEADER, status);
  return headers;
}

// ---- requests and responses -----------------------------------------------------------------

function passesThrough(request: Request): boolean {
  return PASS_THROUGH_HEADERS.some((name) => request.headers.has(name));
}

function stripFragment(url: URL): string {
  const copy = new URL(url);
  copy.hash = "";
  return copy.href;
}

/** An origin response handed on as a stream, labelled. */
function passThrough(
  response: Response,
  status: CacheStatus,
  body?: ReadableStream<Uint8Array>,
): Outcome {
  const headers = new Headers(response.headers);
  headers.set(CACHE_STATUS_HEADER, status);
  let labelled: Response;
  try {
    labelled = new Response(
      NULL_BODY_STATUSES.has(response.status) ? null : (body ?? response.body),
      {
        status: response.status,
        statusText: response.statusText,
        headers,
      },
    );
  } catch {
    // A status a Response cannot be built with: handed on as it came.
    return { kind: "stream", response, url: response.url, redirected: response.redirected };
  }
  return { kind: "stream", response: labelled, url: response.url, redirected: response.redirected };
}

/** One waiter's own response. */
function toResponse(outcome: Outcome): Response {
  if (outcome.kind === "stream") return withUrl(outcome.response, outcome.url, outcome.redirected);
  const body =
    outcome.body === null || NULL_BODY_STATUSES.has(outcome.status) ? null : outcome.body;
  const response = new Response(body, {
    status: outcome.status,
    statusText: outcome.statusText,
    headers: outcome.headers,
  });
  return withUrl(response, outcome.url, outcome.redirected);
}

/** A built `Response` has no URL of its own: give it the one the origin's response had. */
function withUrl(response: Response, url: string, redirected: boolean): Response {
  if (response.url === url && response.redirected === redirected) return response;
  Object.defineProperties(response, {
    url: { value: url, enumerable: true },
    redirected: { value: redirected, enumerable: true },
  });
  return response;
}

/** One copy per waiter: bytes are copied by `new Response`, a stream is teed by `clone()`. */
function forkOutcome(outcome: Outcome, count: number): Outcome[] {
  if (outcome.kind === "bytes" || count === 1) return Array.from({ length: count }, () => outcome);
  const copies: Outcome[] = [outcome];
  for (let i = 1; i < count; i++) copies.push({ ...outcome, response: outcome.response.clone() });
  return copies;
}

/** Releases an outcome nobody reads: its stream is cancelled so that the connection is freed. */
function discard(outcome: Outcome): void {
  if (outcome.kind === "stream") outcome.response.body?.cancel().catch(() => {});
}

/**
 * Reads a body into memory up to `limit` bytes. Past it, what was read and what is left are
 * handed on as one stream, and nothing is cached.
 */
async function collect(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<{ bytes: Uint8Array } | { stream: ReadableStream<Uint8Array> }> {
  if (body === null) return { bytes: new Uint8Array(0) };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size > limit) {
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = chunks.shift();
          if (next !== undefined) {
            controller.enqueue(next);
            return;
          }
          const step = await reader.read();
          if (step.done) controller.close();
          else controller.enqueue(step.value);
        },
        cancel(reason) {
          return reader.cancel(reason);
        },
      });
      return { stream };
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { bytes };
}
