/**
 * signedStore over a real 3-master Redis Cluster on 127.0.0.1, started for this file: compliance,
 * tampering on every node, namespaces and clear across nodes, the CLI's scan, and a master
 * killed under setupCache.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import Axios from "axios";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import { afterAll, beforeAll, expect, it } from "vitest";
import { setupCache } from "../../src/axios/index.ts";
import { StoreError } from "../../src/errors.ts";
import { signedStore } from "../../src/store.ts";
import { storeFromUrl } from "../../src/stores.ts";
import { adapterMajor } from "../support/adapters.ts";
import { timed } from "../support/backends.ts";
import { keyvCompliance } from "../support/compliance.ts";
import {
  describeWithTools,
  haveTools,
  type LocalCluster,
  localStores,
  redisCli,
  startRedisCluster,
} from "../support/local-cluster.ts";
import { type Origin, startOrigin } from "../support/origin.ts";
import { SECRET } from "../support/secrets.ts";

const installed = await haveTools("redis-server", "redis-cli");
const TOOLS = "redis-server and redis-cli";

const { server, adapter, keyv } = localStores(installed, () => startRedisCluster(3), {
  startTimeout: 60_000,
  throws: (options) => options.strict === true,
});

/** The raw value under `key` on the node at `port`, or `undefined` when another node owns it. */
async function rawOn(port: number, key: string): Promise<string | undefined> {
  const answer = await redisCli(port, "GET", key);
  return answer.startsWith("MOVED") || answer.trim() === "" ? undefined : answer.trimEnd();
}

/** The keys of a namespace each node holds, as @keyv/redis lays them out. */
async function keysByNode(namespace: string): Promise<string[][]> {
  return Promise.all(
    server().nodes.map(async (node) =>
      (await redisCli(node.port, "--scan", "--pattern", `${namespace}::*`))
        .split("\n")
        .filter(Boolean),
    ),
  );
}

describeWithTools(installed, TOOLS, "@keyv/test-suite: signedStore over a Redis Cluster", () => {
  keyvCompliance(() => signedStore(adapter(), SECRET), { iterator: true });
});

describeWithTools(installed, TOOLS, "signedStore over a Redis Cluster", () => {
  it("spreads a namespace over every master", async () => {
    const cache = keyv("spread");
    for (let index = 0; index < 60; index++) await cache.set(`k${index}`, index);
    const held = await keysByNode("spread");
    for (const keys of held) expect(keys.length).toBeGreaterThan(0);
    expect(held.flat()).toHaveLength(60);
  });

  it("rejects an entry altered on the node that holds it, on every node", async () => {
    const invalid: unknown[] = [];
    const lax = keyv("tamper", { onInvalid: (error) => invalid.push(error) });
    const strict = keyv("tamper", { strict: true });
    for (let index = 0; index < 30; index++) await lax.set(`k${index}`, { admin: false });
    const held = await keysByNode("tamper");
    for (const [at, keys] of held.entries()) {
      const port = server().nodes[at]?.port as number;
      const physical = keys[0] as string;
      // @keyv/redis 6 prefixes `tamper::` to the bare key; 5 to the key already prefixed.
      const key = physical.slice(
        adapterMajor("@keyv/redis") === 6 ? "tamper::".length : "tamper::tamper:".length,
      );
      const row = await rawOn(port, physical);
      expect(row).toMatch(/^sc2\..*"admin":false/);
      await redisCli(port, "SET", physical, String(row).replace("false", "true"));
      await expect(strict.get(key)).rejects.toMatchObject({ reason: "mismatch" });
      expect(await lax.get(key)).toBeUndefined();
      expect(await rawOn(port, physical)).toBeUndefined();
    }
    expect(invalid).toHaveLength(server().nodes.length);
  });

  it("keeps namespaces apart, and clears one across every node", async () => {
    const mine = keyv("ns_a");
    const theirs = keyv("ns_aX");
    for (let index = 0; index < 40; index++) {
      await mine.set(`k${index}`, index);
      await theirs.set(`k${index}`, -index);
    }
    const listed: string[] = [];
    for await (const [key] of mine.iterator?.(undefined) ?? []) listed.push(String(key));
    expect(listed).toHaveLength(40);
    await mine.clear();
    expect((await keysByNode("ns_a")).flat()).toEqual([]);
    const left = await keysByNode("ns_aX");
    for (const keys of left) expect(keys.length).toBeGreaterThan(0);
    expect(left.flat()).toHaveLength(40);
    expect(await theirs.get("k7")).toBe(-7);
  });

  it("the CLI verifies and purges entries on every node", async () => {
    const cache = keyv("cli");
    for (let index = 0; index < 30; index++) await cache.set(`k${index}`, index);
    const held = await keysByNode("cli");
    // One tampered entry on each node.
    for (const [at, keys] of held.entries()) {
      const port = server().nodes[at]?.port as number;
      await redisCli(port, "SET", keys[0] as string, "sc2.forged");
    }
    const verify = await cli(["verify", "--url", server().url, "--namespace", "cli", "--json"]);
    expect(verify.code).toBe(1);
    expect(JSON.parse(verify.stdout)).toMatchObject({ scanned: 30, valid: 27, invalid: 3 });
    const purge = await cli(["purge", "--url", server().url, "--namespace", "cli"]);
    expect(purge.code).toBe(0);
    expect((await keysByNode("cli")).flat()).toHaveLength(27);
  });
});

describeWithTools(installed, TOOLS, "a Redis Cluster that loses a master", () => {
  let lossy: LocalCluster;
  let origin: Origin;
  // Connected while every master is up, as a running service is when one dies.
  let direct: Keyv;
  beforeAll(async () => {
    lossy = await startRedisCluster(3);
    origin = await startOrigin();
    direct = new Keyv({
      store: signedStore(storeFromUrl(lossy.url) as KeyvStoreAdapter, SECRET, {
        storeTimeout: 0,
        strict: true,
      }),
      namespace: "direct",
      throwOnErrors: true,
    });
    for (let index = 0; index < 30; index++) await direct.set(`k${index}`, index);
  }, 60_000);
  afterAll(async () => {
    await origin?.close();
    await lossy?.close();
  });

  it("setupCache keeps answering, from the network for the dead node's keys, within bounds; a tampered entry is never served", async () => {
    const faults: unknown[] = [];
    const axios = setupCache(Axios.create({ baseURL: origin.url }), SECRET, {
      store: lossy.url,
      namespace: "http",
      onError: (error) => faults.push(error),
    });
    const paths = Array.from({ length: 30 }, (_, index) => `/json/kill_${index}`);
    for (const path of paths) expect((await axios.get(path)).cached).toBe(false);
    for (const path of paths) expect((await axios.get(path)).cached).toBe(true);

    // Which entries each node holds, then one tampered entry on a node that stays up.
    const held = await Promise.all(
      lossy.nodes.map(async (node) =>
        (await redisCli(node.port, "--scan", "--pattern", "http::*")).split("\n").filter(Boolean),
      ),
    );
    const onDead = held[0]?.length ?? 0;
    expect(onDead).toBeGreaterThan(0);
    const survivor = lossy.nodes[1]?.port as number;
    const forged = held[1]?.[0] as string;
    await redisCli(survivor, "SET", forged, "sc2.forged");

    await lossy.nodes[0]?.stop();
    const before = paths.reduce((sum, path) => sum + origin.hits(path), 0);
    const times: number[] = [];
    const round = await timed(() =>
      Promise.all(
        paths.map(async (path) => {
          const { value, ms } = await timed(() => axios.get(path));
          times.push(ms);
          return value;
        }),
      ),
    );
    for (const response of round.value) expect(response.status).toBe(200);
    const fetched = paths.reduce((sum, path) => sum + origin.hits(path), 0) - before;
    // The dead node's entries and the forged one came from the network; the rest from the cache.
    expect(fetched).toBe(onDead + 1);
    expect(round.value.filter((response) => response.cached)).toHaveLength(30 - onDead - 1);
    // Bounded by one storeTimeout (1000 ms) per request, with room for a loaded machine.
    expect(Math.max(...times)).toBeLessThan(3_000);
    console.info(
      `master killed: ${onDead} of 30 entries on it; 30 concurrent requests took ${Math.round(round.ms)} ms, slowest ${Math.round(Math.max(...times))} ms`,
    );

    const closing = await timed(() => axios.storage.keyv.disconnect());
    console.info(`close with a dead master: ${Math.round(closing.ms)} ms`);
    expect(closing.ms).toBeLessThan(2_000);
  });

  it("a store from storeFromUrl fails a call for a dead master at once, with no storeTimeout, and walks refuse", async () => {
    const cache = direct;
    // A master is down (the test above killed it): its keys fail, the others' succeed.
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, index) =>
        timed(() =>
          cache.set(`k${index}`, index).then(
            () => "ok",
            (error: unknown) => error,
          ),
        ),
      ),
    );
    const failures = results.filter((result) => result.value !== "ok");
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.length).toBeLessThan(30);
    for (const { value, ms } of failures) {
      expect(value).toBeInstanceOf(StoreError);
      expect(ms).toBeLessThan(1_000);
    }
    await expect(cache.clear()).rejects.toThrow(/did not answer/);
    const closing = await timed(() => cache.disconnect());
    expect(closing.ms).toBeLessThan(1_000);
  });
});

const root = fileURLToPath(new URL("../..", import.meta.url));
const tsx = pathToFileURL(join(root, "node_modules/tsx/dist/loader.mjs")).href;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["--import", tsx, join(root, "src/cli.ts"), ...args],
      { env: { PATH: process.env.PATH ?? "", SIGNED_CACHE_SECRET: SECRET } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
