import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the origin received. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

/**
 * A real HTTP origin on 127.0.0.1 with a few routes that exercise HTTP caching:
 *
 * - `GET /json/<name>`   200 JSON `{ name, hit }`, `Cache-Control: max-age=60`
 * - `GET /etag/<name>`   `ETag`, `max-age=0`; 304 on a matching `If-None-Match`
 * - `GET /lm/<name>`     `Last-Modified`, `max-age=0`; 304 on `If-Modified-Since`
 * - `GET /no-store/<n>`  `Cache-Control: no-store`
 * - `GET /flaky/<name>`  like `/etag`, but 500 while `origin.failing` is true
 * - `GET /gate/<name>`   the first request answers only once `origin.open(path)` is called;
 *                        later ones answer at once
 * - `GET /slow/<name>`   answers after `?ms=` milliseconds
 * - `POST /json/<name>`  200 JSON, never cacheable by default
 */
export interface Origin {
  readonly url: string;
  readonly requests: SeenRequest[];
  /** While true, `/flaky/*` answers 500. */
  failing: boolean;
  /** Number of requests that reached `path` (no query string). */
  hits(path: string): number;
  /** Number of 304 responses sent. */
  notModified(): number;
  /** Resolves when a request for `path` is waiting at the gate. */
  arrived(path: string): Promise<void>;
  /** Lets waiting and future requests for `path` through. */
  open(path: string): void;
  close(): Promise<void>;
}

const ETAG = '"v1"';
const LAST_MODIFIED = new Date(Date.UTC(2024, 0, 1)).toUTCString();

export async function startOrigin(): Promise<Origin> {
  const requests: SeenRequest[] = [];
  const gates = new Map<string, { opened: boolean; waiting: (() => void)[] }>();
  const arrivals = new Map<string, (() => void)[]>();
  let notModified = 0;

  const gate = (path: string) => {
    let entry = gates.get(path);
    if (!entry) {
      entry = { opened: false, waiting: [] };
      gates.set(path, entry);
    }
    return entry;
  };

  const json = (res: ServerResponse, status: number, body: unknown, headers = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const path = url.pathname;
    requests.push({ method: req.method ?? "GET", path, headers: req.headers });
    const hit = requests.filter((seen) => seen.path === path).length;
    const name = path.split("/")[2] ?? "";
    const route = path.split("/")[1];

    if (req.method === "POST") return json(res, 200, { name, hit, posted: true });
    if (route === "json") return json(res, 200, { name, hit }, { "cache-control": "max-age=60" });
    if (route === "no-store") return json(res, 200, { name, hit }, { "cache-control": "no-store" });
    if (route === "etag" || (route === "flaky" && !origin.failing)) {
      if (req.headers["if-none-match"] === ETAG) {
        notModified++;
        res.writeHead(304, { etag: ETAG, "cache-control": "max-age=0" });
        return res.end();
      }
      return json(res, 200, { name, hit }, { etag: ETAG, "cache-control": "max-age=0" });
    }
    if (route === "flaky") return json(res, 500, { error: "origin down" });
    if (route === "lm") {
      if (req.headers["if-modified-since"] === LAST_MODIFIED) {
        notModified++;
        res.writeHead(304, { "last-modified": LAST_MODIFIED, "cache-control": "max-age=0" });
        return res.end();
      }
      return json(
        res,
        200,
        { name, hit },
        { "last-modified": LAST_MODIFIED, "cache-control": "max-age=0" },
      );
    }
    if (route === "slow") {
      const ms = Math.min(Number(url.searchParams.get("ms") ?? 100), 5_000);
      setTimeout(() => json(res, 200, { name, hit }, { "cache-control": "max-age=60" }), ms);
      return;
    }
    if (route === "gate") {
      const entry = gate(path);
      const reply = () => json(res, 200, { name, hit }, { "cache-control": "max-age=60" });
      if (entry.opened || hit > 1) return reply();
      entry.waiting.push(reply);
      for (const notify of arrivals.get(path) ?? []) notify();
      arrivals.delete(path);
      return;
    }
    json(res, 404, { error: "no such route" });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  const origin: Origin = {
    url: `http://127.0.0.1:${port}`,
    requests,
    failing: false,
    hits: (path) => requests.filter((seen) => seen.path === path).length,
    notModified: () => notModified,
    arrived(path) {
      if (gate(path).waiting.length > 0) return Promise.resolve();
      return new Promise((resolve) => {
        arrivals.set(path, [...(arrivals.get(path) ?? []), resolve]);
      });
    },
    open(path) {
      const entry = gate(path);
      entry.opened = true;
      for (const reply of entry.waiting.splice(0)) reply();
    },
    close() {
      for (const entry of gates.values()) for (const reply of entry.waiting.splice(0)) reply();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return origin;
}
