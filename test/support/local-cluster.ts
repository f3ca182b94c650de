/**
 * Private distributed stores for backend suites: a Redis Cluster, a memcached pool and an etcd
 * node, each started as child processes on free ports of 127.0.0.1 with their data in a temp
 * directory, and killed (directory removed) when the suite ends or this process exits. Nothing
 * here touches the servers other suites share.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import { afterAll, beforeAll, describe, it } from "vitest";
import { type SignedStoreOptions, signedStore } from "../../src/store.ts";
import { storeFromUrl } from "../../src/stores.ts";
import { freePort } from "./redis-server.ts";
import { SECRET } from "./secrets.ts";

const run = promisify(execFile);

/** One server process this test run owns. */
export interface LocalNode {
  readonly port: number;
  /** Whether the process is running (not killed since it started). */
  readonly running: boolean;
  /** Kills it (SIGKILL by default: a crash, not a shutdown) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A set of server processes and the store URL that reaches them. */
export interface LocalCluster {
  readonly url: string;
  readonly nodes: readonly LocalNode[];
  /** Kills every process and removes the data directory. */
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
const directories = new Set<string>();
let exitHookInstalled = false;

/** Whether every binary answers `--version`: an absent tool skips its suite. */
export async function haveTools(...binaries: string[]): Promise<boolean> {
  const found = await Promise.all(
    binaries.map(
      (binary) =>
        new Promise<boolean>((resolve) => {
          const child = spawn(binary, ["--version"], { stdio: "ignore" });
          child.once("error", () => resolve(false));
          child.once("exit", (code) => resolve(code === 0));
        }),
    ),
  );
  return found.every(Boolean);
}

/**
 * `describe` for a suite that starts its own servers: skipped with a loud warning when a
 * binary is not installed, and a failing test instead when CI=true.
 */
export function describeWithTools(
  installed: boolean,
  tools: string,
  title: string,
  body: () => void,
): void {
  if (installed) {
    describe(title, body);
    return;
  }
  if (process.env.CI === "true") {
    describe(title, () => {
      it(`${tools} installed`, () => {
        throw new Error(`${tools} not installed; CI needs every backend`);
      });
    });
    return;
  }
  console.warn(
    `\n!!! ${tools} not installed: SKIPPING "${title}". ` +
      "Install it (Debian: memcached, etcd-server, redis-tools); with CI=true this is a failure.\n",
  );
  describe.skip(title, body);
}

/**
 * A Redis Cluster of `masters` masters and no replicas. Nodes run without persistence; a
 * master that dies takes its slots with it, and with `cluster-require-full-coverage no` the
 * others keep serving theirs.
 */
export async function startRedisCluster(masters = 3): Promise<LocalCluster> {
  const dir = tempDir("redis-cluster");
  const nodes: LocalNode[] = [];
  for (let index = 0; index < masters; index++) {
    const port = await freePort();
    // The bus port is chosen too: the default, port + 10000, may be taken or out of range.
    const busPort = await freePort();
    // biome-ignore format: one flag per line pair reads better
    const args = [
      "--port", String(port), "--cluster-port", String(busPort), "--bind", "127.0.0.1",
      "--cluster-enabled", "yes", "--cluster-config-file", join(dir, `nodes-${port}.conf`),
      "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
      "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no",
      "--loglevel", "warning",
    ];
    nodes.push(await startProcess("redis-server", args, port, () => redisPing(port)));
  }
  const cluster = makeCluster(
    `redis+cluster://${nodes.map((node) => `127.0.0.1:${node.port}`).join(",")}`,
    nodes,
    dir,
  );
  try {
    await run("redis-cli", [
      "--cluster",
      "create",
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    await waitFor("cluster_state:ok on every node", 20_000, async () => {
      const states = await Promise.all(nodes.map((node) => redisCli(node.port, "CLUSTER", "INFO")));
      return states.every((info) => info.includes("cluster_state:ok"));
    });
  } catch (error) {
    await cluster.close();
    throw error;
  }
  return cluster;
}

/** Runs one command with redis-cli against a node; resolves with its raw output. */
export async function redisCli(port: number, ...command: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...command]);
  return stdout;
}

/** `count` memcached instances; the URL lists them all. */
export async function startMemcached(count = 2): Promise<LocalCluster> {
  const nodes: LocalNode[] = [];
  for (let index = 0; index < count; index++) {
    const port = await freePort();
    const args = ["-p", String(port), "-l", "127.0.0.1", "-U", "0", "-m", "64"];
    // memcached refuses to run as root unless told which user to be.
    if (process.getuid?.() === 0) args.push("-u", "root");
    nodes.push(await startProcess("memcached", args, port, () => tcpOpen(port)));
  }
  return makeCluster(
    `memcache://${nodes.map((node) => `127.0.0.1:${node.port}`).join(",")}`,
    nodes,
    undefined,
  );
}

/** One etcd member with its own data directory, client and peer URLs on 127.0.0.1. */
export async function startEtcd(): Promise<LocalCluster> {
  const dir = tempDir("etcd");
  const port = await freePort();
  const peer = `http://127.0.0.1:${await freePort()}`;
  const client = `http://127.0.0.1:${port}`;
  // biome-ignore format: one flag per line pair reads better
  const args = [
    "--name", "sc", "--data-dir", join(dir, "data"),
    "--listen-client-urls", client, "--advertise-client-urls", client,
    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
    "--initial-cluster", `sc=${peer}`, "--initial-cluster-state", "new",
    "--logger", "zap", "--log-level", "error",
  ];
  const node = await startProcess("etcd", args, port, async () => {
    const response = await fetch(`${client}/health`).catch(() => undefined);
    return (
      response?.ok === true && ((await response.json()) as { health?: string }).health === "true"
    );
  });
  return makeCluster(`etcd://127.0.0.1:${port}`, [node], dir);
}

function makeCluster(url: string, nodes: LocalNode[], dir: string | undefined): LocalCluster {
  return {
    url,
    nodes,
    async close() {
      await Promise.all(nodes.map((node) => node.stop("SIGKILL")));
      if (dir !== undefined) {
        rmSync(dir, { recursive: true, force: true });
        directories.delete(dir);
      }
    },
  };
}

function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `signed-cache-${label}-`));
  directories.add(dir);
  installExitHook();
  return dir;
}

/** Spawns a server and resolves once `ready` says it serves; rejects if it exits first. */
async function startProcess(
  binary: string,
  args: string[],
  port: number,
  ready: () => Promise<boolean>,
): Promise<LocalNode> {
  const child = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
  live.add(child);
  installExitHook();
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  let running = true;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      running = false;
      live.delete(child);
      resolve();
    }),
  );
  const failed = new Promise<never>((_, reject) => {
    child.once("error", reject);
    exited.then(() => reject(new Error(`${binary} on ${port} exited: ${stderr.trim()}`)));
  });
  failed.catch(() => {});
  await Promise.race([waitFor(`${binary} on ${port}`, 15_000, ready), failed]);
  return {
    port,
    get running() {
      return running;
    },
    async stop(signal: NodeJS.Signals = "SIGKILL") {
      if (!running) return;
      child.kill(signal);
      await exited;
    },
  };
}

async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function redisPing(port: number): Promise<boolean> {
  return (await redisCli(port, "PING")).trim() === "PONG";
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Never leave a server or its data behind, whatever way this process ends.
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL");
    for (const dir of directories) rmSync(dir, { recursive: true, force: true });
  });
}

/** Signed stores over a local server a test file starts, and what it needs to reach them. */
export interface LocalStores {
  /** The running server (set once the file's `beforeAll` has run). */
  readonly server: () => LocalCluster;
  /** A fresh adapter over the server, as `storeFromUrl` builds it; closed after the file. */
  adapter: () => KeyvStoreAdapter;
  /** A Keyv over a signed store of a fresh adapter; it throws store errors when `throws` says. */
  keyv: (namespace: string, options?: SignedStoreOptions) => Keyv;
}

/**
 * Starts a server for the test file with `start` (when `installed`), and stops it and closes
 * every adapter opened on it afterwards.
 */
export function localStores(
  installed: boolean,
  start: () => Promise<LocalCluster>,
  options: { startTimeout: number; throws: (options: SignedStoreOptions) => boolean },
): LocalStores {
  let running: LocalCluster | undefined;
  const opened: KeyvStoreAdapter[] = [];
  beforeAll(async () => {
    if (installed) running = await start();
  }, options.startTimeout);
  afterAll(async () => {
    for (const each of opened) await each.disconnect?.();
    await running?.close();
  });
  const server = () => {
    if (running === undefined) throw new Error("the local server is not running");
    return running;
  };
  const adapter = () => {
    const store = storeFromUrl(server().url) as KeyvStoreAdapter;
    opened.push(store);
    return store;
  };
  const keyv = (namespace: string, signing: SignedStoreOptions = {}) =>
    new Keyv({
      store: signedStore(adapter(), SECRET, signing),
      namespace,
      throwOnErrors: options.throws(signing),
    });
  return { server, adapter, keyv };
}
