// The app bootstrap (seed 001 §从应用端的连接, 7 steps) over WSS: for apps whose UDP is blocked, the same
// flow as over QUIC (src/transport/app-bootstrap/bootstrap.ts) on the node's TLS port. Client dialer and node handlers.
import { appBootstrapRoutes, type AppBootstrapComponents } from "./handlers.ts";
import type { BootstrapDialer } from "./bootstrap.ts";
import { dialWss } from "../ws/client.ts";
import { MESH_PATH } from "../../mesh/index.ts";
import { createMeshLink, type MeshLink } from "../../mesh/index.ts";
import type { MeshLinks } from "../../mesh/index.ts";
import type { Logger } from "../../contracts/index.ts";

/** A dialer of standalone WSS links for apps (no TLS listener of their own, no client certificate). */
export function wssAppDialer(opts: { log?: Logger } = {}): BootstrapDialer<MeshLink> {
  return {
    async dial(addr, d = {}) {
      const { conn, peerSpki } = await dialWss(addr, { path: MESH_PATH, pinSpki: d.pinSpki, timeoutMs: d.timeoutMs, signal: d.signal, log: opts.log });
      return createMeshLink(conn, {
        direction: "out",
        trust: d.pinSpki ? "pinned" : "untrusted",
        remote: addr,
        peerKey: d.peerKey ?? null,
        peerSpki,
        log: opts.log,
      });
    },
  };
}

/** Serves whoami, app.hello and app.bind on the node's WSS links (untrusted links included: that is where an
 *  app starts). A bound link becomes "pinned" with the app's key. Returns the disposer of the routes. */
export function serveAppBootstrapOverWss(components: { links: Pick<MeshLinks, "router"> } & AppBootstrapComponents): () => void {
  return components.links.router.addAll(appBootstrapRoutes(components, ["wss"]));
}
