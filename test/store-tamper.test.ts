/**
 * The tamper table: every way an attacker with write access to the store might alter an entry.
 * Each case must be a miss in lax mode and BadSignature/BadPayload in strict mode; none may
 * ever return data.
 */
import Keyv from "keyv";
import { describe, expect, it } from "vitest";
import { BadData } from "../src/errors.ts";
import { Keyring } from "../src/keyring.ts";
import { signedStore } from "../src/store.ts";
import { OTHER_SECRET, SECRET } from "./support/secrets.ts";

const KEY = "ns:user/42";
const VALUE = { role: "user", id: 42 };

/** The envelope Keyv writes for VALUE under KEY, plus what other places would hold. */
async function written(options: { encrypt?: boolean; secret?: string; namespace?: string } = {}) {
  const map = new Map<string, unknown>();
  const keyv = new Keyv({
    store: signedStore(map, options.secret ?? SECRET, { encrypt: options.encrypt ?? false }),
    namespace: options.namespace ?? "ns",
  });
  await keyv.set("user/42", VALUE);
  await keyv.set("user/43", { role: "admin", id: 43 });
  const prefix = options.namespace ?? "ns";
  return {
    here: String(map.get(`${prefix}:user/42`)),
    other: String(map.get(`${prefix}:user/43`)),
  };
}

type Case = [name: string, stored: unknown];

async function tamperCases(encrypt: boolean): Promise<Case[]> {
  const { here, other } = await written({ encrypt });
  const label = encrypt ? "encrypted" : "signed";
  const cases: Case[] = [];
  for (let i = 0; i < here.length; i++) {
    const code = here.charCodeAt(i);
    const flipped = String.fromCharCode(code ^ (code === 0x2e ? 0x01 : 0x20) || 0x41);
    cases.push([`${label}: flip char ${i}`, here.slice(0, i) + flipped + here.slice(i + 1)]);
  }
  for (const length of [0, 3, 4, 10, 20, 40, here.length - 1]) {
    cases.push([`${label}: truncate to ${length}`, here.slice(0, length)]);
  }
  cases.push([`${label}: append a character`, `${here} `]);
  cases.push([`${label}: append a JSON field`, `${here.slice(0, -1)},"role":"admin"}`]);
  cases.push([`${label}: entry moved from another key`, other]);
  cases.push([
    `${label}: entry from another secret`,
    (await written({ encrypt, secret: OTHER_SECRET })).here,
  ]);
  cases.push([
    `${label}: entry from another namespace`,
    (await written({ encrypt, namespace: "nt" })).here,
  ]);
  cases.push([`${label}: version downgrade`, here.replace(/^sc2\./, "sc0.")]);
  cases.push([`${label}: version upgrade`, here.replace(/^sc2\./, "sc3.")]);
  cases.push([`${label}: unknown kid`, here.replace(new Keyring(SECRET).current.kid, "AAAAAAAA")]);
  cases.push([
    `${label}: expiry added`,
    here.replace(/^(sc2\.[^.]+\.[^.]+)\.0\./, "$1.9999999999999."),
  ]);
  cases.push([`${label}: kind switched`, here.replace(/\.s\./, ".v.")]);
  cases.push([`${label}: purpose relabelled`, here.replace(".keyv.", ".axios.")]);
  cases.push([`${label}: empty tag`, here.replace(/\.[^.]+$/, ".")]);
  cases.push([`${label}: tag cut off`, here.replace(/\.[^.]+$/, "")]);
  return cases;
}

const { here } = await written();
const common: Case[] = [
  ["algorithm swapped hs256 → hs512", here.replace(".hs256.", ".hs512.")],
  ["algorithm swapped hs256 → a256gcm", here.replace(".hs256.", ".a256gcm.")],
  ["legacy unsigned Keyv value", JSON.stringify({ value: { role: "admin" }, expires: null })],
  ["empty string", ""],
  ["huge string (4 MB)", "x".repeat(4 * 1024 * 1024)],
  ["huge malformed envelope (4 MB)", `sc2.hs256.${"A".repeat(4 * 1024 * 1024)}`],
  ["a number", 42],
  ["an object", { value: { role: "admin" } }],
  ["a Buffer", Buffer.from("sc1.hs256")],
];

const signedCases = await tamperCases(false);
const encryptedCases = await tamperCases(true);
const table: Case[] = [...signedCases, ...encryptedCases, ...common];

async function readBack(stored: unknown, strict: boolean, encrypt: boolean) {
  const map = new Map<string, unknown>([[KEY, stored]]);
  const invalid: BadData[] = [];
  const keyv = new Keyv({
    store: signedStore(map, SECRET, { strict, encrypt, onInvalid: (error) => invalid.push(error) }),
    namespace: "ns",
    throwOnErrors: strict,
  });
  return { keyv, map, invalid };
}

describe(`tamper table (${table.length} cases)`, () => {
  it("has a case for every character of the entry", () => {
    expect(signedCases.length).toBeGreaterThan(here.length);
  });

  it.each(table)("lax: %s → miss, deleted, reported", async (_name, stored) => {
    const { keyv, map, invalid } = await readBack(stored, false, _name.startsWith("encrypted"));
    expect(await keyv.get("user/42")).toBeUndefined();
    expect(await keyv.has("user/42")).toBe(false);
    expect(map.has(KEY)).toBe(false);
    expect(invalid).toHaveLength(1);
  });

  it.each(table)("strict: %s → BadData", async (_name, stored) => {
    const { keyv, invalid } = await readBack(stored, true, _name.startsWith("encrypted"));
    const error = await keyv.get("user/42").then(
      (value) => ({ returned: value }),
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(BadData);
    expect((error as BadData).name).toMatch(/^Bad(Signature|Payload)$/);
    expect(invalid).toHaveLength(1);
  });

  it("the untouched entry reads back in both modes", async () => {
    for (const strict of [false, true]) {
      const { keyv } = await readBack(here, strict, false);
      expect(await keyv.get("user/42")).toEqual(VALUE);
    }
  });
});
