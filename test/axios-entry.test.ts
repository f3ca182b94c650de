import fc from "fast-check";
import Keyv from "keyv";
import { describe, expect, it } from "vitest";
import { deserializeEntry, serializeEntry } from "../src/axios-entry.ts";
import { BadPayload } from "../src/errors.ts";

// What Keyv itself writes and reads: the layout of entries from earlier versions.
const keyv = new Keyv();
const keyvSerialize = (data: unknown) => keyv.serialize?.(data as never) as string;
const keyvDeserialize = (text: string) => keyv.deserialize?.(text) as unknown;

const headers = { "content-type": "text/plain; charset=utf-8", "cache-control": "max-age=60" };
const entry = (body: unknown, expires = 1_900_000_000_000) => ({
  value: {
    state: "cached",
    ttl: 60_000,
    createdAt: 1_700_000_000_000,
    data: { data: body, headers, status: 200, statusText: "OK" },
  },
  expires,
});
const roundTrip = (data: unknown) => deserializeEntry(serializeEntry(data as never));
const bodyOf = (data: unknown) =>
  (data as { value: { data: { data?: unknown } } } | undefined)?.value.data.data;

describe("axios entry layout", () => {
  it("stores a text body as is after one line of metadata", () => {
    const body = `first line\nsecond "quoted" line\\ ${"x".repeat(1000)}`;
    const stored = serializeEntry(entry(body));
    expect(stored.endsWith(`\n${body}`)).toBe(true);
    // The body is not escaped: the entry is the body plus a small, size-independent header.
    expect(stored.length - body.length).toBeLessThan(300);
    expect(stored.slice(0, stored.indexOf("\n"))).not.toContain("first line");
  });

  it("returns every string body exactly, newlines, NULs, lone surrogates and all", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (body) => {
        expect(bodyOf(roundTrip(entry(body)))).toBe(body);
      }),
    );
    for (const body of ["", "\n", "\n\n{", ":leading colon", ":base64:AAAA", "日本語 😀 é"]) {
      expect(bodyOf(roundTrip(entry(body)))).toBe(body);
    }
  });

  it("returns every parsed JSON body as an equal value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (body) => {
        // JSON has one zero: -0 is written as 0, as Keyv's own serializer does.
        const expected = JSON.parse(JSON.stringify(body));
        expect(bodyOf(roundTrip(entry(body)))).toStrictEqual(expected);
      }),
    );
  });

  it("keeps the metadata and Keyv's expiry field", () => {
    const read = roundTrip(entry("body", 1_800_000_000_000));
    expect(read).toStrictEqual(keyvDeserialize(keyvSerialize(entry("body", 1_800_000_000_000))));
    expect(read?.expires).toBe(1_800_000_000_000);
    expect(roundTrip({ ...entry("body"), expires: undefined })?.expires).toBeUndefined();
  });

  it("reads the same value back as Keyv's own serializer for bodies it keeps in JSON", () => {
    const bodies = [
      undefined,
      { file: Buffer.from("nested bytes") },
      "with a NUL \0 inside",
      "lone \ud800 surrogate",
      new Int16Array([1, -1]),
    ];
    for (const body of bodies) {
      const stored = serializeEntry(entry(body));
      expect(stored).toBe(keyvSerialize(entry(body)));
      expect(deserializeEntry(stored)).toStrictEqual(keyvDeserialize(stored));
    }
  });

  it("returns a binary body as the same type with the same bytes", () => {
    const bytes = [0, 1, 2, 10, 13, 255];
    const bodies = [
      Buffer.from(bytes),
      new Uint8Array(bytes),
      new Uint8Array(bytes).buffer,
      Buffer.alloc(0),
      // A view into a larger buffer: only its own bytes are cached.
      new Uint8Array(new Uint8Array([9, ...bytes, 9]).buffer, 1, bytes.length),
    ];
    for (const body of bodies) {
      const read = bodyOf(roundTrip(entry(body)));
      expect(read?.constructor).toBe(body.constructor);
      expect(Buffer.from(read as Uint8Array)).toStrictEqual(Buffer.from(body as Uint8Array));
    }
    // A Buffer body written by Keyv's own serializer (earlier versions) still reads back.
    expect(bodyOf(deserializeEntry(keyvSerialize(entry(Buffer.from(bytes)))))).toStrictEqual(
      Buffer.from(bytes),
    );
  });

  it("rejects a binary body whose type or base64 was altered", () => {
    const stored = serializeEntry(entry(Buffer.from("bytes")));
    const at = stored.indexOf("\n") + 1;
    for (const altered of [
      `${stored.slice(0, at)}X${stored.slice(at + 1)}`,
      `${stored}=`,
      `${stored.slice(0, -1)}!`,
    ]) {
      expect(() => deserializeEntry(altered)).toThrow(BadPayload);
    }
  });

  it("reads entries that Keyv's own serializer wrote", () => {
    for (const body of ["text\nbody", { parsed: ["json"] }, Buffer.from("bytes"), undefined]) {
      const old = keyvSerialize(entry(body));
      expect(deserializeEntry(old)).toStrictEqual(keyvDeserialize(old));
      expect(bodyOf(deserializeEntry(old))).toStrictEqual(body);
    }
    const loading = { value: { state: "loading", previous: "empty" }, expires: 5 };
    expect(deserializeEntry(serializeEntry(loading))).toStrictEqual(loading);
  });

  it("rejects a cut-short or undecodable entry with BadPayload", () => {
    const stored = serializeEntry(entry({ json: true }));
    expect(() => deserializeEntry(stored.slice(0, stored.indexOf("\n")))).toThrow(BadPayload);
    expect(() => deserializeEntry(`${stored.slice(0, -1)}`)).toThrow(BadPayload);
    expect(() => deserializeEntry(`~ax1q${stored.slice(5)}`)).toThrow(BadPayload);
  });
});
