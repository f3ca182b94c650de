/**
 * A signed HTTP cache for a ky instance, configured from the environment. The instance keeps
 * its prefix URL, hooks and retries; SIGNED_CACHE_SECRET signs entries; SIGNED_CACHE_URL picks
 * the store (default: the embedded SQLite file http_cache.sqlite in the working directory).
 *
 *   SIGNED_CACHE_SECRET=$(npx signed-cache keygen) npx tsx examples/ky-basic.ts
 */
import ky from "ky";
import { generateSecret } from "signed-cache";
import { withCache } from "signed-cache/ky";
import { startLocalApi } from "./local-api.ts";

if (!process.env.SIGNED_CACHE_SECRET) {
  console.log("SIGNED_CACHE_SECRET is not set: using a throwaway secret for this run");
  process.env.SIGNED_CACHE_SECRET = generateSecret();
}

const localApi = await startLocalApi();
const api = withCache(
  ky.create({
    prefixUrl: localApi.url,
    hooks: {
      afterResponse: [
        (_request, _options, response) => {
          console.log(`  hook saw x-signed-cache=${response.headers.get("x-signed-cache")}`);
        },
      ],
    },
  }),
);

// A unique path per run: the SQLite file outlives the run, and the API's port changes anyway.
const path = `users/${process.pid}`;
console.log("first:", await api.get(path).json());
console.log("second:", await api.get(path).json());
console.log(`the API was called ${localApi.hits()} time(s)`);

await api.cache.close(); // closes the store's connections
await localApi.close();
