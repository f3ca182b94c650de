#!/usr/bin/env node
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { SingleBar } from "cli-progress";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import pc from "picocolors";
import { checkNamespace, readConfig } from "./config.js";
/**
 * The `signed-cache` command: make secrets and audit or repair a signed store.
 * It reads the same `SIGNED_CACHE_*` environment as the library.
 *
 * Exit codes: 0 fine, 1 invalid entries found (`verify`), 2 usage, configuration or store error.
 */
import { KEYV_DEFAULT_NAMESPACE } from "./create-keyv.js";
import { ConfigError, SignedCacheError } from "./errors.js";
import { generateSecret } from "./keyring.js";
import {
  type AuditActions,
  type EntryAudit,
  type SignedStore,
  signedStore,
  type WrappableStore,
} from "./store.js";
import { sqlTableExists, storeFromUrl } from "./stores.js";

/** Totals of one walk over a store; `verify --json` prints exactly these fields. */
interface AuditSummary {
  scanned: number;
  valid: number;
  fallback: number;
  invalid: number;
  expired: number;
  reasons: Counts;
}

type Counts = Record<string, number>;

interface StoreFlags {
  url?: string;
  namespace?: string;
  json?: boolean;
}

interface PurgeFlags extends StoreFlags {
  dryRun?: boolean;
  kid?: string;
  force?: boolean;
}

/** A store opened for one command, and how to report on it. */
interface Target {
  store: SignedStore;
  namespace: string;
  json: boolean;
}

/** What `purge` deletes: with `kid`, every entry naming that key id; else invalid and expired ones. */
interface PurgePlan {
  kid: string | undefined;
  force: boolean;
}

/** What one purge pass found, or did. */
interface PurgeTally {
  summary: AuditSummary;
  /** Entries deleted (or, in a dry run, to be deleted), by reason. */
  deleted: Counts;
  /** Entries held back because they fail only for a configuration mismatch, by reason. */
  refused: Counts;
  /** Key ids the entries held back for `unknown-key` claim. */
  refusedKids: Counts;
}

const EXIT_OK = 0;
const EXIT_INVALID = 1;
const EXIT_FAILURE = 2;

// Key ids are 6 bytes of HKDF output in base64url (see keyring.ts).
const KID_PATTERN = /^[A-Za-z0-9_-]{8}$/;

// The namespace hint reads this much of a store at most: enough to name what is there, never a
// full scan of a big store.
const HINT_MAX_KEYS = 10_000;
const HINT_MAX_NAMESPACES = 20;

/**
 * Builds the signed store a command walks, from the environment and the command's flags.
 *
 * @throws {ConfigError} On a missing secret, a bad setting or flag, or a SQLite file that does
 *   not exist (no command creates a store).
 */
async function openTarget(flags: StoreFlags): Promise<Target> {
  const config = readConfig(process.env);
  if (config.secret === undefined) {
    throw new ConfigError(
      "set SIGNED_CACHE_SECRET (or SIGNED_CACHE_SECRET_FILE) to verify entries",
    );
  }
  if (flags.namespace !== undefined) checkNamespace(flags.namespace, "--namespace");
  const url = flags.url ?? config.url;
  await requireExistingStore(url);
  const namespace = flags.namespace ?? config.namespace ?? KEYV_DEFAULT_NAMESPACE;
  const backend = storeFromUrl(url);
  try {
    // memcached has no way to list its keys: say so, rather than fail mid-command.
    if (!(backend instanceof Map) && typeof backend.iterator !== "function") {
      throw new ConfigError(
        "this store cannot list its keys (memcached keeps no index of them), so its entries cannot be verified, re-signed or purged",
      );
    }
    const store = signedStore(backend, config.secret, {
      fallbacks: config.fallbacks,
      encrypt: config.encrypt,
      algorithm: config.algorithm,
      ...(config.algorithms === undefined ? {} : { algorithms: config.algorithms }),
      maxEntryBytes: config.maxEntryBytes,
      storeTimeout: config.storeTimeout,
    });
    store.namespace = namespace;
    return { store, namespace, json: flags.json ?? false };
  } catch (error) {
    // Some adapters connect as they are built: an open connection would keep the process alive.
    await disconnectQuietly(backend);
    throw error;
  }
}

/**
 * Refuses a `sqlite://` URL whose file does not exist, and a SQL URL whose table does not.
 * Opening either would create an empty store, and a walk over that would report a clean store:
 * the usual causes are a relative path read from another working directory, or a misspelt
 * `?table=`.
 *
 * @throws {ConfigError} When the file or table is missing.
 */
async function requireExistingStore(url: string): Promise<void> {
  // A SQL table is looked up without the adapter, which would create it on first use.
  if ((await sqlTableExists(url)) === false) {
    throw new ConfigError(
      "no such table in that database; nothing was created. Check the URL's ?table= (default keyv)",
    );
  }
  if (!/^sqlite:\/\//i.test(url)) return;
  // As storeFromUrl reads it: the path up to any `?table=`, relative to the working directory.
  const location = url.slice("sqlite://".length).split("?")[0] ?? "";
  if (location === "" || location === ":memory:") return;
  const file = resolve(location);
  if (!existsSync(file)) {
    throw new ConfigError(
      `no SQLite store at ${file}; nothing was created. Pass --url or set SIGNED_CACHE_URL (a relative sqlite:// path is relative to the working directory)`,
    );
  }
}

async function disconnectQuietly(backend: WrappableStore): Promise<void> {
  if (backend instanceof Map) return;
  await Promise.resolve(backend.disconnect?.()).catch(() => undefined);
}

/** Opens the store, runs one command on it and always closes it. */
async function withTarget<F extends StoreFlags>(
  flags: F,
  command: (target: Target, flags: F) => Promise<number>,
): Promise<number> {
  const target = await openTarget(flags);
  try {
    return await command(target, flags);
  } finally {
    await target.store.disconnect().catch(() => undefined);
  }
}

/**
 * Walks the namespace once: counts every entry and hands it to `onEntry`, with a progress line
 * on a terminal. A walk the store broke off throws (a StoreError from the store): a partial
 * count is never reported as the whole.
 */
async function walk(
  target: Target,
  label: string,
  actions: AuditActions,
  onEntry: (entry: EntryAudit) => void = () => undefined,
): Promise<AuditSummary> {
  const summary = emptySummary();
  const progress = startProgress(target, label);
  try {
    for await (const entry of target.store.audit(target.namespace, actions)) {
      count(summary, entry);
      onEntry(entry);
      progress?.increment(1, {
        valid: summary.valid + summary.fallback,
        invalid: summary.invalid,
      });
    }
  } finally {
    progress?.stop();
  }
  // "0 scanned" alone reads as a clean store; usually the entries live under another namespace.
  if (summary.scanned === 0) await hintNamespaces(target);
  return summary;
}

function emptySummary(): AuditSummary {
  return { scanned: 0, valid: 0, fallback: 0, invalid: 0, expired: 0, reasons: {} };
}

function startProgress(target: Target, label: string): SingleBar | undefined {
  // Only for a person watching: never into a pipe, a log, or JSON output.
  if (!process.stderr.isTTY || target.json) return undefined;
  const progress = new SingleBar({
    format: `${label} ${pc.dim(target.namespace)} {value} entries · {valid} valid · {invalid} invalid`,
    hideCursor: true,
    clearOnComplete: true,
  });
  progress.start(0, 0, { valid: 0, invalid: 0 });
  return progress;
}

function count(summary: AuditSummary, entry: EntryAudit): void {
  summary.scanned++;
  summary[entry.status]++;
  if (entry.reason !== undefined) add(summary.reasons, entry.reason);
}

function add(counts: Counts, name: string, n = 1): void {
  counts[name] = (counts[name] ?? 0) + n;
}

function total(counts: Counts): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

/** Tells on stderr which namespaces hold entries, when the one walked held none. */
async function hintNamespaces(target: Target): Promise<void> {
  let found: { names: string[]; more: boolean };
  try {
    found = await findNamespaces(target.store.backend);
  } catch {
    return; // A hint, never a failure: the walk itself already succeeded.
  }
  const others = found.names.filter((name) => name !== target.namespace);
  const where =
    others.length === 0
      ? "no other namespace holds entries either"
      : `entries exist under ${others.join(", ")}${found.more ? ", …" : ""}; pass --namespace <ns> or set SIGNED_CACHE_NAMESPACE`;
  console.error(pc.yellow(`signed-cache: no entries in namespace ${target.namespace}; ${where}`));
}

/**
 * Namespaces of the raw backend: the prefixes of its keys before the first `:`. Reads at most
 * {@link HINT_MAX_KEYS} keys and names at most {@link HINT_MAX_NAMESPACES}; `more` says so.
 */
async function findNamespaces(
  backend: WrappableStore,
): Promise<{ names: string[]; more: boolean }> {
  const names = new Set<string>();
  let read = 0;
  let more = false;
  for await (const key of rawKeys(backend)) {
    const colon = key.indexOf(":");
    if (colon > 0) names.add(key.slice(0, colon));
    if (names.size > HINT_MAX_NAMESPACES || ++read >= HINT_MAX_KEYS) {
      more = true;
      break;
    }
  }
  return { names: [...names].sort().slice(0, HINT_MAX_NAMESPACES), more };
}

/** Every key of a backend, whatever its namespace, as the backend stores it. */
async function* rawKeys(backend: WrappableStore): AsyncGenerator<string> {
  if (backend instanceof Map) {
    for (const key of backend.keys()) yield String(key);
    return;
  }
  const namespaces = await namespaceColumn(backend);
  if (namespaces !== undefined) {
    for (const name of namespaces) yield `${name}:`;
    return;
  }
  if (typeof backend.iterator !== "function") return;
  // @keyv/redis lists only keys outside every namespace for iterator(undefined), unless told to
  // list them all; its keys then read `ns::ns:key`, still prefixed by the namespace.
  const redis = backend as { noNamespaceAffectsAll?: boolean };
  const narrowed = redis.noNamespaceAffectsAll === false;
  if (narrowed) redis.noNamespaceAffectsAll = true;
  try {
    for await (const [key] of backend.iterator(undefined)) yield String(key);
  } finally {
    if (narrowed) redis.noNamespaceAffectsAll = false;
  }
}

/**
 * The namespaces of a 6.x SQL adapter, which keeps them in a column of their own (its walks see
 * one namespace only); `undefined` for any other backend.
 */
async function namespaceColumn(backend: object): Promise<string[] | undefined> {
  const sql = backend as {
    query?: (statement: string) => Promise<Record<string, unknown>[]>;
    opts?: { table?: unknown };
    table?: unknown;
    schema?: unknown;
  };
  const table = sql.opts?.table ?? sql.table;
  if (
    !("capabilities" in backend) ||
    typeof sql.query !== "function" ||
    typeof table !== "string"
  ) {
    return undefined;
  }
  const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
  const from =
    typeof sql.schema === "string" ? `${quote(sql.schema)}.${quote(table)}` : quote(table);
  const rows = await sql.query(
    `SELECT DISTINCT namespace FROM ${from} LIMIT ${HINT_MAX_NAMESPACES + 1}`,
  );
  return rows
    .map((row) => row.namespace)
    .filter((name): name is string => typeof name === "string" && name !== "");
}

/** Prints a command's result: one JSON object, or the summary and the command's own lines. */
function report(
  target: Target,
  action: string,
  summary: AuditSummary,
  extra: Record<string, unknown>,
  lines: string[],
): void {
  if (target.json) {
    console.log(JSON.stringify({ ...summary, ...extra }));
    return;
  }
  const invalid = summary.invalid > 0 ? pc.red(`${summary.invalid} invalid`) : "0 invalid";
  console.log(`${pc.bold(action)} ${pc.dim(`namespace ${target.namespace}`)}`);
  console.log(
    `  ${summary.scanned} scanned · ${pc.green(`${summary.valid} valid`)} · ${summary.fallback} on a fallback key · ${invalid} · ${summary.expired} expired`,
  );
  const reasons = listCounts(summary.reasons);
  if (reasons) console.log(`  reasons: ${reasons}`);
  for (const line of lines) console.log(`  ${line}`);
}

/** `name: n, …` in name order: the same store reads the same, whatever the walk order. */
function listCounts(counts: Counts): string {
  return Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => `${name}: ${n}`)
    .join(", ");
}

async function verify(target: Target): Promise<number> {
  const summary = await walk(target, "verify", {});
  report(target, "verify", summary, {}, []);
  return summary.invalid > 0 ? EXIT_INVALID : EXIT_OK;
}

/**
 * Counts entries by status, key id and algorithm. Verified entries (valid, fallback, expired)
 * are counted under `kids` and `algorithms`; invalid ones under `unverifiedKids`, by the key id
 * their header claims, which whoever wrote the entry chose.
 */
async function stats(target: Target): Promise<number> {
  const kids: Counts = {};
  const unverifiedKids: Counts = {};
  const algorithms: Counts = {};
  let chars = 0;
  const summary = await walk(target, "stats", {}, (entry) => {
    chars += entry.size;
    if (entry.kid !== undefined) add(entry.status === "invalid" ? unverifiedKids : kids, entry.kid);
    // How verified entries are protected: a migration (signed → encrypted, a new digest) is
    // done when only the configured algorithm is left.
    if (entry.algorithm !== undefined) add(algorithms, entry.algorithm);
  });
  const [current, ...fallbacks] = target.store.kids;
  const role = (kid: string) =>
    kid === current ? "current" : fallbacks.includes(kid) ? "fallback" : "not configured";
  const byKid = (counts: Counts) =>
    Object.entries(counts).map(([kid, n]) => `key id ${kid} (${role(kid)}): ${n} entries`);
  const unverified = byKid(unverifiedKids);
  report(
    target,
    "stats",
    summary,
    { chars, current, fallbacks, kids, unverifiedKids, algorithms },
    [
      `${chars} characters stored · current key id ${current}`,
      ...byKid(kids),
      ...Object.entries(algorithms).map(([algorithm, n]) => `${algorithm}: ${n} entries`),
      ...(unverified.length === 0
        ? []
        : ["claimed by invalid entries (unverified):", ...unverified.map((line) => `  ${line}`)]),
    ],
  );
  return EXIT_OK;
}

async function resign(target: Target): Promise<number> {
  let resigned = 0;
  const summary = await walk(target, "resign", { resign: true }, (entry) => {
    if (entry.action === "resigned") resigned++;
  });
  report(target, "resign", summary, { resigned }, [
    `${resigned} re-signed under the current key, or raised to the configured protection`,
  ]);
  return EXIT_OK;
}

/** Whether purge picks this entry at all. */
function picks(plan: PurgePlan, entry: EntryAudit): boolean {
  if (plan.kid !== undefined) return entry.kid === plan.kid;
  return entry.status === "invalid" || entry.status === "expired";
}

/**
 * Why a picked entry is held back without `--force`: it fails only because this configuration
 * differs from the writer's (a secret it does not hold, an algorithm it does not accept), which
 * says nothing about tampering. A wrong SIGNED_CACHE_SECRET must not wipe a healthy store.
 */
function heldBack(plan: PurgePlan, entry: EntryAudit): string | undefined {
  // Revoking a key id targets exactly these entries.
  if (plan.force || plan.kid !== undefined || entry.status !== "invalid") return undefined;
  if (entry.reason === "unknown-key") return entry.reason;
  // With a header that parses (a key id is known), the algorithm is one this build reads: only
  // the accepted list (SIGNED_CACHE_ALGORITHMS) turned it down.
  if (entry.reason === "unsupported-version" && entry.kid !== undefined) return entry.reason;
  return undefined;
}

function deletes(plan: PurgePlan, entry: EntryAudit): boolean {
  return picks(plan, entry) && heldBack(plan, entry) === undefined;
}

/** How purge reports a deleted entry: why it failed, `expired`, or `revoked` (with `--kid`). */
function purgeReason(entry: EntryAudit): string {
  return entry.reason ?? (entry.status === "expired" ? "expired" : "revoked");
}

/** One purge pass: read-only while `actions` is empty, deleting with `actions.purge`. */
async function purgePass(
  target: Target,
  plan: PurgePlan,
  label: string,
  actions: AuditActions,
): Promise<PurgeTally> {
  const tally: PurgeTally = { summary: emptySummary(), deleted: {}, refused: {}, refusedKids: {} };
  const deleting = actions.purge !== undefined;
  tally.summary = await walk(target, label, actions, (entry) => {
    const held = picks(plan, entry) ? heldBack(plan, entry) : undefined;
    if (held !== undefined) {
      add(tally.refused, held);
      if (held === "unknown-key" && entry.kid !== undefined) add(tally.refusedKids, entry.kid);
    } else if (deleting ? entry.action === "deleted" : deletes(plan, entry)) {
      add(tally.deleted, purgeReason(entry));
    }
  });
  return tally;
}

/**
 * Deletes invalid and expired entries, or with `--kid` every entry naming one key id. A first,
 * read-only pass decides: when entries fail only for a configuration mismatch it refuses before
 * anything is deleted (unless `--force`); `--dry-run` stops there and reports.
 *
 * @throws {ConfigError} When it refuses; nothing was deleted.
 */
async function purge(target: Target, flags: PurgeFlags): Promise<number> {
  const plan: PurgePlan = { kid: flags.kid, force: flags.force ?? false };
  checkRevocation(target.store, plan);
  const dryRun = flags.dryRun ?? false;
  const planned = await purgePass(target, plan, "purge (check)", {});
  const refusing = total(planned.refused) > 0;
  if (dryRun || refusing || total(planned.deleted) === 0) {
    printPurge(target, planned, dryRun, plan, refusing && !dryRun);
    if (refusing && !dryRun) throw new ConfigError(refusal(planned));
    return EXIT_OK;
  }
  const done = await purgePass(target, plan, "purge", { purge: (entry) => deletes(plan, entry) });
  printPurge(target, done, false, plan, false);
  return EXIT_OK;
}

/**
 * Revoking the current secret's entries is almost always a slip: it goes first, see the
 * leaked-secret runbook. A key id still configured as a fallback keeps verifying new forgeries.
 *
 * @throws {ConfigError} When `--kid` names the current secret without `--force`.
 */
function checkRevocation(store: SignedStore, plan: PurgePlan): void {
  if (plan.kid === undefined) return;
  const [current, ...fallbacks] = store.kids;
  if (plan.kid === current && !plan.force) {
    throw new ConfigError(
      `--kid ${plan.kid} is the current secret's key id: deploy a new SIGNED_CACHE_SECRET first (docs/rotation.md, "Leaked secret"), or pass --force`,
    );
  }
  if (fallbacks.includes(plan.kid)) {
    console.error(
      pc.yellow(
        `signed-cache: key id ${plan.kid} is still a configured fallback; drop it from SIGNED_CACHE_SECRET_FALLBACKS, or entries forged with it keep verifying`,
      ),
    );
  }
}

function printPurge(
  target: Target,
  tally: PurgeTally,
  dryRun: boolean,
  plan: PurgePlan,
  refused: boolean,
): void {
  const deleted = refused ? {} : tally.deleted;
  const n = total(deleted);
  const verb = dryRun ? "would delete" : "deleted";
  const lines = [`${verb} ${n}${n > 0 ? ` (${listCounts(deleted)})` : ""}`];
  if (plan.kid !== undefined) lines[0] += ` · entries naming key id ${plan.kid}`;
  if (total(tally.refused) > 0) {
    lines.push(
      pc.yellow(
        `${total(tally.refused)} held back, failing only for configuration (${listCounts(tally.refused)}): ${dryRun ? "purge would refuse" : "refused"} without --force`,
      ),
    );
  }
  report(
    target,
    "purge",
    tally.summary,
    {
      dryRun,
      ...(plan.kid === undefined ? {} : { kid: plan.kid }),
      deleted: n,
      deletedReasons: deleted,
      refused: tally.refused,
    },
    lines,
  );
}

/** Why purge refused, and what to do about it. */
function refusal(tally: PurgeTally): string {
  const causes: string[] = [];
  const unknown = tally.refused["unknown-key"];
  if (unknown !== undefined) {
    const kids = Object.entries(tally.refusedKids)
      .slice(0, 5)
      .map(([kid, n]) => `${kid}: ${n}`)
      .join(", ");
    causes.push(`${unknown} signed by key ids this configuration does not hold (${kids})`);
  }
  const algorithm = tally.refused["unsupported-version"];
  if (algorithm !== undefined) {
    causes.push(`${algorithm} written with an algorithm it does not accept`);
  }
  return `refusing to purge: ${causes.join("; ")}. They fail for a configuration mismatch, not tampering, and nothing was deleted. Check SIGNED_CACHE_SECRET, SIGNED_CACHE_SECRET_FALLBACKS and SIGNED_CACHE_ALGORITHMS; revoke one secret's entries with --kid <kid>; or pass --force to delete them`;
}

function positiveBytes(value: string): number {
  const bytes = Number(value);
  if (!Number.isInteger(bytes) || bytes < 32 || bytes > 1024) {
    throw new InvalidArgumentError("bytes must be a whole number from 32 to 1024");
  }
  return bytes;
}

function keyId(value: string): string {
  if (!KID_PATTERN.test(value)) {
    throw new InvalidArgumentError("a key id is 8 base64url characters, as `stats` shows them");
  }
  return value;
}

/** Builds the command line program. */
function buildProgram(): Command {
  const program = new Command("signed-cache")
    .description("Make secrets for signed-cache and audit or repair a signed store.")
    // Throw instead of exiting, so that usage errors get the documented exit code (2).
    .exitOverride()
    .showHelpAfterError()
    .addHelpText(
      "after",
      "\nEnvironment: SIGNED_CACHE_SECRET(_FILE), SIGNED_CACHE_SECRET_FALLBACKS(_FILE), SIGNED_CACHE_URL,\nSIGNED_CACHE_NAMESPACE, SIGNED_CACHE_ENCRYPT, SIGNED_CACHE_ALGORITHM(S), SIGNED_CACHE_STORE_TIMEOUT.\nExit codes: 0 fine, 1 invalid entries found (verify), 2 usage, configuration or store error.",
    );

  program
    .command("keygen")
    .description("print a new random secret (base64url)")
    .addOption(new Option("--bytes <n>", "random bytes").default(32).argParser(positiveBytes))
    .option("--json", "print { secret } as JSON")
    .action((flags: { bytes: number; json?: boolean }) => {
      const secret = generateSecret(flags.bytes);
      console.log(flags.json ? JSON.stringify({ secret }) : secret);
    });

  const storeCommand = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .option("--url <url>", "store URL (default: SIGNED_CACHE_URL or sqlite://http_cache.sqlite)")
      .option("--namespace <ns>", "Keyv namespace (default: SIGNED_CACHE_NAMESPACE or keyv)")
      .option("--json", "print one JSON object");

  storeCommand("verify", "check every entry; exit 1 when any is invalid").action(
    async (flags: StoreFlags) => {
      process.exitCode = await withTarget(flags, verify);
    },
  );
  storeCommand(
    "resign",
    "re-sign fallback-signed entries with the current secret, never with less protection",
  ).action(async (flags: StoreFlags) => {
    process.exitCode = await withTarget(flags, resign);
  });
  storeCommand("purge", "delete invalid and expired entries, or every entry of one key id")
    .option("--dry-run", "report what would be deleted; delete nothing")
    .addOption(
      new Option(
        "--kid <kid>",
        "delete every entry naming this key id (revoke a secret)",
      ).argParser(keyId),
    )
    .option("--force", "also delete entries that fail only for an unknown key id or algorithm")
    .action(async (flags: PurgeFlags) => {
      process.exitCode = await withTarget(flags, purge);
    });
  storeCommand("stats", "count entries by status and key id").action(async (flags: StoreFlags) => {
    process.exitCode = await withTarget(flags, stats);
  });
  return program;
}

/** The exit code for an error, after telling the user about it. */
function fail(error: unknown): number {
  // Commander has already printed its message (and the help); --help itself exits 0.
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_FAILURE;
  // Only our own errors are shown as they are: they never carry secrets or cached values.
  const message =
    error instanceof SignedCacheError
      ? `${error.name}: ${error.message}`
      : error instanceof Error
        ? error.message
        : String(error);
  console.error(pc.red(`signed-cache: ${message}`));
  return EXIT_FAILURE;
}

/** How long the process may linger after its work, for output to drain, before it is ended. */
const EXIT_GRACE_MS = 1_000;

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    process.exitCode = fail(error);
  } finally {
    // The store was closed, but a driver whose server stopped answering can keep a socket
    // open: a command must still end, with its exit code, for the scripts and cron jobs that
    // run it. The timer does not itself keep the process alive.
    setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
  }
}

await main();
