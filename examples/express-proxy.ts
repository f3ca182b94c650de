/**
 * A small service that caches an upstream API through setupCache: `GET /users/:id` answers from
 * the signed cache when it can, with an `x-cache: HIT` or `MISS` header. Built on node:http;
 * the same two lines work inside an Express or Fastify handler.
 *
 *   SIGNED_CACHE_SECRET=… UPSTREAM_URL=https://api.example.com PORT=3000 npx tsx examples/express-proxy.ts
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import Axios from "axios";
import { generateSecret } from "signed-cache";
import { setupCache } from "signed-cache/axios";
import { startLocalApi } from "./local-api.ts";

// Without UPSTREAM_URL, a local stand-in API plays the upstream.
const local = process.env.UPSTREAM_URL ? undefined : await startLocalApi();
const upstream = setupCache(
  Axios.create({ baseURL: process.env.UPSTREAM_URL ?? local?.url, timeout: 10_000 }),
  process.env.SIGNED_CACHE_SECRET ?? generateSecret(),
  { store: process.env.SIGNED_CACHE_URL ?? "memory://", onError: console.error },
);

const server = createServer(async (req, res) => {
  const match = /^\/users\/(\d+)$/.exec(req.url ?? "");
  if (req.method !== "GET" || !match) {
    res.writeHead(404).end();
    return;
  }
  try {
    const response = await upstream.get(`/users/${match[1]}`);
    res.writeHead(200, {
      "content-type": "application/json",
      "x-cache": response.cached ? "HIT" : "MISS",
    });
    res.end(JSON.stringify(response.data));
  } catch (error) {
    // A tampered entry in strict mode, or the upstream failing: never pass the details on.
    console.error(error);
    res.writeHead(502).end();
  }
});

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${port}`);
});

process.once("SIGTERM", () => {
  server.close();
  void upstream.storage.keyv.disconnect();
  void local?.close();
});
