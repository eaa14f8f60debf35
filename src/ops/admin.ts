// Admin HTTP on loopback (DESIGN §2): `/status` JSON, `/metrics` Prometheus text, `/` a status page.
import type { Server } from "bun";
import { parseAddress } from "../contracts/address.ts";
import statusPageText from "./status-page.html" with { type: "text" };

// bun-types declares *.html imports as HTML bundles; with { type: "text" } it is the file's text.
const statusPage = statusPageText as unknown as string;

export interface AdminComponents {
  /** The node's status as plain JSON-able data. */
  status: () => Record<string, unknown>;
  /** Flat counters, e.g. { "quic_connections": 3, "stun_binding_answered": 10 }. */
  counters: () => Record<string, number>;
}

export interface AdminEndpoint {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts the admin server on `addr` ("127.0.0.1:7789"). Refuses non-loopback addresses: the
 *  status shows peers and bans and has no authentication. */
export function startAdmin(components: AdminComponents, addr: string): AdminEndpoint {
  const { ip, port } = parseAddress(addr, "admin", { allowPortZero: true });
  if (!(ip.startsWith("127.") || ip === "::1")) throw new Error(`Cannot serve admin on ${addr}: only loopback addresses are allowed`);
  const server: Server<undefined> = Bun.serve({
    hostname: ip,
    port,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (req.method !== "GET") return new Response("method not allowed\n", { status: 405 });
      if (path === "/status") return Response.json(components.status(), { headers: { "cache-control": "no-store" } });
      if (path === "/metrics") return new Response(toPrometheus(components.counters()), { headers: { "content-type": "text/plain; version=0.0.4" } });
      if (path === "/") return new Response(statusPage, { headers: { "content-type": "text/html; charset=utf-8" } });
      return new Response("not found\n", { status: 404 });
    },
  });
  const host = ip.includes(":") ? `[${ip}]` : ip;
  return {
    url: `http://${host}:${server.port}`,
    stop: async () => {
      await server.stop(true);
    },
  };
}

export function toPrometheus(counters: Record<string, number>): string {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(counters)) {
    const metric = `findings_${name.replace(/[^a-zA-Z0-9_]/g, "_")}`;
    lines.push(`# TYPE ${metric} gauge`, `${metric} ${Number.isFinite(value) ? value : 0}`);
  }
  return lines.join("\n") + "\n";
}
