/**
 * npm run demo — a signed Keyv cache on a local SQLite file: a hit, then an entry planted with
 * another key, rejected in lax mode (a miss) and in strict mode (BadSignature).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import KeyvSqlite from "@keyv/sqlite";
import Keyv from "keyv";
import pc from "picocolors";
import { BadSignature, generateSecret, signedStore } from "signed-cache";

const URL_KEY = "GET https://api.example/users/42";
const secret = process.env.SIGNED_CACHE_SECRET ?? generateSecret();
const file = join(mkdtempSync(join(tmpdir(), "signed-cache-demo-")), "http_cache.sqlite");
const step = (text: string) => console.log(`\n${pc.bold(pc.cyan("▸"))} ${pc.bold(text)}`);

const backend = new KeyvSqlite(`sqlite://${file}`);
const cache = new Keyv({ store: signedStore(backend, secret), namespace: "demo" });

step(`Cache a response in ${pc.dim(file)}`);
await cache.set(URL_KEY, { status: 200, data: { id: 42, role: "user" } });
const started = performance.now();
const hit = await cache.get(URL_KEY);
console.log(`  cache hit in ${(performance.now() - started).toFixed(2)} ms:`, hit);

const stored = String(await backend.get(`demo:${URL_KEY}`));
step("What the store holds: a signed envelope");
console.log(`  ${pc.dim(`${stored.slice(0, 96)}…`)}`);

step("Someone with write access plants an entry signed with another key");
const forged = new Map<string, unknown>();
await new Keyv({ store: signedStore(forged, generateSecret()), namespace: "demo" }).set(URL_KEY, {
  status: 200,
  data: { id: 42, role: "admin" },
});
const planted = String(forged.get(`demo:${URL_KEY}`));
await backend.set(`demo:${URL_KEY}`, planted);
console.log(`  ${pc.dim(`${planted.slice(0, 96)}…`)}`);

step("Strict read: rejected with BadSignature");
const strict = new Keyv({
  store: signedStore(new KeyvSqlite(`sqlite://${file}`), secret, { strict: true }),
  namespace: "demo",
  throwOnErrors: true,
});
try {
  await strict.get(URL_KEY);
  console.log(pc.red("  accepted — this must never happen"));
  process.exitCode = 1;
} catch (error) {
  if (!(error instanceof BadSignature)) throw error;
  console.log(
    `  ${pc.red(error.name)} ${pc.dim(`(${error.code}, reason: ${error.reason})`)}: ${error.message}`,
  );
}

step("Lax read (the default): a miss, the planted entry deleted, onInvalid told");
const lax = new Keyv({
  store: signedStore(new KeyvSqlite(`sqlite://${file}`), secret, {
    onInvalid: (error) =>
      console.log(`  ${pc.yellow("onInvalid")}: ${error.name} (${(error as BadSignature).reason})`),
  }),
  namespace: "demo",
});
console.log("  value:", await lax.get(URL_KEY), pc.green("→ refetch from the origin"));

await Promise.all([cache.disconnect(), strict.disconnect(), lax.disconnect()]);
