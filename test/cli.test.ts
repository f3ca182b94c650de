import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import KeyvSqlite from "@keyv/sqlite";
import Keyv from "keyv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signedStore } from "../src/store.ts";
import { OLD_SECRET, OTHER_SECRET, SECRET } from "./support/secrets.ts";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "signed-cache-cli-"));
const url = `sqlite://${join(dir, "cache.sqlite")}`;

async function cli(args: string[], env: Record<string, string> = {}) {
  const base = {
    PATH: process.env.PATH ?? "",
    SIGNED_CACHE_SECRET: SECRET,
    SIGNED_CACHE_SECRET_FALLBACKS: OLD_SECRET,
    SIGNED_CACHE_URL: url,
  };
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ["--import", "tsx", "src/cli.ts", ...args],
      { env: { ...base, ...env } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

async function seed(): Promise<void> {
  const adapter = new KeyvSqlite(url);
  const keyv = (secret: string) =>
    new Keyv({ store: signedStore(new KeyvSqlite(url), secret), namespace: "app" });
  const current = keyv(SECRET);
  for (const name of ["a", "b", "c"]) await current.set(name, { name });
  await current.set("soon", "gone", 1);
  await keyv(OLD_SECRET).set("old", "from last month");
  await keyv(OTHER_SECRET).set("forged", "admin");
  await current.set("tampered", { admin: false });
  const envelope = String(await adapter.get("app:tampered"));
  await adapter.set("app:tampered", envelope.replace("false", "true"));
  await adapter.set("app:legacy", JSON.stringify({ value: "plain", expires: null }));
  await new Keyv({ store: signedStore(adapter, SECRET), namespace: "other" }).set("x", 1);
  await new Promise((resolve) => setTimeout(resolve, 10));
}

beforeAll(seed, 30_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("signed-cache CLI", () => {
  it("keygen prints a fresh base64url secret", async () => {
    const first = await cli(["keygen"]);
    const second = await cli(["keygen", "--bytes", "64"]);
    expect(first.stdout.trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(second.stdout.trim()).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(JSON.parse((await cli(["keygen", "--json"])).stdout).secret).toHaveLength(43);
    const short = await cli(["keygen", "--bytes", "8"]);
    expect(short.code).not.toBe(0);
    expect(short.stderr).toMatch(/32 to 1024/);
  });

  it("verify --json counts every entry of the namespace and exits 1 on invalid ones", async () => {
    const result = await cli(["verify", "--namespace", "app", "--json"]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({
      scanned: 8,
      valid: 3,
      fallback: 1,
      invalid: 3,
      expired: 1,
      reasons: { "unknown-key": 1, mismatch: 1, unsigned: 1 },
    });
  });

  it("without the fallback secret, old entries count as unknown-key", async () => {
    const result = await cli(["verify", "--namespace", "app", "--json"], {
      SIGNED_CACHE_SECRET_FALLBACKS: "",
    });
    expect(JSON.parse(result.stdout)).toMatchObject({ fallback: 0, invalid: 4 });
  });

  it("stats counts by key id without changing anything", async () => {
    const result = await cli(["stats", "--namespace", "app", "--json"]);
    const stats = JSON.parse(result.stdout);
    expect(result.code).toBe(0);
    expect(stats.scanned).toBe(8);
    expect(Object.values(stats.kids as Record<string, number>).sort()).toEqual([1, 4]);
    expect(stats.kids[stats.current]).toBe(4);
  });

  it("resign moves fallback entries to the current key, then purge removes the bad ones", async () => {
    const resigned = JSON.parse((await cli(["resign", "--namespace", "app", "--json"])).stdout);
    expect(resigned).toMatchObject({ fallback: 1, resigned: 1 });
    const purged = JSON.parse((await cli(["purge", "--namespace", "app", "--json"])).stdout);
    expect(purged).toMatchObject({ invalid: 3, expired: 1, deleted: 4 });

    const after = await cli(["verify", "--namespace", "app", "--json"], {
      SIGNED_CACHE_SECRET_FALLBACKS: "",
    });
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout)).toEqual({
      scanned: 4,
      valid: 4,
      fallback: 0,
      invalid: 0,
      expired: 0,
      reasons: {},
    });
    // Another namespace in the same table is untouched.
    expect(JSON.parse((await cli(["verify", "--namespace", "other", "--json"])).stdout).valid).toBe(
      1,
    );
  });

  it("prints a readable summary without --json", async () => {
    const result = await cli(["verify", "--namespace", "app"]);
    expect(result.stdout).toMatch(/4 scanned/);
    expect(result.stdout).toMatch(/4 valid/);
  });

  it("fails with a clear message, never the secret, when the secret is missing or short", async () => {
    const missing = await cli(["verify"], { SIGNED_CACHE_SECRET: "" });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/SIGNED_CACHE_SECRET/);
    const short = await cli(["verify"], { SIGNED_CACHE_SECRET: "not-long-enough-secret" });
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/ConfigError/);
    expect(short.stderr).not.toContain("not-long-enough-secret");
  });

  it("rejects an unknown store URL with the supported schemes", async () => {
    const result = await cli(["verify", "--url", "ftp://example"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/redis:\/\//);
  });
});

describe("a store the walk cannot finish", () => {
  it("verify exits 2 with a StoreError, never reports an empty store as clean", async () => {
    const { code, stdout, stderr } = await cli(["verify", "--json"], {
      SIGNED_CACHE_URL: "postgres://postgres@127.0.0.1:1/test",
    });
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/StoreError: store walk failed before it was complete/);
  });
});
