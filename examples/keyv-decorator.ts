/**
 * Signing any Keyv store, without HTTP: wrap the adapter with signedStore and use Keyv as usual.
 * A value altered in the store is a miss (or, in strict mode, a BadSignature).
 */
import Keyv from "keyv";
import { generateSecret, signedStore } from "signed-cache";

const backend = new Map<string, unknown>(); // or new KeyvRedis(url), new KeyvSqlite(uri)…
const cache = new Keyv({ store: signedStore(backend, generateSecret()), namespace: "app" });

await cache.set("user:42", { role: "user" }, 60_000);
console.log("read back:", await cache.get("user:42"));
console.log("stored as:", backend.get("app:user:42"));

// Someone edits the stored value directly.
const envelope = String(backend.get("app:user:42"));
backend.set("app:user:42", envelope.replace('"role":"user"', '"role":"admin"'));
console.log("after tampering:", await cache.get("user:42"), "(rejected: a miss)");
