import { randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";
import fc from "fast-check";
import Keyv from "keyv";
import { afterAll, describe, expect, it } from "vitest";
import { createKeyv } from "../../src/create-keyv.ts";
import { type BadData, InvalidKey, StoreError } from "../../src/errors.ts";
import { signedStore, type WrappableStore } from "../../src/store.ts";
import { KEYV_MAJOR } from "./adapters.ts";
import { SECRET } from "./secrets.ts";

/** A real server a backend suite runs against. */
export interface Backend {
  name: string;
  url: string;
  reachable: boolean;
}

/** Finds a backend's URL (an env variable overrides the local default) and probes it over TCP. */
export async function findBackend(
  name: string,
  envVar: string,
  fallback: string,
): Promise<Backend> {
  const url = process.env[envVar] || fallback;
  const { hostname, port } = new URL(url);
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.setTimeout(2000);
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
  return { name, url, reachable };
}

/**
 * For a suite that runs only part of its tests on `backend`: says loudly when the server is
 * down (those tests are skipped), and fails the file when CI=true.
 *
 * @returns Whether the backend's tests should run.
 */
export function backendOrSkip(backend: Backend, what: string): boolean {
  if (backend.reachable) return true;
  const message = `${backend.name} at ${new URL(backend.url).host} is unreachable: ${what} is SKIPPED`;
  if (process.env.CI === "true") throw new Error(`${message} — a failure when CI=true`);
  console.warn(`\n!!! ${message} !!!\n`);
  return false;
}

/**
 * `describe` for a suite that needs a live server: skipped with a loud warning when the server
 * is down, and a failing test instead when CI=true, so CI never passes without the backend.
 */
export function describeBackend(backend: Backend, title: string, body: () => void): void {
  if (backend.reachable) {
    describe(title, body);
    return;
  }
  const where = new URL(backend.url).host;
  if (process.env.CI === "true") {
    describe(title, () => {
      it(`${backend.name} is reachable at ${where}`, () => {
        throw new Error(`${backend.name} is not reachable at ${where}; CI needs every backend`);
      });
    });
    return;
  }
  console.warn(
    `\n!!! ${backend.name} is not reachable at ${where}: SKIPPING "${title}". ` +
      "Start it (or set its *_URL); with CI=true this is a failure.\n",
  );
  describe.skip(title, body);
}

/** How a backend suite reaches under the signed store with the backend's own client. */
export interface RawAccess {
  /** A fresh adapter over the shared table/database, as `storeFromUrl` builds it. */
  store: () => WrappableStore;
  /** The stored text of the entry `key` of `namespace`, read with the backend's own client. */
  read: (namespace: string, key: string) => Promise<string | undefined>;
  /** Overwrites (or plants) that entry's stored text with the backend's own client. */
  write: (namespace: string, key: string, value: string) => Promise<void>;
}

/**
 * What every backend must do for users: tampered rows rejected, TTL honoured, namespaces kept
 * apart, large values intact. Run inside a {@link describeBackend}.
 */
export function backendBehaviours(raw: RawAccess): void {
  // Unique per run: other suites and other runs share the same servers.
  const base = `sc_backends_${randomBytes(4).toString("hex")}`;
  const opened: Keyv[] = [];

  function keyv(namespace: string, options: Parameters<typeof signedStore>[2] = {}): Keyv {
    const instance = new Keyv({
      store: signedStore(raw.store(), SECRET, options),
      namespace,
      throwOnErrors: options.strict === true,
    });
    opened.push(instance);
    return instance;
  }

  afterAll(async () => {
    for (const instance of opened) await instance.clear().catch(() => {});
    // SQL adapters share one pool per URL: disconnecting once closes it for all.
    await opened[0]?.disconnect();
  });

  it("keeps an envelope in the row; a row altered with the backend's own client is rejected", async () => {
    const namespace = `${base}_tamper`;
    const invalid: BadData[] = [];
    const lax = keyv(namespace, { onInvalid: (error) => invalid.push(error) });
    const strict = keyv(namespace, { strict: true });
    const where = [namespace, "user"] as const;

    await lax.set("user", { admin: false });
    const row = await raw.read(...where);
    expect(row).toMatch(/^sc2\..*"admin":false/);
    const forged = String(row).replace('"admin":false', '"admin":true');

    await raw.write(...where, forged);
    await expect(strict.get("user")).rejects.toMatchObject({
      name: "BadSignature",
      reason: "mismatch",
    });
    expect(await raw.read(...where)).toBe(forged);

    expect(await lax.get("user")).toBeUndefined();
    expect(invalid.map((error) => error.name)).toEqual(["BadSignature"]);
    expect(await raw.read(...where)).toBeUndefined();

    await raw.write(...where, '{"value":{"admin":true},"expires":null}');
    await expect(strict.get("user")).rejects.toMatchObject({ reason: "unsigned" });
  });

  it("expires entries after their TTL", async () => {
    const cache = keyv(`${base}_ttl`);
    await cache.set("short", "soon gone", 150);
    await cache.set("long", "still here", 60_000);
    expect(await cache.get("short")).toBe("soon gone");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await cache.get("short")).toBeUndefined();
    expect(await raw.read(`${base}_ttl`, "short")).toBeUndefined();
    expect(await cache.get("long")).toBe("still here");
  });

  it("round-trips a 1 MB value exactly", async () => {
    const cache = keyv(`${base}_large`);
    const value = { body: randomBytes(768 * 1024).toString("base64") };
    expect(value.body.length).toBeGreaterThanOrEqual(1024 * 1024);
    expect(await cache.set("big", value)).toBe(true);
    expect(await cache.get("big")).toEqual(value);
    const row = await raw.read(`${base}_large`, "big");
    expect(row?.length).toBeGreaterThan(1024 * 1024);
  });

  it("keeps keys that differ only in case apart", async () => {
    const cache = keyv(`${base}_case`, { strict: true });
    await cache.set("Key", "upper");
    await cache.set("key", "lower");
    expect(await cache.get("Key")).toBe("upper");
    expect(await cache.get("key")).toBe("lower");
  });

  it("refuses keys it cannot store faithfully, and never mistakes their alias for an attack", async () => {
    const invalid: BadData[] = [];
    const cache = keyv(`${base}_alias`, {
      strict: true,
      onInvalid: (error) => invalid.push(error),
    });
    // The driver would store a lone surrogate as U+FFFD: the two keys would share one row.
    await cache.set("a\uFFFD", "replacement character");
    await expect(cache.set("a\uD800", "lone surrogate")).rejects.toBeInstanceOf(InvalidKey);
    await expect(cache.set("a\uD801", "another")).rejects.toBeInstanceOf(InvalidKey);
    expect(await cache.get("a\uD800")).toBeUndefined();
    expect(await cache.delete("a\uD800")).toBe(false);
    // Keyv 6 answers per key.
    expect(await cache.deleteMany(["a\uD800", "a\uDC00"])).toEqual(
      KEYV_MAJOR === 6 ? [false, false] : false,
    );
    expect(await cache.get("a\uFFFD")).toBe("replacement character");
    expect(invalid).toEqual([]);
  });

  it("returns whatever set accepted, for any key, value and ttl", async () => {
    const cache = keyv(`${base}_any`, { strict: true });
    const ttls = fc.oneof(
      fc.constantFrom(
        undefined,
        0,
        60_000.25,
        Number.MAX_SAFE_INTEGER,
        1e21,
        Number.POSITIVE_INFINITY,
        Number.NaN,
      ),
      fc.integer({ min: 1_000, max: 2 ** 40 }),
    );
    const keys = fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(keys, fc.jsonValue(), ttls, async (key, value, ttl) => {
        await cache.set(key, value, ttl);
        // JSON turns -0 into 0: compare as JSON would, which is what Keyv stores.
        expect(await cache.get(key)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 40 },
    );
  });

  it("keeps keys that differ only by trailing spaces apart", async () => {
    const cache = keyv(`${base}_pad`, { strict: true });
    await cache.set("user", "no space");
    await cache.set("user ", "one space");
    expect(await cache.get("user")).toBe("no space");
    expect(await cache.get("user ")).toBe("one space");
  });

  // Each pair: clearing or listing the first must not reach the second, which a LIKE pattern
  // (`_` wildcard, case-insensitive in SQLite/MySQL) or a Redis glob (`?`) would.
  const pairs = [
    [`${base}_a_b`, `${base}_aXb`],
    [`${base}_c?d`, `${base}_cYd`],
    [`${base}_Case`, `${base}_case`],
  ] as const;

  it("never reads, lists or clears another namespace's entries", async () => {
    const caches = new Map(pairs.flat().map((namespace) => [namespace, keyv(namespace)]));
    for (const [namespace, cache] of caches) {
      await cache.set("shared", namespace);
      await cache.set(`only-${namespace}`, 1);
    }
    for (const [namespace, cache] of caches) expect(await cache.get("shared")).toBe(namespace);

    for (const [mine] of pairs) {
      const listed: string[] = [];
      const cache = caches.get(mine) as Keyv;
      expect(cache.iterator).toBeTypeOf("function");
      for await (const [key] of cache.iterator?.(undefined) ?? []) listed.push(String(key));
      expect(listed.sort()).toEqual([`only-${mine}`, "shared"].sort());
      await cache.clear();
    }
    for (const [mine, theirs] of pairs) {
      expect(await caches.get(mine)?.get("shared")).toBeUndefined();
      expect(await caches.get(theirs)?.get("shared")).toBe(theirs);
      expect(await caches.get(theirs)?.get(`only-${theirs}`)).toBe(1);
    }
  });
}

/** A store call that never answers must become a miss within storeTimeout, not a hang. */
export async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await run();
  return { value, ms: performance.now() - started };
}

/** A port on 127.0.0.1 that nothing listens on: connections to it are refused. */
export async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

// Generous on purpose: it only proves a call ends, never how fast (timings are not asserted).
const NEVER_HANGS_MS = 10_000;

/**
 * A store at `url` refuses connections: a lax read is a miss ended by the refusal itself (not by
 * `storeTimeout`) and reported through `onError`; a strict read rejects with `StoreError`.
 */
export async function expectRefusedConnectionIsMiss(url: string): Promise<void> {
  const errors: unknown[] = [];
  const lax = createKeyv({ url, secret: SECRET, onError: (error) => errors.push(error) });
  const { value, ms } = await timed(() => lax.get("k"));
  expect(value).toBeUndefined();
  expect(ms).toBeLessThan(NEVER_HANGS_MS);
  // The adapter's own connection errors come too; at least one is the failed read.
  expect(errors.some((error) => error instanceof StoreError)).toBe(true);
  for (const error of errors) expect(String(error)).not.toMatch(/did not answer/);
  const strict = createKeyv({ url, secret: SECRET, strict: true });
  await expect(strict.get("k")).rejects.toBeInstanceOf(StoreError);
  await Promise.allSettled([lax.disconnect(), strict.disconnect()]);
}
