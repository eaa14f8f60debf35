// Admin HTTP on loopback (DESIGN §2): `/status` JSON, `/metrics` Prometheus text, `/` a status page.
import type { Server } from "bun";
import { parseAddress } from "../contracts/index.ts";
import { ConfigError, errorLine } from "../errors.ts";
import { PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from "../contracts/index.ts";
import type { Service } from "../contracts/index.ts";
import statusPageText from "./status-page.html" with { type: "text" };

// bun-types declares *.html imports as HTML bundles; with { type: "text" } it is the file's text.
const statusPage = statusPageText as unknown as string;

export interface AdminComponents {
  /** The node's status as plain JSON-able data. */
  status: () => Record<string, unknown>;
  /** Rendered on every GET /metrics. */
  metrics: Pick<MetricsRegistry, "render">;
  /** Samplers behind /metrics (the event-loop lag): they run while the endpoint serves, as nobody reads them otherwise. */
  samplers?: readonly { start(): void; stop(): void }[];
}

export interface AdminEndpoint {
  readonly url: string;
  stop(): Promise<void>;
}

/** True when a request's Host header names this loopback endpoint: a loopback IP literal or "localhost", with
 *  our port or none. A page on another origin that re-points its own name at 127.0.0.1 (DNS rebinding) sends
 *  its own name as Host, so it cannot read /status. No header at all (HTTP/1.0 tools) is not a browser. */
export function isAdminHost(host: string | null, port: number): boolean {
  if (host === null) return true;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(\d+))?$/.exec(host.trim());
  if (!m) return false;
  if (m[2] !== undefined && Number(m[2]) !== port) return false;
  const name = m[1]!.toLowerCase();
  return name === "localhost" || name === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** Starts the admin server on `addr` ("127.0.0.1:7789"). Refuses non-loopback addresses: the
 *  status shows peers and bans and has no authentication. Throws when the port is taken. */
export function startAdmin(components: AdminComponents, addr: string): AdminEndpoint {
  const { ip, port } = parseAddress(addr, "admin", { allowPortZero: true });
  if (!(ip.startsWith("127.") || ip === "::1")) throw new Error(`Cannot serve admin on ${addr}: only loopback addresses are allowed`);
  let server: Server<undefined>;
  try {
    server = Bun.serve({
      hostname: ip,
      port,
      fetch(req) {
        if (!isAdminHost(req.headers.get("host"), server.port ?? port)) return new Response("misdirected request: the admin endpoint answers only to a loopback Host\n", { status: 421 });
        const path = new URL(req.url).pathname;
        if (req.method !== "GET") return new Response("method not allowed\n", { status: 405 });
        if (path === "/status") return Response.json(components.status(), { headers: { "cache-control": "no-store" } });
        if (path === "/metrics") return new Response(components.metrics.render(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
        if (path === "/") return new Response(statusPage, { headers: { "content-type": "text/html; charset=utf-8" } });
        return new Response("not found\n", { status: 404 });
      },
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new ConfigError("admin", `cannot listen on ${addr}: ${code ?? errorLine(err)}`);
  }
  const host = ip.includes(":") ? `[${ip}]` : ip;
  return {
    url: `http://${host}:${server.port}`,
    stop: async () => {
      await server.stop(true);
    },
  };
}

/** The admin endpoint as a Service for the node's list; `url` is set while it runs. */
export function createAdminService(components: AdminComponents, addr: string): Service & { readonly url: string | undefined } {
  let endpoint: AdminEndpoint | undefined;
  return {
    name: "admin",
    get url() {
      return endpoint?.url;
    },
    async start() {
      if (endpoint) return;
      endpoint = startAdmin(components, addr);
      for (const s of components.samplers ?? []) s.start();
    },
    async stop() {
      const e = endpoint;
      endpoint = undefined;
      for (const s of components.samplers ?? []) s.stop();
      await e?.stop();
    },
  };
}
