// The app bootstrap (seed 001 §从应用端的连接, 7 steps) over WSS: for apps whose UDP is blocked, the same
// flow as over QUIC (src/transport/app-bootstrap/bootstrap.ts) on the node's TLS port. Client dialer and node handlers.
import { unmapIp } from "../../contracts/address.ts";
import { APP_BIND_METHOD, APP_HELLO_METHOD, createAppBootstrapHandlers } from "./handlers.ts";
import type { BootstrapDialer } from "./bootstrap.ts";
import type { RunCertificate } from "../../identity/certificate.ts";
import type { NodeKey } from "../../identity/node-key.ts";
import type { RequestContext } from "../quic/rpc.ts";
import { dialWss } from "../ws/client.ts";
import { MESH_PATH } from "../../mesh/link-constants.ts";
import { createMeshLink, type MeshLink } from "../../mesh/link.ts";
import type { MeshLinks } from "../../mesh/link-service.ts";
import type { Logger } from "../../contracts/logger.ts";

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

/** Serves app.hello and app.bind on the node's WSS links (untrusted links included: that is where an app
 *  starts). Returns the app key of a bound link, for services that admit only bootstrapped apps. */
export function serveAppBootstrapOverWss(components: { links: MeshLinks; nodeKey: NodeKey; cert: RunCertificate }): { appKeyOf(link: MeshLink): Uint8Array | undefined } {
  const bound = new WeakMap<MeshLink, Uint8Array>();
  const byConnection = new Map<string, MeshLink>();
  const handlers = createAppBootstrapHandlers(components, {
    onBound: (ctx, appKey) => {
      const link = byConnection.get(ctx.connectionId);
      if (link) bound.set(link, appKey);
    },
  });
  const context = (link: MeshLink): RequestContext => {
    const id = `wss-${link.serial}`;
    byConnection.set(id, link);
    link.onClose(() => byConnection.delete(id));
    return { remoteIp: unmapIp(link.socketRemote.ip), remotePort: link.socketRemote.port, connectionId: id, pinned: bound.has(link), peerKey: bound.get(link), signal: AbortSignal.timeout(10_000) };
  };
  components.links.handle(APP_HELLO_METHOD, (req, link) => handlers.hello(req, context(link)), { allowUntrusted: true });
  components.links.handle(APP_BIND_METHOD, (req, link) => handlers.bind(req, context(link)), { allowUntrusted: true });
  return { appKeyOf: (link) => bound.get(link) };
}
