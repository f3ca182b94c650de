/** HMAC digests a signed store may sign with. A store reads only those its `algorithms` allow. */
export type MacAlgorithm = "sha256" | "sha512" | "blake2b512";

/** The HMAC digest used when none is chosen. */
export const DEFAULT_MAC_ALGORITHM: MacAlgorithm = "sha256";

/** How one algorithm appears in an envelope and what its tag looks like. */
export interface AlgorithmSpec {
  /** Identifier written into the envelope header. */
  readonly id: string;
  /** `hmac` signs a plain payload; `aead` encrypts it and authenticates with the GCM tag. */
  readonly kind: "hmac" | "aead";
  /** node:crypto digest or cipher name. */
  readonly primitive: string;
  /** Length of the base64url tag in characters. */
  readonly tagChars: number;
  /** HKDF purpose label of the key this algorithm uses. */
  readonly purpose: string;
}

function hmac(id: string, digest: MacAlgorithm, digestBytes: number): AlgorithmSpec {
  return {
    id,
    kind: "hmac",
    primitive: digest,
    tagChars: Math.ceil((digestBytes * 4) / 3),
    purpose: `mac:${id}`,
  };
}

/** The AES-256-GCM envelope used when `encrypt` is on. */
export const AEAD: AlgorithmSpec = {
  id: "a256gcm",
  kind: "aead",
  primitive: "aes-256-gcm",
  tagChars: 22,
  purpose: "enc:a256gcm",
};

/** HMAC specs by the digest name users pass as `algorithm`. */
export const MAC_BY_DIGEST: Readonly<Record<MacAlgorithm, AlgorithmSpec>> = {
  sha256: hmac("hs256", "sha256", 32),
  sha512: hmac("hs512", "sha512", 64),
  blake2b512: hmac("hb512", "blake2b512", 64),
};

/** Every spec by its envelope id, for parsing. */
export const SPEC_BY_ID: ReadonlyMap<string, AlgorithmSpec> = new Map(
  [...Object.values(MAC_BY_DIGEST), AEAD].map((spec) => [spec.id, spec]),
);

/** Whether `value` names a supported HMAC digest. */
export function isMacAlgorithm(value: unknown): value is MacAlgorithm {
  return typeof value === "string" && Object.hasOwn(MAC_BY_DIGEST, value);
}

/** What `algorithms` may list: an HMAC digest, or `aes-256-gcm` for encrypted entries. */
export type EntryAlgorithm = MacAlgorithm | "aes-256-gcm";

/** Every name `algorithms` accepts. */
export const ENTRY_ALGORITHMS: readonly EntryAlgorithm[] = [
  "sha256",
  "sha512",
  "blake2b512",
  "aes-256-gcm",
];

/** Whether `value` names an entry algorithm. */
export function isEntryAlgorithm(value: unknown): value is EntryAlgorithm {
  return typeof value === "string" && (ENTRY_ALGORITHMS as readonly string[]).includes(value);
}

/** The spec of an entry algorithm name. */
export function specOf(algorithm: EntryAlgorithm): AlgorithmSpec {
  return algorithm === "aes-256-gcm" ? AEAD : MAC_BY_DIGEST[algorithm];
}

/**
 * Envelope ids a store accepts on read: `algorithms` when given, otherwise only what it writes,
 * so that an attacker cannot hand it an entry weaker than its own (no silent downgrade).
 */
export function acceptedSpecIds(
  algorithms: readonly EntryAlgorithm[] | undefined,
  algorithm: MacAlgorithm,
  encrypt: boolean,
): ReadonlySet<string> {
  const names = algorithms ?? [encrypt ? "aes-256-gcm" : algorithm];
  return new Set(names.map((name) => specOf(name).id));
}
