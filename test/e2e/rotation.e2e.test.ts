/**
 * Rolling rotation across processes: several application processes share one store while the
 * secrets move through the documented phases, each process picking up each phase at its own
 * time, as a rolling deploy does. No request may fail, no valid entry may be rejected, and at
 * the end no entry may be left under the old key id.
 */
import { type ChildProcess, execFile, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keyring } from "../../src/keyring.ts";
import { signedStore } from "../../src/store.ts";
import { storeFromUrl } from "../../src/stores.ts";
import { backendOrSkip, findBackend } from "../support/backends.ts";

const OLD = "rotation-old-secret-0123456789abcdefghijk";
const NEW = "rotation-new-secret-0123456789abcdefghijk";
const WORKERS = 3;
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "signed-cache-rotation-"));

let origin: Server;
let originUrl: string;
beforeAll(async () => {
  origin = createServer((request, response) => {
    const item = Number(request.url?.split("/")[2]);
    // Fresh for 300 ms: entries are refetched (written anew) and read across phases.
    response.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=0.3" });
    response.end(JSON.stringify({ item, at: Date.now() }));
  });
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => origin.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

interface Report {
  counts: Record<string, number>;
  reasons: string[];
  failures: string[];
}

// Unique per run: the servers outlive it, and an earlier run's entries would be foreign here.
const PREFIX = `rot${randomBytes(3).toString("hex")}`;
const NAMESPACES = [`${PREFIX}-http`, `${PREFIX}-kv`];

function startWorker(url: string, name: string): ChildProcess {
  const args = [url, originUrl, name, PREFIX];
  return fork(join(import.meta.dirname, "../support/rotation-worker.ts"), args, {
    execArgv: ["--import", "tsx"],
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

function reply<T>(child: ChildProcess, message: unknown): Promise<T> {
  return new Promise((resolve) => {
    child.once("message", (answer) => resolve(answer as T));
    child.send(message as never);
  });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Each worker takes the phase in turn, with traffic running in between. */
async function roll(workers: ChildProcess[], secret: string, fallbacks: string[]) {
  for (const worker of workers) {
    await reply(worker, { secret, fallbacks });
    await pause(250);
  }
  await pause(400);
}

async function kidsIn(url: string, namespace: string): Promise<Record<string, number>> {
  const store = signedStore(storeFromUrl(url), NEW, { fallbacks: [OLD] });
  // As the CLI does: a 6.x adapter walks the namespace it holds.
  store.namespace = namespace;
  const byKid: Record<string, number> = {};
  for await (const entry of store.audit(namespace)) {
    const label = entry.status === "invalid" ? `invalid:${entry.reason}` : (entry.kid ?? "?");
    byKid[label] = (byKid[label] ?? 0) + 1;
  }
  await store.disconnect();
  return byKid;
}

async function rotate(url: string) {
  const workers = Array.from({ length: WORKERS }, (_, i) => startWorker(url, `w${i}`));
  try {
    await roll(workers, OLD, []);
    // 1. The new secret is accepted everywhere before anyone signs with it.
    await roll(workers, OLD, [NEW]);
    // 2. The new secret signs; the old one still verifies.
    await roll(workers, NEW, [OLD]);
    // 3. Everything the old secret signed is re-signed, with the command the runbook gives.
    const env = {
      PATH: process.env.PATH ?? "",
      SIGNED_CACHE_SECRET: NEW,
      SIGNED_CACHE_SECRET_FALLBACKS: OLD,
      SIGNED_CACHE_URL: url,
    };
    for (const namespace of NAMESPACES) {
      await run(
        process.execPath,
        ["--import", "tsx", "src/cli.ts", "resign", "--namespace", namespace],
        { env },
      );
    }
    // 4. The old secret is dropped.
    await roll(workers, NEW, []);
    await pause(500);
    const reports = await Promise.all(workers.map((worker) => reply<Report>(worker, "stop")));
    return reports;
  } finally {
    for (const worker of workers) worker.kill();
  }
}

const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");

describe.each([
  ["SQLite", `sqlite://${join(dir, "rotation.sqlite")}`, true],
  ["Redis", redis.url, backendOrSkip(redis, "the rolling rotation on Redis")],
])("rolling rotation across processes on %s", (_, url, available) => {
  it.runIf(available)(
    "loses no request and no valid entry, and leaves nothing under the old key",
    async () => {
      const reports = await rotate(url);
      const total = (name: string) =>
        reports.reduce((sum, report) => sum + (report.counts[name] ?? 0), 0);
      const summary = {
        processes: WORKERS,
        requests: total("requests"),
        hits: total("hits"),
        failed: total("failed"),
        invalid: total("invalid"),
        lost: total("lost"),
        values: total("values"),
        storeFaults: total("storeFaults"),
      };
      console.log(`rotation on ${url.split(":")[0]}:`, JSON.stringify(summary));
      expect(reports.flatMap((report) => report.failures)).toEqual([]);
      expect(summary.failed).toBe(0);
      expect(reports.flatMap((report) => report.reasons)).toEqual([]);
      expect(summary.lost).toBe(0);
      expect(summary.requests).toBeGreaterThan(100);
      expect(summary.hits).toBeGreaterThan(0);
      const oldKid = new Keyring(OLD).current.kid;
      const newKid = new Keyring(NEW).current.kid;
      for (const namespace of NAMESPACES) {
        const kids = await kidsIn(url, namespace);
        expect(Object.keys(kids)).toEqual([newKid]);
        expect(kids[oldKid]).toBeUndefined();
        const store = signedStore(storeFromUrl(url), NEW);
        store.namespace = namespace;
        await store.clear();
        await store.disconnect();
      }
    },
    60_000,
  );
});
