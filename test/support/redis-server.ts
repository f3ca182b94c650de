/**
 * A private `redis-server` for fault tests: started as a child process on a free port of
 * 127.0.0.1, without persistence, so that a test can kill it and start it again without touching
 * the Redis other suites share. Every instance is killed when this process exits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, createServer, type Server, type Socket } from "node:net";

/** A redis-server this process owns. */
export interface PrivateRedis {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Whether the server is running (started and not stopped since). */
  readonly running: boolean;
  /** Kills the server (SIGKILL by default: a crash, not a shutdown) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port, empty; resolves once it answers PING. */
  start(): Promise<void>;
  /** Number of keys the server holds (`DBSIZE`); rejects while it is down. */
  dbsize(): Promise<number>;
  /** Stops it for good. */
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Whether a `redis-server` binary is on the PATH. */
export function hasRedisServer(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn("redis-server", ["--version"], { stdio: "ignore" });
    child.once("error", () => resolve(false));
    child.once("exit", (code) => resolve(code === 0));
  });
}

/** A TCP port on 127.0.0.1 that nothing listens on at the time of the call. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Starts a private redis-server on a free port (or `port`) and waits until it answers PING. */
export async function startRedisServer(port?: number): Promise<PrivateRedis> {
  const chosen = port ?? (await freePort());
  let child: ChildProcess | undefined;

  const start = async () => {
    if (child !== undefined) throw new Error(`redis-server on ${chosen} is already running`);
    const spawned = spawn(
      "redis-server",
      [
        "--port",
        String(chosen),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    child = spawned;
    live.add(spawned);
    installExitHook();
    let stderr = "";
    spawned.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<never>((_, reject) => {
      spawned.once("exit", (code) =>
        reject(new Error(`redis-server on ${chosen} exited (${code}): ${stderr.trim()}`)),
      );
      spawned.once("error", reject);
    });
    exited.catch(() => {});
    spawned.once("exit", () => {
      live.delete(spawned);
      if (child === spawned) child = undefined;
    });
    await Promise.race([waitForPing(chosen, 10_000), exited]);
  };

  const stop = async (signal: NodeJS.Signals = "SIGKILL") => {
    const running = child;
    if (running === undefined) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill(signal);
    await exited;
  };

  await start();
  return {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}`,
    get running() {
      return child !== undefined;
    },
    stop,
    start,
    dbsize: async () => {
      const answer = await inline(chosen, "DBSIZE");
      if (!answer.startsWith(":")) throw new Error(`DBSIZE answered ${answer}`);
      return Number(answer.slice(1));
    },
    close: () => stop("SIGKILL"),
  };
}

/** Resolves once a server on `port` answers `PING` with `+PONG`. */
async function waitForPing(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if ((await inline(port, "PING").catch(() => "")) === "+PONG") return;
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Sends one inline command on a new connection; resolves with the first line of the answer. */
function inline(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let answer = "";
    socket.setTimeout(500, () => {
      socket.destroy();
      reject(new Error(`${command}: no answer on ${port}`));
    });
    socket.once("error", reject);
    socket.once("connect", () => socket.write(`${command}\r\n`));
    socket.on("data", (chunk) => {
      answer += chunk.toString();
      const end = answer.indexOf("\r\n");
      if (end === -1) return;
      socket.destroy();
      resolve(answer.slice(0, end));
    });
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Never leave a redis-server behind, whatever way this process ends.
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

/**
 * A store that stalls: a TCP server on 127.0.0.1 that accepts connections, reads what it is sent
 * and never answers. Used as `redis://127.0.0.1:<port>`.
 */
export interface StallingServer {
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Bytes received (and discarded) so far. */
  readonly bytesReceived: number;
  close(): Promise<void>;
}

export async function startStallingServer(): Promise<StallingServer> {
  const sockets = new Set<Socket>();
  let connections = 0;
  let bytesReceived = 0;
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("data", (chunk: Buffer) => {
      bytesReceived += chunk.length;
    });
    socket.on("error", () => {});
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    get bytesReceived() {
      return bytesReceived;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
