/**
 * npm run demo — a signed HTTP cache for axios on a local SQLite file, end to end: a miss and a
 * hit, the envelope the store holds, then an entry planted with another key, caught in lax mode
 * (refetched) and in strict mode (BadSignature).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Axios from "axios";
import pc from "picocolors";
import { BadSignature, generateSecret, type SignedStore } from "signed-cache";
import { type SignedAxiosCacheInstance, setupCache } from "signed-cache/axios";
import { startLocalApi } from "./local-api.ts";

const secret = process.env.SIGNED_CACHE_SECRET ?? generateSecret();
const dir = mkdtempSync(join(tmpdir(), "signed-cache-demo-"));
const store = `sqlite://${join(dir, "http_cache.sqlite")}`;
const namespace = "demo";
const api = await startLocalApi();
const opened: SignedAxiosCacheInstance[] = [];

const step = (text: string) => console.log(`\n${pc.bold(pc.cyan("▸"))} ${pc.bold(text)}`);
const ms = (started: number) => pc.dim(`${(performance.now() - started).toFixed(1)} ms`);

function client(key: string, options: Parameters<typeof setupCache>[2] = {}) {
  const axios = setupCache(Axios.create({ baseURL: api.url }), key, {
    store,
    namespace,
    ...options,
  });
  opened.push(axios);
  return axios;
}

/** What someone with write access to the store, but not the secret, can do. */
async function plantForgery(id: string) {
  const attacker = client(generateSecret());
  await attacker.storage.set(id, {
    state: "cached",
    ttl: 60_000,
    createdAt: Date.now(),
    data: {
      status: 200,
      statusText: "OK",
      headers: { "content-type": "application/json" },
      data: { id: 42, name: "user 42", role: "admin" },
    },
  });
}

try {
  step(`GET /users/42 twice, cached in ${pc.dim(store)}`);
  const axios = client(secret);
  let started = performance.now();
  const miss = await axios.get("/users/42");
  console.log(`  1st: ${pc.yellow("miss")} → origin  ${ms(started)}`, miss.data);
  started = performance.now();
  const hit = await axios.get("/users/42");
  console.log(`  2nd: ${pc.green("hit")}  → cache   ${ms(started)}`, hit.data);

  step("What the store holds: a signed envelope");
  const backend = (axios.storage.keyv.store as SignedStore).backend as Map<string, unknown>;
  const envelope = String(await backend.get(`${namespace}:${hit.id}`));
  console.log(`  ${pc.dim(`${envelope.slice(0, 120)}…`)}`);

  step("Someone rewrites the entry, signed with a different key: role → admin");
  await plantForgery(hit.id);

  step("Lax read (the default): detected, refetched from the origin");
  const lax = client(secret, {
    onInvalid: (error) =>
      console.log(`  ${pc.yellow("onInvalid")}: ${error.name} (${(error as BadSignature).reason})`),
  });
  const refetched = await lax.get("/users/42");
  console.log(`  cached=${refetched.cached}, role=${pc.green(refetched.data.role)}`);

  step("Strict read: the request rejects with BadSignature");
  await plantForgery(hit.id);
  try {
    await client(secret, { strict: true }).get("/users/42");
    console.log(pc.red("  accepted — this must never happen"));
    process.exitCode = 1;
  } catch (error) {
    if (!(error instanceof BadSignature)) throw error;
    console.log(`  ${pc.red(error.name)} ${pc.dim(`(${error.code}, reason: ${error.reason})`)}`);
  }
} finally {
  await Promise.all(opened.map((axios) => axios.storage.keyv.disconnect()));
  await api.close();
  rmSync(dir, { recursive: true, force: true });
}
