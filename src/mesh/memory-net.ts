// An in-memory network of mesh nodes for tests and the network simulator: each node gets a MeshNet
// (mesh and first-contact links, a shared handler table) and a MeshUdp (request/answer by address),
// so createMeshService runs unchanged over it. Links are memory-link.ts pairs on one clock.
//
// A mesh dial succeeds when a running node is at the address and holds the key we dial (the
// bootstrap's proof, DESIGN §3); the link is then "mesh" at both ends and both ends' onMeshLink
// listeners hear of it. A first-contact dial gives "untrusted" links that only serve methods
// registered with allowUntrusted.
import { PeerError, TimeoutError } from "../errors.ts";
import type { HostPort } from "../contracts/address.ts";
import type { RequestHandler } from "../transport/udp/endpoint.ts";
import { WS_CLOSE } from "../transport/ws/constants.ts";
import { decodeEnvelope, encodeAnswer, encodeEnvelope, Status } from "../wire/codec.ts";
import type { Clock, TimerHandle } from "../contracts/clock.ts";
import type { CoreLink, CoreRequestHandler, MeshNet, MeshUdp, UdpRequestLink } from "./core-link.ts";
import type { HandleOptions, MeshDialOptions } from "./link-service.ts";
import { createMemoryLinkPair, type MemoryEnd, type MemoryLink, type MemoryLookup } from "./memory-link.ts";
import { isSameBytes } from "./record.ts";

export interface MemoryNodeInit {
  /** The node's IP; its TCP and UDP port are both `port`. */
  ip: string;
  port: number;
  publicKey: Uint8Array;
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
}

interface Host {
  init: MemoryNodeInit;
  up: boolean;
  lookup: MemoryLookup;
  udpHandlers: Map<string, RequestHandler>;
  listeners: Set<(link: CoreLink) => void>;
  established: Set<MemoryLink>;
  all: Set<MemoryLink>;
}

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
    const end = (h: Host, e: Omit<MemoryEnd, "lookup">): MemoryEnd => ({ ...e, lookup: h.lookup });
    const pair = createMemoryLinkPair(
      end(from, { direction: "out", trust: mesh ? "mesh" : "untrusted", peerKey: mesh ? to.init.publicKey : null, remote: addr, socketRemote: addr, local: own }),
      end(to, { direction: "in", trust: mesh ? "mesh" : "untrusted", peerKey: mesh ? from.init.publicKey : null, remote: mesh ? own : { ip: own.ip, port: ephemeral }, socketRemote: { ip: own.ip, port: ephemeral++ }, local: addr }),
      { clock: opts.clock, rttMs: opts.rttMs ?? 1, requestTimeoutMs: opts.requestTimeoutMs },
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

  function announce(h: Host, link: MemoryLink): void {
    if (!link.isOpen || !h.up) return;
    h.established.add(link);
    for (const cb of h.listeners) cb(link);
  }

  function meshNet(h: Host): MemoryMeshNet {
    const shared = new Map<string, { handler: CoreRequestHandler; allowUntrusted: boolean }>();
    h.lookup = (method, link) => {
      const e = shared.get(method);
      if (!e) return undefined;
      return link.trust === "mesh" || e.allowUntrusted ? e.handler : "refused";
    };
    return {
      onMeshLink(cb) {
        h.listeners.add(cb);
        return () => h.listeners.delete(cb);
      },
      handle(method: string, handler: CoreRequestHandler, o: HandleOptions = {}) {
        shared.set(method, { handler, allowUntrusted: o.allowUntrusted ?? false });
      },
      async dialMesh(addr: HostPort, peerPublicKey: Uint8Array, o: MeshDialOptions = {}) {
        const to = reach(h, addr, o.signal);
        // The bootstrap proves the key: a node without it cannot finish (DESIGN §3 steps 3–6).
        if (!isSameBytes(to.init.publicKey, peerPublicKey)) throw new PeerError(`Cannot bootstrap with ${key(addr)}: the node there does not hold the key`);
        const [mine, theirs] = connect(h, to, addr, true);
        await Promise.resolve();
        // As over WSS, the link is handed over even when the other end closes it at once (e.g. it
        // does not serve): the caller learns why from its close code.
        announce(to, theirs);
        announce(h, mine);
        return mine;
      },
      async dialUntrusted(addr: HostPort, o: MeshDialOptions = {}) {
        const to = reach(h, addr, o.signal);
        return connect(h, to, addr, false)[0];
      },
      links: () => [...h.established].filter((l) => l.isOpen),
    };
  }

  function udpOf(h: Host): MeshUdp {
    return {
      port: h.init.port,
      handle: (method, handler) => void h.udpHandlers.set(method, handler),
      async dial(addr, o = {}) {
        const to = reach(h, addr, o.signal);
        const connectionId = `mem-${++connections}`;
        const link: UdpRequestLink = {
          async request(method, payload, ro = {}) {
            const handler = to.up ? to.udpHandlers.get(method) : undefined;
            const req = decodeEnvelope(encodeEnvelope({ id: 1n, method, payload }));
            if (!handler) return decodeEnvelope(encodeAnswer(req, Status.BAD_REQUEST, undefined, `unknown method ${method}`));
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
              const ctx = { remoteIp: h.init.ip, remotePort: h.init.port, connectionId, pinned: false, signal: abort.signal };
              const a = await Promise.race([handler(req, ctx), timedOut]);
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
      const h: Host = { init, up: true, lookup: () => undefined, udpHandlers: new Map(), listeners: new Set(), established: new Set(), all: new Set() };
      hosts.set(key(init), h);
      const links = meshNet(h);
      const udp = udpOf(h);
      return {
        address: { ip: init.ip, port: init.port },
        links,
        udp,
        stop() {
          h.up = false;
          for (const link of [...h.all]) link.close(WS_CLOSE.goingAway, "node stopping");
        },
      };
    },
  };
}
