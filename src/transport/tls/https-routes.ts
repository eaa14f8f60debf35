// The HTTP route table of the TLS port (DESIGN §2: HTTP/2 and HTTP/1.1 on the same port as the
// mesh WebSocket). One table serves both versions through node:http2's compatibility API.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { remoteOf, type HostPort } from "../../contracts/index.ts";
import { silentLogger, type Logger } from "../../contracts/index.ts";

export type HeaderBag = Record<string, string | string[] | undefined>;

export interface HttpRequestInfo {
  readonly method: string;
  /** Path without the query. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** The client as seen on the socket (IPv4-mapped IPv6 shown as IPv4). */
  readonly remote: HostPort;
  /** "2.0" or "1.1". */
  readonly httpVersion: string;
  readonly headers: HeaderBag;
  /** Request body (empty for GET and HEAD), at most the table's maxBodyBytes. */
  readonly body: Uint8Array;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array;
}

export type HttpHandler = (req: HttpRequestInfo) => HttpAnswer | Promise<HttpAnswer>;

export interface HttpRouteTable {
  /** Adds a route for an exact path ("/whoami"); a second add for the same method and path replaces it. */
  add(method: string, path: string, handler: HttpHandler): void;
  remove(method: string, path: string): void;
}

type AnyRequest = Http2ServerRequest | IncomingMessage;
type AnyResponse = Http2ServerResponse | ServerResponse;

export interface HttpRouter extends HttpRouteTable {
  /** Answers one request; never throws, whatever the request holds. */
  serve(req: AnyRequest, res: AnyResponse): void;
}

/** Longest request target we look at; longer targets get 414. */
const MAX_URL_CHARS = 2048;

export function jsonAnswer(status: number, value: unknown): HttpAnswer {
  return { status, headers: { "content-type": "application/json" }, body: `${JSON.stringify(value)}\n` };
}

export function createHttpRouter(init: { maxBodyBytes: number; log?: Logger }): HttpRouter {
  const log = init.log ?? silentLogger;
  const routes = new Map<string, Map<string, HttpHandler>>();

  function send(res: AnyResponse, answer: HttpAnswer): void {
    if (res.headersSent || res.writableEnded) return;
    const body = answer.body ?? "";
    const headers: Record<string, string | number> = {
      "cache-control": "no-store",
      "content-length": typeof body === "string" ? Buffer.byteLength(body) : body.length,
      ...answer.headers,
    };
    (res as ServerResponse).writeHead(answer.status, headers);
    (res as ServerResponse).end(body);
  }

  async function serveAsync(req: AnyRequest, res: AnyResponse): Promise<void> {
    const target = req.url ?? "/";
    if (target.length > MAX_URL_CHARS) return send(res, jsonAnswer(414, { error: "request target too long" }));
    let url: URL;
    try {
      url = new URL(target, "https://findings.invalid");
    } catch {
      return send(res, jsonAnswer(400, { error: "bad request target" }));
    }
    const byMethod = routes.get(url.pathname);
    if (!byMethod) return send(res, jsonAnswer(404, { error: "not found" }));
    const method = (req.method ?? "GET").toUpperCase();
    const handler = byMethod.get(method);
    if (!handler) {
      const answer = jsonAnswer(405, { error: "method not allowed" });
      return send(res, { ...answer, headers: { ...answer.headers, allow: [...byMethod.keys()].join(", ") } });
    }
    let body: Uint8Array = new Uint8Array(0);
    if (method !== "GET" && method !== "HEAD") {
      const read = await readBody(req, init.maxBodyBytes);
      if (read === "too-large") return send(res, jsonAnswer(413, { error: `body over ${init.maxBodyBytes} bytes` }));
      body = read;
    }
    const info: HttpRequestInfo = {
      method,
      path: url.pathname,
      query: url.searchParams,
      remote: remoteOf(req.socket),
      httpVersion: req.httpVersion,
      headers: req.headers as HeaderBag,
      body,
    };
    send(res, await handler(info));
  }

  return {
    add(method, path, handler) {
      const m = routes.get(path) ?? new Map<string, HttpHandler>();
      m.set(method.toUpperCase(), handler);
      routes.set(path, m);
    },
    remove(method, path) {
      routes.get(path)?.delete(method.toUpperCase());
      if (routes.get(path)?.size === 0) routes.delete(path);
    },
    serve(req, res) {
      serveAsync(req, res).catch((err) => {
        log.warn("http handler failed", { path: req.url, error: err instanceof Error ? err.message : String(err) });
        try {
          send(res, jsonAnswer(500, { error: "internal error" }));
        } catch {
          // The stream is already gone; nothing left to answer.
        }
      });
    },
  };
}

/** Reads a request body up to `limit` bytes; the declared length is checked before reading. */
function readBody(req: AnyRequest, limit: number): Promise<Uint8Array | "too-large"> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) return Promise.resolve("too-large");
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners("data");
        resolve("too-large");
        return;
      }
      parts.push(c);
    });
    req.on("end", () => resolve(new Uint8Array(Buffer.concat(parts))));
    req.on("error", reject);
  });
}
