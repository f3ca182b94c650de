/**
 * Signed against unsigned Keyv on real backends: the same adapter class, the same table or
 * database, the same value, one Keyv over the plain adapter and one over `signedStore(adapter)`.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import { DEFAULT_MAC_ALGORITHM, generateSecret, signedStore, storeFromUrl } from "../src/index.ts";
import { jsonText } from "./payload.ts";
import {
  interleave,
  median,
  pairedMedian,
  pairedSpread,
  type RoundTimes,
  signedVsUnsigned,
  type TimingPlan,
} from "./timing.ts";

/** Where each server is expected; override with the environment. */
export const SERVERS = {
  redis: process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379",
  postgres: process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  mysql: process.env.BENCH_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test",
} as const;

/** Table the SQL backends use, so the bench never touches another table's rows. */
const TABLE = "signed_cache_bench";

/** One backend × size × operation. All times are medians in ns per operation. */
export interface StoreRow {
  readonly backend: string;
  readonly bytes: number;
  readonly op: "get" | "set";
  readonly unsigned: number;
  readonly signed: number;
  /** Median over rounds of (signed − unsigned), paired round by round. */
  readonly added: number;
  /** Median absolute deviation of those paired differences: how noisy `added` is. */
  readonly addedSpread: number;
  /** Raw HMAC of the serialized value as the store receives it, same digest, same run. */
  readonly floor: number;
  /** `added` measured in CPU time of this process: blind to waiting and to other processes. */
  readonly addedCpu: number;
  readonly addedCpuSpread: number;
  /** `floor` in CPU time. */
  readonly floorCpu: number;
  /**
   * The floor where signing happens: a store that only MACs each value passing through it
   * (get: the string the backend returned; set: the string Keyv serialized), minus unsigned.
   * It pays what a MAC costs next to I/O (cold caches after a syscall), which a loop does not.
   */
  readonly floorInPlace: number;
  readonly floorInPlaceCpu: number;
  readonly rounds: number;
  /** With `encrypt: true` (backends that measure it): the same operation through an encrypting store. */
  readonly encrypted?: EncryptedRow;
}

/** An encrypting store against its own floor, for the same operation and value. */
export interface EncryptedRow {
  /** Wall time per operation through `signedStore(adapter, secret, { encrypt: true })`. */
  readonly encrypted: number;
  /** CPU time it adds over the unsigned store (median of per-round differences). */
  readonly addedCpu: number;
  readonly addedCpuSpread: number;
  /**
   * CPU time of AES-256-GCM alone over the same bytes, in a loop: get decrypts the ciphertext of
   * the serialized value (bytes in, bytes out), set encrypts the serialized string (UTF-8 in).
   */
  readonly floorCpu: number;
}

interface Backend {
  readonly name: string;
  /** Host and port to probe before connecting; undefined for in-process stores. */
  readonly probe?: URL;
  /** The store URL, as users pass it to `storeFromUrl` / `createKeyv`. */
  readonly url: string;
  /** Also measure an encrypting store (`encrypt: true`) against AES-256-GCM alone. */
  readonly encrypt?: boolean;
}

const sqliteFile = join(tmpdir(), `signed-cache-bench-${process.pid}.sqlite`);

/** Every backend the bench knows, in the order it reports them. */
export const BACKENDS: readonly Backend[] = [
  { name: "memory", url: "memory://", encrypt: true },
  { name: "sqlite", url: `sqlite://${sqliteFile}?table=${TABLE}`, encrypt: true },
  { name: "redis", url: SERVERS.redis, probe: new URL(SERVERS.redis), encrypt: true },
  { name: "postgres", url: `${SERVERS.postgres}?table=${TABLE}`, probe: new URL(SERVERS.postgres) },
  { name: "mysql", url: `${SERVERS.mysql}?table=${TABLE}`, probe: new URL(SERVERS.mysql) },
];

/** Whether a TCP port answers within `ms`. */
export function reachable(url: URL, ms = 1000): Promise<boolean> {
  const port =
    Number(url.port) || { "redis:": 6379, "postgres:": 5432, "mysql:": 3306 }[url.protocol] || 0;
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Measures get-hit and set, signed against unsigned, for one backend at every size. */
export async function benchBackend(
  backend: Backend,
  sizes: readonly number[],
  plan: TimingPlan,
  progress: (line: string) => void,
): Promise<StoreRow[]> {
  // Three adapters of the same kind over the same place: one stays plain, one gets signed, and
  // one only MACs what passes through it, to measure the floor where signing happens.
  const plain = await storeFromUrl(backend.url);
  const inner = await storeFromUrl(backend.url);
  const macInner = await storeFromUrl(backend.url);
  const encInner = backend.encrypt ? await storeFromUrl(backend.url) : undefined;
  const namespace = `scbench${process.pid}`;
  const floorKey = createSecretKey(randomBytes(32));
  const mac = (text: string) =>
    createHmac(DEFAULT_MAC_ALGORITHM, floorKey).update(text, "utf8").digest("base64url");
  const unsigned = new Keyv({ store: plain, namespace, throwOnErrors: true });
  const signed = new Keyv({
    store: signedStore(inner, generateSecret()),
    namespace: `${namespace}s`,
    throwOnErrors: true,
  });
  const macOnly = new Keyv({
    store: macEveryValue(macInner, mac),
    namespace: `${namespace}m`,
    throwOnErrors: true,
  });
  const encrypting = encInner
    ? new Keyv({
        store: signedStore(encInner, generateSecret(), { encrypt: true }),
        namespace: `${namespace}e`,
        throwOnErrors: true,
      })
    : undefined;
  const aesKey = createSecretKey(randomBytes(32));
  const rows: StoreRow[] = [];
  try {
    for (const bytes of sizes) {
      const value = jsonText(bytes);
      const serialize = async () =>
        String(await unsigned.serializeData({ value, expires: undefined }));
      // The floor MACs the string as the store is handed it, with the digest signing uses. A read
      // gets a flat string from the backend. A write gets JSON.stringify's fresh output, which V8
      // keeps as a rope of parts until something reads its characters: whoever touches it first
      // (the MAC, or an unsigned backend encoding it) pays for joining it, so the floor does too.
      const stored = await serialize();
      mac(stored);
      const fresh: string[] = [];
      await unsigned.set("hit", value);
      await signed.set("hit", value);
      await macOnly.set("hit", value);
      await encrypting?.set("hit", value);
      if (
        (await signed.get("hit")) !== value ||
        (await unsigned.get("hit")) !== value ||
        (encrypting && (await encrypting.get("hit")) !== value)
      ) {
        throw new Error(`${backend.name}: a value did not round-trip`);
      }
      const sealed = aesSeal(aesKey, stored);
      for (const op of ["get", "set"] as const) {
        const run = (keyv: Keyv) =>
          op === "get" ? () => keyv.get("hit") : () => keyv.set("written", value);
        const cpu: RoundTimes = {};
        const encryptionArms = encrypting
          ? [
              { name: "encrypted", run: run(encrypting) },
              op === "get"
                ? { name: "aes", run: () => aesOpen(aesKey, sealed) }
                : { name: "aes", run: () => aesSeal(aesKey, stored) },
            ]
          : [];
        const times = await interleave(
          [
            { name: "unsigned", run: run(unsigned) },
            { name: "signed", run: run(signed) },
            { name: "mac", run: run(macOnly) },
            op === "get"
              ? { name: "floor", run: () => mac(stored) }
              : {
                  name: "floor",
                  prepare: async (ops: number) => {
                    fresh.length = 0;
                    for (let i = 0; i < ops; i++) fresh.push(await serialize());
                  },
                  run: () => mac(fresh.pop() as string),
                },
            ...encryptionArms,
          ],
          plan,
          cpu,
        );
        const u = times.unsigned ?? [];
        rows.push({
          backend: backend.name,
          bytes,
          op,
          ...signedVsUnsigned(times, cpu),
          floor: median(times.floor ?? []),
          floorInPlace: pairedMedian(times.mac ?? [], u),
          floorInPlaceCpu: pairedMedian(cpu.mac ?? [], cpu.unsigned ?? []),
          addedCpuSpread: pairedSpread(cpu.signed ?? [], cpu.unsigned ?? []),
          floorCpu: median(cpu.floor ?? []),
          ...(encrypting
            ? {
                encrypted: {
                  encrypted: median(times.encrypted ?? []),
                  addedCpu: pairedMedian(cpu.encrypted ?? [], cpu.unsigned ?? []),
                  addedCpuSpread: pairedSpread(cpu.encrypted ?? [], cpu.unsigned ?? []),
                  floorCpu: median(cpu.aes ?? []),
                },
              }
            : {}),
        });
        progress(`${backend.name} ${op} ${bytes} B`);
      }
    }
  } finally {
    await Promise.allSettled(
      [unsigned, signed, macOnly, ...(encrypting ? [encrypting] : [])].map((keyv) =>
        keyv.delete(["hit", "written"]),
      ),
    );
    // Some adapters share one pool per URL, so the second disconnect may find it closed.
    for (const store of [plain, inner, macInner, ...(encInner ? [encInner] : [])]) {
      if (!(store instanceof Map)) await store.disconnect?.().catch(() => {});
    }
    if (backend.name === "sqlite") {
      for (const suffix of ["", "-journal", "-wal", "-shm"]) {
        rmSync(sqliteFile + suffix, { force: true });
      }
    }
  }
  return rows;
}

/** AES-256-GCM of a string's UTF-8 bytes: the least an encrypting store does on a write. */
function aesSeal(key: KeyObject, text: string): { iv: Buffer; bytes: Buffer; tag: Buffer } {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const bytes = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
  return { iv, bytes, tag: cipher.getAuthTag() };
}

/** Its inverse, bytes in and bytes out: the least an encrypting store does on a read. */
function aesOpen(key: KeyObject, sealed: { iv: Buffer; bytes: Buffer; tag: Buffer }): Buffer {
  const decipher = createDecipheriv("aes-256-gcm", key, sealed.iv);
  decipher.setAuthTag(sealed.tag);
  return Buffer.concat([decipher.update(sealed.bytes), decipher.final()]);
}

/**
 * The least a signing decorator can do: MAC every value on its way in and out, and nothing else.
 * Wraps a Map in a minimal adapter, or forwards to an adapter with only `get` and `set` changed.
 */
function macEveryValue(
  store: KeyvStoreAdapter | Map<string, unknown>,
  mac: (text: string) => unknown,
): KeyvStoreAdapter {
  const seen = (value: unknown) => {
    if (typeof value === "string") mac(value);
    return value;
  };
  if (store instanceof Map) {
    const adapter = {
      opts: { dialect: "map", url: "" },
      namespace: undefined as string | undefined,
      get: async (key: string) => seen(store.get(key)),
      set: async (key: string, value: unknown) => {
        store.set(key, seen(value));
        return true;
      },
      delete: async (key: string) => store.delete(key),
      clear: async () => store.clear(),
      on: () => adapter,
    };
    return adapter as unknown as KeyvStoreAdapter;
  }
  return new Proxy(store, {
    get(target, property) {
      if (property === "get") return async (key: string) => seen(await target.get(key));
      if (property === "set") {
        return (key: string, value: unknown, ttl?: number) => target.set(key, seen(value), ttl);
      }
      const member = Reflect.get(target, property, target);
      return typeof member === "function" ? member.bind(target) : member;
    },
    set(target, property, value) {
      return Reflect.set(target, property, value, target);
    },
  });
}
