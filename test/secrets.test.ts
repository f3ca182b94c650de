/**
 * Secrets are never printed. Every public object a user can log — stores, Keyvs, axios
 * instances, storages, keyrings — and every error a bad configuration, a tampered entry or a
 * store fault produces, is rendered the ways loggers render it (`util.inspect` with hidden
 * properties at any depth, `JSON.stringify`, `String(error)`, `error.stack`, messages and their
 * causes) and searched for the secret, each fallback, every derived key (base64, base64url, hex,
 * byte lists) and every store password.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import Axios from "axios";
import type Keyv from "keyv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setupCache } from "../src/axios/index.ts";
import { signedStorage } from "../src/axios/storage.ts";
import { readConfig } from "../src/config.ts";
import { createKeyv } from "../src/create-keyv.ts";
import { BadData, BadSignature, ConfigError, StoreError } from "../src/errors.ts";
import { generateSecret, Keyring, type Secret } from "../src/keyring.ts";
import { storeKeyOf } from "../src/keyv-io.ts";
import { signedStore } from "../src/store.ts";
import { storeFromUrl } from "../src/stores.ts";
import { KEYV_MAJOR } from "./support/adapters.ts";
import { type Origin, startOrigin } from "./support/origin.ts";

// ---- what must never appear ------------------------------------------------------------------

const SECRET = generateSecret();
const FALLBACKS = [generateSecret(), generateSecret(48)];
const BYTES_SECRET = new Uint8Array(randomBytes(32));
/** The secret a `_FILE` variable points at. */
const FILE_SECRET = generateSecret();
/** Too short to be accepted, and still never to be echoed. */
const SHORT_SECRET = `short-${randomBytes(8).toString("hex")}`;
const unique = randomBytes(6).toString("hex");
const PASSWORDS = {
  redis: `redisPw${randomBytes(12).toString("hex")}`,
  postgres: `pgPw${randomBytes(12).toString("hex")}`,
  mysql: `myPw${randomBytes(12).toString("hex")}`,
  // Percent-encoded in the URL: both spellings are searched.
  encoded: `enc%40Pw${randomBytes(12).toString("hex")}`,
};
const DEAD = "127.0.0.1:1"; // a closed port: nothing needs to connect
const URLS = {
  redis: `redis://user:${PASSWORDS.redis}@${DEAD}`,
  rediss: `rediss://user:${PASSWORDS.encoded}@${DEAD}`,
  postgres: `postgres://app:${PASSWORDS.postgres}@${DEAD}/test?table=sc_secrets_${unique}`,
  mysql: `mysql://root:${PASSWORDS.mysql}@${DEAD}/test?table=sc_secrets_${unique}`,
};

const DERIVED_PURPOSES = ["mac:hs256", "mac:hs512", "mac:hb512", "enc:a256gcm"];

interface Needle {
  readonly label: string;
  /** Texts whose presence is a leak, compared with whitespace removed as well. */
  readonly forms: readonly string[];
}

/** Every spelling of some bytes a logger could produce. */
function byteForms(bytes: Buffer): string[] {
  return [
    bytes.toString("base64"),
    bytes.toString("base64url"),
    bytes.toString("hex"),
    bytes.toString("hex").toUpperCase(),
    // util.inspect of a Uint8Array: `[ 12, 200, … ]`, searched with whitespace removed.
    [...bytes.subarray(0, 12)].join(","),
  ];
}

function secretNeedles(label: string, secret: Secret): Needle[] {
  const bytes = typeof secret === "string" ? Buffer.from(secret) : Buffer.from(secret);
  const text = typeof secret === "string" ? [secret] : [];
  const entry = new Keyring(secret).current;
  return [
    { label, forms: [...text, ...byteForms(bytes)] },
    ...DERIVED_PURPOSES.map((purpose) => ({
      label: `${label}'s derived key ${purpose}`,
      forms: byteForms(entry.key(purpose).export()),
    })),
  ];
}

const NEEDLES: Needle[] = [
  ...secretNeedles("the secret", SECRET),
  ...FALLBACKS.flatMap((fallback, i) => secretNeedles(`fallback ${i}`, fallback)),
  ...secretNeedles("the Uint8Array secret", BYTES_SECRET),
  ...secretNeedles("the secret read from a file", FILE_SECRET),
  { label: "a secret too short to accept", forms: [SHORT_SECRET] },
  ...Object.entries(PASSWORDS).map(([name, password]) => ({
    label: `the ${name} password`,
    forms: [password, decodeURIComponent(password)],
  })),
];

/** Pieces of each form: a leak of part of a secret (a truncated echo) is still a leak. */
function fragments(form: string): string[] {
  if (form.length <= 20) return [form];
  const mid = Math.floor(form.length / 2) - 8;
  return [form.slice(0, 16), form.slice(mid, mid + 16), form.slice(-16)];
}
const SEARCH = NEEDLES.map((needle) => ({
  label: needle.label,
  pieces: needle.forms.flatMap(fragments),
}));

// ---- how loggers print things ----------------------------------------------------------------

/** JSON.stringify as a logger would call it, tolerant of cycles, BigInts and throwing getters. */
function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return (
      JSON.stringify(value, (_key, item: unknown) => {
        if (typeof item === "bigint") return String(item);
        if (typeof item === "object" && item !== null) {
          if (seen.has(item)) return "[Circular]";
          seen.add(item);
        }
        return item;
      }) ?? ""
    );
  } catch (error) {
    return `[JSON.stringify threw: ${error instanceof Error ? error.message : String(error)}]`;
  }
}

/** Every rendering of `value`, by name; errors also by message, String() and stack, causes too. */
function renderings(value: unknown, path = ""): [string, string][] {
  const out: [string, string][] = [
    [`${path}inspect`, inspect(value, { depth: Number.POSITIVE_INFINITY, showHidden: true })],
    [`${path}inspect (default)`, inspect(value)],
    [`${path}JSON.stringify`, safeJson(value)],
  ];
  if (value instanceof Error) {
    out.push([`${path}message`, value.message]);
    out.push([`${path}String()`, String(value)]);
    out.push([`${path}stack`, String(value.stack)]);
    if (value.cause !== undefined) out.push(...renderings(value.cause, `${path}cause.`));
    if (value instanceof AggregateError) {
      value.errors.forEach((inner, i) => {
        out.push(...renderings(inner, `${path}errors[${i}].`));
      });
    }
  }
  return out;
}

/** Leaks found in `value`, each naming the object, the rendering and what leaked. */
function leaksIn(name: string, value: unknown): string[] {
  const found: string[] = [];
  for (const [how, text] of renderings(value)) {
    const squeezed = text.replace(/\s+/g, "");
    for (const { label, pieces } of SEARCH) {
      if (pieces.some((piece) => text.includes(piece) || squeezed.includes(piece))) {
        found.push(`${name} (${how}) shows ${label}`);
      }
    }
  }
  return found;
}

function expectNoLeaks(objects: [string, unknown][]): void {
  expect(objects.length).toBeGreaterThan(0);
  expect(objects.flatMap(([name, value]) => leaksIn(name, value))).toEqual([]);
}

/** The error `run` throws or rejects with; fails when it does not. */
async function errorOf(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
}

/** A Keyv or a store adapter to close once the test is over. */
interface Closable {
  get(key: string): Promise<unknown>;
  disconnect?(): Promise<void>;
}

/**
 * Closes every store, once none has a connection attempt in flight: every store is first asked
 * for a key. @keyv/mysql shares one pool between all adapters of a URL, and a pool ended while
 * a connection is being refused throws that refusal as an uncaught exception.
 */
async function closeAll(stores: readonly Closable[]): Promise<void> {
  await Promise.all(stores.map((store) => store.get("settle").catch(() => {})));
  for (const store of stores) await store.disconnect?.().catch(() => {});
}

// ---- the scanner itself -----------------------------------------------------------------------

describe("the leak scanner", () => {
  it("finds each secret, derived key and password in every rendering", () => {
    const keyring = new Keyring(SECRET);
    const planted: [string, unknown][] = [
      ["a secret in a message", new Error(`bad ${SECRET}`)],
      ["a fallback in a cause", new Error("outer", { cause: { secret: FALLBACKS[1] } })],
      ["a derived key as a Buffer", { key: keyring.current.key("mac:hs256").export() }],
      ["a derived key in hex", keyring.current.key("enc:a256gcm").export().toString("hex")],
      ["Uint8Array secret bytes", { bytes: BYTES_SECRET }],
      ["a hidden password", Object.defineProperty({}, "url", { value: URLS.postgres })],
      ["a truncated secret", `${FILE_SECRET.slice(0, 20)}…`],
      ["a decoded password", decodeURIComponent(PASSWORDS.encoded)],
    ];
    for (const [name, value] of planted) {
      expect(leaksIn(name, value), name).not.toEqual([]);
    }
  });
});

// ---- public objects ---------------------------------------------------------------------------

describe("printing a public object shows no secret and no password", () => {
  const opened: Closable[] = [];
  const adapters: Closable[] = [];
  afterAll(() => closeAll([...opened, ...adapters]));

  it("signedStore over a Map, with fallbacks, and with a Uint8Array secret", () => {
    const store = signedStore(new Map(), SECRET, { fallbacks: FALLBACKS, encrypt: true });
    const bytes = signedStore(new Map(), BYTES_SECRET);
    expectNoLeaks([
      ["signedStore(Map)", store],
      ["signedStore(Map).opts", store.opts],
      ["signedStore(Map).withPurpose()", store.withPurpose("other")],
      ["signedStore(Map, Uint8Array)", bytes],
    ]);
  });

  it.each(Object.entries(URLS))("storeFromUrl(%s) and a signedStore over it", (_, url) => {
    const adapter = storeFromUrl(url);
    adapters.push(adapter as Closable);
    const store = signedStore(adapter, SECRET, { fallbacks: FALLBACKS });
    expectNoLeaks([
      ["storeFromUrl()", adapter],
      ["signedStore(adapter)", store],
      ["signedStore(adapter).backend", store.backend],
      ["signedStore(adapter).opts", store.opts],
    ]);
  });

  it.each([["memory://", "memory://"], ...Object.entries(URLS)])("createKeyv over %s", (_, url) => {
    const keyv = createKeyv({ url, secret: SECRET, fallbacks: FALLBACKS, env: {} });
    opened.push(keyv);
    expectNoLeaks([
      ["createKeyv()", keyv],
      ["createKeyv().store", keyv.store],
      ["createKeyv().opts", keyv.opts],
    ]);
  });

  it("createKeyv configured by the environment, the secret read from a _FILE", () => {
    const dir = mkdtempSync(join(tmpdir(), "signed-cache-secrets-"));
    try {
      const file = join(dir, "secret");
      writeFileSync(file, `${FILE_SECRET}\n`);
      const keyv = createKeyv({
        env: {
          SIGNED_CACHE_SECRET_FILE: file,
          SIGNED_CACHE_SECRET_FALLBACKS: FALLBACKS.join(","),
          SIGNED_CACHE_URL: URLS.redis,
        },
      });
      opened.push(keyv);
      expectNoLeaks([
        ["createKeyv(env)", keyv],
        ["createKeyv(env).store", keyv.store],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Passwords in the query, and in the user parts of a server list (as memjs keeps them).
  const moreUrls: [string, string][] = [
    ["postgres ?password=", `postgres://app@${DEAD}/test?password=${PASSWORDS.postgres}&table=t`],
    ["mysql ?password=", `mysql://root@${DEAD}/test?table=t&password=${PASSWORDS.mysql}`],
    ["redis ?password=", `redis://${DEAD}/?password=${PASSWORDS.redis}`],
    ["valkey", `valkey://user:${PASSWORDS.redis}@${DEAD}`],
    ["redis+cluster", `redis+cluster://user:${PASSWORDS.redis}@${DEAD},127.0.0.1:2`],
    ["memcache", `memcache://user:${PASSWORDS.redis}@${DEAD},127.0.0.1:2`],
  ];
  it.each(moreUrls)("storeFromUrl and the signed store over %s", async (_, url) => {
    const adapter = storeFromUrl(url);
    const signed = signedStore(adapter, SECRET);
    const keyv = createKeyv({ store: storeFromUrl(url), secret: SECRET, env: {} });
    opened.push(keyv);
    expectNoLeaks([
      ["storeFromUrl()", adapter],
      ["signedStore()", signed],
      ["signedStore().opts", signed.opts],
      ["createKeyv()", keyv],
    ]);
    await signed.disconnect();
  });

  const axiosStores: [string, () => Map<string, unknown> | string][] = [
    ["a Map", () => new Map()],
    ...Object.entries(URLS).map(([name, url]): [string, () => string] => [name, () => url]),
  ];
  it.each(axiosStores)(
    "setupCache over %s: the instance, its defaults and its storage",
    (_, store) => {
      const axios = setupCache(Axios.create(), SECRET, {
        store: store(),
        fallbacks: FALLBACKS,
        encrypt: true,
        onError: () => {},
        onInvalid: () => {},
      });
      opened.push(axios.storage.keyv);
      expectNoLeaks([
        ["setupCache()", axios],
        ["setupCache().defaults", axios.defaults],
        ["setupCache().defaults.cache", axios.defaults.cache],
        ["setupCache().storage", axios.storage],
        ["setupCache().storage.keyv", axios.storage.keyv],
        ["setupCache().storage.keyv.store", axios.storage.keyv.store],
      ]);
    },
  );

  it("signedStorage over a Map, a URL's adapter and a signed Keyv", () => {
    const adapter = storeFromUrl(URLS.redis);
    adapters.push(adapter as Closable);
    const signedKeyv = createKeyv({ store: new Map(), secret: SECRET, env: {} });
    const storages = [
      signedStorage(new Map(), SECRET, { fallbacks: FALLBACKS }),
      signedStorage(adapter, SECRET, { fallbacks: FALLBACKS }),
      signedStorage(signedKeyv, SECRET),
    ];
    opened.push(...storages.map((storage) => storage.keyv));
    expectNoLeaks(storages.map((storage, i) => [`signedStorage #${i}`, storage]));
  });

  it("Keyring with fallbacks, and its entries", () => {
    const keyring = new Keyring(SECRET, FALLBACKS);
    // Deriving every key first: a keyring that cached them must not show them either.
    for (const kid of keyring.kids) {
      for (const purpose of DERIVED_PURPOSES) keyring.get(kid)?.key(purpose);
    }
    expectNoLeaks([
      ["Keyring", keyring],
      ["Keyring.current", keyring.current],
      ...keyring.kids.map((kid, i): [string, unknown] => [
        `Keyring.get(kids[${i}])`,
        keyring.get(kid),
      ]),
      ["Keyring.current.key()", keyring.current.key("mac:hs256")],
    ]);
  });
});

// ---- errors -----------------------------------------------------------------------------------

describe("errors show no secret and no password", () => {
  let dir: string;
  let secretFile: string;
  let fallbacksFile: string;
  let shortFile: string;
  let urlFile: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "signed-cache-secrets-"));
    secretFile = join(dir, "secret");
    writeFileSync(secretFile, FILE_SECRET);
    fallbacksFile = join(dir, "fallbacks");
    writeFileSync(fallbacksFile, `${FALLBACKS[0]}\n${SHORT_SECRET}\n`);
    shortFile = join(dir, "short");
    writeFileSync(shortFile, `${SHORT_SECRET}\n`);
    urlFile = join(dir, "url");
    writeFileSync(urlFile, `redis://user:${PASSWORDS.redis}@[${DEAD}`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("short or malformed secrets passed in code", async () => {
    const errors: [string, unknown][] = [
      ["short secret", await errorOf(() => signedStore(new Map(), SHORT_SECRET))],
      [
        "short fallback",
        await errorOf(() =>
          signedStore(new Map(), SECRET, { fallbacks: [...FALLBACKS, SHORT_SECRET] }),
        ),
      ],
      [
        "short Uint8Array",
        await errorOf(() => signedStore(new Map(), BYTES_SECRET.subarray(0, 31))),
      ],
      ["createKeyv short", await errorOf(() => createKeyv({ secret: SHORT_SECRET, env: {} }))],
      [
        "createKeyv fallbacks clash",
        await errorOf(() =>
          createKeyv({
            secret: SECRET,
            fallbacks: FALLBACKS,
            algorithm: "sha512",
            env: { SIGNED_CACHE_ALGORITHMS: "sha256" },
          }),
        ),
      ],
      [
        "setupCache short",
        await errorOf(() => setupCache(Axios.create(), SHORT_SECRET, { store: new Map() })),
      ],
      [
        "setupCache storage option",
        await errorOf(() =>
          setupCache(Axios.create(), SECRET, { storage: { secret: SECRET } as never }),
        ),
      ],
      [
        "signedStorage over a Keyv signed with another secret",
        await errorOf(() =>
          signedStorage(
            createKeyv({ store: new Map(), secret: SECRET, env: {} }),
            FALLBACKS[0] as string,
          ),
        ),
      ],
      ["Keyring(SECRET, not an array)", await errorOf(() => new Keyring(SECRET, SECRET as never))],
    ];
    for (const [name, error] of errors) expect(error, name).toBeInstanceOf(ConfigError);
    expectNoLeaks(errors);
  });

  it("store URLs that are refused", async () => {
    const errors: [string, unknown][] = [
      ["unknown scheme", await errorOf(() => storeFromUrl(`ftp://u:${PASSWORDS.redis}@host/x`))],
      ["malformed URL", await errorOf(() => storeFromUrl(`redis://u:${PASSWORDS.redis}@[::1`))],
      [
        "bad table name",
        await errorOf(() =>
          storeFromUrl(
            `postgres://u:${PASSWORDS.postgres}@h/db?table=x;drop&password=${PASSWORDS.mysql}`,
          ),
        ),
      ],
      [
        "createKeyv malformed URL",
        await errorOf(() =>
          createKeyv({ url: `mysql://root:${PASSWORDS.mysql}@[bad/test`, secret: SECRET, env: {} }),
        ),
      ],
      [
        "setupCache malformed URL",
        await errorOf(() =>
          setupCache(Axios.create(), SECRET, { store: `rediss://u:${PASSWORDS.encoded}@[x` }),
        ),
      ],
    ];
    for (const [name, error] of errors) expect(error, name).toBeInstanceOf(ConfigError);
    expectNoLeaks(errors);
  });

  it("bad environment values, _FILE variants included", async () => {
    const cases: [string, Record<string, string>][] = [
      ["SIGNED_CACHE_SECRET short", { SIGNED_CACHE_SECRET: SHORT_SECRET }],
      ["SIGNED_CACHE_SECRET_FILE short", { SIGNED_CACHE_SECRET_FILE: shortFile }],
      [
        "SIGNED_CACHE_SECRET and _FILE",
        { SIGNED_CACHE_SECRET: SECRET, SIGNED_CACHE_SECRET_FILE: secretFile },
      ],
      [
        "SIGNED_CACHE_SECRET_FALLBACKS with a short one",
        { SIGNED_CACHE_SECRET_FALLBACKS: `${FALLBACKS.join(",")},${SHORT_SECRET}` },
      ],
      [
        "SIGNED_CACHE_SECRET_FALLBACKS_FILE with a short one",
        { SIGNED_CACHE_SECRET_FALLBACKS_FILE: fallbacksFile },
      ],
      ["SIGNED_CACHE_URL unknown scheme", { SIGNED_CACHE_URL: `ftp://u:${PASSWORDS.redis}@h` }],
      ["SIGNED_CACHE_URL malformed", { SIGNED_CACHE_URL: `redis://u:${PASSWORDS.redis}@[h` }],
      ["SIGNED_CACHE_URL_FILE malformed", { SIGNED_CACHE_URL_FILE: urlFile }],
      ["SIGNED_CACHE_SECRET_FILE missing", { SIGNED_CACHE_SECRET_FILE: join(dir, "missing") }],
      // A _FILE variable pointed at the secret's file by mistake.
      ...[
        "URL",
        "TTL",
        "STRICT",
        "ENCRYPT",
        "RESIGN",
        "STORE_TIMEOUT",
        "ALGORITHM",
        "ALGORITHMS",
        "MAX_STALE",
        "MAX_ENTRY_BYTES",
      ].map((name): [string, Record<string, string>] => [
        `SIGNED_CACHE_${name}_FILE holding the secret`,
        { [`SIGNED_CACHE_${name}_FILE`]: secretFile },
      ]),
    ];
    const errors: [string, unknown][] = [];
    for (const [name, env] of cases) {
      errors.push([`readConfig: ${name}`, await errorOf(() => readConfig(env))]);
      errors.push([
        `createKeyv: ${name}`,
        await errorOf(() => createKeyv({ store: new Map(), env })),
      ]);
    }
    for (const [name, error] of errors) expect(error, name).toBeInstanceOf(ConfigError);
    expectNoLeaks(errors);
  });

  it("a secret typed into the wrong variable is not echoed", async () => {
    const errors: [string, unknown][] = [];
    for (const name of [
      "STRICT",
      "ENCRYPT",
      "RESIGN",
      "TTL",
      "STORE_TIMEOUT",
      "ALGORITHM",
      "ALGORITHMS",
      "MAX_STALE",
      "MAX_ENTRY_BYTES",
      "URL",
    ]) {
      const env = { [`SIGNED_CACHE_${name}`]: SECRET };
      errors.push([
        `readConfig: SIGNED_CACHE_${name}=<secret>`,
        await errorOf(() => readConfig(env)),
      ]);
    }
    for (const [name, error] of errors) expect(error, name).toBeInstanceOf(ConfigError);
    expectNoLeaks(errors);
  });

  describe("tampered entries in strict mode", () => {
    let origin: Origin;
    beforeAll(async () => {
      origin = await startOrigin();
    });
    afterAll(() => origin.close());

    it.each([false, true])("createKeyv, encrypt: %s", async (encrypt) => {
      const map = new Map<string, unknown>();
      const invalid: unknown[] = [];
      const keyv = createKeyv({
        store: map,
        secret: SECRET,
        fallbacks: FALLBACKS,
        strict: true,
        encrypt,
        env: {},
        onInvalid: (error) => invalid.push(error),
      });
      const fallbackKeyv = createKeyv({
        store: map,
        secret: FALLBACKS[1] as string,
        encrypt,
        env: {},
      });
      await keyv.set("user/1", { role: "user" });
      await fallbackKeyv.set("user/2", { role: "user" });
      const errors: [string, unknown][] = [];
      for (const [key, stored] of [...map]) {
        const text = String(stored);
        // A flipped tag character, a moved entry, an unknown key id, an unsigned value.
        map.set(key, `${text.slice(0, -2)}${text.at(-2) === "A" ? "B" : "A"}${text.at(-1)}`);
        errors.push([`flipped ${key}`, await errorOf(() => keyv.get(key.slice(5)))]);
        const fields = text.split(".");
        fields[2] = "AAAAAAAA";
        map.set(key, fields.join("."));
        errors.push([`unknown kid ${key}`, await errorOf(() => keyv.get(key.slice(5)))]);
        map.set("keyv:moved", text);
        errors.push([`moved ${key}`, await errorOf(() => keyv.get("moved"))]);
        map.set(key, JSON.stringify({ value: { role: "admin" } }));
        errors.push([`unsigned ${key}`, await errorOf(() => keyv.get(key.slice(5)))]);
      }
      for (const [name, error] of errors) expect(error, name).toBeInstanceOf(BadData);
      expect(invalid.length).toBeGreaterThanOrEqual(errors.length);
      expectNoLeaks([
        ...errors,
        ...invalid.map((error, i): [string, unknown] => [`onInvalid #${i}`, error]),
      ]);
    });

    it.each([false, true])("setupCache, encrypt: %s", async (encrypt) => {
      const map = new Map<string, unknown>();
      const invalid: unknown[] = [];
      const axios = setupCache(Axios.create({ baseURL: origin.url }), SECRET, {
        store: map,
        fallbacks: FALLBACKS,
        strict: true,
        encrypt,
        onInvalid: (error) => invalid.push(error),
      });
      const path = `/json/secrets-${encrypt}`;
      await axios.get(path);
      const errors: [string, unknown][] = [];
      for (const [key, stored] of [...map]) {
        const text = String(stored);
        map.set(key, `${text.slice(0, -2)}${text.at(-2) === "A" ? "B" : "A"}${text.at(-1)}`);
        errors.push(["flipped tag", await errorOf(() => axios.get(path))]);
        // Verifies (signed with the secret) but is no axios entry: BadPayload.
        await axios.storage.keyv.store.set(key, "not an axios entry");
        errors.push(["undecodable payload", await errorOf(() => axios.get(path))]);
      }
      expect(errors.length).toBeGreaterThan(0);
      for (const [name, error] of errors) expect(error, name).toBeInstanceOf(BadData);
      expect(errors[0]?.[1]).toBeInstanceOf(BadSignature);
      expectNoLeaks([
        ...errors,
        ...invalid.map((error, i): [string, unknown] => [`onInvalid #${i}`, error]),
      ]);
    });
  });

  /** Where `token`, or any 8 characters of it, shows in the renderings of `errors`. */
  function quoted(errors: unknown[], token: string, what: string, skip = ""): string[] {
    const pieces = Array.from({ length: token.length - 7 }, (_, i) => token.slice(i, i + 8));
    const found: string[] = [];
    errors.forEach((error, i) => {
      for (const [how, text] of renderings(error)) {
        if (how !== skip && pieces.some((piece) => text.includes(piece))) {
          found.push(`error #${i} (${how}) shows ${what}`);
        }
      }
    });
    return found;
  }

  it("BadSignature shows neither the cache key (but as the hidden error.key) nor the value", async () => {
    const keyToken = `tok${randomBytes(12).toString("hex")}`;
    const valueToken = `val${randomBytes(12).toString("hex")}`;
    const map = new Map<string, unknown>();
    const keyv = createKeyv({ store: map, secret: SECRET, strict: true, env: {} });
    const key = `session/${keyToken}`;
    await keyv.set(key, { token: valueToken });
    const stored = String(map.get(`keyv:${key}`));
    const errors: unknown[] = [];
    map.set(`keyv:${key}`, stored.replace(valueToken, valueToken.toUpperCase()));
    errors.push(await errorOf(() => keyv.get(key)));
    map.set(`keyv:${key}`, `${stored.slice(0, -3)}AAA`);
    errors.push(await errorOf(() => keyv.get(key)));
    map.set(`keyv:${key}`, JSON.stringify({ value: { token: valueToken } }));
    errors.push(await errorOf(() => keyv.get(key)));
    for (const error of errors) {
      expect(error).toBeInstanceOf(BadSignature);
      expect((error as BadData).key).toBe(`keyv:${key}`);
    }
    expect([
      ...quoted(errors, valueToken, "the cached value"),
      // showHidden prints the non-enumerable error.key: read deliberately, as documented.
      ...quoted(errors, keyToken, "the cache key", "inspect"),
    ]).toEqual([]);
  });

  it("BadPayload of a verified but undecodable axios entry quotes none of its text", async () => {
    const valueToken = `val${randomBytes(12).toString("hex")}`;
    const storage = signedStorage(new Map(), SECRET, { strict: true });
    // Signed with the secret, so it verifies; its head is not JSON (the cause is a SyntaxError).
    await storage.keyv.store.set(storeKeyOf(storage.keyv, "k"), `~ax2j{"value": ${valueToken}\n{}`);
    const error = await errorOf(() => storage.get("k"));
    expect(error).toBeInstanceOf(BadData);
    expect(quoted([error], valueToken, "the cached text")).toEqual([]);
  });

  describe("store faults", () => {
    let origin: Origin;
    const opened: Keyv[] = [];
    beforeAll(async () => {
      origin = await startOrigin();
    });
    afterAll(async () => {
      await closeAll(opened);
      await origin.close();
    });

    // A closed port for each backend, and live servers refusing or failing the connection.
    const faulty: [string, string][] = [
      ...Object.entries(URLS),
      ["redis, wrong password", `redis://nobody:${PASSWORDS.redis}@127.0.0.1:6379`],
      [
        "postgres, missing database",
        `postgres://postgres:${PASSWORDS.postgres}@127.0.0.1:5432/sc_missing_${unique}`,
      ],
      ["mysql, wrong password", `mysql://root:${PASSWORDS.mysql}@127.0.0.1:3306/test`],
    ];

    it.each(faulty)(
      "%s: createKeyv and setupCache",
      async (_, url) => {
        const heard: unknown[] = [];
        const strict = createKeyv({
          url,
          secret: SECRET,
          fallbacks: FALLBACKS,
          strict: true,
          storeTimeout: 4_000,
          env: {},
        });
        const lax = createKeyv({
          url,
          secret: SECRET,
          storeTimeout: 4_000,
          env: {},
          onError: (error) => heard.push(error),
        });
        const axios = setupCache(Axios.create({ baseURL: origin.url }), SECRET, {
          store: url,
          fallbacks: FALLBACKS,
          storeTimeout: 4_000,
          onError: (error) => heard.push(error),
        });
        opened.push(strict, lax, axios.storage.keyv);
        const errors: [string, unknown][] = [["strict get", await errorOf(() => strict.get("k"))]];
        // Keyv 6 hands a failed set to its "error" listeners, or rejects without one; some of
        // its paths answer `false` instead. Either way nothing is stored.
        const set = await strict.set("k", "v").catch((error: unknown) => error);
        if (KEYV_MAJOR === 6 && set === false)
          expect(await strict.get("k").catch(() => undefined)).toBeUndefined();
        else errors.push(["strict set", set]);
        await lax.set("k", "v");
        expect(await lax.get("k")).toBeUndefined();
        const response = await axios.get(`/json/fault-${unique}`);
        expect(response.status).toBe(200);
        for (const [name, error] of errors) expect(error, name).toBeInstanceOf(StoreError);
        expect(heard.length).toBeGreaterThan(0);
        expectNoLeaks([
          ...errors,
          ...heard.map((error, i): [string, unknown] => [`onError #${i}`, error]),
          ["createKeyv after a fault", strict],
          ["setupCache after a fault", axios],
        ]);
      },
      30_000,
    );
  });
});
