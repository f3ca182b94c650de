/**
 * signedStore over two real memcached servers on 127.0.0.1, started for this file: compliance,
 * tampering, namespaces, and what memcached cannot do (list or clear one namespace).
 */
import type { KeyvStoreAdapter } from "keyv";
import { expect, it } from "vitest";
import { memcacheExpiry } from "../../src/cluster-stores.ts";
import { ConfigError } from "../../src/errors.ts";
import { signedStore } from "../../src/store.ts";
import { keyvCompliance } from "../support/compliance.ts";
import {
  describeWithTools,
  haveTools,
  localStores,
  startMemcached,
} from "../support/local-cluster.ts";
import { SECRET } from "../support/secrets.ts";

const installed = await haveTools("memcached");
const { adapter, keyv } = localStores(installed, () => startMemcached(2), {
  startTimeout: 30_000,
  throws: () => true,
});

describeWithTools(installed, "memcached", "@keyv/test-suite: signedStore over memcached", () => {
  // memcached cannot list keys: no iterator tests. The suite clears between tests, which a
  // namespace cannot do here: on this private pool, its clear() flushes both servers instead.
  // "namespaced clear only clears current namespace" is what memcached cannot do: it must fail.
  keyvCompliance(
    () => {
      const store = adapter() as KeyvStoreAdapter & { client: { flush(): Promise<unknown> } };
      store.clear = async () => {
        await store.client.flush();
      };
      return signedStore(store, SECRET);
    },
    {
      iterator: false,
      keyv6Iterator: false,
      cannot: ["namespaced clear only clears current namespace"],
    },
  );
});

describeWithTools(installed, "memcached", "signedStore over two memcached servers", () => {
  it("rejects an entry altered on the server, and stores keys exactly (no trimming)", async () => {
    const cache = keyv("tamper", { strict: true });
    const raw = adapter();
    for (let index = 0; index < 20; index++) await cache.set(`k${index} `, { admin: false });
    for (let index = 0; index < 20; index++) {
      const key = `tamper:k${index} `;
      const row = String(await raw.get(key));
      expect(row).toMatch(/^sc2\..*"admin":false/);
      await raw.set(key, row.replace("false", "true"));
      await expect(cache.get(`k${index} `)).rejects.toMatchObject({ reason: "mismatch" });
    }
    await cache.set("k", "no space");
    expect(await cache.get("k")).toBe("no space");
    expect(await cache.get("k ")).toBeUndefined();
  });

  it("keeps namespaces apart; clear() of a namespace is refused, never a flush of all", async () => {
    const mine = keyv("ns_a");
    const theirs = keyv("ns_b");
    await mine.set("shared", "a");
    await theirs.set("shared", "b");
    expect(await mine.get("shared")).toBe("a");
    expect(await theirs.get("shared")).toBe("b");
    await expect(mine.clear()).rejects.toBeInstanceOf(ConfigError);
    expect(await theirs.get("shared")).toBe("b");
    expect(await mine.get("shared")).toBe("a");
  });

  it("cannot be walked: iteration is a ConfigError", async () => {
    const store = signedStore(adapter(), SECRET);
    store.namespace = "walk";
    await expect(async () => {
      for await (const _ of store.audit()) break;
    }).rejects.toBeInstanceOf(ConfigError);
  });

  it("hands memcached whole seconds, rounded up, and a Unix time past 30 days", () => {
    const now = 1_700_000_000_000;
    expect(memcacheExpiry(undefined, now)).toBe(0);
    expect(memcacheExpiry(150, now)).toBe(1);
    expect(memcacheExpiry(60_000, now)).toBe(60);
    expect(memcacheExpiry(31 * 86_400_000, now)).toBe(1_700_000_000 + 31 * 86_400);
    expect(memcacheExpiry(Number.MAX_SAFE_INTEGER, now)).toBe(0);
  });

  it("honours a sub-second TTL natively", async () => {
    const cache = keyv("ttl");
    await cache.set("short", "v", 500);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect(await adapter().get("ttl:short")).toBeUndefined();
  });
});
