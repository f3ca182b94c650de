/**
 * Peers measured in the same run: Python's requests-cache over SQLite, unsigned and signed with
 * itsdangerous, timed by bench/requests_cache_hits.py in a child process. The child fetches from
 * this process's own origin (axios.ts `startServer`), so it caches exactly the response the axios
 * section caches; every timed request is a hit, which never reaches the origin. Nothing is
 * quoted from elsewhere: when the Python packages are missing, the peer is reported as skipped.
 */
import { execFile, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startServer } from "./axios.ts";
import type { SignedVsUnsigned, TimingPlan } from "./timing.ts";

/** The interpreter Debian's python3-requests-cache and python3-itsdangerous install into. */
export const PYTHON = process.env.BENCH_PYTHON ?? "/usr/bin/python3";
export const INSTALL_HINT = "install python3-requests-cache python3-itsdangerous";

/** One size: medians in ns per cache hit, as bench/timing.ts's `signedVsUnsigned`. */
export interface PeerRow extends SignedVsUnsigned {
  readonly bytes: number;
}

export interface RequestsCacheResult {
  readonly versions: Record<string, string | null>;
  readonly backend: "sqlite";
  readonly signing: string;
  /** What the script established before timing (signed entries verify, forgeries raise…). */
  readonly checks: Record<string, boolean>;
  readonly plan: TimingPlan;
  readonly rows: readonly PeerRow[];
}

export type PeerOutcome =
  | ({ readonly measured: true } & RequestsCacheResult)
  | { readonly measured: false; readonly skipped: string };

const script = fileURLToPath(new URL("requests_cache_hits.py", import.meta.url));

/** Runs the requests-cache peer at `sizes` with the same timing plan as the axios section. */
export async function benchRequestsCache(
  sizes: readonly number[],
  plan: TimingPlan,
  progress: (line: string) => void,
): Promise<PeerOutcome> {
  try {
    await promisify(execFile)(PYTHON, ["-c", "import requests_cache, itsdangerous"], {
      timeout: 30_000,
    });
  } catch {
    return {
      measured: false,
      skipped: `${PYTHON} cannot import requests_cache and itsdangerous: ${INSTALL_HINT}`,
    };
  }
  const { server, base } = await startServer();
  try {
    const args = [script, "--origin", base, "--sizes", sizes.join(","), "--plan"];
    const result = await runJson(
      [...args, JSON.stringify(plan)],
      // Generous: a case stops adding rounds at maxCaseMs; startup and checks take seconds.
      60_000 + 3 * plan.maxCaseMs * sizes.length,
      progress,
    );
    return { measured: true, ...(result as RequestsCacheResult) };
  } catch (error) {
    return { measured: false, skipped: `requests-cache bench failed: ${(error as Error).message}` };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/**
 * Spawns the script asynchronously (this process must keep answering as its origin), relays its
 * stderr lines as progress and parses its stdout as JSON.
 */
function runJson(
  args: readonly string[],
  timeoutMs: number,
  progress: (line: string) => void,
): Promise<unknown> {
  const noProxy = [process.env.NO_PROXY ?? process.env.no_proxy, "127.0.0.1"]
    .filter(Boolean)
    .join(",");
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, {
      stdio: ["ignore", "pipe", "pipe"],
      // The origin is on 127.0.0.1; a proxy from the environment must not sit in between.
      env: { ...process.env, NO_PROXY: noProxy, no_proxy: noProxy },
      timeout: timeoutMs,
    });
    let stdout = "";
    let lastError = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    createInterface({ input: child.stderr }).on("line", (line) => {
      lastError = line;
      progress(line);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code !== 0) {
        reject(new Error(lastError || `exited with ${signal ?? code}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout));
      } catch (error) {
        reject(new Error(`unreadable output: ${(error as Error).message}`));
      }
    });
  });
}
