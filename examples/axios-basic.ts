/**
 * The everyday setup: a signed HTTP cache for axios, configured from the environment.
 * SIGNED_CACHE_SECRET signs entries; SIGNED_CACHE_URL picks the store (default: the embedded
 * SQLite file http_cache.sqlite in the working directory).
 *
 *   SIGNED_CACHE_SECRET=$(npx signed-cache keygen) npx tsx examples/axios-basic.ts
 */
import Axios from "axios";
import { generateSecret } from "signed-cache";
import { setupCache } from "signed-cache/axios";
import { startLocalApi } from "./local-api.ts";

if (!process.env.SIGNED_CACHE_SECRET) {
  console.log("SIGNED_CACHE_SECRET is not set: using a throwaway secret for this run");
  process.env.SIGNED_CACHE_SECRET = generateSecret();
}

const api = await startLocalApi();
const axios = setupCache(Axios.create({ baseURL: api.url }), process.env.SIGNED_CACHE_SECRET);

const first = await axios.get("/users/42");
const second = await axios.get("/users/42");
console.log(`first:  cached=${first.cached}`, first.data);
console.log(`second: cached=${second.cached}`, second.data);
console.log(`the API was called ${api.hits()} time(s)`);

await axios.storage.keyv.disconnect();
await api.close();
