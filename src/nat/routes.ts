// The NAT service's methods and their policies (DESIGN §6): STUN:Cone and STUN:Live for clients over QUIC (any
// link: every datagram goes only to an address the requester proved it owns), NewHost orders from mesh peers.
import { MAX_SEALED_BYTES } from "../constants.ts";
import { ANY_TRUST, MESH_ONLY, perHost, type Route, type RpcContext, type RpcHandler, type RpcReply } from "../rpc/index.ts";
import type { RouteTable } from "../rpc/index.ts";
import { encodeMessage, Status } from "../wire/index.ts";
import { NatServersAnswerSchema } from "../wire/index.ts";
import { Nat } from "../wire/index.ts";
import { MAX_CONE_REQUEST_BYTES, MAX_FORMAL_SESSIONS, type ConeRequestContext, type ConeServer } from "./cone-server.ts";
import { BEGIN_BURST, BEGIN_RATE_PER_S, MAX_SERVERS_ANSWER } from "./constants.ts";
import { MAX_LIVE_REQUEST_BYTES, MAX_LIVE_SESSIONS, type LifetimeServer } from "./lifetime-server.ts";
import type { NewHostDelegate } from "./newhost-delegate.ts";
import { formatEndpoint, sameIp, type Endpoint } from "./source-check.ts";

export interface NatRouteParts {
  cone: ConeServer;
  live: LifetimeServer;
  delegate: NewHostDelegate;
  knownServers(): Endpoint[];
  /** false on a client-only node: tests and orders are refused, nat.servers still answers. */
  serving: boolean;
}

const NOT_SERVING: RpcReply = { status: Status.REFUSED, error: "this node does not serve NAT tests (client-only)" };

/** A session step: a few per second per host is plenty for a probe run (one session, a retry a second). */
const STEP_RATE = perHost(10, 40);

export function natRoutes(parts: NatRouteParts): { quic: RouteTable; wss: RouteTable } {
  const { cone, live, delegate, serving } = parts;
  const served = (handler: RpcHandler): RpcHandler => (serving ? handler : () => NOT_SERVING);
  const coneCtx = (ctx: RpcContext): ConeRequestContext => ({ remoteIp: ctx.remote.ip, remotePort: ctx.remote.port, connectionId: ctx.connectionId, signal: ctx.signal });
  const quic = (handler: RpcHandler, policy: Omit<Route, "handler" | "transports" | "trust">): Route => ({ transports: ["quic"], trust: ANY_TRUST, ...policy, handler: served(handler) });
  return {
    quic: [
      // A session and a new-port socket each: the begin rate per client host is the abuse bound (DESIGN §6).
      [Nat.method.begin, quic((p, c) => cone.begin(p, coneCtx(c)), { rate: perHost(BEGIN_RATE_PER_S, BEGIN_BURST), maxInFlight: MAX_FORMAL_SESSIONS, maxPayloadBytes: MAX_CONE_REQUEST_BYTES })],
      [Nat.method.passage, quic((p, c) => cone.passage(p, coneCtx(c)), { rate: STEP_RATE, maxInFlight: MAX_FORMAL_SESSIONS, maxPayloadBytes: MAX_CONE_REQUEST_BYTES })],
      [Nat.method.formal, quic((p, c) => cone.formal(p, coneCtx(c)), { rate: STEP_RATE, maxInFlight: MAX_FORMAL_SESSIONS, maxPayloadBytes: MAX_CONE_REQUEST_BYTES })],
      [Nat.method.liveBegin, quic((p, c) => live.begin(p, coneCtx(c)), { rate: perHost(BEGIN_RATE_PER_S, BEGIN_BURST), maxInFlight: MAX_LIVE_SESSIONS, maxPayloadBytes: MAX_LIVE_REQUEST_BYTES })],
      [Nat.method.liveSchedule, quic((p, c) => live.schedule(p, coneCtx(c)), { rate: STEP_RATE, maxInFlight: MAX_LIVE_SESSIONS, maxPayloadBytes: MAX_LIVE_REQUEST_BYTES })],
      [Nat.method.liveEnd, quic((p, c) => live.end(p, coneCtx(c)), { rate: STEP_RATE, maxInFlight: MAX_LIVE_SESSIONS, maxPayloadBytes: MAX_LIVE_REQUEST_BYTES })],
      [
        Nat.method.servers,
        {
          transports: ["quic"],
          trust: ANY_TRUST,
          rate: STEP_RATE,
          maxInFlight: 64,
          maxPayloadBytes: 0,
          handler: (_p, ctx) => {
            const servers = parts
              .knownServers()
              .filter((s) => !sameIp(s.ip, ctx.remote.ip))
              .slice(0, MAX_SERVERS_ANSWER)
              .map(formatEndpoint);
            return encodeMessage(NatServersAnswerSchema, { servers });
          },
        },
      ],
    ],
    wss: [
      // Orders are checked per source node and per target IP by the delegate itself (newhost-delegate.ts); the
      // router only keeps a misbehaving link from queueing many at once.
      [
        Nat.method.newHost,
        {
          transports: ["wss"],
          trust: MESH_ONLY,
          rate: perHost(50, 200),
          maxInFlight: 32,
          maxPayloadBytes: MAX_SEALED_BYTES + 64,
          handler: served((p, ctx) => delegate.handle(p, { trust: ctx.trust, peerKey: ctx.peer.key })),
        },
      ],
    ],
  };
}
