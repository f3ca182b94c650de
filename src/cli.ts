#!/usr/bin/env node
import { SingleBar } from "cli-progress";
/**
 * The `signed-cache` command: make secrets and audit or repair a signed store.
 * It reads the same `SIGNED_CACHE_*` environment as the library.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import pc from "picocolors";
import { readConfig } from "./config.js";
import { ConfigError, SignedCacheError } from "./errors.js";
import { generateSecret, type Secret } from "./keyring.js";
import { type EntryAudit, signedStore } from "./store.js";
import { storeFromUrl } from "./stores.js";

/** Totals of one walk over a store; `verify --json` prints exactly the first six fields. */
interface AuditSummary {
  scanned: number;
  valid: number;
  fallback: number;
  invalid: number;
  expired: number;
  reasons: Record<string, number>;
}

interface StoreFlags {
  url?: string;
  namespace?: string;
  json?: boolean;
}

type Action = "verify" | "resign" | "purge" | "stats";

// Keyv's own default namespace: what createKeyv and setupCache write under when none is set.
const KEYV_DEFAULT_NAMESPACE = "keyv";

const EXIT_INVALID = 1;
const EXIT_FAILURE = 2;

async function walk(action: Action, flags: StoreFlags): Promise<number> {
  const config = readConfig(process.env);
  if (config.secret === undefined) {
    throw new ConfigError(
      "set SIGNED_CACHE_SECRET (or SIGNED_CACHE_SECRET_FILE) to verify entries",
    );
  }
  const url = flags.url ?? config.url;
  const namespace = flags.namespace ?? config.namespace ?? KEYV_DEFAULT_NAMESPACE;
  const store = signedStore(storeFromUrl(url), config.secret as Secret, {
    fallbacks: config.fallbacks,
    encrypt: config.encrypt,
    algorithm: config.algorithm,
    ...(config.algorithms === undefined ? {} : { algorithms: config.algorithms }),
    maxEntryBytes: config.maxEntryBytes,
    storeTimeout: config.storeTimeout,
  });
  store.namespace = namespace;

  const summary: AuditSummary = {
    scanned: 0,
    valid: 0,
    fallback: 0,
    invalid: 0,
    expired: 0,
    reasons: {},
  };
  const done = { resigned: 0, deleted: 0 };
  const kids: Record<string, number> = {};
  let chars = 0;
  const progress =
    process.stderr.isTTY && !flags.json
      ? new SingleBar({
          format: `${action} ${pc.dim(namespace)} {value} entries · {valid} valid · {invalid} invalid`,
          hideCursor: true,
          clearOnComplete: true,
        })
      : undefined;
  progress?.start(0, 0, { valid: 0, invalid: 0 });
  try {
    const actions = { resign: action === "resign", purge: action === "purge" };
    for await (const entry of store.audit(namespace, actions)) {
      count(summary, entry);
      if (entry.action === "resigned") done.resigned++;
      if (entry.action === "deleted") done.deleted++;
      if (entry.kid !== undefined) kids[entry.kid] = (kids[entry.kid] ?? 0) + 1;
      chars += entry.size;
      progress?.increment(1, { valid: summary.valid + summary.fallback, invalid: summary.invalid });
    }
  } finally {
    progress?.stop();
    await store.disconnect().catch(() => undefined);
  }

  const extra =
    action === "resign"
      ? { resigned: done.resigned }
      : action === "purge"
        ? { deleted: done.deleted }
        : action === "stats"
          ? { chars, kids, current: store.kids[0] }
          : {};
  if (flags.json) {
    console.log(JSON.stringify({ ...summary, ...extra }));
  } else {
    printSummary(action, namespace, summary, extra, store.kids[0]);
  }
  return action === "verify" && summary.invalid > 0 ? EXIT_INVALID : 0;
}

function count(summary: AuditSummary, entry: EntryAudit): void {
  summary.scanned++;
  summary[entry.status]++;
  if (entry.reason !== undefined)
    summary.reasons[entry.reason] = (summary.reasons[entry.reason] ?? 0) + 1;
}

function printSummary(
  action: Action,
  namespace: string,
  summary: AuditSummary,
  extra: Record<string, unknown>,
  currentKid: string | undefined,
): void {
  const reasons = Object.entries(summary.reasons)
    .map(([reason, n]) => `${reason}: ${n}`)
    .join(", ");
  const invalid = summary.invalid > 0 ? pc.red(`${summary.invalid} invalid`) : "0 invalid";
  console.log(`${pc.bold(action)} ${pc.dim(`namespace ${namespace}`)}`);
  console.log(
    `  ${summary.scanned} scanned · ${pc.green(`${summary.valid} valid`)} · ${summary.fallback} on a fallback key · ${invalid} · ${summary.expired} expired`,
  );
  if (reasons) console.log(`  reasons: ${reasons}`);
  if ("resigned" in extra) console.log(`  ${extra.resigned} re-signed under the current key`);
  if ("deleted" in extra) console.log(`  ${extra.deleted} deleted`);
  if ("chars" in extra) {
    console.log(`  ${extra.chars} characters stored · current key id ${currentKid}`);
    for (const [kid, n] of Object.entries(extra.kids as Record<string, number>)) {
      console.log(`  key id ${kid}: ${n} entries${kid === currentKid ? " (current)" : ""}`);
    }
  }
}

function positiveBytes(value: string): number {
  const bytes = Number(value);
  if (!Number.isInteger(bytes) || bytes < 32 || bytes > 1024) {
    throw new InvalidArgumentError("bytes must be a whole number from 32 to 1024");
  }
  return bytes;
}

/** Builds the command line program. */
function buildProgram(): Command {
  const program = new Command("signed-cache")
    .description("Make secrets for signed-cache and audit or repair a signed store.")
    .showHelpAfterError()
    .addHelpText(
      "after",
      "\nEnvironment: SIGNED_CACHE_SECRET(_FILE), SIGNED_CACHE_SECRET_FALLBACKS(_FILE), SIGNED_CACHE_URL,\nSIGNED_CACHE_NAMESPACE, SIGNED_CACHE_ENCRYPT, SIGNED_CACHE_STORE_TIMEOUT.",
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

  const storeCommand = (name: Action, description: string) =>
    program
      .command(name)
      .description(description)
      .option("--url <url>", "store URL (default: SIGNED_CACHE_URL or sqlite://http_cache.sqlite)")
      .option("--namespace <ns>", "Keyv namespace (default: SIGNED_CACHE_NAMESPACE or keyv)")
      .option("--json", "print one JSON object")
      .action(async (flags: StoreFlags) => {
        process.exitCode = await walk(name, flags);
      });

  storeCommand("verify", "check every entry; exit 1 when any is invalid");
  storeCommand("resign", "re-sign entries signed by a fallback secret with the current one");
  storeCommand("purge", "delete invalid and expired entries");
  storeCommand("stats", "count entries by status and key id");
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    // Only our own errors are shown as they are: they never carry secrets or cached values.
    const message =
      error instanceof SignedCacheError
        ? `${error.name}: ${error.message}`
        : error instanceof Error
          ? error.message
          : String(error);
    console.error(pc.red(`signed-cache: ${message}`));
    process.exitCode = EXIT_FAILURE;
  }
}

await main();
