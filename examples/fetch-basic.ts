/**
 * A signed HTTP cache for fetch, configured from the environment. SIGNED_CACHE_SECRET signs
 * entries; SIGNED_CACHE_URL picks the store (default: the embedded SQLite file
 * http_cache.sqlite in the working directory).
 *
 *   SIGNED_CACHE_SECRET=$(npx signed-cache keygen) npx tsx examples/fetch-basic.ts
 */
import { generateSecret } from "signed-cache";
import { createCachedFetch } from "signed-cache/fetch";
import { startLocalApi } from "./local-api.ts";

if (!process.env.SIGNED_CACHE_SECRET) {
  console.log("SIGNED_CACHE_SECRET is not set: using a throwaway secret for this run");
  process.env.SIGNED_CACHE_SECRET = generateSecret();
}

const api = await startLocalApi();
const cachedFetch = createCachedFetch();

// A unique path per run: the SQLite file outlives the run, and the API's port changes anyway.
const url = `${api.url}/users/${process.pid}`;
const first = await cachedFetch(url);
console.log(`first:  x-signed-cache=${first.headers.get("x-signed-cache")}`, await first.json());
const second = await cachedFetch(url);
console.log(`second: x-signed-cache=${second.headers.get("x-signed-cache")}`, await second.json());
console.log(`the API was called ${api.hits()} time(s)`);

await cachedFetch.close(); // closes the store's connections
await api.close();
