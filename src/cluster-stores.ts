/**
 * Stores spread over several servers: Redis (or Valkey) Cluster, a memcached pool and etcd.
 * {@link storeFromUrl} builds them from `redis+cluster://`, `rediss+cluster://`, `memcache://`
 * and `etcd://` URLs, each naming its servers as a comma-separated `host:port` list.
 */
import type { KeyvStoreAdapter } from "keyv";
import { ConfigError, StoreError } from "./errors.js";
import type { KeyLimits } from "./key-limits.js";
import {
  adapterClass,
  finish,
  loadBeside,
  type RedisAdapter,
  redisAdapter,
  type Scheme,
} from "./stores.js";

const HOST_LIST_SCHEMES = new Set<string>([
  "redis+cluster:",
  "rediss+cluster:",
  "memcache:",
  "etcd:",
]);

// A node that dies must fail the calls for its slots at once, not queue them: node clients of a
// cluster never give up reconnecting (the cluster cannot replace a closed one), but with the
// offline queue off a command for a node that is down is rejected instead of waiting for it.
const CLUSTER_CONNECT_TIMEOUT_MS = 2000;
const CLUSTER_RECONNECT_MAX_MS = 1000;
/** How long a close, and the check before a walk, wait for every master to answer PING. */
const CLUSTER_PING_MS = 300;

// memcached keys are at most 250 bytes; the binary protocol memjs speaks keeps any byte.
const MEMCACHE_KEY_LIMITS: KeyLimits = Object.freeze({ maxBytes: 250, nul: true });
// memcached reads an expiry over 30 days as a Unix time, and holds it in 32 bits.
const MEMCACHE_RELATIVE_MAX_S = 30 * 24 * 60 * 60;
const MEMCACHE_ABSOLUTE_MAX_S = 2 ** 32 - 1;
const MEMCACHE_TIMEOUT_S = 0.5;

// etcd keys are bytes; a request (key and value) is at most 1.5 MiB by default.
const ETCD_KEY_LIMITS: KeyLimits = Object.freeze({ maxBytes: 64 * 1024, nul: true });
const ETCD_DIAL_TIMEOUT_MS = 2000;
const ETCD_PAGE_ROWS = 1000;

/** A store URL split into its credentials and its `host:port` list. */
interface HostList {
  username: string | undefined;
  password: string | undefined;
  hosts: string[];
  /** What follows the host list: a path and query, if any. */
  rest: string;
}

/**
 * Checks a host-list URL (`scheme://[user:pass@]host:port,host:port`) without building a store.
 *
 * @returns Whether the scheme takes a host list (and so was checked here).
 * @throws {ConfigError} When the host list is malformed.
 */
export function checkHostList(url: string, scheme: Scheme): boolean {
  if (!HOST_LIST_SCHEMES.has(scheme)) return false;
  parseHostList(url, scheme);
  return true;
}

/** Builds the store of a host-list scheme; the other schemes are built by stores.ts. */
export function distributedStore(url: string, scheme: Scheme): KeyvStoreAdapter {
  switch (scheme) {
    case "redis+cluster:":
    case "rediss+cluster:":
      return redisClusterStore(url, scheme);
    case "memcache:":
      return memcacheStore(url, scheme);
    case "etcd:":
      return etcdStore(url, scheme);
    default:
      throw new ConfigError(`unsupported store URL (${scheme})`);
  }
}

function parseHostList(url: string, scheme: string): HostList {
  const body = url.slice(scheme.length + 2);
  const end = body.search(/[/?#]/);
  const authority = end === -1 ? body : body.slice(0, end);
  const rest = end === -1 ? "" : body.slice(end);
  const at = authority.indexOf("@");
  const userinfo = at === -1 ? undefined : authority.slice(0, at);
  const hosts = authority.slice(at + 1).split(",");
  for (const host of hosts) {
    // Only the scheme is echoed: the rest of a URL may carry a password. One user part, before
    // the first server (an `@` in a password is written %40); ports 1 to 65535.
    const port = Number(/:(\d{1,5})$/.exec(host)?.[1]);
    if (!/^(\[[0-9a-f:.]+\]|[^\s:/@[\]]+):\d{1,5}$/i.test(host) || !(port >= 1 && port <= 65535)) {
      throw new ConfigError(
        `store URL must list its servers as host:port,host:port (${scheme}//[user:pass@]host:port,…)`,
      );
    }
  }
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    try {
      username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
      password = colon === -1 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    } catch {
      throw new ConfigError(`store URL has a malformed user or password (${scheme}//…)`);
    }
  }
  return { username: username || undefined, password, hosts, rest };
}

/**
 * A Redis Cluster (or Valkey Cluster) through @keyv/redis's cluster client. Keys spread over the
 * cluster's slots; walks and clear() scan every master. A walk or clear() first asks every
 * master, and fails with a StoreError naming the ones that do not answer rather than list or
 * clear part of the namespace.
 */
function redisClusterStore(url: string, scheme: Scheme): KeyvStoreAdapter {
  const { username, password, hosts, rest } = parseHostList(url, scheme);
  // A cluster has one database: `/0` (or nothing) is all a path may say.
  if (!/^(\/0?)?$/.test(rest)) {
    throw new ConfigError(`a Redis Cluster URL takes no database or parameters (${scheme}//…)`);
  }
  const tls = scheme === "rediss+cluster:";
  const adapter = redisAdapter(
    url,
    {
      rootNodes: hosts.map((host) => ({ url: `${tls ? "rediss" : "redis"}://${host}` })),
      // Node clients are made for every master the cluster reports, from these defaults.
      defaults: {
        username,
        password,
        disableOfflineQueue: true,
        socket: {
          tls,
          connectTimeout: CLUSTER_CONNECT_TIMEOUT_MS,
          reconnectStrategy: (retries: number) =>
            Math.min(50 * 2 ** retries, CLUSTER_RECONNECT_MAX_MS),
        },
      },
    },
    "KeyvRedisCluster",
  );
  connectOnce(adapter);
  guardClusterWalks(adapter);
  closeClusterPromptly(adapter);
  return adapter;
}

/**
 * Calls made before the cluster is connected share one connection attempt. The adapter starts
 * one per call, and a second attempt fails ("already open") and destroys the first; and the
 * cluster counts as open before it knows its slots, so a call that did not wait for the attempt
 * would find no master for its key.
 */
function connectOnce(adapter: RedisAdapter): void {
  const target = adapter as unknown as { getClient(): Promise<unknown> };
  const connect = target.getClient.bind(adapter);
  let pending: Promise<unknown> | undefined;
  target.getClient = () => {
    pending ??= connect().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}

interface ClusterClient {
  readonly isOpen: boolean;
  masters: { host: string; port: number }[];
  nodeClient(node: object): Promise<{ ping(): Promise<unknown> }>;
  close(): Promise<void>;
  destroy(): void;
}

function clusterOf(adapter: RedisAdapter): ClusterClient {
  return (adapter as unknown as { client: ClusterClient }).client;
}

/** Resolves after `ms`, without holding the process open. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The masters (`host:port`) that did not answer PING within {@link CLUSTER_PING_MS}. */
async function silentMasters(cluster: ClusterClient): Promise<string[]> {
  const answers = await Promise.all(
    cluster.masters.map((master) =>
      Promise.race([
        cluster
          .nodeClient(master)
          .then((client) => client.ping())
          .then(
            () => true,
            () => false,
          ),
        sleep(CLUSTER_PING_MS).then(() => false),
      ]),
    ),
  );
  return cluster.masters
    .filter((_, index) => !answers[index])
    .map((master) => `${master.host}:${master.port}`);
}

/**
 * A namespace lives on every master: a walk that skipped a master that is down would list part
 * of it as the whole, and clear() would leave that master's entries behind.
 */
function guardClusterWalks(adapter: RedisAdapter): void {
  const requireAllMasters = async (what: string) => {
    await adapter.getMasterNodes();
    const silent = await silentMasters(clusterOf(adapter));
    if (silent.length > 0) {
      throw new StoreError(
        `cannot ${what} the namespace: cluster master${silent.length > 1 ? "s" : ""} ${silent.join(", ")} did not answer`,
      );
    }
  };
  const iterator = adapter.iterator?.bind(adapter) as (
    namespace?: string,
  ) => AsyncGenerator<[string, unknown]>;
  adapter.iterator = async function* (namespace?: string) {
    await requireAllMasters("list");
    yield* iterator(namespace);
  } as KeyvStoreAdapter["iterator"];
  const clear = adapter.clear.bind(adapter);
  adapter.clear = async () => {
    await requireAllMasters("clear");
    await clear();
  };
}

/**
 * A graceful close waits for every node, and a node that is down would hold it (and the
 * process) forever: every master is asked first, briefly, and if one is silent all node
 * sockets are destroyed instead.
 */
function closeClusterPromptly(adapter: RedisAdapter): void {
  adapter.disconnect = async () => {
    const cluster = clusterOf(adapter);
    if (!cluster.isOpen) return;
    if ((await silentMasters(cluster)).length > 0) {
      cluster.destroy();
      return;
    }
    await Promise.race([
      cluster.close(),
      sleep(CLUSTER_PING_MS).then(() => cluster.destroy()),
    ]).catch(() => cluster.destroy());
  };
}

/** The slice of a memjs client the memcached store uses. */
interface MemjsClient {
  get(key: string): Promise<{ value: Buffer | null }>;
  set(key: string, value: string, options: { expires?: number }): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  flush(): Promise<unknown>;
  close(): void;
}

type MemcacheAdapter = KeyvStoreAdapter & { client: MemjsClient; formatKey(key: string): string };

/**
 * memcached servers through @keyv/memcache (memjs picks a server by a hash of the key). memcached
 * cannot list its keys: there is no `iterator()`, and `clear()` of a namespace is refused with a
 * ConfigError (the adapter's own clear() flushes every server, every namespace).
 */
function memcacheStore(url: string, scheme: Scheme): KeyvStoreAdapter {
  const { username, password, hosts, rest } = parseHostList(url, scheme);
  if (rest !== "" && rest !== "/") {
    throw new ConfigError(`a memcache:// URL takes no path or parameters (${scheme}//…)`);
  }
  const credentials =
    username === undefined
      ? ""
      : `${encodeURIComponent(username)}:${encodeURIComponent(password ?? "")}@`;
  const KeyvMemcache = adapterClass<MemcacheAdapter>("@keyv/memcache");
  const adapter = new KeyvMemcache(
    hosts.map((host) => `${credentials}${host}`).join(",") as never,
    {
      // memjs logs every failure to the console unless given a logger.
      logger: { log: () => {} },
      retries: 1,
      timeout: MEMCACHE_TIMEOUT_S,
      conntimeout: MEMCACHE_TIMEOUT_S * 4,
    } as never,
  );
  const client = adapter.client;
  // The adapter trims keys (so `k` and `k ` would share an entry) and prefixes its namespace to
  // the `namespace:key` Keyv already made: keys are stored exactly as Keyv names them.
  adapter.formatKey = (key: string) => key;
  // It also JSON-parses what it reads (an envelope is not JSON) and reports failed reads and
  // deletes of getMany / deleteMany as misses: here values come back as stored, faults as errors.
  adapter.get = (async (key: string) => {
    const { value } = await client.get(key);
    return value === null ? undefined : value.toString("utf8");
  }) as KeyvStoreAdapter["get"];
  adapter.getMany = (async (keys: string[]) =>
    Promise.all(keys.map((key) => adapter.get(key)))) as KeyvStoreAdapter["getMany"];
  adapter.deleteMany = async (keys: string[]) =>
    (await Promise.all(keys.map((key) => adapter.delete(key)))).every(Boolean);
  adapter.set = async (key: string, value: unknown, ttl?: number) => {
    await client.set(key, String(value), { expires: memcacheExpiry(ttl) });
  };
  adapter.clear = async () => {
    if (adapter.namespace) {
      throw new ConfigError(
        "memcached cannot list its keys, so one namespace cannot be cleared (flushing would empty every namespace); let its entries expire, or flush the servers yourself",
      );
    }
    await client.flush();
  };
  adapter.disconnect = async () => client.close();
  return finish(adapter, "KeyvMemcache", url, MEMCACHE_KEY_LIMITS);
}

/**
 * memcached's expiry for a TTL in ms: whole seconds rounded up (the adapter rounded down, and
 * a TTL under a second meant none), and past 30 days a Unix time, as memcached reads those.
 * `0`: none (the signed expiry still applies).
 */
export function memcacheExpiry(ttl: number | undefined, now = Date.now()): number {
  if (ttl === undefined || !Number.isFinite(ttl) || ttl <= 0) return 0;
  const seconds = Math.ceil(ttl / 1000);
  if (seconds <= MEMCACHE_RELATIVE_MAX_S) return seconds;
  const at = Math.ceil(now / 1000) + seconds;
  return at > MEMCACHE_ABSOLUTE_MAX_S ? 0 : at;
}

/** The slice of the etcd3 client the etcd store uses. */
interface Etcd3Client {
  get(key: string): PromiseLike<string | null> & { string(): Promise<string | null> };
  getAll(): {
    inRange(range: unknown): Etcd3Range;
  };
  delete(): {
    range(range: unknown): PromiseLike<unknown>;
    all(): PromiseLike<unknown>;
  };
  close(): void;
}

interface Etcd3Range {
  limit(count: number): Etcd3Range;
  sort(target: "Key", order: "Ascend"): Etcd3Range;
  exec(): Promise<{ kvs: { key: Buffer; value: Buffer }[] }>;
}

type EtcdAdapter = KeyvStoreAdapter & { client: Etcd3Client };

/**
 * etcd through @keyv/etcd. Its clear() deleted every key starting with the namespace, `:` or not
 * (`u` cleared `u2`), and its walk read a namespace's keys in one request and then each value in
 * its own: here a namespace is the key range from `ns:` up to `ns;`, listed in pages and cleared
 * in one request. TTLs are the signed ones: an expired entry is a miss, deleted when read.
 */
function etcdStore(url: string, scheme: Scheme): KeyvStoreAdapter {
  const { username, password, hosts, rest } = parseHostList(url, scheme);
  if (rest !== "" && rest !== "/") {
    throw new ConfigError(`an etcd:// URL takes no path or parameters (${scheme}//…)`);
  }
  const endpoints = hosts.map((host) => `http://${host}`);
  const KeyvEtcd = adapterClass<EtcdAdapter>("@keyv/etcd");
  const adapter = new KeyvEtcd({ url: endpoints.join(",") } as never);
  const { Etcd3, Range } = loadBeside<{
    Etcd3: new (options: object) => Etcd3Client;
    Range: new (start: string | Buffer, end: string | Buffer) => unknown;
  }>("@keyv/etcd", "etcd3");
  // The adapter's own client has no credentials and no dial timeout. It is kept until the store
  // closes: the adapter's first call on it (getRoles) reports its failure as an "error" event.
  const first = adapter.client;
  const client = new Etcd3({
    hosts: endpoints,
    dialTimeout: ETCD_DIAL_TIMEOUT_MS,
    ...(username === undefined ? {} : { auth: { username, password: password ?? "" } }),
  });
  adapter.client = client;
  const bounds = (namespace: string | undefined, after?: string) => {
    const start = after === undefined ? (namespace ? `${namespace}:` : "\0") : `${after}\0`;
    // `\0` as the end of a range: every key from the start on.
    return new Range(start, namespace ? `${namespace};` : Buffer.from([0]));
  };
  adapter.getMany = (async (keys: string[]) =>
    Promise.all(
      keys.map(async (key) => (await client.get(key).string()) ?? undefined),
    )) as KeyvStoreAdapter["getMany"];
  adapter.deleteMany = async (keys: string[]) =>
    (await Promise.all(keys.map((key) => adapter.delete(key)))).every(Boolean);
  adapter.iterator = async function* (namespace?: string) {
    let after: string | undefined;
    for (;;) {
      const { kvs } = await client
        .getAll()
        .inRange(bounds(namespace, after))
        .sort("Key", "Ascend")
        .limit(ETCD_PAGE_ROWS)
        .exec();
      for (const { key, value } of kvs) yield [key.toString("utf8"), value.toString("utf8")];
      const last = kvs[kvs.length - 1];
      if (kvs.length < ETCD_PAGE_ROWS || last === undefined) return;
      after = last.key.toString("utf8");
    }
  } as KeyvStoreAdapter["iterator"];
  adapter.clear = async () => {
    const namespace = adapter.namespace;
    await (namespace ? client.delete().range(bounds(namespace)) : client.delete().all());
  };
  adapter.disconnect = async () => {
    client.close();
    first.close();
  };
  return finish(adapter, "KeyvEtcd", url, ETCD_KEY_LIMITS);
}
