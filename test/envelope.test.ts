import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAC_BY_DIGEST, type MacAlgorithm } from "../src/algorithms.ts";
import {
  ENVELOPE_PREFIX,
  inspectEnvelope,
  isOutdatedEnvelope,
  MAX_EXPIRY_MS,
  type OpenOptions,
  openEnvelope,
  type SealOptions,
  sealEnvelope,
} from "../src/envelope.ts";
import { BadData, BadPayload, BadSignature, InvalidKey } from "../src/errors.ts";
import { Keyring } from "../src/keyring.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "./support/secrets.ts";

const keyring = new Keyring(SECRET);
const signOnly: SealOptions = {
  namespace: "ns",
  purpose: "keyv",
  algorithm: "sha256",
  encrypt: false,
};
/** What a reader of namespace `namespace` expects: the `keyv` purpose, any algorithm. */
function reading(namespace: string | undefined): OpenOptions {
  return { namespace, purpose: "keyv", accepted: undefined };
}
const encrypted: SealOptions = { ...signOnly, encrypt: true };

function reasonOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof BadSignature) return error.reason;
    if (error instanceof BadPayload) return "payload";
    throw error;
  }
  return "accepted";
}

describe("sealEnvelope / openEnvelope", () => {
  it("stores a string payload raw, after a small fixed header", () => {
    const payload = '{"value":"héllo","expires":null}';
    const envelope = sealEnvelope(keyring, "ns:k", payload, undefined, signOnly);
    expect(envelope.startsWith(ENVELOPE_PREFIX)).toBe(true);
    expect(envelope).toContain(`.s.${payload}.`);
    expect(envelope.length - payload.length).toBeLessThan(100);
    expect(openEnvelope(keyring, "ns:k", envelope, reading("ns"))).toMatchObject({
      value: payload,
      expiresAt: undefined,
      kid: keyring.current.kid,
      current: true,
      purpose: "keyv",
    });
  });

  it("keeps overhead constant whatever the payload size", () => {
    const overhead = (size: number) =>
      sealEnvelope(keyring, "k", "x".repeat(size), 1_800_000_000_000, signOnly).length - size;
    expect(overhead(10)).toBe(overhead(1_000_000));
  });

  it("signs the expiry", () => {
    const envelope = sealEnvelope(keyring, "k", "v", 1_800_000_000_123, signOnly);
    expect(openEnvelope(keyring, "k", envelope, reading("ns")).expiresAt).toBe(1_800_000_000_123);
    const extended = envelope.replace(".1800000000123.", ".1900000000123.");
    expect(reasonOf(() => openEnvelope(keyring, "k", extended, reading("ns")))).toBe("mismatch");
  });

  it.each<MacAlgorithm>(["sha256", "sha512", "blake2b512"])(
    "round-trips with HMAC-%s",
    (algorithm) => {
      const envelope = sealEnvelope(keyring, "k", "value", undefined, { ...signOnly, algorithm });
      expect(openEnvelope(keyring, "k", envelope, reading("ns")).value).toBe("value");
      expect(inspectEnvelope(envelope).algorithm).toMatch(/^h/);
    },
  );

  it("encrypts: the payload does not appear, and it round-trips", () => {
    const payload = "card=4111111111111111";
    const envelope = sealEnvelope(keyring, "k", payload, undefined, encrypted);
    expect(envelope).not.toContain("4111");
    expect(inspectEnvelope(envelope).algorithm).toBe("a256gcm");
    expect(openEnvelope(keyring, "k", envelope, reading("ns")).value).toBe(payload);
    // A fresh IV each time: the same value never encrypts the same way twice.
    expect(sealEnvelope(keyring, "k", payload, undefined, encrypted)).not.toBe(envelope);
  });

  it("structured-clones values that are not strings, faithfully", () => {
    const value = {
      date: new Date(0),
      bytes: Buffer.from([1, 2, 3]),
      map: new Map([["a", 1n]]),
      nested: [null, undefined, -0],
    };
    for (const options of [signOnly, encrypted]) {
      const envelope = sealEnvelope(keyring, "k", value, undefined, options);
      const opened = openEnvelope(keyring, "k", envelope, reading("ns")).value as typeof value;
      expect(opened.date).toEqual(new Date(0));
      expect(Buffer.from(opened.bytes as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
      expect(opened.map.get("a")).toBe(1n);
      expect(Object.is(opened.nested[2], -0)).toBe(true);
    }
  });

  it("keeps a string value with a lone surrogate exact", () => {
    const value = "a\uD800b";
    const envelope = sealEnvelope(keyring, "k", value, undefined, signOnly);
    expect(openEnvelope(keyring, "k", envelope, reading("ns")).value).toBe(value);
  });

  it("refuses a value that cannot be cloned, as BadPayload", () => {
    expect(() => sealEnvelope(keyring, "k", () => 1, undefined, signOnly)).toThrow(BadPayload);
  });

  it("binds the key and the namespace", () => {
    const envelope = sealEnvelope(keyring, "ns:a", "v", undefined, signOnly);
    expect(reasonOf(() => openEnvelope(keyring, "ns:b", envelope, reading("ns")))).toBe("mismatch");
    expect(reasonOf(() => openEnvelope(keyring, "ns:a", envelope, reading("other")))).toBe(
      "mismatch",
    );
    expect(reasonOf(() => openEnvelope(keyring, "ns:a", envelope, reading(undefined)))).toBe(
      "mismatch",
    );
    // Moving characters between namespace and key must not keep the MAC.
    const split = sealEnvelope(keyring, "b:c", "v", undefined, { ...signOnly, namespace: "a" });
    expect(reasonOf(() => openEnvelope(keyring, "c", split, reading("a:b")))).toBe("mismatch");
  });

  it("tells an unknown key from a mismatch", () => {
    const foreign = sealEnvelope(new Keyring(OTHER_SECRET), "k", "v", undefined, signOnly);
    expect(reasonOf(() => openEnvelope(keyring, "k", foreign, reading("ns")))).toBe("unknown-key");
  });

  it("verifies under a fallback and says so", () => {
    const old = sealEnvelope(new Keyring(OLD_SECRET), "k", "v", undefined, signOnly);
    const rotated = new Keyring(SECRET, [OLD_SECRET]);
    expect(openEnvelope(rotated, "k", old, reading("ns"))).toMatchObject({
      value: "v",
      current: false,
    });
  });

  it("classifies what is not an envelope", () => {
    expect(reasonOf(() => openEnvelope(keyring, "k", '{"value":1}', reading("ns")))).toBe(
      "unsigned",
    );
    expect(reasonOf(() => openEnvelope(keyring, "k", { value: 1 }, reading("ns")))).toBe(
      "unsigned",
    );
    expect(reasonOf(() => openEnvelope(keyring, "k", 42, reading("ns")))).toBe("unsigned");
    expect(reasonOf(() => openEnvelope(keyring, "k", "", reading("ns")))).toBe("unsigned");
    expect(reasonOf(() => openEnvelope(keyring, "k", "sc3.hs256.x", reading("ns")))).toBe(
      "unsupported-version",
    );
    expect(reasonOf(() => openEnvelope(keyring, "k", "sc2.", reading("ns")))).toBe("malformed");
    expect(reasonOf(() => openEnvelope(keyring, "k", "sc1.hs256.x", reading("ns")))).toBe(
      "unsupported-version",
    );
    const envelope = sealEnvelope(keyring, "k", "v", undefined, signOnly);
    expect(
      reasonOf(() => openEnvelope(keyring, "k", envelope.replace("hs256", "none"), reading("ns"))),
    ).toBe("unsupported-version");
  });

  it("rejects a huge malformed entry without scanning it", () => {
    const huge = `sc2.${"A".repeat(5_000_000)}`;
    expect(reasonOf(() => openEnvelope(keyring, "k", huge, reading("ns")))).toBe("malformed");
  });

  it("never reveals the secret or the payload in its messages", () => {
    const envelope = sealEnvelope(keyring, "k", "top-secret-payload", undefined, signOnly);
    for (const tampered of [envelope.slice(0, -1), envelope.replace("sc2", "sc9"), "plain"]) {
      try {
        openEnvelope(keyring, "other", tampered, reading("ns"));
      } catch (error) {
        expect((error as Error).message).not.toContain("top-secret");
        expect((error as Error).message).not.toContain(SECRET.slice(0, 10));
      }
    }
  });
});

describe("envelope v2: the edges", () => {
  it("binds the purpose: an entry written for one never verifies for another", () => {
    const plain = sealEnvelope(keyring, "k", "v", undefined, signOnly);
    const asAxios = { namespace: "ns", purpose: "axios", accepted: undefined };
    expect(reasonOf(() => openEnvelope(keyring, "k", plain, asAxios))).toBe("mismatch");
    // Rewriting the purpose field breaks the MAC.
    const relabelled = plain.replace(".keyv.", ".axios.");
    expect(reasonOf(() => openEnvelope(keyring, "k", relabelled, asAxios))).toBe("mismatch");
    for (const options of [signOnly, encrypted]) {
      const forged = sealEnvelope(keyring, "k", "v", undefined, options).replace(
        ".keyv.",
        ".axios.",
      );
      expect(reasonOf(() => openEnvelope(keyring, "k", forged, asAxios))).toBe("mismatch");
    }
  });

  it("accepts only the algorithms it is told to: no silent downgrade", () => {
    const signed = sealEnvelope(keyring, "k", "v", undefined, signOnly);
    const sealed = sealEnvelope(keyring, "k", "v", undefined, encrypted);
    const encryptedOnly = { ...reading("ns"), accepted: new Set(["a256gcm"]) };
    const sha512Only = { ...reading("ns"), accepted: new Set(["hs512"]) };
    expect(reasonOf(() => openEnvelope(keyring, "k", signed, encryptedOnly))).toBe(
      "unsupported-version",
    );
    expect(reasonOf(() => openEnvelope(keyring, "k", signed, sha512Only))).toBe(
      "unsupported-version",
    );
    expect(openEnvelope(keyring, "k", sealed, encryptedOnly).value).toBe("v");
  });

  it("rejects every non-canonical tag: no two texts of one GCM tag or MAC both verify", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (const options of [encrypted, signOnly, { ...signOnly, algorithm: "sha512" as const }]) {
      const envelope = sealEnvelope(keyring, "k", "payload", undefined, options);
      let accepted = 0;
      for (const char of alphabet) {
        const variant = envelope.slice(0, -1) + char;
        if (reasonOf(() => openEnvelope(keyring, "k", variant, reading("ns"))) === "accepted") {
          accepted++;
        }
      }
      expect(accepted).toBe(1);
    }
  });

  it("writes every expiry the reader accepts, up to the latest Date", () => {
    for (const expiresAt of [1, 1_800_000_000_000, MAX_EXPIRY_MS]) {
      const envelope = sealEnvelope(keyring, "k", "v", expiresAt, signOnly);
      expect(openEnvelope(keyring, "k", envelope, reading("ns")).expiresAt).toBe(expiresAt);
    }
    for (const bad of [0, 1.5, -1, MAX_EXPIRY_MS + 1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => sealEnvelope(keyring, "k", "v", bad, signOnly)).toThrow(RangeError);
    }
  });

  it("refuses to bind a key or namespace that has no faithful UTF-8 form", () => {
    expect(() => sealEnvelope(keyring, "a\uD800", "v", undefined, signOnly)).toThrow(InvalidKey);
    expect(() =>
      sealEnvelope(keyring, "a", "v", undefined, { ...signOnly, namespace: "\uDC00" }),
    ).toThrow(InvalidKey);
  });

  it("tells entries of the previous format apart, to be read as a plain miss", () => {
    expect(isOutdatedEnvelope("sc1.hs256.TN14a4nL.0.s.tag.{}")).toBe(true);
    expect(isOutdatedEnvelope(sealEnvelope(keyring, "k", "v", undefined, signOnly))).toBe(false);
    expect(isOutdatedEnvelope(42)).toBe(false);
  });
});

describe("properties", () => {
  // Keys and namespaces are well-formed: the store refuses any other (see store.test.ts).
  const anyKey = fc.string({ unit: "grapheme", maxLength: 40 });
  const anyNamespace = fc.option(fc.string({ unit: "grapheme", maxLength: 12 }), {
    nil: undefined,
  });
  const anyPayload = fc.string({ unit: "binary", maxLength: 300 });
  const anyExpiry = fc.option(fc.integer({ min: 1, max: MAX_EXPIRY_MS }), { nil: undefined });
  const anyOptions = fc.record({
    namespace: anyNamespace,
    purpose: fc.constantFrom("keyv", "axios", "fetch"),
    algorithm: fc.constantFrom<MacAlgorithm>("sha256", "sha512", "blake2b512"),
    encrypt: fc.boolean(),
  });
  const readerOf = (options: SealOptions): OpenOptions => ({
    namespace: options.namespace,
    purpose: options.purpose,
    accepted: undefined,
  });

  it("open(seal(x)) returns x for any key, namespace, payload and expiry", () => {
    fc.assert(
      fc.property(anyKey, anyPayload, anyExpiry, anyOptions, (key, payload, expiresAt, options) => {
        const envelope = sealEnvelope(keyring, key, payload, expiresAt, options);
        const opened = openEnvelope(keyring, key, envelope, readerOf(options));
        expect(opened.value).toBe(payload);
        expect(opened.expiresAt).toBe(expiresAt);
      }),
      { numRuns: 300 },
    );
  });

  it("rejects any single-character change, insertion or deletion", () => {
    fc.assert(
      fc.property(
        anyKey,
        anyPayload,
        anyExpiry,
        anyOptions,
        fc.nat(),
        fc.constantFrom("replace", "insert", "delete"),
        fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
        (key, payload, expiresAt, options, at, edit, char) => {
          const envelope = sealEnvelope(keyring, key, payload, expiresAt, options);
          const index = at % envelope.length;
          const mutated =
            edit === "insert"
              ? envelope.slice(0, index) + char + envelope.slice(index)
              : envelope.slice(0, index) +
                (edit === "replace" ? char : "") +
                envelope.slice(index + 1);
          fc.pre(mutated !== envelope);
          expect(() => openEnvelope(keyring, key, mutated, readerOf(options))).toThrow(BadData);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("rejects an entry moved to any other key or namespace", () => {
    fc.assert(
      fc.property(
        anyKey,
        anyKey,
        anyNamespace,
        anyNamespace,
        anyPayload,
        (a, b, nsA, nsB, payload) => {
          fc.pre(a !== b || (nsA ?? "") !== (nsB ?? ""));
          const envelope = sealEnvelope(keyring, a, payload, undefined, {
            ...signOnly,
            namespace: nsA,
          });
          expect(() => openEnvelope(keyring, b, envelope, reading(nsB))).toThrow(BadSignature);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("tags exactly HMAC(frame, header, body): one canonical MAC input per tuple", () => {
    // Rebuilds the MAC input the way docs/security.md specifies it, so that any change to how
    // the library feeds the MAC must match the specification.
    fc.assert(
      fc.property(anyKey, anyNamespace, anyPayload, anyExpiry, (key, namespace, payload, exp) => {
        fc.pre(payload.isWellFormed());
        for (const algorithm of ["sha256", "sha512", "blake2b512"] as const) {
          const envelope = sealEnvelope(keyring, key, payload, exp, {
            namespace,
            purpose: "keyv",
            algorithm,
            encrypt: false,
          });
          const spec = MAC_BY_DIGEST[algorithm];
          const header = `sc2.${spec.id}.${keyring.current.kid}.${exp ?? 0}.keyv.s.`;
          const ns = namespace ?? "";
          const reference = createHmac(algorithm, keyring.current.key(spec.purpose))
            .update(`${ns.length}:${ns}${key.length}:${key}`, "utf8")
            .update(header, "latin1")
            .update(payload, "utf8")
            .digest("base64url");
          expect(envelope).toBe(`${header}${payload}.${reference}`);
        }
      }),
      { numRuns: 200 },
    );
  });
});
