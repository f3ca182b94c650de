/**
 * `npm run bench [-- --quick] [-- --backends=memory,sqlite,redis,postgres,mysql]`
 *
 * Measures what signing costs: HMAC strategies and digests, signed against unsigned Keyv on every
 * reachable backend, end-to-end cache hits when the axios plugin is present, and the same hits with
 * Python's requests-cache, unsigned and itsdangerous-signed, when /usr/bin/python3 has it (see
 * peers.ts), and walks over one namespace (listing and clear()) at growing sizes (walks.ts).
 * Then load: N requests at concurrency C through setupCache on Redis and SQLite, and under store
 * faults — a redis-server killed and restarted, a store that never answers (load.ts).
 * Prints tables, writes bench/results.json and bench/results.svg (`results.quick.*`
 * for --quick). Asserts nothing about speed.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, platform, release, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters } from "node:util";
import pc from "picocolors";
import { DEFAULT_MAC_ALGORITHM, type MacAlgorithm } from "../src/algorithms.ts";
import { type AxiosRow, benchAxios } from "./axios.ts";
import { renderChart } from "./chart.ts";
import { benchClients, type ClientRow, printClients } from "./clients.ts";
import { benchConcurrency, type ConcurrencyResult } from "./concurrency.ts";
import { ADOPTED, benchDigests, benchHmac, FLOOR, type HmacRow } from "./hmac.ts";
import { benchLoad, FULL_LOAD, printLoad, QUICK_LOAD } from "./load.ts";
import { SIZES, sizeLabel } from "./payload.ts";
import { benchRequestsCache, type PeerOutcome } from "./peers.ts";
import { BACKENDS, benchBackend, reachable, SERVERS, type StoreRow } from "./stores.ts";
import type { TimingPlan } from "./timing.ts";
import { benchWalks, QUICK_WALK_SIZES, WALK_SIZES, type WalkRow } from "./walks.ts";

/** Backends the goal (added ≤ 1.3 × floor) is set for. */
const GOAL_BACKENDS = new Set(["sqlite", "redis"]);
const GOAL = 1.3;
/** Goal for encrypting stores: added CPU ≤ 1.5 × AES-256-GCM alone over the same bytes. */
const ENCRYPT_GOAL = 1.5;

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = args
  .find((arg) => arg.startsWith("--backends="))
  ?.slice("--backends=".length)
  .split(",");

// Quick mode proves the bench runs (CI); its numbers are rough. The full run is what docs quote.
// Batches of tens of ms: alternating arms more often than that costs each arm cache and JIT
// warmth it would not lose in a real process. Many rounds let the median skip disturbed ones.
const PLAN: TimingPlan = quick
  ? { rounds: 5, warmup: 1, batchMs: 3, minOps: 2, maxCaseMs: 800, minRounds: 3 }
  : { rounds: 31, warmup: 3, batchMs: 40, minOps: 3, maxCaseMs: 20_000, minRounds: 9 };
const MICRO_PLAN: TimingPlan = quick
  ? { rounds: 5, warmup: 1, batchMs: 3, minOps: 2, maxCaseMs: 500, minRounds: 3 }
  : { rounds: 41, warmup: 3, batchMs: 5, minOps: 3, maxCaseMs: 10_000, minRounds: 9 };

const benchDir = fileURLToPath(new URL(".", import.meta.url));

if (args.includes("--digests-child")) {
  // Run in a child whose OpenSSL was told to ignore the CPU's SHA extensions (see below).
  process.stdout.write(JSON.stringify(await benchDigests(MICRO_PLAN)));
  process.exit(0);
}

const started = Date.now();
const log = (line: string) => process.stderr.write(`${pc.dim(`[${elapsed()}]`)} ${line}\n`);
const machine = describeMachine();
console.log(
  pc.bold(`signed-cache bench${quick ? " (quick)" : ""}`),
  pc.dim(
    `— ${machine.cpu}, ${machine.cores} cores, SHA extensions: ${machine.shaNi ? "yes" : "no"}, Node ${machine.node}, OpenSSL ${machine.openssl}, load ${machine.loadBefore}`,
  ),
);

// 1. HMAC strategies for the envelope's framing.
const hmacRows = await benchHmac(
  quick ? [DEFAULT_MAC_ALGORITHM] : ["sha256", "sha512", "blake2b512"],
  SIZES,
  MICRO_PLAN,
  (line) => log(line),
);
printHmac(hmacRows);

// 2. Digests with and without the SHA extensions.
const digests = {
  native: await benchDigests(MICRO_PLAN),
  withoutShaExtensions: machine.shaNi && process.arch === "x64" ? digestsWithoutSha() : undefined,
};
printDigests(digests);

// 3. Stores.
const storeRows: StoreRow[] = [];
const skipped: string[] = [];
for (const backend of BACKENDS) {
  if (only && !only.includes(backend.name)) continue;
  if (backend.probe && !(await reachable(backend.probe))) {
    skipped.push(backend.name);
    console.log(pc.yellow(`skipped ${backend.name}: nothing answers at ${backend.probe.host}`));
    continue;
  }
  try {
    storeRows.push(...(await benchBackend(backend, SIZES, PLAN, log)));
  } catch (error) {
    skipped.push(backend.name);
    console.log(pc.yellow(`skipped ${backend.name}: ${(error as Error).message}`));
  }
}
printStores(storeRows);
printMapGoal(storeRows);
printEncrypted(storeRows);

// 4. axios cache hits, end to end.
const axiosRows: AxiosRow[] = [];
const axiosFile = join(tmpdir(), `signed-cache-bench-axios-${process.pid}.sqlite`);
const axiosBackends = [
  { name: "memory", url: "memory://" },
  { name: "sqlite", url: `sqlite://${axiosFile}` },
  { name: "redis", url: SERVERS.redis },
].filter((backend) => (only ? only.includes(backend.name) : true));
for (const backend of axiosBackends) {
  if (skipped.includes(backend.name)) continue;
  try {
    axiosRows.push(...(await benchAxios(backend, SIZES, ["text", "json"], PLAN, log)));
  } catch (error) {
    console.log(pc.yellow(`skipped axios on ${backend.name}: ${(error as Error).message}`));
  }
}
for (const suffix of ["", "-journal", "-wal", "-shm"]) rmSync(axiosFile + suffix, { force: true });

// 5. The same SQLite cache hits with Python's requests-cache, unsigned and signed, in this run.
const peer: PeerOutcome =
  only && !only.includes("sqlite")
    ? { measured: false, skipped: "sqlite is not among --backends" }
    : await benchRequestsCache(SIZES, PLAN, log);
if (!peer.measured) console.log(pc.yellow(`skipped requests-cache: ${peer.skipped}`));
printAxios(axiosRows, peer);

// 5b. One cache hit through every client (axios unsigned and signed, fetch, ky) and plain fetch.
const clientRows: ClientRow[] = [];
for (const backend of axiosBackends) {
  if (skipped.includes(backend.name)) continue;
  try {
    clientRows.push(...(await benchClients(backend, SIZES, PLAN, log)));
  } catch (error) {
    console.log(pc.yellow(`skipped clients on ${backend.name}: ${(error as Error).message}`));
  }
}
for (const suffix of ["", "-journal", "-wal", "-shm"]) rmSync(axiosFile + suffix, { force: true });
printClients(clientRows, PLAN.rounds, { title: pc.bold, note: pc.dim, table: printTable, us });
const peerRows = sideBySide(axiosRows, clientRows, peer);
printPeers(peerRows, peer);

// 5c. Large entries under concurrency: 1 MB hits, 16 in flight, and hashing on worker threads.
let concurrency: ConcurrencyResult | undefined;
const concurrencyBackend = axiosBackends.find((backend) => backend.name === "sqlite");
if (concurrencyBackend && !skipped.includes("sqlite")) {
  try {
    concurrency = await benchConcurrency(concurrencyBackend, PLAN, log);
  } catch (error) {
    console.log(pc.yellow(`skipped concurrency: ${(error as Error).message}`));
  }
}
for (const suffix of ["", "-journal", "-wal", "-shm"]) rmSync(axiosFile + suffix, { force: true });
printConcurrency(concurrency);

// 6. Walks over one namespace: a full listing and clear(), at growing sizes, every reachable backend.
const walkRows = await benchWalks(quick ? QUICK_WALK_SIZES : WALK_SIZES, only, log);
printWalks(walkRows);

// 7. Load: errors, upstream calls, latency and heap under load, healthy and under store faults.
const loadReport = await benchLoad(quick ? QUICK_LOAD : FULL_LOAD, only, log);
printLoad(loadReport);

const results = {
  mode: quick ? "quick" : "full",
  date: new Date().toISOString(),
  seconds: Math.round((Date.now() - started) / 1000),
  machine: {
    ...machine,
    loadAfter: loadavg()
      .map((n) => n.toFixed(2))
      .join(" "),
  },
  plan: { stores: PLAN, micro: MICRO_PLAN },
  units: "ns per operation (medians over rounds)",
  hmac: hmacRows,
  digests,
  stores: storeRows.map((row) => ({
    ...row,
    ratio: row.signed / row.unsigned,
    efficiency: row.floorInPlaceCpu / row.addedCpu,
    efficiencyVsMacAlone: row.floorCpu / row.addedCpu,
  })),
  axios: axiosRows.map((row) => ({ ...row, ratio: row.signed / row.unsigned })),
  clients: clientRows,
  peers: {
    requestsCache: peer.measured
      ? { ...peer, rows: peer.rows.map((row) => ({ ...row, ratio: row.signed / row.unsigned })) }
      : peer,
    sideBySide: peerRows,
  },
  concurrency,
  walks: walkRows,
  load: loadReport,
  skipped,
};
// A quick run is a smoke test: it must not overwrite the full run's published figures.
const output = `${benchDir}results${quick ? ".quick" : ""}`;
const json = `${JSON.stringify(results, null, 2)}\n`;
writeFileSync(`${output}.json`, json);
// Drawn from the JSON just written, as `npx tsx bench/chart.ts` redraws it from a saved run.
writeFileSync(`${output}.svg`, renderChart(JSON.parse(json)));
log(`wrote ${output}.json and ${output}.svg in ${elapsed()}`);

function printHmac(rows: readonly HmacRow[]): void {
  console.log(pc.bold("\nHMAC of the envelope's MAC input, µs per MAC (median)"));
  const names = Object.keys(rows[0]?.ns ?? {});
  const table = rows.map((row) => [
    row.digest,
    sizeLabel(row.bytes),
    ...names.map((name) => us(row.ns[name] ?? Number.NaN)),
  ]);
  printTable(
    ["digest", "size", ...names.map((name) => (name === ADOPTED ? `${name} *` : name))],
    table,
    2,
  );
  console.log(
    pc.dim(`* used by the envelope. "${FLOOR}" is what the store table calls MAC alone.`),
  );
}

function printDigests(result: typeof digests): void {
  console.log(pc.bold("\nHMAC digests: µs per 1 KB MAC, MB/s at 1 MB"));
  const table: string[][] = [];
  for (const [label, set] of Object.entries(result)) {
    if (set === undefined) continue;
    for (const [digest, { perKb, perMb }] of Object.entries(set)) {
      table.push([
        label === "native" ? "as is" : "SHA ext. off",
        digest,
        us(perKb),
        (1e9 / perMb).toFixed(0),
      ]);
    }
  }
  printTable(["CPU", "digest", "1 KB µs", "1 MB MB/s"], table, 2);
}

function printStores(rows: readonly StoreRow[]): void {
  console.log(
    pc.bold(
      `\nSigned vs unsigned Keyv, µs per operation (median of up to ${PLAN.rounds} interleaved rounds)`,
    ),
  );
  const table = rows.map((row) => {
    const met = row.addedCpu <= GOAL * row.floorInPlaceCpu;
    const goal = GOAL_BACKENDS.has(row.backend)
      ? met
        ? pc.green("met")
        : pc.red("missed")
      : pc.dim(met ? "(met)" : "(missed)");
    return [
      row.backend,
      row.op,
      sizeLabel(row.bytes),
      us(row.unsigned),
      us(row.signed),
      (row.signed / row.unsigned).toFixed(2),
      `${us(row.added)} ±${us(row.addedSpread)}`,
      `${us(row.addedCpu)} ±${us(row.addedCpuSpread)}`,
      us(row.floorInPlaceCpu),
      us(row.floorCpu),
      percent(row.floorInPlaceCpu, row.addedCpu),
      goal,
    ];
  });
  printTable(
    [
      "backend",
      "op",
      "size",
      "unsigned",
      "signed",
      "ratio",
      "added wall ±noise",
      "added CPU ±noise",
      "floor",
      "MAC alone",
      "efficiency",
      `added ≤ ${GOAL}×floor`,
    ],
    table,
  );
  console.log(
    pc.dim(
      "unsigned, signed: wall-clock µs per operation; ratio = signed ÷ unsigned.\n" +
        "added = median over rounds of (signed − unsigned) in the same round; ±noise = its median absolute\n" +
        "deviation. CPU = this process's CPU time, which waits on a server and other processes do not inflate.\n" +
        "floor = CPU time a store that only MACs each value (the string the backend returns, or the one Keyv\n" +
        "serialized) adds over unsigned: one raw HMAC where signing happens. MAC alone = the same HMAC in a loop.\n" +
        "efficiency = floor ÷ added CPU (100 % = signing costs exactly one HMAC).\n" +
        `The goal applies to ${[...GOAL_BACKENDS].join(" and ")}; in parentheses elsewhere. A negative added time is noise.`,
    ),
  );
}

/**
 * The envelope's own target: a signed `get` of a 1 KB entry from a Map adds at most 1.3 × what
 * the MAC alone costs — parsing, framing and comparing add little beyond the HMAC itself.
 */
function printMapGoal(rows: readonly StoreRow[]): void {
  const row = rows.find((r) => r.backend === "memory" && r.op === "get" && r.bytes === 1024);
  if (row === undefined) return;
  const ratio = row.addedCpu / row.floorCpu;
  const verdict = ratio <= GOAL ? pc.green("met") : pc.red("missed");
  console.log(
    `\nMap, get, 1 KB: signing adds ${us(row.addedCpu)} µs CPU (±${us(row.addedCpuSpread)}) against ${us(row.floorCpu)} µs for the MAC alone: ${ratio.toFixed(2)}× — goal ≤ ${GOAL}×: ${verdict}`,
  );
}

/** Encrypting stores against their own floor: AES-256-GCM alone over the same bytes. */
function printEncrypted(rows: readonly StoreRow[]): void {
  const measured = rows.filter((row) => row.encrypted !== undefined);
  if (measured.length === 0) return;
  console.log(
    pc.bold(
      `\nEncrypted (encrypt: true) vs unsigned Keyv, µs per operation (same rounds as the table above)`,
    ),
  );
  const table = measured.map((row) => {
    const enc = row.encrypted as NonNullable<StoreRow["encrypted"]>;
    const ratio = enc.addedCpu / enc.floorCpu;
    return [
      row.backend,
      row.op,
      sizeLabel(row.bytes),
      us(row.unsigned),
      us(row.signed),
      us(enc.encrypted),
      `${us(enc.addedCpu)} ±${us(enc.addedCpuSpread)}`,
      us(enc.floorCpu),
      ratio.toFixed(2),
      ratio <= ENCRYPT_GOAL ? pc.green("met") : pc.red("missed"),
    ];
  });
  printTable(
    [
      "backend",
      "op",
      "size",
      "unsigned",
      "signed",
      "encrypted",
      "added CPU ±noise",
      "AES-GCM alone",
      "added ÷ AES",
      `≤ ${ENCRYPT_GOAL}×`,
    ],
    table,
  );
  console.log(
    pc.dim(
      "encrypted: wall µs per operation through signedStore(adapter, secret, { encrypt: true }); added CPU = its\n" +
        "CPU time minus the unsigned store's, paired by round. AES-GCM alone = AES-256-GCM of the same serialized\n" +
        "value in a loop (get: decrypt bytes to bytes; set: encrypt the string), the floor of any encrypting store.",
    ),
  );
}

function percent(floor: number, added: number): string {
  // Either difference can come out at or below zero when noise exceeds it.
  if (added <= 0 || floor <= 0) return "noise";
  return `${Math.round((floor / added) * 100)} %`;
}

function printAxios(rows: readonly AxiosRow[], peer: PeerOutcome): void {
  if (rows.length === 0) return;
  console.log(
    pc.bold(
      `\naxios cache hit, µs per request (median of up to ${PLAN.rounds} interleaved rounds)`,
    ),
  );
  const peerRatio = (bytes: number) => {
    const row = peer.measured ? peer.rows.find((r) => r.bytes === bytes) : undefined;
    return row === undefined ? undefined : row.signed / row.unsigned;
  };
  const table = rows.map((row) => {
    const reference = row.body === "text" ? peerRatio(row.bytes) : undefined;
    const ratio = row.signed / row.unsigned;
    const ahead = reference !== undefined && ratio < reference;
    const cells = [
      row.backend,
      row.body,
      sizeLabel(row.bytes),
      us(row.unsigned),
      us(row.signed),
      `${us(row.added)} ±${us(row.addedSpread)}`,
      us(row.addedCpu),
      ratio.toFixed(2),
    ];
    if (!peer.measured) return cells;
    return [
      ...cells,
      reference === undefined ? "–" : reference.toFixed(2),
      reference === undefined
        ? "–"
        : row.backend === "sqlite"
          ? ahead
            ? pc.green("yes")
            : pc.red("no")
          : pc.dim(ahead ? "(yes)" : "(no)"),
    ];
  });
  const header = [
    "store",
    "body",
    "size",
    "axios-cache-interceptor",
    "signed setupCache",
    "added wall ±noise",
    "added CPU",
    "ratio",
  ];
  printTable(peer.measured ? [...header, "requests-cache ratio*", "ahead?"] : header, table);
  console.log(
    pc.dim(
      peer.measured
        ? "* requests-cache signed ÷ unsigned hit over SQLite (text body), measured in this run: see the\n" +
            "  table below. ahead? = our ratio (signed ÷ unsigned) is below it; in parentheses off SQLite."
        : "requests-cache was not measured in this run, so no ratio is compared (see above).",
    ),
  );
}

/** One size of the side-by-side table: every SQLite text hit of this run, ns per request. */
interface SideBySideRow {
  readonly bytes: number;
  readonly requestsCache: number;
  readonly requestsCacheSigned: number;
  readonly axiosUnsigned: number | undefined;
  readonly setupCache: number | undefined;
  readonly fetch: number | undefined;
  readonly ky: number | undefined;
}

/** Joins the SQLite text hits of the axios, clients and requests-cache sections, by size. */
function sideBySide(
  axios: readonly AxiosRow[],
  clients: readonly ClientRow[],
  peer: PeerOutcome,
): SideBySideRow[] {
  if (!peer.measured) return [];
  return peer.rows.map((py) => {
    const ours = axios.find(
      (row) => row.backend === "sqlite" && row.body === "text" && row.bytes === py.bytes,
    );
    const client = clients.find((row) => row.backend === "sqlite" && row.bytes === py.bytes);
    return {
      bytes: py.bytes,
      requestsCache: py.unsigned,
      requestsCacheSigned: py.signed,
      axiosUnsigned: ours?.unsigned,
      setupCache: ours?.signed,
      fetch: client?.wall.fetch,
      ky: client?.wall.ky,
    };
  });
}

/**
 * Side by side on SQLite with a text body: requests-cache's hits next to every signed client's,
 * absolute times, all measured in this run on this machine (each section in its own interleaved
 * rounds, one after another). Absolute times compare two runtimes as much as two caches.
 */
function printPeers(rows: readonly SideBySideRow[], peer: PeerOutcome): void {
  if (!peer.measured) return;
  const v = peer.versions;
  console.log(
    pc.bold(
      `\nCache hit on SQLite, text body, µs per request: signed-cache against Python ${v.python} requests-cache ${v.requestsCache} (itsdangerous ${v.itsdangerous}), same run`,
    ),
  );
  const cell = (ns: number | undefined) => (ns === undefined ? "–" : us(ns));
  const table = rows.map((row) => {
    const ratio =
      row.setupCache === undefined ? undefined : row.setupCache / row.requestsCacheSigned;
    return [
      sizeLabel(row.bytes),
      us(row.requestsCache),
      us(row.requestsCacheSigned),
      cell(row.axiosUnsigned),
      cell(row.setupCache),
      cell(row.fetch),
      cell(row.ky),
      ratio === undefined ? "–" : ratio.toFixed(2),
      ratio === undefined ? "–" : ratio < 1 ? pc.green("yes") : pc.red("no"),
    ];
  });
  printTable(
    [
      "size",
      "requests-cache",
      "requests-cache signed",
      "axios-cache-interceptor",
      "signed setupCache",
      "signed fetch",
      "signed ky",
      "setupCache ÷ rc signed",
      "faster?",
    ],
    table,
    1,
  );
  console.log(
    pc.dim(
      `Medians of up to ${PLAN.rounds} interleaved rounds per section; one origin (this process). requests-cache: unsigned with its\n` +
        "default pickle serializer; signed with serializer=safe_pickle_serializer(secret_key) (itsdangerous, HMAC-SHA1),\n" +
        `checked before timing: another key and an altered entry raise BadSignature (a bare secret_key= ${peer.checks.secretKeyKwargSigns ? "signs too" : "signs nothing in this version: checked"}).\n` +
        `signed-cache: the default SQLite store, HMAC-${DEFAULT_MAC_ALGORITHM.toUpperCase()}; axios-cache-interceptor over an unsigned Keyv on the same store.\n` +
        "setupCache and axios-cache-interceptor: axios section; fetch and ky: clients section; requests-cache: its own section.",
    ),
  );
}

function printConcurrency(result: ConcurrencyResult | undefined): void {
  if (result === undefined) return;
  const { concurrency, rounds } = result;
  console.log(
    pc.bold(
      `\n1 MB entries, ${concurrency} requests in flight, on ${result.backend}: throughput (median of ${rounds} interleaved rounds)`,
    ),
  );
  const hitRatio = result.signedHits / result.unsignedHits;
  const macRatio = result.macWorkers / result.macInline;
  printTable(
    ["what", "baseline /s", "signed-cache /s", "ratio", "verdict"],
    [
      [
        "cache hits: axios-cache-interceptor unsigned vs signed setupCache",
        result.unsignedHits.toFixed(0),
        result.signedHits.toFixed(0),
        hitRatio.toFixed(2),
        hitRatio >= 0.9 ? pc.green("≥ 0.9×: met") : pc.red("< 0.9×: missed"),
      ],
      [
        `1 MB HMACs: main thread vs ${result.workers} worker thread(s)`,
        result.macInline.toFixed(0),
        result.macWorkers.toFixed(0),
        macRatio.toFixed(2),
        macRatio > 1.1 ? pc.green("workers pay") : pc.yellow("workers do not pay"),
      ],
    ],
    1,
  );
  console.log(
    pc.dim(
      "Hits: text bodies through one local origin, both clients on the same kind of store. HMACs: the\n" +
        `envelope's MAC (${DEFAULT_MAC_ALGORITHM}) of one 1 MB string, on this thread or posted to a worker (which copies\n` +
        "the string); the signed store hashes on the main thread, worker hashing is only measured here.",
    ),
  );
}

function printWalks(rows: readonly WalkRow[]): void {
  if (rows.length === 0) return;
  console.log(
    pc.bold(
      "\nWalks over one namespace, ms (one run each; 1000 entries of a neighbouring namespace beside it)",
    ),
  );
  const perEntry = (ms: number | undefined, entries: number) =>
    ms === undefined ? "–" : ((ms * 1000) / entries).toFixed(1);
  const table = rows.map((row) => [
    row.backend,
    String(row.entries),
    row.iterateMs === undefined ? "–" : row.iterateMs.toFixed(0),
    perEntry(row.iterateMs, row.entries),
    row.verifyMs === undefined ? "–" : row.verifyMs.toFixed(0),
    perEntry(row.verifyMs, row.entries),
    row.clearMs === undefined ? "–" : row.clearMs.toFixed(0),
    perEntry(row.clearMs, row.entries),
    row.error === undefined ? pc.green("ok") : pc.red(row.error),
  ]);
  printTable(
    [
      "backend",
      "entries",
      "listing",
      "µs/entry",
      "verify",
      "µs/entry",
      "clear()",
      "µs/entry",
      "result",
    ],
    table,
    1,
  );
  console.log(
    pc.dim(
      "listing = adapter.iterator(namespace) to the end; verify = signedStore(adapter).audit(namespace), every\n" +
        "entry a genuine envelope verified (what signed-cache verify does); clear() = signedStore(adapter).clear()\n" +
        "over the namespace (lists it, then deletes in batches). A linear walk keeps µs/entry flat as entries grow.",
    ),
  );
}

function printTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  left = 3,
): void {
  const width = (text: string) => stripVTControlCharacters(text).length;
  const widths = header.map((cell, i) =>
    Math.max(width(cell), ...rows.map((row) => width(row[i] ?? ""))),
  );
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => (i < left ? cell + " ".repeat((widths[i] ?? 0) - width(cell)) : " ".repeat((widths[i] ?? 0) - width(cell)) + cell)).join(" | ")} |`;
  console.log(line(header));
  console.log(
    `|${widths.map((w, i) => (i < left ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`)).join("|")}|`,
  );
  for (const row of rows) console.log(line(row));
}

function us(ns: number): string {
  const micros = ns / 1000;
  if (!Number.isFinite(micros)) return "–";
  if (Math.abs(micros) >= 10_000) return `${(micros / 1000).toFixed(1)} ms`;
  if (Math.abs(micros) >= 100) return micros.toFixed(0);
  return micros.toFixed(1);
}

function elapsed(): string {
  return `${((Date.now() - started) / 1000).toFixed(1)} s`;
}

function digestsWithoutSha(): Record<MacAlgorithm, { perMb: number; perKb: number }> | undefined {
  // OPENSSL_ia32cap masks CPUID bits OpenSSL sees; bit 29 of the second word is the SHA
  // extensions. The child runs the same code on the same machine, minus SHA-NI.
  try {
    const output = execFileSync(
      process.execPath,
      [
        ...process.execArgv,
        fileURLToPath(import.meta.url),
        "--digests-child",
        ...(quick ? ["--quick"] : []),
      ],
      {
        env: { ...process.env, OPENSSL_ia32cap: ":~0x20000000" },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    return JSON.parse(output);
  } catch (error) {
    log(pc.yellow(`could not measure digests without SHA extensions: ${(error as Error).message}`));
    return undefined;
  }
}

function describeMachine() {
  let shaNi = false;
  try {
    shaNi = /\bsha_ni\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    // Not Linux: the flag is reported as absent, which only changes the digest table's label.
  }
  return {
    cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
    cores: cpus().length,
    shaNi,
    os: `${platform()} ${release()}`,
    node: process.versions.node,
    openssl: process.versions.openssl,
    loadBefore: loadavg()
      .map((n) => n.toFixed(2))
      .join(" "),
  };
}
