/**
 * Hostile input. A store writer can put any bytes under any key: 100,000 random and mutated
 * envelopes go through `openEnvelope` and through a signed store's `get` (lax and strict), and
 * none may be accepted unless it is an entry genuinely sealed for that key, namespace and
 * purpose; none may crash (only `BadData` is ever thrown); none may take long. Then: cached JSON
 * with `__proto__`, `constructor` and `prototype` keys never pollutes a prototype on the way
 * back, through Keyv values and through axios entries.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { inspect, isDeepStrictEqual } from "node:util";
import Axios from "axios";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deserializeEntry, serializeEntry } from "../src/axios/entry.ts";
import { setupCache } from "../src/axios/index.ts";
import { createKeyv } from "../src/create-keyv.ts";
import { MAX_EXPIRY_MS, type OpenOptions, openEnvelope, sealEnvelope } from "../src/envelope.ts";
import { BadData } from "../src/errors.ts";
import { Keyring } from "../src/keyring.ts";
import { type SignedStore, signedStore } from "../src/store.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "./support/secrets.ts";

// ---- the genuine entries every mutation starts from -----------------------------------------

/** Where an entry is read or written: namespace, key and purpose. */
interface Context {
  readonly ns: string | undefined;
  readonly key: string;
  readonly purpose: string;
}

/** What one genuine envelope was sealed for, and what opening it gives. */
interface Genuine {
  readonly stored: string;
  readonly ctx: Context;
  /** Sealed with a secret the reader holds (current or fallback). */
  readonly trusted: boolean;
  readonly expired: boolean;
  /** What `openEnvelope` gives for it in its own context (for an untrusted one: nothing). */
  readonly value: unknown;
}

// Namespaces and keys whose binding frames (`<len>:<ns><len>:<key>`) come close to each other.
const NAMESPACES = [undefined, "keyv", "keyv1", "a", "a1"] as const;
const KEYS = [
  "keyv:user/42",
  "keyv:user/43",
  "user",
  "1:b",
  ":b",
  "",
  "a.b.c",
  "sc2.hs256",
  "ключ🔑",
  "k".repeat(300),
] as const;
const PURPOSES = ["keyv", "axios", "k", "keyv-2"] as const;
const ALGORITHMS = [
  { algorithm: "sha256", encrypt: false },
  { algorithm: "sha512", encrypt: false },
  { algorithm: "blake2b512", encrypt: false },
  { algorithm: "sha256", encrypt: true },
] as const;
const READER = new Keyring(SECRET, [OLD_SECRET]);
const SIGNERS = [
  { keyring: new Keyring(SECRET), trusted: true },
  { keyring: new Keyring(OLD_SECRET), trusted: true },
  { keyring: new Keyring(OTHER_SECRET), trusted: false },
];
const FUTURE = Date.now() + 86_400_000;
const EXPIRIES = [undefined, FUTURE, 1_000, MAX_EXPIRY_MS] as const;
const VALUES: readonly unknown[] = [
  "plain text",
  "",
  '{"value":{"role":"admin"},"expires":null}',
  "dots.in.the.body.",
  "emoji 🔑, ünïcödé, NUL \0 and a tab\t",
  "x".repeat(3000),
  "lone \ud800 surrogate", // sealed as a structured clone
  { role: "user", id: 42 },
  [1, "two", { three: 3 }],
  42,
  null,
  new Map([["a", 1]]),
  new Uint8Array([0, 1, 2, 255]),
];

const CONTEXTS: Context[] = NAMESPACES.flatMap((ns) =>
  KEYS.flatMap((key) => PURPOSES.map((purpose) => ({ ns, key, purpose }))),
);
const sameContext = (a: Context, b: Context) =>
  a.ns === b.ns && a.key === b.key && a.purpose === b.purpose;
const openOptions = (ctx: Context): OpenOptions => ({
  namespace: ctx.ns,
  purpose: ctx.purpose,
  accepted: undefined, // every algorithm: the deepest code paths are reached
});

const POOL: Genuine[] = [];
const BY_STORED = new Map<string, Genuine>();
for (let i = 0; i < 320; i++) {
  const ctx = CONTEXTS[(i * 37) % CONTEXTS.length] as Context;
  const alg = ALGORITHMS[i % ALGORITHMS.length] as (typeof ALGORITHMS)[number];
  const signer = SIGNERS[(i * 5) % SIGNERS.length] as (typeof SIGNERS)[number];
  const expiresAt = EXPIRIES[(i * 3) % EXPIRIES.length];
  const written = VALUES[(i * 7) % VALUES.length];
  const stored = sealEnvelope(signer.keyring, ctx.key, written, expiresAt, {
    namespace: ctx.ns,
    purpose: ctx.purpose,
    algorithm: alg.algorithm,
    encrypt: alg.encrypt,
  });
  const value = signer.trusted
    ? openEnvelope(READER, ctx.key, stored, openOptions(ctx)).value
    : undefined;
  const genuine: Genuine = {
    stored,
    ctx,
    trusted: signer.trusted,
    expired: expiresAt !== undefined && expiresAt < Date.now(),
    value,
  };
  POOL.push(genuine);
  BY_STORED.set(stored, genuine);
}

// ---- the readers ------------------------------------------------------------------------------

const READ_ALGORITHMS = ["sha256", "sha512", "blake2b512", "aes-256-gcm"] as const;
const readers = new Map<string, { map: Map<string, unknown>; store: SignedStore }>();

/** A signed store over a Map for a namespace, purpose and mode, reading every algorithm. */
function reader(ctx: Context, strict: boolean) {
  const id = `${ctx.ns}|${ctx.purpose}|${strict}`;
  let found = readers.get(id);
  if (found === undefined) {
    const map = new Map<string, unknown>();
    const store = signedStore(map, SECRET, {
      fallbacks: [OLD_SECRET],
      algorithms: [...READ_ALGORITHMS],
      purpose: ctx.purpose,
      strict,
    });
    store.namespace = ctx.ns;
    found = { map, store };
    readers.set(id, found);
  }
  return found;
}

/**
 * Why accepting `stored` with `value` in `ctx` is wrong, or `undefined` when it is right: the
 * one acceptable answer is the value of an entry sealed for exactly this context by a secret the
 * reader holds (and, for a store read, not yet expired).
 */
function wrongAcceptance(
  ctx: Context,
  stored: unknown,
  value: unknown,
  store: boolean,
): string | undefined {
  const genuine = typeof stored === "string" ? BY_STORED.get(stored) : undefined;
  if (genuine === undefined) return "accepted an entry nobody sealed";
  if (!sameContext(genuine.ctx, ctx)) return "accepted an entry sealed for another context";
  if (!genuine.trusted) return "accepted an entry sealed with an unconfigured secret";
  if (store && genuine.expired) return "served an entry past its signed expiry";
  if (!isDeepStrictEqual(value, genuine.value)) return "returned a value other than the one sealed";
  return undefined;
}

// ---- measuring --------------------------------------------------------------------------------

const SLOW_MS = 50;
const stats = {
  cases: 0,
  accepted: 0,
  rejected: 0,
  totalMs: 0,
  maxMs: { open: 0, lax: 0, strict: 0 },
  largest: 0,
  slowest: "",
  /** Every read's duration, for percentiles. */
  durations: [] as number[],
};

/**
 * Runs `run` and returns its duration. A run over {@link SLOW_MS} is timed twice more and the
 * fastest kept, so that a garbage-collection pause is not taken for a slow input.
 */
async function timed(run: () => unknown): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let attempt = 0; attempt < 3 && best > SLOW_MS; attempt++) {
    const start = performance.now();
    await run();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

type Outcome = { value: unknown } | { error: unknown };

function show(value: unknown): string {
  return inspect(value, { depth: 3, maxStringLength: 200, breakLength: Number.POSITIVE_INFINITY });
}

/**
 * Reads `stored` in `ctx` three ways and checks each: openEnvelope, a lax store `get`, a strict
 * store `get`. Throws (failing the property) on a wrong acceptance, a crash or a slow read.
 * `mustAccept`: the entry is genuine for `ctx` and must be read back (the harness's control).
 */
async function check(ctx: Context, stored: unknown, mustAccept = false): Promise<void> {
  const where = () => `${show(ctx)} reading ${show(stored)}`;
  stats.cases++;
  if (typeof stored === "string") stats.largest = Math.max(stats.largest, stored.length);

  // 1. openEnvelope
  let outcome = { error: undefined } as Outcome;
  const openMs = await timed(() => {
    try {
      outcome = { value: openEnvelope(READER, ctx.key, stored, openOptions(ctx)).value };
    } catch (error) {
      outcome = { error };
    }
  });
  if ("error" in outcome) {
    if (!(outcome.error instanceof BadData)) {
      throw new Error(`openEnvelope crashed with ${show(outcome.error)}: ${where()}`);
    }
    if (mustAccept) throw new Error(`openEnvelope rejected a genuine entry: ${where()}`);
    stats.rejected++;
  } else {
    const wrong = wrongAcceptance(ctx, stored, outcome.value, false);
    if (wrong !== undefined) throw new Error(`openEnvelope ${wrong}: ${where()}`);
    stats.accepted++;
  }

  // 2. lax get: a miss or the genuine value, never a throw
  const lax = reader(ctx, false);
  let laxValue: unknown;
  const laxMs = await timed(async () => {
    lax.map.set(ctx.key, stored);
    try {
      laxValue = await lax.store.get(ctx.key);
    } catch (error) {
      throw new Error(`lax get crashed with ${show(error)}: ${where()}`);
    }
  });
  lax.map.delete(ctx.key);
  if (laxValue !== undefined) {
    const wrong = wrongAcceptance(ctx, stored, laxValue, true);
    if (wrong !== undefined) throw new Error(`lax get ${wrong}: ${where()}`);
  } else if (mustAccept && !BY_STORED.get(stored as string)?.expired) {
    throw new Error(`lax get missed a genuine entry: ${where()}`);
  }

  // 3. strict get: BadData or the genuine value
  const strict = reader(ctx, true);
  let strictOutcome = { error: undefined } as Outcome;
  const strictMs = await timed(async () => {
    strict.map.set(ctx.key, stored);
    try {
      strictOutcome = { value: await strict.store.get(ctx.key) };
    } catch (error) {
      strictOutcome = { error };
    }
  });
  strict.map.delete(ctx.key);
  if ("error" in strictOutcome) {
    if (!(strictOutcome.error instanceof BadData)) {
      throw new Error(`strict get crashed with ${show(strictOutcome.error)}: ${where()}`);
    }
    if (mustAccept) throw new Error(`strict get rejected a genuine entry: ${where()}`);
  } else if (strictOutcome.value !== undefined) {
    const wrong = wrongAcceptance(ctx, stored, strictOutcome.value, true);
    if (wrong !== undefined) throw new Error(`strict get ${wrong}: ${where()}`);
  }

  stats.totalMs += openMs + laxMs + strictMs;
  stats.durations.push(openMs, laxMs, strictMs);
  stats.maxMs.open = Math.max(stats.maxMs.open, openMs);
  stats.maxMs.lax = Math.max(stats.maxMs.lax, laxMs);
  stats.maxMs.strict = Math.max(stats.maxMs.strict, strictMs);
  const slowest = Math.max(openMs, laxMs, strictMs);
  if (slowest >= Math.max(stats.maxMs.open, stats.maxMs.lax, stats.maxMs.strict)) {
    const size = typeof stored === "string" ? `${stored.length} chars` : typeof stored;
    stats.slowest = `${size} (${show(stored).slice(0, 60)}…)`;
  }
  if (slowest > SLOW_MS) {
    throw new Error(`a read took ${slowest.toFixed(1)} ms (over ${SLOW_MS}): ${where()}`);
  }
}

// ---- mutations --------------------------------------------------------------------------------

/** An envelope cut at its dots: 6 header fields, the body (which may hold dots), the tag. */
function fieldsOf(stored: string): string[] {
  const parts = stored.split(".");
  if (parts.length < 8) return parts;
  return [...parts.slice(0, 6), parts.slice(6, -1).join("."), parts.at(-1) as string];
}

const EDIT_CHARS = [
  ".",
  "A",
  "a",
  "0",
  "9",
  "-",
  "_",
  "=",
  "+",
  "/",
  " ",
  "\n",
  "\0",
  "é",
  "\ud800",
  "\udc00",
  "🔑",
  "\ufeff",
  "Ａ",
];

const edit = fc.record({
  op: fc.constantFrom("insert", "delete", "replace"),
  at: fc.nat(),
  char: fc.oneof(
    fc.constantFrom(...EDIT_CHARS),
    fc.string({ unit: "binary", minLength: 1, maxLength: 3 }),
  ),
});

/** Replacement texts for each field: plausible, near-miss and hostile. */
const FIELD_VALUES: readonly (readonly string[])[] = [
  ["sc2", "sc1", "sc3", "SC2", "sc02", "sc", "", "sc2 "],
  ["hs256", "hs512", "hb512", "a256gcm", "HS256", "hs384", "none", "", "hs256 "],
  [
    ...new Set(SIGNERS.map((signer) => signer.keyring.current.kid)),
    "AAAAAAAA",
    "AAAAAAA",
    "AAAAAAAAA",
    "AAAA+/==",
    "",
  ],
  [
    "0",
    "00",
    "1",
    "01",
    "-1",
    "1e3",
    "１",
    " 1",
    "1.5",
    String(MAX_EXPIRY_MS),
    String(MAX_EXPIRY_MS + 1),
    "9999999999999999",
    "99999999999999999",
    String(FUTURE),
    "",
  ],
  [...PURPOSES, "Keyv", "keyv ", "a".repeat(17), "1keyv", "-", ""],
  ["s", "v", "S", "x", "sv", ""],
  ["", "e30", "AAAA", "{}", '{"role":"admin"}'],
  ["", "A", "AAAA", "A".repeat(43), "A".repeat(86), "A".repeat(22), `${"A".repeat(42)}B`],
];

const field = fc.nat({ max: 7 });

/** Re-encodings of a base64url text (a tag or an encoded body) and of whole envelopes. */
const ENCODINGS: Record<string, (text: string) => string> = {
  base64: (t) => Buffer.from(t, "base64url").toString("base64"),
  hex: (t) => Buffer.from(t, "base64url").toString("hex"),
  upper: (t) => t.toUpperCase(),
  lower: (t) => t.toLowerCase(),
  padded: (t) => `${t}${"=".repeat((4 - (t.length % 4)) % 4 || 4)}`,
  strayBits: (t) => {
    // Same bytes for a lenient decoder, another text: the last character's unused bits set.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(t.at(-1) ?? "A");
    return t.length % 4 === 0 ? t : `${t.slice(0, -1)}${alphabet[last | 1] ?? "B"}`;
  },
  percent: (t) => encodeURIComponent(t).replace(/-/g, "%2D"),
  nfd: (t) => t.normalize("NFD"),
  nfkc: (t) => t.normalize("NFKC"),
  latin1: (t) => Buffer.from(t, "utf8").toString("latin1"),
  json: (t) => JSON.stringify(t),
  bom: (t) => `\ufeff${t}`,
  newline: (t) => `${t}\n`,
  space: (t) => ` ${t}`,
  nul: (t) => `${t}\0`,
};

const mutation = fc.oneof(
  { arbitrary: fc.constant({ kind: "none" as const }), weight: 3 },
  {
    arbitrary: fc.record({
      kind: fc.constant("edits" as const),
      edits: fc.array(edit, { minLength: 1, maxLength: 4 }),
    }),
    weight: 30,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("field" as const),
      field,
      choice: fc.nat(),
      random: fc.option(fc.string({ unit: "binary", maxLength: 24 }), { freq: 3 }),
    }),
    weight: 20,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("swap" as const), field, all: fc.boolean() }),
    weight: 12,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("encode" as const),
      field: fc.option(field, { freq: 4 }),
      encoding: fc.constantFrom(...Object.keys(ENCODINGS)),
    }),
    weight: 12,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("truncate" as const),
      at: fc.nat(),
      fromEnd: fc.boolean(),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("huge" as const),
      field,
      char: fc.constantFrom("A", "9", ".", "a", "é", "🔑"),
      // Mostly large, rarely very large: every read must stay bounded either way.
      size: fc.oneof(
        { arbitrary: fc.constantFrom(1_000, 10_000, 100_000), weight: 40 },
        { arbitrary: fc.constant(1_000_000), weight: 3 },
      ),
    }),
    weight: 2,
  },
);

type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function applyEdits(text: string, edits: readonly { op: string; at: number; char: string }[]) {
  let out = text;
  for (const { op, at, char } of edits) {
    const i = at % (out.length + 1);
    if (op === "insert") out = out.slice(0, i) + char + out.slice(i);
    else if (op === "delete") out = out.slice(0, i) + out.slice(i + 1);
    else out = out.slice(0, i) + char + out.slice(i + 1);
  }
  return out;
}

function withField(stored: string, index: number, replace: (old: string) => string): string {
  const fields = fieldsOf(stored);
  const at = Math.min(index, fields.length - 1);
  fields[at] = replace(fields[at] ?? "");
  return fields.join(".");
}

function mutate(a: Genuine, b: Genuine, m: Mutation): string {
  const s = a.stored;
  switch (m.kind) {
    case "none":
      return s;
    case "edits":
      return applyEdits(s, m.edits);
    case "field": {
      const options = FIELD_VALUES[m.field] as readonly string[];
      return withField(
        s,
        m.field,
        () => m.random ?? (options[m.choice % options.length] as string),
      );
    }
    case "swap": {
      // One field of another genuine entry, or everything but that field.
      const theirs = fieldsOf(b.stored);
      if (m.all) return withField(b.stored, m.field, () => fieldsOf(s)[m.field] ?? "");
      return withField(s, m.field, () => theirs[m.field] ?? "");
    }
    case "encode": {
      const encode = ENCODINGS[m.encoding] as (text: string) => string;
      return m.field === null ? encode(s) : withField(s, m.field, encode);
    }
    case "truncate": {
      const at = m.at % (s.length + 1);
      return m.fromEnd ? s.slice(at) : s.slice(0, at);
    }
    case "huge":
      return withField(s, m.field, (old) => old + m.char.repeat(m.size / m.char.length));
  }
}

/** Where a mutated entry is read: mostly where it was written, else anywhere. */
const readAt = fc.option(fc.nat({ max: CONTEXTS.length - 1 }), { freq: 3 });

// ---- random entries ---------------------------------------------------------------------------

const base64url = (min: number, max: number) =>
  fc.string({
    unit: fc.constantFrom(
      ..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".split(""),
    ),
    minLength: min,
    maxLength: max,
  });

/** Envelopes that follow the grammar, so they reach the MAC (or GCM) check, and fail there. */
const grammatical = fc
  .record({
    alg: fc.constantFrom("hs256", "hs512", "hb512", "a256gcm"),
    kid: fc.oneof(fc.constantFrom(...READER.kids), base64url(8, 8)),
    exp: fc.oneof(fc.constant("0"), fc.integer({ min: 1, max: MAX_EXPIRY_MS }).map(String)),
    purpose: fc.constantFrom(...PURPOSES),
    kind: fc.constantFrom("s", "v"),
    body: fc.oneof(
      fc.string({ maxLength: 64 }),
      fc.string({ unit: "binary", maxLength: 64 }),
      base64url(0, 96),
      fc
        .uint8Array({ minLength: 12, maxLength: 64 })
        .map((bytes) => Buffer.from(bytes).toString("base64url")),
    ),
    tagBytes: fc.uint8Array({ minLength: 16, maxLength: 64 }),
  })
  .map(({ alg, kid, exp, purpose, kind, body, tagBytes }) => {
    const bytes = alg === "a256gcm" ? 16 : alg === "hs256" ? 32 : 64;
    const tag = Buffer.from(tagBytes.subarray(0, bytes)).toString("base64url");
    return `sc2.${alg}.${kid}.${exp}.${purpose}.${kind}.${body}.${tag}`;
  });

const randomString = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc
    .tuple(
      fc.constantFrom("sc2.", "sc1.", "sc3.", "sc2", "sc22.", "sc0.", "sc999999999999."),
      fc.string({ unit: "binary", maxLength: 200 }),
    )
    .map(([prefix, rest]) => prefix + rest),
  fc
    .array(fc.oneof(base64url(0, 12), fc.constantFrom(...PURPOSES, "hs256", "a256gcm", "s", "v")), {
      maxLength: 12,
    })
    .map((parts) => `sc2.${parts.join(".")}`),
);

const nonString = fc.oneof(
  fc.anything({
    withBigInt: true,
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withObjectString: true,
    withSparseArray: true,
    withTypedArray: true,
  }),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  fc.constantFrom<unknown>(
    undefined,
    null,
    0,
    Number.NaN,
    true,
    Symbol("entry"),
    () => POOL[0]?.stored,
    new String(POOL[0]?.stored),
    Buffer.from(POOL[0]?.stored ?? ""),
    [POOL[0]?.stored],
    { value: POOL[0]?.stored },
    new Error("an error as a value"),
    Promise.resolve(POOL[0]?.stored),
  ),
);

// ---- the properties ---------------------------------------------------------------------------

const MUTATION_RUNS = 60_000;
const GRAMMAR_RUNS = 20_000;
const RANDOM_RUNS = 20_000;
const FUZZ_TIMEOUT = 60_000;

describe("fuzz: hostile envelopes are never accepted, never crash, and stay fast", () => {
  it("every genuine entry reads back where it was written, and only there", async () => {
    for (const genuine of POOL) {
      if (genuine.trusted) await check(genuine.ctx, genuine.stored, true);
      const elsewhere = CONTEXTS.filter((ctx) => !sameContext(ctx, genuine.ctx));
      for (const ctx of elsewhere.filter((_, i) => i % 13 === 0)) await check(ctx, genuine.stored);
    }
  });

  it(
    `${MUTATION_RUNS} mutations of genuine envelopes`,
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: POOL.length - 1 }),
          fc.nat({ max: POOL.length - 1 }),
          mutation,
          readAt,
          async (ai, bi, m, at) => {
            const a = POOL[ai] as Genuine;
            const ctx = at === null ? a.ctx : (CONTEXTS[at] as Context);
            await check(ctx, mutate(a, POOL[bi] as Genuine, m));
          },
        ),
        { numRuns: MUTATION_RUNS },
      );
    },
    FUZZ_TIMEOUT,
  );

  it(
    `${GRAMMAR_RUNS} well-formed forgeries`,
    async () => {
      await fc.assert(
        fc.asyncProperty(grammatical, fc.nat({ max: CONTEXTS.length - 1 }), async (stored, at) => {
          await check(CONTEXTS[at] as Context, stored);
        }),
        { numRuns: GRAMMAR_RUNS },
      );
    },
    FUZZ_TIMEOUT,
  );

  it(
    `${RANDOM_RUNS} random strings and non-strings`,
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(randomString, nonString),
          fc.nat({ max: CONTEXTS.length - 1 }),
          async (stored, at) => {
            await check(CONTEXTS[at] as Context, stored);
          },
        ),
        { numRuns: RANDOM_RUNS },
      );
    },
    FUZZ_TIMEOUT,
  );

  it("ran 100,000 cases, every read bounded", () => {
    const perCase = stats.totalMs / stats.cases;
    const sorted = Float64Array.from(stats.durations).sort();
    const percentile = (p: number) => sorted[Math.floor((sorted.length - 1) * p)] ?? 0;
    console.log(
      `fuzz: ${stats.cases} cases (${stats.accepted} accepted genuine, ${stats.rejected} rejected), ` +
        `largest entry ${stats.largest} chars; max ms per read: openEnvelope ` +
        `${stats.maxMs.open.toFixed(2)}, lax get ${stats.maxMs.lax.toFixed(2)}, strict get ` +
        `${stats.maxMs.strict.toFixed(2)}; ${(stats.totalMs / 1000).toFixed(1)} s reading, ` +
        `${(perCase * 1000).toFixed(0)} µs per case (3 reads); p99 ${percentile(0.99).toFixed(3)} ms, ` +
        `p99.99 ${percentile(0.9999).toFixed(2)} ms; slowest: ${stats.slowest}`,
    );
    expect(stats.cases).toBeGreaterThanOrEqual(100_000);
    expect(Math.max(stats.maxMs.open, stats.maxMs.lax, stats.maxMs.strict)).toBeLessThan(SLOW_MS);
    // Loose: three reads of a typical entry take tens of microseconds, not a millisecond.
    expect(perCase).toBeLessThan(1);
  });
});

/**
 * A backend that hands back parsed JSON rather than text (a document store, or a Map another
 * component filled) can return any JSON object. Reading it must be a rejection, not a crash.
 */
describe("fuzz: non-string entries a backend could return", () => {
  const hostile: [string, unknown][] = [
    ["constructor.name without toString", JSON.parse('{"constructor":{"name":{"toString":1}}}')],
    [
      "constructor.name with neither toString nor valueOf",
      JSON.parse('{"constructor":{"name":{"toString":1,"valueOf":1}}}'),
    ],
    ["constructor.name a null-prototype object", { constructor: { name: Object.create(null) } }],
  ];
  it.each(hostile)("an object whose %s is rejected as BadData", async (_, stored) => {
    await check({ ns: "keyv", key: "keyv:hostile", purpose: "keyv" }, stored);
  });
});

// ---- prototype pollution ----------------------------------------------------------------------

const PROTO_SNAPSHOT = Object.getOwnPropertyNames(Object.prototype).sort();
const ARRAY_PROTO_SNAPSHOT = Object.getOwnPropertyNames(Array.prototype).sort();

function expectUnpolluted(): void {
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTO_SNAPSHOT);
  expect(Object.getOwnPropertyNames(Array.prototype).sort()).toEqual(ARRAY_PROTO_SNAPSHOT);
  expect(Object.getPrototypeOf({})).toBe(Object.prototype);
}

const POLLUTING_JSON = [
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":2}}}',
  '{"prototype":{"polluted":3},"__proto__":{"__proto__":{"polluted":4}}}',
  '[{"__proto__":{"polluted":5}},{"constructor":{"prototype":{"polluted":6}}}]',
  '{"a":{"b":{"__proto__":{"polluted":7,"toString":"x","constructor":{"prototype":{"polluted":8}}}}}}',
  '{"__proto__":null,"constructor":null,"prototype":null,"polluted":9}',
  '{"__proto__":[1,2,{"__proto__":{"polluted":10}}],"x":{"__proto__":{"polluted":11}}}',
];
/** Keyv's own serializer calls any `toJSON` it meets: these go through axios entries only. */
const TO_JSON = '{"toJSON":{"__proto__":{"polluted":12}},"constructor":{"toJSON":1}}';

/** JSON text whose objects use prototype-related keys (and `extra`) at every depth. */
const pollutingJson = (...extra: string[]): fc.Arbitrary<string> =>
  fc.letrec<{ value: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      fc.constantFrom("null", "1", '"polluted"', "true", "{}"),
      fc.array(tie("value"), { maxLength: 3 }).map((items) => `[${items.join(",")}]`),
      fc
        .array(
          fc.tuple(
            fc.constantFrom("__proto__", "constructor", "prototype", "polluted", "a", ...extra),
            tie("value"),
          ),
          { maxLength: 4 },
        )
        .map((pairs) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`),
    ),
  })).value;

/** An axios-cache-interceptor entry with `body` as its response data. */
const axiosEntry = (body: unknown, headers: Record<string, unknown> = {}) => ({
  value: {
    state: "cached",
    ttl: 60_000,
    createdAt: 1_700_000_000_000,
    data: { data: body, headers, status: 200, statusText: "OK" },
  },
  expires: 1_900_000_000_000,
});

describe("cached JSON never pollutes a prototype", () => {
  afterEach(expectUnpolluted);

  it("createKeyv: values with __proto__, constructor and prototype keys", async () => {
    const keyv = createKeyv({ store: new Map(), secret: SECRET, env: {} });
    for (const [index, text] of POLLUTING_JSON.entries()) {
      const value = JSON.parse(text);
      await keyv.set(`v${index}`, value);
      await keyv.set(`t${index}`, text);
      const read = await keyv.get(`v${index}`);
      expectUnpolluted();
      expect(JSON.stringify(read)).toBe(JSON.stringify(value));
      expect(await keyv.get(`t${index}`)).toBe(text);
      expectUnpolluted();
    }
    await fc.assert(
      fc.asyncProperty(pollutingJson(), async (text) => {
        const value = JSON.parse(text);
        await keyv.set("fuzz", value);
        const read = await keyv.get("fuzz");
        expectUnpolluted();
        expect(JSON.stringify(read)).toBe(JSON.stringify(value));
      }),
      { numRuns: 300 },
    );
  });

  it("axios entries: serializeEntry / deserializeEntry", () => {
    const roundTrip = (data: unknown) => deserializeEntry(serializeEntry(data as never));
    const check = (body: unknown, headers: Record<string, unknown> = {}) => {
      const read = roundTrip(axiosEntry(body, headers)) as ReturnType<typeof axiosEntry>;
      expectUnpolluted();
      // The keys read back as data, own properties of plain objects.
      expect(isDeepStrictEqual(read.value.data.data, body)).toBe(true);
      expect(isDeepStrictEqual(read.value.data.headers, headers)).toBe(true);
    };
    for (const text of [...POLLUTING_JSON, TO_JSON]) {
      const value = JSON.parse(text);
      check(value); // plain JSON body
      check([value, -0, new Map([["__proto__", value]])]); // tagged body
      check(text); // text body
      check({ nested: value }, { __proto__: "x", constructor: "y", "x-proto": text });
    }
    // Entries written by hand, as a writer holding the secret could: still only own properties.
    const head = (value: string) =>
      `{"value":{"state":"cached","__proto__":{"polluted":1},"data":${value}},"expires":1,` +
      `"constructor":{"prototype":{"polluted":2}}}`;
    for (const stored of [
      `~ax2j${head('{"headers":{"__proto__":{"polluted":3}},"status":200}')}\n${POLLUTING_JSON[0]}`,
      `~ax2r${head('{"status":200}')}\n["a",{"__proto__":{"polluted":4}},["M","__proto__",{"__proto__":{"polluted":5}}]]`,
      `~ax2-${head("null")}\n`,
    ]) {
      const read = deserializeEntry(stored);
      expectUnpolluted();
      expect(read).toBeDefined();
    }
    fc.assert(
      fc.property(pollutingJson("toJSON"), (text) => {
        const value = JSON.parse(text);
        check(value);
        check(new Set([value]));
      }),
      { numRuns: 300 },
    );
  });

  describe("setupCache: a hit on JSON an origin served", () => {
    let server: Server;
    let origin: string;
    beforeAll(async () => {
      server = createServer((req, res) => {
        const index = Number(new URL(req.url ?? "/", "http://127.0.0.1").searchParams.get("i"));
        res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=60" });
        res.end(POLLUTING_JSON[index] ?? "null");
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it.each([false, true])("encrypt: %s", async (encrypt) => {
      const axios = setupCache(Axios.create({ baseURL: origin }), SECRET, {
        store: new Map(),
        encrypt,
      });
      for (const [index, text] of POLLUTING_JSON.entries()) {
        const miss = await axios.get(`/json?i=${index}`);
        const hit = await axios.get(`/json?i=${index}`);
        expect(miss.cached).toBe(false);
        expect(hit.cached).toBe(true);
        expectUnpolluted();
        expect(isDeepStrictEqual(hit.data, JSON.parse(text))).toBe(true);
      }
    });
  });
});
