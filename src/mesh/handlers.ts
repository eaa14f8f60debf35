// The mesh's requests as router routes (DESIGN §3–§5, §8): each method's policy next to the handler
// that calls the mesh modules (peer-sharing.ts, record-check.ts, self-check.ts, mesh-search.ts).
//
// WSS (links.router): mesh.peers, mesh.key-check and mesh.self-check-echo are open to first contacts;
// mesh.find only to mesh peers. QUIC (udp.router), for apps and `findings peers/find` and the
// self-check dial-backs: mesh.peers, mesh.find, mesh.self-check-echo and mesh.self-check, whose
// answer makes us dial the asker twice and so has the tightest limits, and mesh.key-check (an app learning
// our key). Peers, searches and
// self-checks keep their own limiters too (a mesh peer is counted by node id, a stranger by host: an IPv4
// address or an IPv6 /64); the router's per-host and per-/24 (/48) rates are a backstop, loose enough for
// many nodes on one host (tests, NAT'd neighbours).
// A real node's routers and a memory node's router (memory-net.ts) get this same table.
import { errorLine } from "../errors.ts";
import type { NodeKey } from "../identity/index.ts";
import { METHOD } from "../rpc/index.ts";
import { ANY_TRUST, MESH_ONLY, perHost, perHostAndNet, prefixOf, type RpcHandler, type RpcReply } from "../rpc/index.ts";
import type { RouteTable } from "../rpc/index.ts";
import { Status } from "../wire/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import { Mesh } from "../wire/index.ts";
import { isPeerBanned } from "./admission.ts";
import type { BanList } from "./ban-list.ts";
import type { MeshNet, MeshUdp } from "./core-link.ts";
import { linkOf } from "./link.ts";
import type { MeshSearch } from "./mesh-search.ts";
import { MAX_SMALL_MESSAGE_BYTES } from "./mesh-service-constants.ts";
import type { PeerSharing } from "./peer-sharing.ts";
import { createKeyCheckAnswerer } from "./key-check-answer.ts";
import { createRateLimiter } from "./search-rate-limit.ts";
import { answerSelfCheck, SELF_CHECK_BURST, SELF_CHECK_RATE_PER_S, type SelfChecker } from "./self-check.ts";

export interface MeshHandlerDeps {
  links: MeshNet;
  udp: MeshUdp;
  nodeKey: NodeKey;
  bans: BanList;
  sharing: PeerSharing;
  search: MeshSearch;
  selfChecker: SelfChecker;
  /** Our record while we serve, else undefined. */
  ownRecord(): NodeRecord | undefined;
  now(): number;
  /** Message counters (mesh.find counts itself, in the search). */
  countIn(method: string): void;
  countOut(method: string): void;
}

export interface MeshRoutes {
  /** For links.router. */
  wss: RouteTable;
  /** For udp.router. */
  quic: RouteTable;
}

/** The key of a host in the limiters of this file: an IPv4 address, an IPv6 /64 (one host's share). */
const hostOf = (ip: string) => prefixOf(ip, 32, 64);

/** Most small requests of one method running at once, whoever sent them. */
const SMALL = { maxPayloadBytes: MAX_SMALL_MESSAGE_BYTES, maxInFlight: 64 } as const;
/** Self-checks running at once: each dials the asker back on both transports. */
const MAX_SELF_CHECKS_IN_FLIGHT = 16;
/** A key check costs us two X25519 agreements (~1–2 ms): a host gets a few per second, its /24 (IPv6
 *  /48) a few more. Honest checkers ask once per record they merge; a refused check is "unreachable",
 *  not a lie, and is asked again with a later share. */
const KEY_CHECK_RATE = [
  { ratePerS: 5, burst: 20, v4Bits: 32, v6Bits: 64 },
  { ratePerS: 10, burst: 40, v4Bits: 24, v6Bits: 48 },
] as const;

export function meshRoutes(d: MeshHandlerDeps): MeshRoutes {
  const selfCheckLimiter = createRateLimiter({ ratePerS: SELF_CHECK_RATE_PER_S, burst: SELF_CHECK_BURST });
  const keyChecks = createKeyCheckAnswerer(d.nodeKey, d.ownRecord);

  const counted =
    (method: string, fn: RpcHandler): RpcHandler =>
    (payload, ctx) => {
      d.countIn(method);
      return fn(payload, ctx);
    };

  const onPeers: RpcHandler = (payload, ctx) => {
    const link = linkOf(ctx);
    const t = d.now();
    const rateKey = link.trust === "mesh" ? `id:${link.peerNodeId}` : `ip:${hostOf(link.socketRemote.ip)}`;
    return d.sharing.answer(payload, { via: "link", rateKey, peerId: link.peerNodeId, banned: isPeerBanned(d.bans, link, t), reached: { localIp: link.local.ip, remoteIp: link.socketRemote.ip } }, t);
  };

  const onFind: RpcHandler = (payload, ctx) => {
    const link = linkOf(ctx);
    if (isPeerBanned(d.bans, link, d.now())) return { status: Status.REFUSED, error: "banned" };
    return d.search.onMeshRequest(payload, link);
  };

  /** QUIC side: who asks is its source IP (a banned IP is refused); a bad request is answered, not thrown. */
  const quic =
    (method: string, fn: (payload: Uint8Array, remoteIp: string, signal: AbortSignal) => Promise<RpcReply> | RpcReply): RpcHandler =>
    async (payload, ctx) => {
      if (method !== METHOD.mesh.find) d.countIn(method);
      if (d.bans.isBanned(ctx.remote.ip, d.now())) return { status: Status.REFUSED, error: "banned" };
      try {
        return await fn(payload, ctx.remote.ip, ctx.signal);
      } catch (err) {
        return { status: Status.BAD_REQUEST, error: errorLine(err) };
      }
    };

  const onSelfCheck = quic(METHOD.mesh.selfCheck, (payload, ip, signal) => {
    if (!selfCheckLimiter.allow(hostOf(ip), d.now())) return { status: Status.RATE_LIMITED, error: "too many self-checks; slow down" };
    return answerSelfCheck({ udp: d.udp, links: d.links }, payload, ip, { signal, onRequest: d.countOut });
  });

  return {
    wss: [
      [Mesh.method.peers, { ...SMALL, transports: ["wss"], trust: ANY_TRUST, rate: perHostAndNet(20, 100), handler: counted(METHOD.mesh.peers, onPeers) }],
      [
        Mesh.method.keyCheck,
        { ...SMALL, transports: ["wss"], trust: ANY_TRUST, rate: KEY_CHECK_RATE, handler: counted(METHOD.mesh.keyCheck, (payload, ctx) => keyChecks.answer(payload, ctx.link)) },
      ],
      [
        Mesh.method.selfCheckEcho,
        { ...SMALL, transports: ["wss"], trust: ANY_TRUST, rate: perHostAndNet(20, 100), handler: counted(METHOD.mesh.selfCheckEcho, (payload) => d.selfChecker.echo(payload, "tcp")) },
      ],
      [Mesh.method.find, { ...SMALL, transports: ["wss"], trust: MESH_ONLY, rate: perHost(100, 500), handler: onFind }],
    ],
    quic: [
      [
        Mesh.method.peers,
        {
          ...SMALL,
          transports: ["quic"],
          trust: ANY_TRUST,
          rate: perHostAndNet(20, 100),
          handler: quic(METHOD.mesh.peers, (payload, ip) => d.sharing.answer(payload, { via: "app", rateKey: `ip:${hostOf(ip)}`, banned: false, reached: { remoteIp: ip } }, d.now())),
        },
      ],
      [Mesh.method.find, { ...SMALL, transports: ["quic"], trust: ANY_TRUST, rate: perHostAndNet(20, 100), handler: quic(METHOD.mesh.find, (payload, ip) => d.search.onAppRequest(payload, hostOf(ip))) }],
      // Apps learning our key (an address without "#key") check it the way nodes do, on their first-contact link.
      [Mesh.method.keyCheck, { ...SMALL, transports: ["quic"], trust: ANY_TRUST, rate: KEY_CHECK_RATE, handler: quic(METHOD.mesh.keyCheck, (payload, ip) => keyChecks.answer(payload, undefined, { remoteIp: ip })) }],
      [
        Mesh.method.selfCheckEcho,
        { ...SMALL, transports: ["quic"], trust: ANY_TRUST, rate: perHostAndNet(20, 100), handler: quic(METHOD.mesh.selfCheckEcho, (payload) => d.selfChecker.echo(payload, "udp")) },
      ],
      [Mesh.method.selfCheck, { ...SMALL, maxInFlight: MAX_SELF_CHECKS_IN_FLIGHT, transports: ["quic"], trust: ANY_TRUST, rate: perHostAndNet(1, 10), handler: onSelfCheck }],
    ],
  };
}

/** Adds the mesh's routes to the links' and the UDP endpoint's routers (one router on a node that shares
 *  it); returns the disposer that removes them all. */
export function addMeshRoutes(d: MeshHandlerDeps): () => void {
  const routes = meshRoutes(d);
  const offWss = d.links.router.addAll(routes.wss);
  let offQuic: () => void;
  try {
    offQuic = d.udp.router.addAll(routes.quic);
  } catch (err) {
    offWss();
    throw err;
  }
  return () => {
    offWss();
    offQuic();
  };
}
