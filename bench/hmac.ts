/**
 * How to compute the envelope's MAC fastest with node:crypto: strategies for the same framing,
 * each checked to give the same tag before it is timed, and the three digests side by side.
 */
import { createHash, createHmac, createSecretKey, type Hash, randomBytes } from "node:crypto";
import type { MacAlgorithm } from "../src/algorithms.ts";
import { jsonText } from "./payload.ts";
import { type Arm, interleave, median, type TimingPlan } from "./timing.ts";

/** One strategy × digest × size. */
export interface HmacRow {
  readonly digest: MacAlgorithm;
  readonly bytes: number;
  /** Median ns per MAC, by strategy. */
  readonly ns: Record<string, number>;
}

const BLOCK_BYTES: Record<MacAlgorithm, number> = { sha256: 64, sha512: 128, blake2b512: 128 };

// A realistic header and key: the fixed per-call costs depend on them, not on the payload.
const HEADER = "sc2.hs256.AbCdEfGh.1800000000000.keyv.s.";
const NAMESPACE = "keyv";
const KEY = "keyv:GET https://api.example.com/users/42?page=1";

// Stands for the tag at the end of a stored envelope: strategies MAC everything before it.
const TAG = `.${"A".repeat(43)}`;

type Mac = (stored: string) => string;

/**
 * Every strategy for one digest, each a function from a stored envelope (as a backend returns
 * it: one flat string) to the base64url tag. All feed the same bytes: the binding frame
 * (namespace and key, length-prefixed), then the stored header and body, which sit before the
 * tag as one slice of the stored text.
 */
export function strategies(digest: MacAlgorithm): Record<string, Mac> {
  const raw = randomBytes(32);
  const keyObject = createSecretKey(raw);
  const { inner, outer } = padStates(digest, raw);
  const frame = `${NAMESPACE.length}:${NAMESPACE}${KEY.length}:${KEY}`;
  const signed = (stored: string) => stored.slice(0, stored.length - TAG.length);
  return {
    // What RFC 2104 does by hand: the key schedule hashed once, then cloned per call.
    "hash.copy() ipad/opad, 2 updates": (stored) => {
      const innerDigest = inner
        .copy()
        .update(frame, "utf8")
        .update(signed(stored), "utf8")
        .digest();
      return outer.copy().update(innerDigest).digest("base64url");
    },
    "createHmac(Buffer), 2 updates": (stored) =>
      createHmac(digest, raw)
        .update(frame, "utf8")
        .update(signed(stored), "utf8")
        .digest("base64url"),
    // Joining frame and slice makes a new string that the encoder must copy as a whole.
    "createHmac(KeyObject), 1 update of frame + slice": (stored) =>
      createHmac(digest, keyObject)
        .update(`${frame}${signed(stored)}`, "utf8")
        .digest("base64url"),
    "createHmac(KeyObject), 3 updates (frame, header, body)": (stored) =>
      createHmac(digest, keyObject)
        .update(frame, "utf8")
        .update(stored.slice(0, HEADER.length), "latin1")
        .update(stored.slice(HEADER.length, stored.length - TAG.length), "utf8")
        .digest("base64url"),
    "createHmac(KeyObject), 2 updates (frame, slice)": (stored) =>
      createHmac(digest, keyObject)
        .update(frame, "utf8")
        .update(signed(stored), "utf8")
        .digest("base64url"),
    "floor: createHmac(KeyObject), value only": (stored) =>
      createHmac(digest, keyObject).update(stored, "utf8").digest("base64url"),
  };
}

/** The strategy the envelope uses, by its label in {@link strategies}. */
export const ADOPTED = "createHmac(KeyObject), 2 updates (frame, slice)";
/** The floor, by its label. */
export const FLOOR = "floor: createHmac(KeyObject), value only";

/** Times every strategy for every digest and size. */
export async function benchHmac(
  digests: readonly MacAlgorithm[],
  sizes: readonly number[],
  plan: TimingPlan,
  progress: (line: string) => void,
): Promise<HmacRow[]> {
  const rows: HmacRow[] = [];
  for (const digest of digests) {
    const byName = strategies(digest);
    for (const bytes of sizes) {
      // Flat, as a backend hands it over: a concatenation would be a rope until first read.
      const stored = Buffer.from(`${HEADER}${jsonText(bytes)}${TAG}`).toString();
      assertSameTags(byName, stored);
      const arms: Arm[] = Object.entries(byName).map(([name, mac]) => ({
        name,
        run: () => mac(stored),
      }));
      const times = await interleave(arms, plan);
      const ns = Object.fromEntries(Object.entries(times).map(([name, t]) => [name, median(t)]));
      rows.push({ digest, bytes, ns });
      progress(`hmac ${digest} ${bytes} B`);
    }
  }
  return rows;
}

/** Hash-only throughput of each digest at 1 MB and per-call cost at 1 KB, in ns. */
export async function benchDigests(
  plan: TimingPlan,
): Promise<Record<MacAlgorithm, { perMb: number; perKb: number }>> {
  const big = jsonText(1024 * 1024);
  const small = jsonText(1024);
  const result = {} as Record<MacAlgorithm, { perMb: number; perKb: number }>;
  const digests: MacAlgorithm[] = ["sha256", "sha512", "blake2b512"];
  const key = createSecretKey(randomBytes(32));
  const mac = (digest: MacAlgorithm, body: string) =>
    createHmac(digest, key).update(body, "utf8").digest();
  const large = await interleave(
    digests.map((digest) => ({ name: digest, run: () => mac(digest, big) })),
    plan,
  );
  const tiny = await interleave(
    digests.map((digest) => ({ name: digest, run: () => mac(digest, small) })),
    plan,
  );
  for (const digest of digests) {
    result[digest] = { perMb: median(large[digest] ?? []), perKb: median(tiny[digest] ?? []) };
  }
  return result;
}

function padStates(digest: MacAlgorithm, key: Buffer): { inner: Hash; outer: Hash } {
  const block = Buffer.alloc(BLOCK_BYTES[digest]);
  // Keys longer than a block are hashed first (RFC 2104); ours are 32 bytes, but stay general.
  (key.length > block.length ? createHash(digest).update(key).digest() : key).copy(block);
  const ipad = Buffer.alloc(block.length);
  const opad = Buffer.alloc(block.length);
  for (let i = 0; i < block.length; i++) {
    ipad[i] = (block[i] as number) ^ 0x36;
    opad[i] = (block[i] as number) ^ 0x5c;
  }
  return { inner: createHash(digest).update(ipad), outer: createHash(digest).update(opad) };
}

function assertSameTags(byName: Record<string, Mac>, body: string): void {
  const tags = Object.entries(byName).filter(([name]) => name !== FLOOR);
  const [, first] = tags[0] as [string, Mac];
  const expected = first(body);
  for (const [name, mac] of tags) {
    if (mac(body) !== expected) throw new Error(`strategy "${name}" does not compute the HMAC`);
  }
}
