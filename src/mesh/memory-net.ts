// An in-memory network of mesh nodes for tests and the network simulator: each node gets a MeshNet
// (mesh and first-contact links) and a MeshUdp (request/answer by address), so createMeshService runs
// unchanged over it. Links are memory-link.ts pairs on one clock.
//
// Each node has one router (src/rpc) on the network's clock, shared by its links and its UDP side as a
// real node shares one between its TLS and UDP endpoints: the mesh service adds the same route table
// (handlers.ts), and every request runs the same policy (transport, trust, payload, per-prefix rate,
// in-flight) before its handler. The ctx is filled as on a real link: WSS requests carry the link, its
// trust and the caller's socket address; UDP requests come as "quic", untrusted, from the caller's IP.
//
// A mesh dial succeeds when a running node is at the address and holds the key we dial (the
// bootstrap's proof, DESIGN §3); the link is then "mesh" at both ends and both ends' onMeshLink
// listeners hear of it. A first-contact dial gives "untrusted" links.
import { PeerError, TimeoutError } from "../errors.ts";
import { nodeIdOf } from "../identity/index.ts";
import type { HostPort } from "../contracts/index.ts";
import type { RpcContext, Trust } from "../rpc/index.ts";
import { createRouter, type Router } from "../rpc/index.ts";
import { WS_CLOSE } from "../transport/index.ts";
import { decodeEnvelope, encodeAnswer, encodeEnvelope, Status, type NodeRecord } from "../wire/index.ts";
import type { Clock, TimerHandle } from "../contracts/index.ts";
import type { CoreLink, MeshNet, MeshUdp, UdpRequestLink } from "./core-link.ts";
import type { MeshDialOptions } from "./link-service.ts";
import { createMemoryLinkPair, type MemoryLink } from "./memory-link.ts";
import { isSameBytes } from "./record.ts";

export interface MemoryNodeInit {
  /** The node's IP; its TCP and UDP port are both `port`. */
  ip: string;
  port: number;
  publicKey: Uint8Array;
  /** The node's own record while it serves: its mesh dials carry it, as a hello does. */
  record?: () => NodeRecord | undefined;
}

/** A MeshNet whose links are memory links (with `closed` and `peerKey`). */
export interface MemoryMeshNet extends MeshNet {
  dialMesh(addr: HostPort, peerPublicKey: Uint8Array, opts?: MeshDialOptions): Promise<MemoryLink>;
  dialUntrusted(addr: HostPort, opts?: MeshDialOptions): Promise<MemoryLink>;
  /** Established links that are still open. */
  links(): MemoryLink[];
}

export interface MemoryNode {
  readonly address: HostPort;
  /** Serves the node's WSS and QUIC requests (the same router as links.router and udp.router). */
  readonly router: Router;
  readonly links: MemoryMeshNet;
  readonly udp: MeshUdp;
  /** Takes the node off the network: its links close (going away) and dials to it fail. */
  stop(): void;
}

export interface MemoryNet {
  node(init: MemoryNodeInit): MemoryNode;
}

export interface MemoryNetOptions {
  clock: Clock;
  /** Round trip every link reports. @default 1 */
  rttMs?: number;
  /** @default LINK_REQUEST_TIMEOUT_MS */
  requestTimeoutMs?: number;
  /** Per pair of IPs (the network simulator): the round trip links report, and the one-way delay of
   *  `bytes` from `from` to `to`. Dials then take one round trip (first contact) or two (a mesh
   *  bootstrap), UDP requests a delay each way. Absent: rttMs, and delivery in the next microtask. */
  shape?: {
    rttMs(from: string, to: string): number;
    delayMs(from: string, to: string, bytes: number): number;
  };
}

interface Host {
  init: MemoryNodeInit;
  up: boolean;
  router: Router;
  listeners: Set<(link: CoreLink) => void>;
  established: Set<MemoryLink>;
  all: Set<MemoryLink>;
}

const TRUST_ORDER: readonly Trust[] = ["untrusted", "pinned", "mesh"];

const key = (a: HostPort) => `${a.ip}:${a.port}`;

export function createMemoryNet(opts: MemoryNetOptions): MemoryNet {
  const hosts = new Map<string, Host>();
  let ephemeral = 40_000;
  let connections = 0;

  function reach(from: Host, addr: HostPort, signal?: AbortSignal): Host {
    if (signal?.aborted) throw signal.reason;
    const to = hosts.get(key(addr));
    if (!from.up) throw new PeerError("Cannot dial: this node is stopped");
    if (!to || !to.up) throw new PeerError(`Cannot reach ${key(addr)}: connection refused`);
    return to;
  }

  function connect(from: Host, to: Host, addr: HostPort, mesh: boolean): [MemoryLink, MemoryLink] {
    const own = { ip: from.init.ip, port: from.init.port };
    const trust = mesh ? "mesh" : "untrusted";
    const shape = opts.shape;
    const [a, b] = [from.init.ip, to.init.ip];
    const pair = createMemoryLinkPair(
      { direction: "out", trust, peerKey: mesh ? to.init.publicKey : null, remote: addr, socketRemote: addr, local: own, router: from.router, delayMs: shape && ((n) => shape.delayMs(a, b, n)) },
      { direction: "in", trust, peerKey: mesh ? from.init.publicKey : null, helloRecord: mesh ? from.init.record?.() : undefined, remote: mesh ? own : { ip: own.ip, port: ephemeral }, socketRemote: { ip: own.ip, port: ephemeral++ }, local: addr, router: to.router, delayMs: shape && ((n) => shape.delayMs(b, a, n)) },
      { clock: opts.clock, rttMs: shape ? shape.rttMs(a, b) : (opts.rttMs ?? 1), requestTimeoutMs: opts.requestTimeoutMs },
    );
    for (const [h, link] of [[from, pair[0]], [to, pair[1]]] as const) {
      h.all.add(link);
      link.onClose(() => {
        h.all.delete(link);
        h.established.delete(link);
      });
    }
    return pair;
  }

  /** Waits `trips` round trips between two hosts on the clock (nothing without a shape). */
  function trips(from: Host, to: Host, n: number): Promise<void> {
    if (!opts.shape) return Promise.resolve();
    const ms = n * opts.shape.rttMs(from.init.ip, to.init.ip);
    return new Promise((r) => opts.clock.setTimeout(r, ms));
  }

  /** Tells h's listeners of a new link. The dialer (`dialled`) hears of it even when the other end
   *  closed it at once, as over WSS, where the upgrade completes before the close frame comes: its
   *  mesh core then learns the close code (full, not serving) and cools the peer down. */
  function announce(h: Host, link: MemoryLink, dialled = false): void {
    if ((!link.isOpen && !dialled) || !h.up) return;
    h.established.add(link);
    for (const cb of h.listeners) cb(link);
  }

  function meshNet(h: Host): MemoryMeshNet {
    return {
      onMeshLink(cb) {
        h.listeners.add(cb);
        return () => h.listeners.delete(cb);
      },
      router: h.router,
      async dialMesh(addr: HostPort, peerPublicKey: Uint8Array, o: MeshDialOptions = {}) {
        const to = reach(h, addr, o.signal);
        // The bootstrap proves the key: a node without it cannot finish (DESIGN §3 steps 3–6).
        if (!isSameBytes(to.init.publicKey, peerPublicKey)) throw new PeerError(`Cannot bootstrap with ${key(addr)}: the node there does not hold the key`);
        await trips(h, to, 2);
        reach(h, addr, o.signal);
        const [mine, theirs] = connect(h, to, addr, true);
        await Promise.resolve();
        // As over WSS, the link is handed over even when the other end closes it at once (e.g. it
        // does not serve): the caller learns why from its close code.
        announce(to, theirs);
        announce(h, mine, true);
        return mine;
      },
      async dialUntrusted(addr: HostPort, o: MeshDialOptions = {}) {
        const to = reach(h, addr, o.signal);
        await trips(h, to, 1);
        reach(h, addr, o.signal);
        return connect(h, to, addr, false)[0];
      },
      links: () => [...h.established].filter((l) => l.isOpen),
    };
  }

  function udpOf(h: Host): MeshUdp {
    return {
      port: h.init.port,
      router: h.router,
      async dial(addr, o = {}) {
        const to = reach(h, addr, o.signal);
        const connectionId = `mem-quic-${++connections}`;
        // As on a QUIC connection: untrusted until an app binds it (ctx.promote).
        let trust: Trust = "untrusted";
        let peerKey: Uint8Array | null = null;
        const context = (method: string, signal: AbortSignal): RpcContext => ({
          method,
          transport: "quic",
          remote: { ip: h.init.ip, port: h.init.port },
          connectionId,
          trust,
          peer: { key: peerKey, nodeId: peerKey ? nodeIdOf(peerKey) : null },
          signal,
          promote: (next) => {
            if (TRUST_ORDER.indexOf(next.trust) > TRUST_ORDER.indexOf(trust)) [trust, peerKey] = [next.trust, next.peerKey];
          },
        });
        const link: UdpRequestLink = {
          async request(method, payload, ro = {}) {
            const req = decodeEnvelope(encodeEnvelope({ id: 1n, method, payload }));
            if (!to.up) return decodeEnvelope(encodeAnswer(req, Status.BAD_REQUEST, undefined, `unknown method ${method}`));
            const abort = new AbortController();
            const timeoutMs = ro.timeoutMs ?? opts.requestTimeoutMs ?? 5_000;
            let timer: TimerHandle | undefined;
            const timedOut = new Promise<never>((_, reject) => {
              timer = opts.clock.setTimeout(() => {
                abort.abort(new TimeoutError(`${method} over memory UDP`, timeoutMs));
                reject(abort.signal.reason);
              }, timeoutMs);
            });
            try {
              const shape = opts.shape;
              const there = shape ? new Promise<void>((r) => opts.clock.setTimeout(r, shape.delayMs(h.init.ip, to.init.ip, payload?.length ?? 0))) : null;
              const a = await Promise.race([(there ?? Promise.resolve()).then(() => to.router.dispatch(method, req.payload, context(method, abort.signal))), timedOut]);
              if (shape) await new Promise<void>((r) => opts.clock.setTimeout(r, shape.delayMs(to.init.ip, h.init.ip, a.payload?.length ?? 0)));
              return decodeEnvelope(encodeAnswer(req, a.status, a.payload, a.error));
            } finally {
              opts.clock.clearTimeout(timer);
            }
          },
          close: async () => {},
        };
        return link;
      },
    };
  }

  return {
    node(init) {
      if (hosts.get(key(init))?.up) throw new Error(`${key(init)} is taken`);
      const router = createRouter({ now: () => opts.clock.now() });
      const h: Host = { init, up: true, router, listeners: new Set(), established: new Set(), all: new Set() };
      hosts.set(key(init), h);
      const links = meshNet(h);
      const udp = udpOf(h);
      return {
        address: { ip: init.ip, port: init.port },
        router,
        links,
        udp,
        stop() {
          h.up = false;
          for (const link of [...h.all]) link.close(WS_CLOSE.goingAway, "node stopping");
          // A stopped host is unreachable; forgetting it lets its router and state go.
          if (hosts.get(key(init)) === h) hosts.delete(key(init));
        },
      };
    },
  };
}
