/**
 * Several processes sharing one signed cache on Redis: whatever one of them fetched, the others
 * read, and nobody with access to Redis alone can plant a response they would trust.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 SIGNED_CACHE_SECRET=… npx tsx examples/axios-redis.ts
 */
import Axios from "axios";
import { generateSecret } from "signed-cache";
import { setupCache } from "signed-cache/axios";
import { startLocalApi } from "./local-api.ts";

const redis = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const secret = process.env.SIGNED_CACHE_SECRET ?? generateSecret();
const api = await startLocalApi();

// Two instances stand in for two processes: same Redis, same secret, same namespace.
const options = { store: redis, namespace: "sc_axios_example", onError: console.error };
const web = setupCache(Axios.create({ baseURL: api.url }), secret, options);
const worker = setupCache(Axios.create({ baseURL: api.url }), secret, options);

const fetched = await web.get("/users/7");
const shared = await worker.get("/users/7");
console.log(`web:    cached=${fetched.cached}`, fetched.data);
console.log(`worker: cached=${shared.cached} (read what web stored in Redis)`);
console.log(`the API was called ${api.hits()} time(s)`);

await web.storage.clear();
await Promise.all([web.storage.keyv.disconnect(), worker.storage.keyv.disconnect()]);
await api.close();
