/**
 * A programmable HTTP origin on 127.0.0.1 for the fetch cache's tests: each test registers the
 * handler of its own unique path, and reads back what reached it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What a handler is told: the request, and how many requests reached its path (this one included). */
export type Handler = (req: IncomingMessage, res: ServerResponse, count: number) => void;

export interface FetchOrigin {
  readonly url: string;
  /** Registers `handler` for `path`; returns the absolute URL of it. */
  route(path: string, handler: Handler): string;
  /** Requests that reached `path`. */
  hits(path: string): number;
  /** The request headers each request to `path` carried, in order. */
  seen(path: string): IncomingMessage["headers"][];
  close(): Promise<void>;
}

export async function startFetchOrigin(): Promise<FetchOrigin> {
  const handlers = new Map<string, Handler>();
  const requests = new Map<string, IncomingMessage["headers"][]>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const list = requests.get(path) ?? [];
    list.push(req.headers);
    requests.set(path, list);
    const handler = handlers.get(path);
    if (handler === undefined) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("no such route");
      return;
    }
    handler(req, res, list.length);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    route(path, handler) {
      handlers.set(path, handler);
      return `${url}${path}`;
    },
    hits: (path) => requests.get(path)?.length ?? 0,
    seen: (path) => requests.get(path) ?? [],
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
