/**
 * Runs every example as a user would, against the built package (`npm test` builds first).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { backendOrSkip, findBackend } from "./support/backends.ts";
import { SECRET } from "./support/secrets.ts";

const root = resolve(import.meta.dirname, "..");
const run = promisify(execFile);
// Examples run from a scratch directory, so tsx is named by its resolved location.
const withTsx = ["--import", import.meta.resolve("tsx")];
const dir = mkdtempSync(join(tmpdir(), "sc_axios_examples-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");
const redisUp = backendOrSkip(redis, "examples/axios-redis.ts");
const REDIS_URL = redis.url;

function example(name: string, env: Record<string, string> = {}) {
  if (!existsSync(join(root, "dist", "axios", "index.js"))) {
    throw new Error("dist/ is missing: run `npm run build` (npm test does it first)");
  }
  return run(process.execPath, [...withTsx, join(root, "examples", name)], {
    cwd: dir,
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
}

describe("examples", () => {
  it("demo: a miss, a hit, a forged entry refetched (lax) and rejected (strict)", async () => {
    const { stdout } = await example("demo.ts");
    expect(stdout).toMatch(/1st: .*miss/);
    expect(stdout).toMatch(/2nd: .*hit/);
    expect(stdout).toMatch(/sc2\.hs256\./);
    expect(stdout).toMatch(/onInvalid.*BadSignature \(unknown-key\)/);
    expect(stdout).toMatch(/cached=false, role=.*user/);
    expect(stdout).toMatch(/BadSignature.*reason: unknown-key/);
    expect(stdout).not.toContain("must never happen");
  });

  it("axios-basic: configured from the environment, on the embedded SQLite default", async () => {
    const { stdout } = await example("axios-basic.ts", { SIGNED_CACHE_SECRET: SECRET });
    expect(stdout).toContain("second: cached=true");
    expect(stdout).toContain("the API was called 1 time(s)");
    // No SIGNED_CACHE_URL: the default SQLite file lands in the working directory.
    expect(existsSync(join(dir, "http_cache.sqlite"))).toBe(true);
  });

  it("fetch-basic: createCachedFetch from the environment, a miss then a hit", async () => {
    const { stdout } = await example("fetch-basic.ts", { SIGNED_CACHE_SECRET: SECRET });
    expect(stdout).toContain("first:  x-signed-cache=miss");
    expect(stdout).toContain("second: x-signed-cache=hit");
    expect(stdout).toContain("the API was called 1 time(s)");
  });

  it("ky-basic: withCache from the environment, a miss then a hit, hooks still run", async () => {
    const { stdout } = await example("ky-basic.ts", { SIGNED_CACHE_SECRET: SECRET });
    expect(stdout).toContain("hook saw x-signed-cache=miss");
    expect(stdout).toContain("hook saw x-signed-cache=hit");
    expect(stdout).toContain("the API was called 1 time(s)");
  });

  it.skipIf(!redisUp)("axios-redis: a second instance reads what the first stored", async () => {
    const { stdout } = await example("axios-redis.ts", { REDIS_URL });
    expect(stdout).toContain("worker: cached=true");
    expect(stdout).toContain("the API was called 1 time(s)");
  });

  it("keyv-decorator: a tampered value is a miss", async () => {
    const { stdout } = await example("keyv-decorator.ts");
    expect(stdout).toContain("read back: { role: 'user' }");
    expect(stdout).toMatch(/stored as: sc2\./);
    expect(stdout).toContain("after tampering: undefined");
  });

  it("express-proxy: serves MISS, then HIT from the signed cache", async () => {
    const child: ChildProcess = spawn(
      process.execPath,
      [...withTsx, join(root, "examples", "express-proxy.ts")],
      { cwd: dir, env: { ...process.env, SIGNED_CACHE_SECRET: SECRET, PORT: "0" } },
    );
    try {
      const url = await new Promise<string>((done, fail) => {
        let output = "";
        child.stdout?.on("data", (chunk: Buffer) => {
          output += chunk.toString();
          const match = /listening on (http:\/\/\S+)/.exec(output);
          if (match?.[1]) done(match[1]);
        });
        child.once("exit", (code) => fail(new Error(`exited with ${code} before listening`)));
      });
      const first = await fetch(`${url}/users/5`);
      const second = await fetch(`${url}/users/5`);
      expect(first.headers.get("x-cache")).toBe("MISS");
      expect(second.headers.get("x-cache")).toBe("HIT");
      expect(await second.json()).toEqual(await first.json());
      expect((await fetch(`${url}/nope`)).status).toBe(404);
    } finally {
      if (child.exitCode === null) {
        const exited = new Promise((done) => child.once("exit", done));
        child.kill("SIGTERM");
        await exited;
      }
    }
  });
});
