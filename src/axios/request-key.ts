/**
 * Cache keys for axios requests that two different requests never share.
 *
 * axios-cache-interceptor's default key is a 32-bit hash of the request: across tens of thousands
 * of URLs two of them get one key, and one URL is answered with the other's cached body (on some
 * ports of 127.0.0.1, `/users/ZHESuB0z` and `/users/M_8pITUK` do). Here the same fields are
 * written in a canonical, type-tagged encoding and hashed with SHA-256.
 *
 * The encoding writes each value as a one-letter tag followed by its length-prefixed contents, so
 * that no two values share an encoding: `"1"` and `1`, `"x"` and `["x"]`, `undefined` and `null`,
 * a string and a Buffer of the same bytes all differ. Object keys are sorted, so their order does
 * not matter; the order of arrays, Maps, Sets, URLSearchParams and FormData does. Text is hashed
 * as UTF-16 code units, so lone surrogates stay distinct.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { Axios, type AxiosRequestConfig } from "axios";
import {
  buildKeyGenerator,
  type CachedResponseMeta,
  type CacheRequestConfig,
  type KeyGenerator,
} from "axios-cache-interceptor";
import { token } from "../http/request-identity.js";

/** A request with more values than this is not keyed by content: see {@link requestKey}. */
const MAX_VALUES = 1_000_000;
/** Pending text is hashed once it grows past this many UTF-16 code units. */
const FLUSH_AT = 1 << 16;
/** Names this process's object identities, so that two processes never share one. */
const PROCESS = randomBytes(12).toString("base64url");
const identities = new WeakMap<object, number>();
let lastIdentity = 0;

/**
 * An axios-cache-interceptor `generateKey` that gives two requests one key only when they are
 * the same request: the SHA-256 (base64url) of a canonical encoding of the method, the URL axios
 * will request (built by axios, so an absolute `url`, trailing slashes and `paramsSerializer`
 * count), params, data, `auth`, the options that shape the response axios returns
 * (`responseType`, `responseEncoding`, `decompress`, `transitional`, `maxRedirects`,
 * `maxContentLength`, `socketPath`), and the Vary header values the interceptor passes. A
 * request's own `id` still wins.
 *
 * Not keyed, because functions have no identity across processes: per-request
 * `transformRequest`, `transformResponse`, `parseReviver` and `validateStatus`; nor headers that
 * something below the interceptors adds (an HTTP agent, a cookie jar). Give requests that differ
 * only there an `id` or a `generateKey` that covers them.
 *
 * `setupCache` from `signed-cache/axios` uses it unless given a `generateKey`; with
 * axios-cache-interceptor's own `setupCache` and `signedStorage`, pass `generateKey: requestKey`.
 *
 * Values whose content cannot be read synchronously (a Blob or File, a stream, a Promise) are
 * keyed by identity within this process. A request whose fields cannot be read at all (a getter
 * or proxy that throws) or hold more than a million values gets a random key: it is never shared,
 * and never served from the cache.
 *
 * @example
 * ```ts
 * import Axios from "axios";
 * import { setupCache } from "axios-cache-interceptor";
 * import { requestKey, signedStorage } from "signed-cache/axios";
 *
 * const storage = signedStorage(new Map(), process.env.SIGNED_CACHE_SECRET!);
 * const axios = setupCache(Axios.create(), { storage, generateKey: requestKey });
 * ```
 */
export const requestKey: KeyGenerator = buildKeyGenerator(
  (request: CacheRequestConfig, meta?: CachedResponseMeta) => {
    try {
      const encoder = new Encoder();
      encoder.value([
        requestMethod(request.method),
        requestUrl(request),
        request.params,
        request.data,
        // Credentials axios turns into an Authorization header below the interceptors, where
        // the Vary check cannot see them.
        request.auth,
        // What shapes the response axios hands back: representation, decoding, parsing,
        // redirects followed, size allowed, and where the request goes.
        request.responseType,
        request.responseEncoding,
        request.decompress,
        request.transitional,
        request.maxRedirects,
        request.maxContentLength,
        request.socketPath,
        definedFields(meta),
      ]);
      return encoder.digest();
    } catch {
      return randomUUID();
    }
  },
);

/** The method as the default generator keys it: lowercased, `get` when absent. */
function requestMethod(method: unknown): unknown {
  if (method === undefined) return "get";
  return typeof method === "string" ? method.toLowerCase() : method;
}

/**
 * The URL axios will request, built by axios itself: an absolute `url` overrides `baseURL`
 * (unless `allowAbsoluteUrls` is off), slashes are kept as given, and params are serialized with
 * the request's own `paramsSerializer`. Joining the parts by hand would give `/x/` and `/x`, or a
 * path that embeds another origin and that origin's URL, one key.
 */
function requestUrl(request: CacheRequestConfig): unknown {
  try {
    // getUri merges `this.defaults` into the config; the config has its instance's defaults.
    return Axios.prototype.getUri.call({ defaults: {} }, request as AxiosRequestConfig);
  } catch {
    // A config axios cannot build a URL from (no url at all) cannot be sent either. Keyed as a
    // pair, which the encoding never confuses with a URL string.
    return [request.baseURL, request.url];
  }
}

/** `{ vary: undefined }` and no meta both mean "no Vary": they key alike. */
function definedFields(meta: object | undefined): Record<string, unknown> {
  const fields = Object.entries(meta ?? {}).filter(([, value]) => value !== undefined);
  return Object.fromEntries(fields);
}

/** Writes values in the canonical encoding straight into a SHA-256. */
class Encoder {
  readonly #hash = createHash("sha256");
  /** The objects being written, outermost first: a cycle is written as a reference back. */
  readonly #path: object[] = [];
  #pending = "";
  #values = 0;

  digest(): string {
    this.#flush();
    return this.#hash.digest("base64url");
  }

  value(value: unknown): void {
    if (++this.#values > MAX_VALUES) throw new RangeError("too many values to key");
    if (typeof value === "object" && value !== null) this.#object(value);
    else this.#write(primitive(value));
  }

  #object(value: object): void {
    const depth = this.#path.indexOf(value);
    if (depth !== -1) {
      this.#write(token("r", String(depth)));
      return;
    }
    this.#path.push(value);
    try {
      this.#contents(value);
    } finally {
      this.#path.pop();
    }
  }

  #contents(value: object): void {
    if (Array.isArray(value)) this.#array(value);
    else if (ArrayBuffer.isView(value)) this.#bytes("v", value);
    else if (value instanceof ArrayBuffer) this.#bytes("A", new Uint8Array(value));
    else if (value instanceof SharedArrayBuffer) this.#bytes("H", new Uint8Array(value));
    else if (value instanceof Date) this.#write(token("D", String(value.getTime())));
    else if (value instanceof URLSearchParams) this.#list("q", [...value].flat());
    else if (value instanceof FormData) this.#list("m", [...value].flat());
    else if (value instanceof Map) this.#list("M", [...value].flat());
    else if (value instanceof Set) this.#list("S", [...value]);
    else if (isBoxed(value)) {
      this.#write("W");
      this.value(value.valueOf());
    } else if (isOpaque(value)) this.#identity(value);
    else this.#record(value);
  }

  #array(array: unknown[]): void {
    this.#write(token("a", String(array.length)));
    for (let i = 0; i < array.length; i++) {
      if (i in array) this.value(array[i]);
      else this.#write("h");
    }
  }

  #list(tag: string, items: unknown[]): void {
    this.#write(token(tag, String(items.length)));
    for (const item of items) this.value(item);
  }

  /**
   * A plain object or class instance: its own enumerable properties, sorted, then what
   * `JSON.stringify` and `String()` would make of it when it defines how.
   */
  #record(value: object): void {
    const proto = Object.getPrototypeOf(value) as object | null;
    const name =
      proto === null
        ? ""
        : String((proto as { constructor?: { name?: unknown } }).constructor?.name);
    this.#write(proto === Object.prototype ? "o" : token("c", name));
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    this.#write(token("k", String(keys.length)));
    for (const key of keys) {
      this.#write(token("s", key));
      this.value(record[key]);
    }
    const toJSON = record.toJSON;
    if (typeof toJSON === "function") {
      this.#write("J");
      this.value(toJSON.call(value, ""));
    } else this.#write("j");
    const stringify = record.toString;
    const ownString =
      proto !== Object.prototype &&
      typeof stringify === "function" &&
      stringify !== Object.prototype.toString;
    this.#write(ownString ? token("Z", String(value)) : "z");
  }

  #identity(value: object): void {
    let identity = identities.get(value);
    if (identity === undefined) {
      identity = ++lastIdentity;
      identities.set(value, identity);
    }
    this.#write(token("I", `${PROCESS}.${identity}`));
  }

  #bytes(tag: string, view: ArrayBufferView): void {
    const name = String(Object.getPrototypeOf(view)?.constructor?.name);
    this.#write(token(tag, name) + token("b", String(view.byteLength)));
    this.#flush();
    this.#hash.update(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  }

  #write(text: string): void {
    this.#pending += text;
    if (this.#pending.length > FLUSH_AT) this.#flush();
  }

  #flush(): void {
    // UTF-16LE writes every code unit as is: lone surrogates are not replaced as in UTF-8.
    this.#hash.update(this.#pending, "utf16le");
    this.#pending = "";
  }
}

/** A primitive's token; a one-letter one when its tag says all. */
function primitive(value: unknown): string {
  switch (typeof value) {
    case "undefined":
      return "u";
    case "boolean":
      return value ? "T" : "F";
    case "number":
      return token("d", Object.is(value, -0) ? "-0" : String(value));
    case "bigint":
      return token("i", String(value));
    case "string":
      return token("s", value);
    case "symbol":
      return token("y", value.description ?? "");
    case "function":
      // What axios's params serializer would send for it: its source text.
      return token("f", Function.prototype.toString.call(value));
    default:
      return "n";
  }
}

/** `new String("x")`, `Object(1n)`…: the wrapped primitive is what counts. */
function isBoxed(value: object): value is { valueOf(): unknown } {
  return (
    value instanceof String ||
    value instanceof Number ||
    value instanceof Boolean ||
    value instanceof BigInt ||
    value instanceof Symbol
  );
}

/** Objects whose content cannot be read synchronously, or at all. */
function isOpaque(value: object): boolean {
  return (
    value instanceof Blob ||
    value instanceof ReadableStream ||
    value instanceof Promise ||
    value instanceof WeakMap ||
    value instanceof WeakSet ||
    value instanceof WeakRef ||
    // A Node stream, or form-data's FormData, which is one.
    typeof (value as { pipe?: unknown }).pipe === "function"
  );
}
