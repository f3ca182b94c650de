/**
 * Reliability under load and under failure: N requests at concurrency C through `setupCache`
 * against a local origin (test/support/load.ts has the mix, the origin and the measurement), on
 * Redis and on a SQLite file, then against a private redis-server killed and restarted mid-run
 * and against a store that accepts connections and never answers. Reports errors, upstream calls
 * against what the mix makes exact, hits, p50/p99 latency and the heap; asserts nothing.
 *
 * Section 7 of `npm run bench`. Alone: `npx tsx bench/load.ts [--quick] [--backends=redis,sqlite]`
 * runs only this section and sets the `load` field of bench/results.json (results.quick.json
 * with --quick), leaving the other sections' figures as they are.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters } from "node:util";
import pc from "picocolors";
import { generateSecret } from "../src/index.ts";
import {
  type LoadResult,
  type RestartResult,
  runLoad,
  runWithRestart,
  runWithStall,
  type StallResult,
} from "../test/support/load.ts";
import { hasRedisServer } from "../test/support/redis-server.ts";
import { reachable, SERVERS } from "./stores.ts";

/** How big each run is. */
export interface LoadPlan {
  readonly requests: number;
  readonly concurrency: number;
  readonly roundSize: number;
  /** Pacing of the restart run, so that it goes on for a while after the restart. */
  readonly restartRoundMs: number;
}

export const FULL_LOAD: LoadPlan = {
  requests: 10_000,
  concurrency: 100,
  roundSize: 1000,
  restartRoundMs: 1000,
};
/** `--quick`: proves the section runs, in a few seconds. */
export const QUICK_LOAD: LoadPlan = {
  requests: 500,
  concurrency: 50,
  roundSize: 100,
  restartRoundMs: 250,
};

/** One run: a backend, or a fault. */
export interface LoadRow {
  readonly scenario: string;
  readonly store: "redis" | "sqlite" | "redis (private)" | "stalling TCP server";
  readonly result?: LoadResult | RestartResult | StallResult;
  readonly skipped?: string;
}

export interface LoadReport {
  readonly date: string;
  readonly node: string;
  readonly cpu: string;
  readonly plan: LoadPlan;
  readonly rows: readonly LoadRow[];
}

/** Runs every scenario `only` (the bench's `--backends=`) allows. */
export async function benchLoad(
  plan: LoadPlan,
  only: readonly string[] | undefined,
  progress: (line: string) => void,
): Promise<LoadReport> {
  const secret = generateSecret();
  const namespace = (name: string) => `scload${process.pid}${name}`;
  const base = {
    secret,
    requests: plan.requests,
    concurrency: plan.concurrency,
    roundSize: plan.roundSize,
  };
  const wanted = (backend: string) => only === undefined || only.includes(backend);
  const rows: LoadRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), "signed-cache-bench-load-"));
  try {
    if (wanted("redis")) {
      if (await reachable(new URL(SERVERS.redis))) {
        const result = await runLoad({ ...base, store: SERVERS.redis, namespace: namespace("r") });
        rows.push({ scenario: "healthy", store: "redis", result });
        progress(`load: redis, ${plan.requests} requests`);
      } else {
        rows.push({ scenario: "healthy", store: "redis", skipped: "nothing answers" });
      }
    }
    if (wanted("sqlite")) {
      const result = await runLoad({
        ...base,
        store: `sqlite://${join(dir, "load.sqlite")}`,
        namespace: namespace("s"),
      });
      rows.push({ scenario: "healthy", store: "sqlite", result });
      progress(`load: sqlite, ${plan.requests} requests`);
    }
    if (wanted("redis")) {
      if (await hasRedisServer()) {
        const restart = await runWithRestart({
          ...base,
          namespace: namespace("k"),
          minRoundMs: plan.restartRoundMs,
        });
        rows.push({ scenario: "killed + restarted", store: "redis (private)", result: restart });
        progress(`load: redis-server killed and restarted, ${plan.requests} requests`);
      } else {
        rows.push({
          scenario: "killed + restarted",
          store: "redis (private)",
          skipped: "no redis-server binary",
        });
      }
      const stall = await runWithStall({ ...base, namespace: namespace("x") });
      rows.push({ scenario: "stalled", store: "stalling TCP server", result: stall });
      progress(`load: stalled store, ${plan.requests} requests`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    date: new Date().toISOString(),
    node: process.versions.node,
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    plan,
    rows,
  };
}

const ms = (value: number) => (value < 10 ? value.toFixed(1) : value.toFixed(0));
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

export function printLoad(report: LoadReport): void {
  if (report.rows.length === 0) return;
  const { plan } = report;
  console.log(
    pc.bold(
      `\nLoad: ${plan.requests} requests at concurrency ${plan.concurrency} through setupCache (60 % repeated keys, 20 % new, 20 % ETag revalidations; bodies 1 KB–1 MB)`,
    ),
  );
  const table = report.rows.map((row) => {
    const r = row.result;
    if (r === undefined) {
      return [row.store, row.scenario, pc.yellow(`skipped: ${row.skipped}`)];
    }
    const fault = row.scenario !== "healthy";
    const exact = r.upstream.actual === r.upstream.expected;
    const failed = r.errors + r.wrongBodies + r.emptyNotModified + r.hung;
    return [
      row.store,
      row.scenario,
      String(r.requests),
      failed === 0 ? pc.green("0") : pc.red(String(failed)),
      `${r.upstream.expected}${fault ? "*" : ""}`,
      fault || exact ? String(r.upstream.actual) : pc.red(String(r.upstream.actual)),
      `${r.hits}`,
      ms(r.p50),
      ms(r.p99),
      ms(r.max),
      `${mb(r.heapWarm)} → ${mb(r.heapAfter)}`,
      note(r),
    ];
  });
  printTable(
    [
      "store",
      "run",
      "requests",
      "failed",
      "upstream expected",
      "actual",
      "hits",
      "p50 ms",
      "p99 ms",
      "max ms",
      "heap MiB (warm → after)",
      "",
    ],
    table,
  );
  console.log(
    pc.dim(
      "failed = rejected + wrong or empty body + no answer within 15 s. upstream = requests that reached the\n" +
        "origin (200s and 304s); expected = what the mix makes exact on a healthy cache (* the same figure for\n" +
        "the fault runs, which exceed it by what the outage cost). hits = answered from the cache without the\n" +
        "origin. heap = heapUsed after a full GC, after warm-up and after the run. Latencies are wall clock\n" +
        "per request, this machine, not a goal.",
    ),
  );
  printPhases(report);
}

/** Latency by phase of the restart run: before the kill, during the outage, after the restart. */
function printPhases(report: LoadReport): void {
  const table: string[][] = [];
  for (const row of report.rows) {
    for (const phase of row.result?.phases ?? []) {
      table.push([
        row.store,
        row.scenario,
        phase.label,
        String(phase.requests),
        ms(phase.p50),
        ms(phase.p99),
        ms(phase.max),
      ]);
    }
  }
  if (table.length === 0) return;
  console.log(
    pc.bold("\nLatency by phase of the fault run, ms (requests dispatched in each phase)"),
  );
  printTable(["store", "run", "phase", "requests", "p50", "p99", "max"], table, 3, false);
}

/** The breaker's changes of state, in seconds into the run: `open 2.3, half-open 7.3, …`. */
export function circuitLine(r: LoadResult): string {
  return r.circuit
    .map((change) => `${change.state} ${(change.atMs / 1000).toFixed(1)} s`)
    .join(", ");
}

function note(r: LoadResult | RestartResult | StallResult): string {
  const parts: string[] = [];
  if (r.emptyNotModified > 0) parts.push(pc.red(`${r.emptyNotModified} empty 304s`));
  if ("storeHitAgainMs" in r) {
    parts.push(
      `killed at #${r.killAt}, restarted at #${r.restartAt}; store written again +${r.storeWrittenAgainMs?.toFixed(0) ?? "never"} ms, ` +
        `hit from it +${r.storeHitAgainMs?.toFixed(0) ?? "never"} ms`,
    );
  }
  if ("connections" in r) parts.push(`${r.connections} connection(s) to the stalled server`);
  if (r.circuit.length > 0) parts.push(`circuit: ${circuitLine(r)}`);
  parts.push(`${r.storeFaults} faults reported`);
  return parts.join("; ");
}

/** Columns before `left` and a trailing note column are left-aligned, the rest right-aligned. */
function printTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  left = 2,
  note = true,
): void {
  const width = (text: string) => stripVTControlCharacters(text).length;
  const widths = header.map((cell, i) =>
    Math.max(width(cell), ...rows.map((row) => width(row[i] ?? ""))),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => {
        const pad = " ".repeat(Math.max(0, (widths[i] ?? 0) - width(cell)));
        return i < left || (note && i === header.length - 1) ? cell + pad : pad + cell;
      })
      .join("  ")
      .trimEnd();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const only = args
    .find((arg) => arg.startsWith("--backends="))
    ?.slice("--backends=".length)
    .split(",");
  const started = Date.now();
  const report = await benchLoad(quick ? QUICK_LOAD : FULL_LOAD, only, (line) =>
    process.stderr.write(
      `${pc.dim(`[${((Date.now() - started) / 1000).toFixed(0)} s]`)} ${line}\n`,
    ),
  );
  printLoad(report);
  const file = fileURLToPath(new URL(`results${quick ? ".quick" : ""}.json`, import.meta.url));
  const results = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  writeFileSync(file, `${JSON.stringify({ ...results, load: report }, null, 2)}\n`);
  process.stderr.write(`wrote the load field of ${file}\n`);
}
