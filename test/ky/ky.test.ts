import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ky1 from "ky";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadSignature } from "../../src/errors.ts";
import { withCache } from "../../src/ky/index.ts";
import { backendOrSkip, findBackend } from "../support/backends.ts";
import { SECRET } from "../support/secrets.ts";

// ky 2 needs Node 22; on Node 20 only ky 1 runs (CI runs both across its Node matrix).
const nodeMajor = Number(process.versions.node.split(".")[0]);
// ky 2 renamed `prefixUrl` to `prefix`.
const versions: [string, typeof ky1, "prefixUrl" | "prefix"][] = [["ky 1", ky1, "prefixUrl"]];
if (nodeMajor >= 22) {
  versions.push(["ky 2", (await import("ky2")).default as unknown as typeof ky1, "prefix"]);
}

const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");
const dir = mkdtempSync(join(tmpdir(), "sc_ky-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** Where the cache lives: a Map, a SQLite file and Redis (skipped loudly when down, failing in CI). */
const stores: { label: string; where: () => { store?: Map<string, unknown>; url?: string } }[] = [
  { label: "a Map", where: () => ({ store: new Map() }) },
  { label: "SQLite", where: () => ({ url: `sqlite://${join(dir, "ky.sqlite")}` }) },
  ...(backendOrSkip(redis, "withCache(ky) on Redis")
    ? [{ label: "Redis", where: () => ({ url: redis.url }) }]
    : []),
];

let server: Server;
let base: string;
const hits = new Map<string, number>();
beforeAll(async () => {
  let flaky = 0;
  server = createServer((request, response) => {
    const path = request.url ?? "/";
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path.startsWith("/flaky")) {
      // Fails once, then answers: ky's retry must still happen through the cache.
      if (flaky++ % 2 === 0) return void response.writeHead(503).end("busy");
    }
    if (path.startsWith("/slow")) {
      setTimeout(() => response.writeHead(200).end("late"), 500);
      return;
    }
    response.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=60" });
    response.end(JSON.stringify({ path }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const cases = versions.map(([name, ky, prefixOption]) => ({ name, ky, prefixOption }));

describe.each(cases)("withCache on $name", ({ name, ky, prefixOption }) => {
  const at = () => ({ [prefixOption]: base }) as { prefixUrl: string };
  const unique = (path: string) =>
    `${path}-${name.replace(" ", "")}-${Math.random().toString(36).slice(2)}`;

  it.each(stores)(
    "caches through the instance on $label, keeping its prefix and hooks",
    async ({ where }) => {
      const seen: string[] = [];
      const api = withCache(
        ky.create({
          ...at(),
          hooks: {
            beforeRequest: [() => void seen.push("before")],
            // ky 1 passes (request, options, response); ky 2 one state object.
            afterResponse: [
              (...args: unknown[]) => {
                const response = (args[2] ??
                  (args[0] as { response: Response }).response) as Response;
                seen.push(`after ${response.headers.get("x-signed-cache")}`);
              },
            ],
          },
        }),
        SECRET,
        { ...where(), namespace: `ky_${process.pid}_${Math.random().toString(36).slice(2)}` },
      );
      const path = unique("/json");
      expect(await api.get(path.slice(1)).json()).toEqual({ path });
      expect(await api.get(path.slice(1)).json()).toEqual({ path });
      expect(hits.get(path)).toBe(1);
      expect(seen).toEqual(["before", "after miss", "before", "after hit"]);
      await api.cache.keyv.clear();
      await api.cache.close();
    },
  );

  it("still retries a failed request, and caches the answer that came", async () => {
    const api = withCache(ky.create({ ...at(), retry: { limit: 2, delay: () => 10 } }), SECRET, {
      store: new Map(),
    });
    const path = unique("/flaky");
    expect(await api.get(path.slice(1)).json()).toEqual({ path });
    expect(hits.get(path)).toBe(2);
    expect(await api.get(path.slice(1)).json()).toEqual({ path });
    expect(hits.get(path)).toBe(2);
    await api.cache.close();
  });

  it("keeps the instance's timeout, and its own fetch sends the requests", async () => {
    let sent = 0;
    const api = withCache(
      ky.create({
        ...at(),
        timeout: 100,
        retry: 0,
        fetch: (input, init) => {
          sent++;
          return fetch(input, init);
        },
      }),
      SECRET,
      { store: new Map() },
    );
    await expect(api.get(unique("/slow").slice(1)).text()).rejects.toThrow(/timed out/i);
    const path = unique("/json");
    await api.get(path.slice(1)).json();
    await api.get(path.slice(1)).json();
    expect(sent).toBe(2);
    await api.cache.close();
  });

  it("rejects a tampered entry in strict mode, and refetches it in lax mode", async () => {
    const store = new Map<string, unknown>();
    const invalid: unknown[] = [];
    const lax = withCache(ky.create(at()), SECRET, {
      store,
      onInvalid: (error) => invalid.push(error),
    });
    const path = unique("/json");
    await lax.get(path.slice(1)).json();
    for (const [key, value] of store) {
      if (typeof value === "string" && value.includes("fetch"))
        store.set(
          key,
          value.replace(/.$/, (c) => (c === "A" ? "B" : "A")),
        );
    }
    const strict = withCache(ky.create(at()), SECRET, { store, strict: true });
    await expect(strict.get(path.slice(1)).json()).rejects.toBeInstanceOf(BadSignature);
    expect(await lax.get(path.slice(1)).json()).toEqual({ path });
    expect(invalid.length).toBeGreaterThan(0);
    expect(hits.get(path)).toBe(2);
    await lax.cache.close();
    await strict.cache.close();
  });
});
