import { inspect, isDeepStrictEqual } from "node:util";
import { AxiosHeaders } from "axios";
import fc from "fast-check";
import Keyv from "keyv";
import { afterEach, describe, expect, it } from "vitest";
import { deserializeEntry, serializeEntry, useEntryFormat } from "../../src/axios/entry.ts";
import { BadPayload } from "../../src/errors.ts";

const NOT_CACHED = "~ax2x";
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
const kindOf = (stored: string) => stored.slice(0, 5);

/**
 * Deep equality that also holds for own `constructor` keys, which vitest's toStrictEqual reads
 * as the class to compare: prototypes, -0, holes and undefined properties all count.
 */
function expectSame(actual: unknown, expected: unknown): void {
  const message = `${inspect(actual, { depth: 8 })} is not ${inspect(expected, { depth: 8 })}`;
  expect(isDeepStrictEqual(actual, expected), message).toBe(true);
}

/** JSON text as an origin may send it: tricky keys, ':' strings, numbers beyond a double. */
const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom("null", "true", "false", "-0", "0", "1e400", "-1e400", "1.5e-400"),
    fc.constantFrom("123456789012345678901234567890", "-0.0", "2.5E+3", "9007199254740993"),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
    fc.oneof(fc.string({ unit: "binary" }), tricky()).map((s) => JSON.stringify(s)),
    fc.array(tie("value"), { maxLength: 4 }).map((items) => `[${items.join(",")}]`),
    fc
      .array(fc.tuple(fc.oneof(fc.string(), tricky()), tie("value")), { maxLength: 4 })
      .map((pairs) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`),
  ),
})).value;

function tricky(): fc.Arbitrary<string> {
  return fc.constantFrom(
    "__proto__",
    "constructor",
    "prototype",
    "toJSON",
    "type",
    "Buffer",
    "data",
    ":",
    "::x",
    ":base64:AAAA",
    "~ax2t",
    "\n",
  );
}

afterEach(() => {
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.prototype).not.toHaveProperty("polluted");
});

describe("axios entry layout", () => {
  it("stores a text body as is after one line of metadata", () => {
    const body = `first line\nsecond "quoted" line\\ ${"x".repeat(1000)}`;
    const stored = serializeEntry(entry(body));
    expect(stored.endsWith(`\n${body}`)).toBe(true);
    // The body is not escaped: the entry is the body plus a small, size-independent header.
    expect(stored.length - body.length).toBeLessThan(300);
    expect(stored.slice(0, stored.indexOf("\n"))).not.toContain("first line");
  });

  it("stores a parsed JSON body as JSON.stringify writes it, read back with one JSON.parse", () => {
    const body = JSON.parse('{"list":[1,2,{"a":null}],"text":"x\\ny"}');
    const stored = serializeEntry(entry(body));
    expect(kindOf(stored)).toBe("~ax2j");
    expect(stored.endsWith(`\n${JSON.stringify(body)}`)).toBe(true);
  });

  it("returns every string body exactly, newlines, NULs, lone surrogates and all", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (body) => {
        expect(bodyOf(roundTrip(entry(body)))).toBe(body);
      }),
    );
    const looksLikeJson = ['{"a":1}', "null", '"quoted"', "[1,2]", "~ax2j{}\n{}", "~ax2x"];
    const colons = [":leading colon", "::double", ":base64:AAAA"];
    const odd = ["", "\n", "\n\n{", "with a NUL \0 inside", "lone \ud800 surrogate", "日本語 😀"];
    for (const body of [...looksLikeJson, ...colons, ...odd]) {
      expect(bodyOf(roundTrip(entry(body)))).toBe(body);
    }
  });

  it("returns any JSON an origin sends as what JSON.parse made of it", () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        const parsed = JSON.parse(text);
        expectSame(bodyOf(roundTrip(entry(parsed))), parsed);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.jsonValue(), (body) => {
        expectSame(bodyOf(roundTrip(entry(body))), body);
      }),
    );
  });

  it("returns Buffer-shaped objects and toJSON keys as plain data, at any depth", () => {
    const texts = [
      '{"type":"Buffer","data":[1,2,3],"toJSON":1}',
      '{"type":"Buffer","data":[1,2,3]}',
      '{"file":{"type":"Buffer","data":[104,105]},"list":[{"type":"Buffer","data":[]}]}',
      '{"toJSON":{"toJSON":"x"},"a":[{"toJSON":null}]}',
      '[{"type":"Buffer","data":[1],"toJSON":true}]',
    ];
    for (const text of texts) {
      const body = JSON.parse(text);
      const read = bodyOf(roundTrip(entry(body)));
      expectSame(read, body);
      expect(JSON.stringify(read)).toBe(text);
    }
  });

  it("reads __proto__, constructor and prototype keys back as own data, polluting nothing", () => {
    const text =
      '{"__proto__":{"polluted":1,"__proto__":{"polluted":2}},"constructor":{"prototype":{"polluted":3}},' +
      '"prototype":[{"__proto__":{"polluted":4}}]}';
    const body = JSON.parse(text);
    // -0 sends the same body through the tagged layout, whose reader walks the body.
    for (const variant of [body, { ...JSON.parse(text), zero: -0 }]) {
      const read = bodyOf(roundTrip(entry(variant))) as Record<string, Record<string, unknown>>;
      expectSame(read, variant);
      expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
      expect(Object.hasOwn(read, "__proto__")).toBe(true);
      const proto = Object.getOwnPropertyDescriptor(read, "__proto__")?.value;
      expectSame(proto, JSON.parse('{"polluted":1,"__proto__":{"polluted":2}}'));
      expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
      expectSame(read.constructor, { prototype: { polluted: 3 } });
      expect((read as { polluted?: unknown }).polluted).toBeUndefined();
    }
  });

  it("returns response headers named or valued toJSON, __proto__ or constructor as data", () => {
    const plain = JSON.parse(
      '{"__proto__":"p","toJSON":"t","constructor":"c","x-json":"toJSON","x-proto":"__proto__",' +
        '"x-colon":":v","set-cookie":["a=1",":b=2"]}',
    );
    const withHeaders = (value: unknown) => {
      const base = entry({ ok: true });
      return { ...base, value: { ...base.value, data: { ...base.value.data, headers: value } } };
    };
    const read = roundTrip(withHeaders(plain)) as { value: { data: { headers: object } } };
    expectSame(read.value.data.headers, plain);
    expect(Object.getPrototypeOf(read.value.data.headers)).toBe(Object.prototype);
    // What axios hands over: its AxiosHeaders class, whose methods are not data.
    const axiosHeaders = new AxiosHeaders({ tojson: "t", Constructor: "c", "x-json": "toJSON" });
    const fromAxios = roundTrip(withHeaders(axiosHeaders)) as typeof read;
    expect(fromAxios.value.data.headers).toStrictEqual({ ...axiosHeaders });
  });

  it("returns numbers JSON.stringify cannot write: -0, 1e400, -1e400, NaN", () => {
    const body = JSON.parse('[-0, 1e400, -1e400, 123456789012345678901234567890, {"z":-0}]');
    expect(Object.is(body[0], -0)).toBe(true);
    for (const value of [body, Number.NaN, -0, Number.POSITIVE_INFINITY, { n: Number.NaN }]) {
      expectSame(bodyOf(roundTrip(entry(value))), value);
    }
  });

  it("returns empty, null and absent bodies, and entries without a response", () => {
    for (const body of ["", null, undefined, 0, false, [], {}]) {
      const read = roundTrip(entry(body)) as { value: { data: object } };
      expect(read).toStrictEqual(entry(body));
      expect(Object.hasOwn(read.value.data, "data")).toBe(true);
    }
    const loading = { value: { state: "loading", previous: "empty" }, expires: 5 };
    expect(roundTrip(loading)).toStrictEqual(loading);
    const emptied = { value: { state: "loading", previous: "empty", data: undefined }, expires: 5 };
    expect(roundTrip(emptied)).toStrictEqual(emptied);
    const revalidating = { value: { ...entry("old body").value, state: "loading" }, expires: 5 };
    expect(roundTrip(revalidating)).toStrictEqual(revalidating);
  });

  it("keeps the metadata and Keyv's expiry field", () => {
    const meta = { revalidation: { etag: '"v1"', lastModified: true }, vary: { a: undefined } };
    const base = entry("body", 1_800_000_000_000);
    const withMeta = { ...base, value: { ...base.value, data: { ...base.value.data, meta } } };
    expect(roundTrip(withMeta)).toStrictEqual(withMeta);
    const forever = { ...entry("body"), expires: undefined };
    expect(roundTrip(forever)).toStrictEqual(forever);
  });

  it("returns a binary body as the same type with the same bytes, at any depth", () => {
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
      expect(bodyOf(roundTrip(entry({ nested: [body] })))).toStrictEqual({ nested: [read] });
    }
  });

  it("returns Dates, Maps, Sets, bigints and undefined inside bodies as they were", () => {
    const body = {
      at: new Date(1_700_000_000_000),
      map: new Map<unknown, unknown>([
        ["a", 1],
        [{ k: [1] }, new Set([undefined, 2n])],
      ]),
      list: [undefined, null, -0],
      missing: undefined,
    };
    expect(bodyOf(roundTrip(entry(body)))).toStrictEqual(body);
    expect(bodyOf(roundTrip(entry(new Date(0))))).toStrictEqual(new Date(0));
    const invalid = bodyOf(roundTrip(entry([new Date(Number.NaN)]))) as Date[];
    expect(invalid[0]).toBeInstanceOf(Date);
    expect(invalid[0]?.getTime()).toBeNaN();
    fc.assert(
      fc.property(
        fc
          .anything({
            key: fc.oneof(fc.string(), tricky()),
            withMap: true,
            withSet: true,
            withBigInt: true,
            withDate: true,
            stringUnit: "binary",
          })
          // isDeepStrictEqual holds no two invalid Dates equal; one is checked below.
          .filter((value) => !inspect(value, { depth: null }).includes("Invalid Date")),
        (value) => {
          expectSame(bodyOf(roundTrip(entry(value))), value);
        },
      ),
    );
  });

  it("writes a body it could not return as it was as a miss, and never throws", () => {
    class Point {
      constructor(readonly x: number) {}
    }
    class Stamp extends Date {}
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    let deep: unknown = "bottom";
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const bodies = [
      new Point(1),
      { nested: [new Point(2)] },
      () => 1,
      { fn: () => 1 },
      Symbol("s"),
      { [Symbol("s")]: 1 },
      cycle,
      // biome-ignore lint/suspicious/noSparseArray: a sparse body is the point
      [1, , 3],
      new Int16Array([1, -1]),
      new DataView(new ArrayBuffer(2)),
      new Stamp(0),
      Object.defineProperty({}, "boom", {
        enumerable: true,
        get: () => {
          throw new Error("getter");
        },
      }),
      deep,
    ];
    for (const body of bodies) {
      const stored = serializeEntry(entry(body));
      expect(stored).toBe(NOT_CACHED);
      expect(deserializeEntry(stored)).toBeUndefined();
    }
  });

  it("is what a Keyv reads back through useEntryFormat's serializer pair", async () => {
    const keyv = new Keyv();
    useEntryFormat(keyv);
    const body = JSON.parse('{"type":"Buffer","data":[1,2,3],"toJSON":1}');
    await keyv.set("k", entry(body).value);
    expect(await keyv.get("k")).toStrictEqual(entry(body).value);
    await keyv.set("n", entry({ nested: new (class X {})() }).value);
    expect(await keyv.get("n")).toBeUndefined();
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

  it("rejects a cut-short, altered or foreign entry with BadPayload", () => {
    const stored = serializeEntry(entry({ json: true }));
    const head = stored.slice(5, stored.indexOf("\n"));
    // What Keyv's own JSON serializer writes, on either major.
    const keyvJson = JSON.stringify(entry("old"));
    const malformed = [
      stored.slice(0, stored.indexOf("\n")),
      stored.slice(0, -1),
      `~ax2q${stored.slice(5)}`,
      `~ax1j${stored.slice(5)}`,
      keyvJson,
      "",
      `~ax2u${head}\nextra`,
      `~ax2-${head}\nextra`,
      `~ax2s${head}\n{"not":"a string"}`,
      `~ax2r${head}\n["?", 1]`,
      `~ax2r${head}\n["n", "1"]`,
      `~ax2r${head}\n["i", "1.5"]`,
      `~ax2r${head}\n["D", "soon"]`,
      `~ax2r${head}\n["M", 1]`,
      `~ax2t[1]\nbody`,
      `~ax2t{"value":{"data":1}}\nbody`,
      `~ax2t{"value":{"data":{}},"expires":"never"}\nbody`,
    ];
    for (const text of malformed) expect(() => deserializeEntry(text), text).toThrow(BadPayload);
  });
});
