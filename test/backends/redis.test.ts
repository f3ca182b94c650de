import { createServer, type Server, type Socket } from "node:net";
import KeyvRedis from "@keyv/redis";
import { createClient } from "redis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createKeyv } from "../../src/create-keyv.ts";
import { KEY_LIMITS } from "../../src/key-limits.ts";
import { signedStore } from "../../src/store.ts";
import { storeFromUrl } from "../../src/stores.ts";
import { adapterMajor } from "../support/adapters.ts";
import {
  backendBehaviours,
  closedPort,
  describeBackend,
  expectRefusedConnectionIsMiss,
  findBackend,
  timed,
} from "../support/backends.ts";
import { keyvCompliance } from "../support/compliance.ts";
import { expectKeyRoundTrip, keyOfBytes, type LimitedAdapter } from "../support/keys.ts";
import { SECRET } from "../support/secrets.ts";

const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");

/**
 * Where @keyv/redis keeps an entry: it prefixes its own `namespace::`; under 5.x to the key
 * Keyv 5 (or the signed store) already prefixed with `namespace:`, under 6.x to the bare key.
 */
const redisKey = (namespace: string, key: string) =>
  adapterMajor("@keyv/redis") === 6 ? `${namespace}::${key}` : `${namespace}::${namespace}:${key}`;

describeBackend(redis, "@keyv/test-suite: signedStore over @keyv/redis", () => {
  const adapters: KeyvRedis<string>[] = [];
  afterAll(async () => {
    // The suite leaves a few entries behind; remove everything under our separator.
    const client = await createClient({ url: redis.url }).connect();
    for await (const keys of client.scanIterator({ MATCH: "*::sc_backends_suite::*" })) {
      if (keys.length > 0) await client.del(keys);
    }
    await client.close();
    for (const adapter of adapters) await adapter.disconnect();
  });
  // The suite uses the namespaces keyv, keyv1 and keyv2; a separator of our own keeps its
  // keys apart from anyone else's on the shared server.
  keyvCompliance(
    () => {
      const adapter = new KeyvRedis<string>(redis.url, {
        keyPrefixSeparator: "::sc_backends_suite::",
      });
      adapters.push(adapter);
      return signedStore(adapter, SECRET);
    },
    { iterator: true },
  );
});

describeBackend(redis, "signedStore over Redis, from storeFromUrl", () => {
  const client = createClient({ url: redis.url });
  beforeAll(async () => {
    await client.connect();
  });
  afterAll(async () => {
    await client.close();
  });

  backendBehaviours({
    store: () => storeFromUrl(redis.url),
    read: async (namespace, key) => (await client.get(redisKey(namespace, key))) ?? undefined,
    write: async (namespace, key, value) => {
      await client.set(redisKey(namespace, key), value);
    },
  });

  it("hands TTLs to Redis, which evicts the key itself", async () => {
    const cache = createKeyv({ url: redis.url, secret: SECRET, namespace: "sc_backends_px" });
    await cache.set("k", "v", 60_000);
    const ttl = await client.pTTL(redisKey("sc_backends_px", "k"));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await cache.clear();
    await cache.disconnect();
  });
});

describeBackend(redis, "keys through Redis from storeFromUrl", () => {
  it("declares 1 MiB with NUL; the widest declared key and a key with NUL round-trip", async () => {
    const namespace = "sc_backends_keys";
    const adapter = storeFromUrl(redis.url) as LimitedAdapter;
    // As Keyv does: the adapter prefixes its namespace to the `namespace:key` it is given.
    adapter.namespace = namespace;
    const { maxBytes } = adapter[KEY_LIMITS];
    expect(adapter[KEY_LIMITS]).toEqual({ maxBytes: 1024 * 1024, nul: true });
    for (const fill of ["k", "\u{1F511}", " "]) {
      const key = keyOfBytes(namespace, fill, maxBytes);
      expect(Buffer.byteLength(key)).toBe(maxBytes);
      await expectKeyRoundTrip(adapter, namespace, key);
    }
    await expectKeyRoundTrip(adapter, namespace, `${namespace}:a\u0000b`);
    await adapter.disconnect?.();
  });
});

describeBackend(redis, "createKeyv over a Redis that is down or stalled", () => {
  const sockets: Socket[] = [];
  let stalled: Server;
  beforeAll(async () => {
    // A server that accepts connections and never answers: the worst case for a caller.
    stalled = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => stalled.listen(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => stalled.close(resolve));
  });

  it("a refused connection is a miss (strict: StoreError), never a hang", async () => {
    await expectRefusedConnectionIsMiss(`redis://127.0.0.1:${await closedPort()}`);
    const cache = createKeyv({ url: `redis://127.0.0.1:${await closedPort()}`, secret: SECRET });
    expect(await cache.set("k", "v")).toBe(false);
  });

  it("a server that never answers is a miss after the default 1000 ms storeTimeout", async () => {
    const port = (stalled.address() as { port: number }).port;
    const errors: unknown[] = [];
    const cache = createKeyv({
      url: `redis://127.0.0.1:${port}`,
      secret: SECRET,
      onError: (error) => errors.push(error),
    });
    const { value, ms } = await timed(() => cache.get("k"));
    expect(value).toBeUndefined();
    // Ended by the 1000 ms storeTimeout, not by the server.
    expect(ms).toBeLessThan(10_000);
    expect(errors).toContainEqual(
      expect.objectContaining({
        name: "StoreError",
        message: expect.stringMatching(/within 1000 ms/),
      }),
    );
    // Closing is bounded too, and resolves: the silent connection is destroyed, not waited on.
    const closing = await timed(() => cache.disconnect());
    expect(closing.ms).toBeLessThan(2_000);
  });
});
