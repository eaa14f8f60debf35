// The mesh link service (DESIGN §2–§3; seed 001 §连接安全, §组网节点之间): accepts wss://…/mesh on the
// node's TLS endpoint, runs the bootstrap with role swap on both sides, dials untrusted and pinned
// links, serves their requests through the router and tells listeners of every established link.
import { isIP } from "node:net";
import { TLS_HANDSHAKE_TIMEOUT_MS } from "../constants.ts";
import type { RunCertificate } from "../identity/index.ts";
import type { NodeKey } from "../identity/index.ts";
import { PeerError } from "../errors.ts";
import { ANY_TRUST, perHost, type Route } from "../rpc/index.ts";
import { createRouter, type Router } from "../rpc/index.ts";
import { Mesh } from "../wire/index.ts";
import type { HostPort } from "../contracts/index.ts";
import type { TlsEndpoint, WsUpgradeInfo } from "../transport/index.ts";
import { dialWss } from "../transport/index.ts";
import { WS_CLOSE } from "../transport/index.ts";
import type { WsConnection } from "../transport/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import {
  LINK_REQUEST_TIMEOUT_MS,
  MAX_CONCURRENT_DIAL_BACKS,
  MAX_MESH_HELLO_BYTES,
  MESH_BOOTSTRAP_TIMEOUT_MS,
  MESH_DIAL_BACK_TIMEOUT_MS,
  MESH_PATH,
  MESH_STOP_GRACE_MS,
  UNTRUSTED_LINK_LIFETIME_MS,
} from "./link-constants.ts";
import { createMeshLink, linkOf, type MeshLink, type MeshLinkControl } from "./link.ts";
import { meshAcceptHandler, meshHelloHandler, runMeshDial, type BootstrapContext, type DialLinkOptions, type PendingAccept } from "./mesh-bootstrap.ts";
import { formatAddress, silentLogger, specialRangeOf, type Logger } from "../contracts/index.ts";
import { DEFAULTS } from "../config/index.ts";

export interface MeshLinksComponents {
  /** The node's TLS endpoint; the service adds the /mesh WebSocket path to it. */
  tls: TlsEndpoint;
  /** The certificate `tls` serves: sent in hellos and shown as TLS client certificate on dials. */
  cert: RunCertificate;
  nodeKey: NodeKey;
  log?: Logger;
  /** Our own node record, sent in hellos when we serve. */
  ownRecord?: () => NodeRecord | undefined;
  /** Serves requests on every link; the node shares one with its UDP endpoint. @default a router of its own */
  router?: Router;
}

export interface MeshLinksInit {
  /** IP sent as MeshHelloBody.host. @default tls.host when it is a specific IP, else "" (the
   *  server then dials back the address our hello came from) */
  advertiseHost?: string;
  /** Whole bootstrap from our side. @default MESH_BOOTSTRAP_TIMEOUT_MS */
  bootstrapTimeoutMs?: number;
  /** Our dial-back and accept when we are the server. @default MESH_DIAL_BACK_TIMEOUT_MS */
  dialBackTimeoutMs?: number;
  /** Dial-backs run at once. @default MAX_CONCURRENT_DIAL_BACKS */
  maxConcurrentDialBacks?: number;
  /** Inbound links that are not bootstrapped by then are closed. @default UNTRUSTED_LINK_LIFETIME_MS */
  untrustedLifetimeMs?: number;
  /** Default timeout of link.request(). @default LINK_REQUEST_TIMEOUT_MS */
  requestTimeoutMs?: number;
  /** Idle timeout of links we dial (inbound links use the endpoint's). @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  /** Dial loopback, private, link-local and other special-purpose addresses (labs, tests on one machine).
   *  Off, every dial to such an address is refused before a packet is sent. @default allow_special_targets of defaults.toml */
  allowSpecialTargets?: boolean;
}

export interface MeshDialOptions {
  signal?: AbortSignal;
  /** @default the init's bootstrapTimeoutMs for dialMesh, TLS_HANDSHAKE_TIMEOUT_MS otherwise */
  timeoutMs?: number;
}

export interface MeshLinks {
  start(): Promise<void>;
  /** Closes every link (1001) and fails bootstraps in progress. */
  stop(): Promise<void>;
  /** Called for every established (bootstrapped, pinned both ways) link, whichever side asked;
   *  returns an unsubscribe function. */
  onMeshLink(cb: (link: MeshLink) => void): () => void;
  /** Serves every link's requests: services add their WSS routes here. */
  readonly router: Router;
  /** The whole bootstrap from the client's side (steps 1–6); resolves with the pinned mesh link. */
  dialMesh(addr: HostPort, peerPublicKey: Uint8Array, opts?: MeshDialOptions): Promise<MeshLink>;
  /** First contact with only ip:port: a WSS link with no pin, trust "untrusted" ("online help"). */
  dialUntrusted(addr: HostPort, opts?: MeshDialOptions): Promise<MeshLink>;
  /** A link whose server certificate must have this SPKI (e.g. from a node record); a mismatch
   *  is refused with PinMismatchError and logged. Trust "pinned": the server has not authenticated us. */
  dialPinned(addr: HostPort, spki: string, opts?: MeshDialOptions): Promise<MeshLink>;
  /** Established links that are still open. */
  links(): MeshLink[];
}

export function createMeshLinks(components: MeshLinksComponents, init: MeshLinksInit = {}): MeshLinks {
  const log = components.log ?? silentLogger;
  const { tls, cert, nodeKey } = components;
  const bootstrapTimeoutMs = init.bootstrapTimeoutMs ?? MESH_BOOTSTRAP_TIMEOUT_MS;
  const untrustedLifetimeMs = init.untrustedLifetimeMs ?? UNTRUSTED_LINK_LIFETIME_MS;
  const requestTimeoutMs = init.requestTimeoutMs ?? LINK_REQUEST_TIMEOUT_MS;
  const allowSpecialTargets = init.allowSpecialTargets ?? DEFAULTS.allow_special_targets;
  const advertiseHost = init.advertiseHost ?? (isIP(tls.host) && tls.host !== "0.0.0.0" && tls.host !== "::" ? tls.host : "");

  const all = new Set<MeshLinkControl>();
  const established = new Set<MeshLinkControl>();
  const listeners = new Set<(link: MeshLink) => void>();
  const router = components.router ?? createRouter({ log });
  let removeRoutes: (() => void) | undefined;
  const lifetimeTimers = new Map<MeshLinkControl, ReturnType<typeof setTimeout>>();
  const pending = new Map<string, PendingAccept>();
  let lifetime = new AbortController();
  let state: "new" | "running" | "stopped" = "new";
  let stopping: Promise<void> | null = null;

  const ctx: BootstrapContext = {
    nodeKey,
    cert,
    log,
    tcpPort: () => tls.port,
    advertiseHost,
    record: components.ownRecord,
    dialBackTimeoutMs: init.dialBackTimeoutMs ?? MESH_DIAL_BACK_TIMEOUT_MS,
    maxConcurrentDialBacks: init.maxConcurrentDialBacks ?? MAX_CONCURRENT_DIAL_BACKS,
    dialLink,
    established: markEstablished,
    pending,
    dialBacks: { active: 0 },
    helloSeen: new WeakSet(),
  };

  // The bootstrap's own methods. Open to any link: the handlers themselves refuse (and close) a link that
  // is not a fresh inbound one. A hello costs a sealed box and a dial-back, so a host gets a few per second
  // and its /24 (IPv6 /48) a few more.
  const onHello = meshHelloHandler(ctx);
  const onAccept = meshAcceptHandler(ctx);
  const bootstrapPolicy = { transports: ["wss"], trust: ANY_TRUST, rate: [...perHost(5, 30), { ratePerS: 10, burst: 60, v4Bits: 24, v6Bits: 48 }], maxInFlight: 64, maxPayloadBytes: MAX_MESH_HELLO_BYTES } as const;
  const helloRoute: Route = { ...bootstrapPolicy, handler: (payload, c) => onHello(payload, linkOf(c)) };
  // Every link this service hands to the router is one it made with createMeshLink (a MeshLinkControl).
  const acceptRoute: Route = { ...bootstrapPolicy, handler: (payload, c) => onAccept(payload, linkOf(c) as MeshLinkControl) };

  function track(link: MeshLinkControl): void {
    all.add(link);
    link.onClose((info) => {
      all.delete(link);
      established.delete(link);
      const t = lifetimeTimers.get(link);
      if (t) clearTimeout(t);
      lifetimeTimers.delete(link);
      log.debug("mesh link closed", { serial: link.serial, trust: link.trust, code: info.code, reason: info.reason });
    });
  }

  function onInbound(conn: WsConnection, info: WsUpgradeInfo): void {
    if (state !== "running") {
      conn.close(WS_CLOSE.goingAway, "mesh not running");
      return;
    }
    const link = createMeshLink(conn, { direction: "in", trust: "untrusted", peerSpki: info.clientSpki, router, requestTimeoutMs, log });
    track(link);
    // First contact is brief (seed 001 §组网节点之间 注); a link still untrusted by then goes.
    lifetimeTimers.set(
      link,
      setTimeout(() => {
        lifetimeTimers.delete(link);
        // A bound app link ("pinned") and a mesh link proved a key; only a link nobody proved goes.
        if (link.trust === "untrusted") link.close(WS_CLOSE.policyViolation, "untrusted link lifetime over");
      }, untrustedLifetimeMs),
    );
  }

  async function dialLink(addr: HostPort, opts: DialLinkOptions): Promise<MeshLinkControl> {
    if (state !== "running") throw new PeerError("Cannot dial: the mesh link service is not running");
    const range = allowSpecialTargets ? null : specialRangeOf(addr.ip);
    if (range) throw new PeerError(`Cannot dial ${formatAddress(addr)}: it is a ${range} address (allow_special_targets is off)`);
    const signal = opts.signal ? AbortSignal.any([opts.signal, lifetime.signal]) : lifetime.signal;
    const { conn, peerSpki } = await dialWss(addr, {
      path: MESH_PATH,
      pinSpki: opts.pinSpki,
      clientCert: cert,
      timeoutMs: opts.timeoutMs,
      signal,
      idleTimeoutMs: init.idleTimeoutMs,
      // Same family only: an IPv4-bound node dialling an IPv6 peer lets the kernel choose.
      localAddress: isIP(tls.host) !== 0 && tls.host !== "0.0.0.0" && tls.host !== "::" && isIP(tls.host) === isIP(addr.ip) ? tls.host : undefined,
      log,
    });
    const link = createMeshLink(conn, {
      direction: opts.direction,
      trust: opts.trust,
      remote: addr,
      peerKey: opts.peerKey ?? null,
      peerSpki,
      helloRecord: opts.helloRecord,
      router,
      requestTimeoutMs,
      log,
    });
    track(link);
    if (state !== "running") {
      link.close(WS_CLOSE.goingAway, "node stopping");
      throw new PeerError("Cannot dial: the mesh link service stopped");
    }
    return link;
  }

  function markEstablished(link: MeshLinkControl): void {
    if (!link.isOpen) return;
    established.add(link);
    const t = lifetimeTimers.get(link);
    if (t) clearTimeout(t);
    lifetimeTimers.delete(link);
    log.info("mesh link established", {
      serial: link.serial,
      direction: link.direction,
      remote: link.remote,
      peer: link.peerNodeId?.slice(0, 16),
      spki: link.peerSpki?.slice(0, 16),
    });
    for (const cb of listeners) {
      try {
        cb(link);
      } catch (err) {
        log.warn("onMeshLink listener threw", { error: err instanceof Error ? err.message : String(err) });
      }
    }
  }

  async function doStop(): Promise<void> {
    state = "stopped";
    removeRoutes?.();
    lifetime.abort(new PeerError("The mesh link service is stopping"));
    pending.clear();
    for (const t of lifetimeTimers.values()) clearTimeout(t);
    lifetimeTimers.clear();
    const links = [...all];
    for (const link of links) link.close(WS_CLOSE.goingAway, "node stopping");
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all(links.map((l) => l.closed)), new Promise<void>((r) => (timer = setTimeout(r, MESH_STOP_GRACE_MS)))]);
    clearTimeout(timer);
  }

  return {
    async start() {
      if (state !== "new") return;
      state = "running";
      lifetime = new AbortController();
      removeRoutes = router.addAll([
        [Mesh.method.hello, helloRoute],
        [Mesh.method.accept, acceptRoute],
      ]);
      tls.onWebSocket(MESH_PATH, onInbound);
    },
    stop() {
      if (state === "new") state = "stopped";
      stopping ??= doStop();
      return stopping;
    },
    onMeshLink(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    router,
    dialMesh(addr, peerPublicKey, opts = {}) {
      const signal = opts.signal ? AbortSignal.any([opts.signal, lifetime.signal]) : lifetime.signal;
      return runMeshDial(ctx, addr, { peerKey: peerPublicKey, signal, timeoutMs: opts.timeoutMs ?? bootstrapTimeoutMs });
    },
    dialUntrusted(addr, opts = {}) {
      return dialLink(addr, { pinSpki: null, trust: "untrusted", direction: "out", signal: opts.signal, timeoutMs: opts.timeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS });
    },
    dialPinned(addr, spki, opts = {}) {
      return dialLink(addr, { pinSpki: spki, trust: "pinned", direction: "out", signal: opts.signal, timeoutMs: opts.timeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS });
    },
    links() {
      return [...established].filter((l) => l.isOpen);
    },
  };
}
