import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAC_BY_DIGEST, type MacAlgorithm } from "../src/algorithms.ts";
import {
  ENVELOPE_PREFIX,
  inspectEnvelope,
  openEnvelope,
  type SealOptions,
  sealEnvelope,
} from "../src/envelope.ts";
import { BadData, BadPayload, BadSignature } from "../src/errors.ts";
import { Keyring } from "../src/keyring.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "./support/secrets.ts";

const keyring = new Keyring(SECRET);
const signOnly: SealOptions = { namespace: "ns", algorithm: "sha256", encrypt: false };
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
    expect(envelope.endsWith(`.${payload}`)).toBe(true);
    expect(envelope.length - payload.length).toBeLessThan(100);
    expect(openEnvelope(keyring, "ns:k", envelope, "ns")).toEqual({
      value: payload,
      expiresAt: undefined,
      kid: keyring.current.kid,
      current: true,
    });
  });

  it("keeps overhead constant whatever the payload size", () => {
    const overhead = (size: number) =>
      sealEnvelope(keyring, "k", "x".repeat(size), 1_800_000_000_000, signOnly).length - size;
    expect(overhead(10)).toBe(overhead(1_000_000));
  });

  it("signs the expiry", () => {
    const envelope = sealEnvelope(keyring, "k", "v", 1_800_000_000_123, signOnly);
    expect(openEnvelope(keyring, "k", envelope, "ns").expiresAt).toBe(1_800_000_000_123);
    const extended = envelope.replace(".1800000000123.", ".1900000000123.");
    expect(reasonOf(() => openEnvelope(keyring, "k", extended, "ns"))).toBe("mismatch");
  });

  it.each<MacAlgorithm>(["sha256", "sha512", "blake2b512"])(
    "round-trips with HMAC-%s",
    (algorithm) => {
      const envelope = sealEnvelope(keyring, "k", "value", undefined, { ...signOnly, algorithm });
      expect(openEnvelope(keyring, "k", envelope, "ns").value).toBe("value");
      expect(inspectEnvelope(envelope).algorithm).toMatch(/^h/);
    },
  );

  it("encrypts: the payload does not appear, and it round-trips", () => {
    const payload = "card=4111111111111111";
    const envelope = sealEnvelope(keyring, "k", payload, undefined, encrypted);
    expect(envelope).not.toContain("4111");
    expect(inspectEnvelope(envelope).algorithm).toBe("a256gcm");
    expect(openEnvelope(keyring, "k", envelope, "ns").value).toBe(payload);
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
      const opened = openEnvelope(keyring, "k", envelope, "ns").value as typeof value;
      expect(opened.date).toEqual(new Date(0));
      expect(Buffer.from(opened.bytes as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
      expect(opened.map.get("a")).toBe(1n);
      expect(Object.is(opened.nested[2], -0)).toBe(true);
    }
  });

  it("keeps a string with a lone surrogate exact", () => {
    const value = "a\uD800b";
    const envelope = sealEnvelope(keyring, "k", value, undefined, signOnly);
    expect(openEnvelope(keyring, "k", envelope, "ns").value).toBe(value);
  });

  it("refuses a value that cannot be cloned, as BadPayload", () => {
    expect(() => sealEnvelope(keyring, "k", () => 1, undefined, signOnly)).toThrow(BadPayload);
  });

  it("binds the key and the namespace", () => {
    const envelope = sealEnvelope(keyring, "ns:a", "v", undefined, signOnly);
    expect(reasonOf(() => openEnvelope(keyring, "ns:b", envelope, "ns"))).toBe("mismatch");
    expect(reasonOf(() => openEnvelope(keyring, "ns:a", envelope, "other"))).toBe("mismatch");
    expect(reasonOf(() => openEnvelope(keyring, "ns:a", envelope, undefined))).toBe("mismatch");
    // Moving characters between namespace and key must not keep the MAC.
    const split = sealEnvelope(keyring, "b:c", "v", undefined, { ...signOnly, namespace: "a" });
    expect(reasonOf(() => openEnvelope(keyring, "c", split, "a:b"))).toBe("mismatch");
  });

  it("tells an unknown key from a mismatch", () => {
    const foreign = sealEnvelope(new Keyring(OTHER_SECRET), "k", "v", undefined, signOnly);
    expect(reasonOf(() => openEnvelope(keyring, "k", foreign, "ns"))).toBe("unknown-key");
  });

  it("verifies under a fallback and says so", () => {
    const old = sealEnvelope(new Keyring(OLD_SECRET), "k", "v", undefined, signOnly);
    const rotated = new Keyring(SECRET, [OLD_SECRET]);
    expect(openEnvelope(rotated, "k", old, "ns")).toMatchObject({ value: "v", current: false });
  });

  it("classifies what is not an envelope", () => {
    expect(reasonOf(() => openEnvelope(keyring, "k", '{"value":1}', "ns"))).toBe("unsigned");
    expect(reasonOf(() => openEnvelope(keyring, "k", { value: 1 }, "ns"))).toBe("unsigned");
    expect(reasonOf(() => openEnvelope(keyring, "k", 42, "ns"))).toBe("unsigned");
    expect(reasonOf(() => openEnvelope(keyring, "k", "", "ns"))).toBe("unsigned");
    expect(reasonOf(() => openEnvelope(keyring, "k", "sc2.hs256.x", "ns"))).toBe(
      "unsupported-version",
    );
    expect(reasonOf(() => openEnvelope(keyring, "k", "sc1.", "ns"))).toBe("malformed");
    const envelope = sealEnvelope(keyring, "k", "v", undefined, signOnly);
    expect(
      reasonOf(() => openEnvelope(keyring, "k", envelope.replace("hs256", "none"), "ns")),
    ).toBe("unsupported-version");
  });

  it("rejects a huge malformed entry without scanning it", () => {
    const huge = `sc1.${"A".repeat(5_000_000)}`;
    expect(reasonOf(() => openEnvelope(keyring, "k", huge, "ns"))).toBe("malformed");
  });

  it("never reveals the secret or the payload in its messages", () => {
    const envelope = sealEnvelope(keyring, "k", "top-secret-payload", undefined, signOnly);
    for (const tampered of [envelope.slice(0, -1), envelope.replace("sc1", "sc9"), "plain"]) {
      try {
        openEnvelope(keyring, "other", tampered, "ns");
      } catch (error) {
        expect((error as Error).message).not.toContain("top-secret");
        expect((error as Error).message).not.toContain(SECRET.slice(0, 10));
      }
    }
  });
});

describe("properties", () => {
  const anyKey = fc.string({ unit: "binary", maxLength: 40 });
  const anyNamespace = fc.option(fc.string({ unit: "binary", maxLength: 12 }), { nil: undefined });
  const anyPayload = fc.string({ unit: "binary", maxLength: 300 });
  const anyExpiry = fc.option(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), {
    nil: undefined,
  });
  const anyOptions = fc.record({
    namespace: anyNamespace,
    algorithm: fc.constantFrom<MacAlgorithm>("sha256", "sha512", "blake2b512"),
    encrypt: fc.boolean(),
  });

  it("open(seal(x)) returns x for any key, namespace, payload and expiry", () => {
    fc.assert(
      fc.property(anyKey, anyPayload, anyExpiry, anyOptions, (key, payload, expiresAt, options) => {
        const envelope = sealEnvelope(keyring, key, payload, expiresAt, options);
        const opened = openEnvelope(keyring, key, envelope, options.namespace);
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
          expect(() => openEnvelope(keyring, key, mutated, options.namespace)).toThrow(BadData);
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
          expect(() => openEnvelope(keyring, b, envelope, nsB)).toThrow(BadSignature);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("tags exactly HMAC(header, length prefix, UTF-16 namespace+key, UTF-8 body)", () => {
    // Rebuilds the MAC input one field at a time, the way the format is specified, so that any
    // change to how the library feeds the MAC (merged updates, reused buffers) must match it.
    fc.assert(
      fc.property(anyKey, anyNamespace, anyPayload, anyExpiry, (key, namespace, payload, exp) => {
        fc.pre(payload.isWellFormed());
        for (const algorithm of ["sha256", "sha512", "blake2b512"] as const) {
          const envelope = sealEnvelope(keyring, key, payload, exp, {
            namespace,
            algorithm,
            encrypt: false,
          });
          const headerEnd = envelope.indexOf(".", envelope.indexOf(".s.") + 3);
          const header = envelope.slice(0, envelope.indexOf(".s.") + 3);
          const tag = envelope.slice(header.length, headerEnd);
          const ns = namespace ?? "";
          const spec = MAC_BY_DIGEST[algorithm];
          const reference = createHmac(algorithm, keyring.current.key(spec.purpose))
            .update(header, "latin1")
            .update(`${ns.length}:${key.length}:`, "latin1")
            .update(ns + key, "utf16le")
            .update(payload, "utf8")
            .digest("base64url");
          expect(tag).toBe(reference);
          expect(envelope.slice(headerEnd + 1)).toBe(payload);
        }
      }),
      { numRuns: 200 },
    );
  });
});
