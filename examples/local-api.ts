/**
 * A stand-in for a remote JSON API, on 127.0.0.1, so that every example runs offline.
 * `GET /users/<id>` answers `{ id, name, fetchedAt }`, cacheable for 60 s.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface LocalApi {
  url: string;
  /** Requests that reached the API: cache hits never do. */
  hits: () => number;
  close: () => Promise<void>;
}

export async function startLocalApi(): Promise<LocalApi> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    const id = Number(req.url?.split("/")[2] ?? 0);
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=60" });
    res.end(JSON.stringify({ id, name: `user ${id}`, role: "user", fetchedAt: Date.now() }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
