// Node side of the app services over QUIC: app pool per kind with stake answers, random and directed punch
// brokering, and signalling coordination (seed 000 §应用池, §经济激励, §打洞协助, §定向打洞, §信令协调;
// DESIGN §5, §7). The pure cores are app-pool.ts, stakes.ts, punch-match.ts, punch-offer.ts, punch-pairs.ts.
//
// Protocol (payloads in proto/punch.proto; every request needs a pinned, bound link — the app bootstrap):
//   app.join       app → node  AppJoin{kind, node_id, nat, spki}  → AppJoinAnswer{stake address, identity id,
//                  the app's address as seen}; FULL when the kind's pool is full, REFUSED for a kind not
//                  served or a node id that is not the bound key's.
//   punch.request  app → node  PunchRequest{kind, target_id?}    → PunchAnswer{offers: PunchInfo per peer};
//                  NOT_FOUND for an absent target, REFUSED for incompatible NAT classes.
//   punch.offer    node → target app, on its kept link: PunchInfo (its side of the attempt) → OK. The node
//                  pushes first and answers the requester only with offers the targets acknowledged.
//   app.leave      app → node, empty: a deliberate goodbye before closing; the node forgets the app.
//   punch-link.ping node → app, empty, on its kept link when it sent nothing for punch_liveness_s → OK. A member
//                  that does not answer OK leaves and its link is closed: a connection kept open by QUIC
//                  keep-alives alone does not keep a seat.
// Shares: one identity per connection (the transport binds one key), at most punch_per_conn memberships per
// connection and punch_per_prefix members of a kind from one IPv4 /24 or IPv6 /48 (app-pool.ts).
//   punch.address  node → app, on its kept link: AddressChange{ip, port, previous} when the app's NAT re-mapped
//                  the live connection (a validated QUIC path move) → OK.
// Signalling coordination (punch-coordination.ts): the node remembers brokered pairs; when a member's address
// changes (a rejoin from elsewhere, or a re-mapping of its live connection) it pushes fresh offers to it and
// each recent partner.
import { METHOD } from "../rpc/index.ts";
import { toBinary } from "@bufbuild/protobuf";
import type { Counter, Histogram } from "../contracts/index.ts";
import { DEFAULTS } from "../config/index.ts";
import { errorLine } from "../errors.ts";
import type { NodeKey } from "../identity/index.ts";
import { nodeIdOf } from "../identity/index.ts";
import type { QuicLink } from "../transport/index.ts";
import { PINNED_OR_MESH, perHost, type RpcContext, type RpcReply } from "../rpc/index.ts";
import type { Router, RouteTable } from "../rpc/index.ts";
import { App, Punch } from "../wire/index.ts";
import type { LinkEvent, LinkListener } from "../transport/index.ts";
import { encodeMessage, Status } from "../wire/index.ts";
import { AppJoinAnswerSchema, PunchAnswerSchema, PunchInfoSchema, type PunchInfo } from "../wire/index.ts";
import { createAppPool, sameAddress, type AppAddress, type AppMember, type AppPool } from "./app-pool.ts";
import { OFFER_PUSH_TIMEOUT_MS } from "./constants.ts";
import { directedMatch, randomMatches, type PunchMatch } from "./punch-match.ts";
import { appJoinAnswerInit, checkJoinIdentity, readAppJoin, readPunchRequest, shortHex, statusOfMatchError, MAX_PUNCH_REQUEST_BYTES } from "./punch-messages.ts";
import { brokerPunch } from "./punch-offer.ts";
import { createCoordination, type CoordinationCounters } from "./punch-coordination.ts";
import { createPunchPairs, type PunchPairs } from "./punch-pairs.ts";
import type { Rand } from "./punch-roles.ts";
import { servedKinds, stakeAnswer, type StakeConfig } from "./stakes.ts";
import { BoundedMap, type Logger } from "../contracts/index.ts";

/** How often the node expires idle members and old pairs, in ms. */
const PUNCH_SWEEP_INTERVAL_MS = 10_000;
/** Last known address per node id, kept after it leaves so a rejoin from elsewhere is seen as a mapping
 *  change (signalling coordination); bounded, oldest forgotten first. */
const MAX_REMEMBERED_ADDRESSES = 10_000;

/** A member not seen (no request, no answered ping) for this long is expired, in ms. Two liveness
 *  periods: a live app answers a ping well before. */
const DEFAULT_APP_IDLE_MS = 120_000;
/** How long a liveness ping may take to be answered, in ms: one request round trip with room. */
const LIVENESS_PING_TIMEOUT_MS = 5_000;

/** What the service needs of the node's UDP endpoint. */
export interface PunchEndpoint {
  /** Serves the app methods (the node's shared router). */
  readonly router: Router;
  on(event: LinkEvent, fn: LinkListener): () => void;
}

export interface PunchServiceComponents {
  udp: PunchEndpoint;
  nodeKey: Pick<NodeKey, "nodeId">;
  log?: Logger;
  /** @default Date.now */
  now?: () => number;
  /** @default Math.random */
  rand?: Rand;
  /** Counts every brokered punch by the strategy chosen for the pair, when the node keeps metrics. */
  brokered?: Counter<"strategy">;
  /** Times each brokered punch from punch.request to the offer acknowledged by the target (the requester's goes
   *  back in the answer), by strategy. */
  brokerSeconds?: Histogram<"strategy">;
  /** A member joined on a connection new to it (first join, or back on another connection); called after its
   *  answer is on its way. */
  onMember?: (member: AppMember, link: QuicLink) => void;
}

export interface PunchServiceInit {
  /** Config [stakes]: its keys (without "*") are the kinds served. */
  stakes: Readonly<Record<string, string>>;
  /** Config user_id ("" = the node id). */
  userId: string;
  /** Members per kind (config punch_xpool). @default punch_xpool of defaults.toml */
  punchXpool?: number;
  /** Most peers per random punch (config peers_punch). @default peers_punch of defaults.toml */
  peersPunch?: number;
  /** Offer birthday sprays at all (Sym ↔ UDP-Firewall, and with sprayNatCones Sym ↔ P-RC). @default true */
  allowSpray?: boolean;
  /** Also spray against a port-restricted cone behind a NAT (P-RC). Measured in the lab: it connects through a
   *  home router that drops unsolicited input (OpenWrt's WAN zone), never through a bare Linux NAT, which
   *  delivers the symmetric side's early openers to itself and re-maps the tuples they leave (and those
   *  re-mapped ports then leak into the cone side's later flows, punch-order.ts). QUIC-Only is never sprayed:
   *  its box drops the spray's openers, which are not QUIC. (config punch_spray_nat_cones) @default true */
  sprayNatCones?: boolean;
  /** @default DEFAULT_APP_IDLE_MS (120 s) */
  appIdleMs?: number;
  /** A member silent this long is pinged on its link (config punch_liveness_s). @default punch_liveness_s of defaults.toml */
  livenessMs?: number;
  /** Memberships per connection over all kinds (config punch_per_conn). @default punch_per_conn of defaults.toml */
  perConnection?: number;
  /** Members of one kind from one IPv4 /24 or IPv6 /48 (config punch_per_prefix). @default punch_per_prefix of defaults.toml */
  perPrefix?: number;
  /** @default OFFER_PUSH_TIMEOUT_MS (2 s) */
  offerTimeoutMs?: number;
  /** @default PUNCH_SWEEP_INTERVAL_MS (10 s) */
  sweepIntervalMs?: number;
}

export interface PunchServiceCounters extends CoordinationCounters {
  joins: number;
  rejoins: number;
  joinsRefused: number;
  joinsFull: number;
  /** Joins refused because the connection or the source prefix already held its share. */
  joinsOverShare: number;
  leaves: number;
  /** Members removed because they did not answer a liveness ping. */
  livenessFailed: number;
  punchRequests: number;
  punchRefused: number;
  offersPushed: number;
  offersFailed: number;
}

export interface PunchService {
  start(): void;
  /** Idempotent; afterwards requests are refused and timers are gone. */
  stop(): void;
  readonly pool: AppPool;
  readonly pairs: PunchPairs;
  /** For /status: kinds served, members per kind, capacity. */
  status(): { kinds: string[]; members: Record<string, number>; capacity: number; pairs: number };
  counters(): PunchServiceCounters;
}

/** Both members share one public IP behind a NAT: their public addresses meet only if that NAT hairpins, which
 *  many do not (the lab's Linux routers do not). A random punch leaves such pairs out; a directed one still
 *  tries, since the app asked for that very peer. Two apps on one un-NATed host (Public, UDP-Firewall) are fine. */
export function isBehindSameNat(m: Pick<PunchMatch, "requester" | "peer">): boolean {
  const noNat = (nat: AppMember["nat"]) => nat === "public" || nat === "udp-firewall";
  return m.requester.address.ip === m.peer.address.ip && !(noNat(m.requester.nat) && noNat(m.peer.nat));
}

export function createPunchService(components: PunchServiceComponents, init: PunchServiceInit): PunchService {
  const { udp, log } = components;
  const now = components.now ?? Date.now;
  const rand = components.rand ?? Math.random;
  const kinds = servedKinds(init.stakes);
  const pool = createAppPool({
    kinds,
    capacity: init.punchXpool,
    maxPerConnection: init.perConnection ?? DEFAULTS.punch_per_conn,
    maxPerPrefix: init.perPrefix ?? DEFAULTS.punch_per_prefix,
  });
  const livenessMs = init.livenessMs ?? DEFAULTS.punch_liveness_s * 1000;
  const pairs = createPunchPairs();
  const peersPunch = init.peersPunch ?? DEFAULTS.peers_punch;
  const offerTimeoutMs = init.offerTimeoutMs ?? OFFER_PUSH_TIMEOUT_MS;
  const stakeConfig: StakeConfig = { stakes: init.stakes, userId: init.userId, nodeId: components.nodeKey.nodeId };
  const counters: Omit<PunchServiceCounters, keyof CoordinationCounters> = { joins: 0, rejoins: 0, joinsRefused: 0, joinsFull: 0, joinsOverShare: 0, leaves: 0, livenessFailed: 0, punchRequests: 0, punchRefused: 0, offersPushed: 0, offersFailed: 0 };
  /** Bound app links by connection id: where offers are pushed. */
  const links = new Map<string, QuicLink>();
  /** node id → last address it joined from, kept after it leaves (bounded): a later join from elsewhere is
   *  a mapping change. */
  const lastAddress = new BoundedMap<string, AppAddress>(MAX_REMEMBERED_ADDRESSES);
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let sweep: ReturnType<typeof setInterval> | undefined;
  let running = false;

  const refuse = (status: Status, error: string): RpcReply => ({ status, error });

  /** Why a matched pair is not offered after all (the spray policy), or null. */
  function policyRefusal(m: PunchMatch): string | null {
    if (m.strategy.strategy !== "sym-to-cone-spray") return null;
    if (init.allowSpray === false) return `${m.strategy.reason}; this node offers no sprays`;
    const cone = m.requester.nat === "symmetric" ? m.peer : m.requester;
    const pair = `${m.requester.nat ?? "unknown"} ↔ ${m.peer.nat ?? "unknown"}`;
    if (cone.nat === "quic-only") return `${pair}: a QUIC-Only box drops the birthday spray's openers (they are not QUIC; measured)`;
    if (init.sprayNatCones !== false || cone.nat === "udp-firewall") return null;
    return `${pair}: this node sprays no port-restricted cone behind a NAT (punch_spray_nat_cones = false: a bare Linux NAT re-maps the ports it saw inbound first, and a failed spray disturbs the cone side's mapping); only a UDP-Firewall peer is sprayed`;
  }

  function remember(nodeId: string, address: AppAddress): void {
    lastAddress.setNewest(nodeId, address);
  }
  const coordination = createCoordination({ pool, pairs, push: (m, info) => push(m, info), remember, running: () => running, now, log, brokered: components.brokered });

  udp.on("bind", (link) => {
    links.set(link.connectionId, link);
  });
  // A member's NAT re-mapped its live connection (a validated QUIC path move).
  udp.on("migrate", (link, previous) => {
    if (!previous || !links.has(link.connectionId)) return;
    void coordination.onMigrate(link, previous).catch((err: unknown) => log?.warn("re-brokering after a re-mapping failed", { error: errorLine(err) }));
  });
  // Dead connections leave the pool at once (DESIGN §5): the transport reports the close as soon as QUIC
  // does (a CONNECTION_CLOSE, or the idle timeout for an app that vanished).
  udp.on("close", (link) => {
    links.delete(link.connectionId);
    const gone = pool.leave(link.connectionId);
    counters.leaves += gone.length;
    if (gone.length) log?.debug("app left the pool", { ids: gone.map((m) => m.nodeId.slice(0, 16)), kinds: gone.map((m) => m.kind) });
  });

  /** Pushes one side's PunchInfo to a member over its kept link; true when it acknowledged. */
  async function push(member: AppMember, info: PunchInfo, signal?: AbortSignal): Promise<boolean> {
    const link = links.get(member.connectionId);
    if (!link || link.closed) {
      // Its connection is gone but the close event has not come (or it never bound): drop it now.
      counters.leaves += pool.leave(member.connectionId).length;
      counters.offersFailed++;
      return false;
    }
    try {
      const answer = await link.request(METHOD.punch.offer, toBinary(PunchInfoSchema, info), { timeoutMs: offerTimeoutMs, signal });
      if (answer.status !== Status.OK) throw new Error(`${answer.error || "refused"} (status ${answer.status})`);
      counters.offersPushed++;
      return true;
    } catch (err) {
      counters.offersFailed++;
      log?.debug("punch offer not delivered", { to: member.nodeId.slice(0, 16), error: errorLine(err) });
      return false;
    }
  }

  async function onJoin(payload: Uint8Array, ctx: RpcContext): Promise<RpcReply> {
    if (!running) return refuse(Status.REFUSED, "the app services are stopped");
    if (!ctx.peer.key) return refuse(Status.UNAUTHENTICATED, `${METHOD.app.join} needs a bound link: run the app bootstrap first`);
    let join: ReturnType<typeof readAppJoin>;
    try {
      join = readAppJoin(payload);
    } catch (err) {
      counters.joinsRefused++;
      return refuse(Status.BAD_REQUEST, errorLine(err));
    }
    const wrongId = checkJoinIdentity(join, ctx.peer.key);
    if (wrongId) {
      counters.joinsRefused++;
      return refuse(Status.REFUSED, wrongId);
    }
    const stake = stakeAnswer(join.kind, stakeConfig);
    if (!stake.ok) {
      counters.joinsRefused++;
      return refuse(Status.REFUSED, stake.message);
    }
    const address = { ip: ctx.remote.ip, port: ctx.remote.port };
    const result = pool.join(
      { nodeId: join.nodeId, kind: join.kind, nat: join.nat, spki: join.spki, address, connectionId: ctx.connectionId, portDelta: join.portDelta },
      now(),
    );
    if (result.status === "full") {
      counters.joinsFull++;
      return refuse(Status.FULL, result.message);
    }
    if (result.status === "over-share") {
      counters.joinsOverShare++;
      return refuse(Status.FULL, result.message);
    }
    if (result.status === "kind-not-served") {
      counters.joinsRefused++;
      return refuse(Status.REFUSED, result.message);
    }
    const before = lastAddress.get(join.nodeId);
    remember(join.nodeId, result.member.address);
    const changed = result.status === "rejoined" ? result.addressChanged : before !== undefined && !sameAddress(before, result.member.address);
    if (result.status === "rejoined") counters.rejoins++;
    else counters.joins++;
    log?.debug("app joined", { id: join.nodeId.slice(0, 16), kind: join.kind, nat: join.nat ?? "unknown", at: `${address.ip}:${address.port}`, status: result.status, changed });
    const link = links.get(ctx.connectionId);
    if (components.onMember && link && (result.status === "joined" || result.connectionChanged)) {
      const t = setTimeout(() => {
        timers.delete(t);
        components.onMember?.(result.member, link);
      }, 0);
      timers.add(t);
    }
    if (changed && pairs.partnersOf(join.nodeId, now()).length > 0) {
      // After the answer is on its way: the app learns it joined before offers start arriving.
      const t = setTimeout(() => {
        timers.delete(t);
        void coordination.rebroker(result.member).catch((err: unknown) => log?.warn("re-brokering failed", { error: errorLine(err) }));
      }, 0);
      timers.add(t);
    }
    return { status: Status.OK, payload: encodeMessage(AppJoinAnswerSchema, { ...appJoinAnswerInit(stake.answer, result), addressChanged: changed }) };
  }

  async function onPunch(payload: Uint8Array, ctx: RpcContext): Promise<RpcReply> {
    if (!running) return refuse(Status.REFUSED, "the app services are stopped");
    if (!ctx.peer.key) return refuse(Status.UNAUTHENTICATED, `${METHOD.punch.request} needs a bound link: run the app bootstrap first`);
    counters.punchRequests++;
    const brokerTimer = components.brokerSeconds?.startTimer();
    let request: ReturnType<typeof readPunchRequest>;
    try {
      request = readPunchRequest(payload);
    } catch (err) {
      counters.punchRefused++;
      return refuse(Status.BAD_REQUEST, errorLine(err));
    }
    const nodeId = nodeIdOf(ctx.peer.key);
    const t = now();
    pool.seen(ctx.connectionId, t);
    let matches: PunchMatch[];
    if (request.targetId !== null) {
      const m = directedMatch(pool, { nodeId, kind: request.kind, targetId: request.targetId, targetKind: request.targetKind });
      if (!m.ok) {
        counters.punchRefused++;
        return refuse(statusOfMatchError(m.error), m.message);
      }
      const why = policyRefusal(m.match);
      if (why) {
        counters.punchRefused++;
        return refuse(Status.REFUSED, why);
      }
      matches = [m.match];
    } else {
      const max = Math.min(request.max === 0 ? peersPunch : request.max, peersPunch);
      // Draw from every compatible member (best tiers first), then drop the pairs the spray policy refuses.
      const m = randomMatches(pool, { nodeId, kind: request.kind }, { rand, max: pool.capacity, allowSpray: init.allowSpray });
      if (!m.ok) {
        counters.punchRefused++;
        return refuse(statusOfMatchError(m.error), m.message);
      }
      matches = m.matches.filter((x) => policyRefusal(x) === null && !isBehindSameNat(x)).slice(0, max);
      if (matches.length === 0) {
        counters.punchRefused++;
        return refuse(Status.NOT_FOUND, `none of the members of ${JSON.stringify(request.kind)} can be punched from ${m.matches[0]?.requester.nat ?? "this NAT class"} (${policyRefusal(m.matches[0]!) ?? "no peers"})`);
      }
    }
    // The requester must hold this membership on this very connection: offers go back on it.
    if (matches[0] && matches[0].requester.connectionId !== ctx.connectionId) {
      counters.punchRefused++;
      return refuse(Status.REFUSED, `this connection is not the one the requester joined on; send ${METHOD.app.join} again`);
    }
    const brokered = matches.map((m) => ({ m, b: brokerPunch(m.requester, m.peer) }));
    const delivered = await Promise.all(brokered.map(({ m, b }) => push(m.peer, b.forB, ctx.signal)));
    const offers: PunchInfo[] = [];
    brokered.forEach(({ m, b }, i) => {
      if (!delivered[i]) return;
      pairs.note(m.requester, m.peer, t);
      offers.push(b.forA);
      components.brokered?.inc({ strategy: b.plan.strategy });
      brokerTimer?.({ strategy: b.plan.strategy });
      log?.debug("punch brokered", {
        from: m.requester.nodeId.slice(0, 16),
        to: m.peer.nodeId.slice(0, 16),
        strategy: b.plan.strategy,
        dialer: b.plan.dialer === "a" ? "requester" : "target",
        attempt: shortHex(b.attemptId),
      });
    });
    if (offers.length === 0) {
      counters.punchRefused++;
      const what = request.targetId !== null ? `node ${request.targetId.slice(0, 16)} did not acknowledge the offer (its connection is gone)` : "none of the matched peers acknowledged the offer";
      return refuse(Status.NOT_FOUND, what);
    }
    return { status: Status.OK, payload: encodeMessage(PunchAnswerSchema, { offers }) };
  }

  // A deliberate goodbye: memberships, partners and last address go, so the app's next run is a new session.
  async function onLeave(_payload: Uint8Array, ctx: RpcContext): Promise<RpcReply> {
    if (!ctx.peer.key) return refuse(Status.UNAUTHENTICATED, `${METHOD.app.leave} needs a bound link`);
    const nodeId = nodeIdOf(ctx.peer.key);
    const gone = pool.byConnection(ctx.connectionId).filter((m) => m.nodeId === nodeId);
    for (const m of gone) pool.remove(m.nodeId, m.kind);
    counters.leaves += gone.length;
    pairs.forget(nodeId);
    lastAddress.delete(nodeId);
    return { status: Status.OK };
  }

  // App methods over QUIC, on bound links only (the handlers also need the app's key). A join or punch
  // request costs a pool lookup and, for a punch, pushes to peers: a few per second per host.
  const appPolicy = { transports: ["quic"], trust: PINNED_OR_MESH, maxInFlight: 256, maxPayloadBytes: MAX_PUNCH_REQUEST_BYTES } as const;
  const routes: RouteTable = [
    [App.method.join, { ...appPolicy, rate: perHost(10, 40), handler: onJoin }],
    [App.method.leave, { ...appPolicy, rate: perHost(10, 40), handler: onLeave }],
    [Punch.method.request, { ...appPolicy, rate: perHost(10, 40), handler: onPunch }],
  ];
  let removeRoutes: (() => void) | undefined;
  /** Connections with a liveness ping in flight. */
  const pinging = new Set<string>();

  /** Pings the link of every connection whose members were silent for livenessMs; no OK answer → they leave. */
  function checkLiveness(t: number): void {
    for (const [id, link] of links) {
      const members = pool.byConnection(id);
      if (members.length === 0 || pinging.has(id)) continue;
      if (t - Math.max(...members.map((m) => m.lastSeen)) < livenessMs) continue;
      pinging.add(id);
      const fail = (why: string) => {
        const gone = pool.leave(id);
        counters.leaves += gone.length;
        counters.livenessFailed += gone.length;
        log?.debug("app failed its liveness ping", { ids: gone.map((m) => m.nodeId.slice(0, 16)), why });
        void link.close().catch(() => {});
      };
      link
        .request(METHOD.punchLink.ping, undefined, { timeoutMs: LIVENESS_PING_TIMEOUT_MS })
        .then((answer) => (answer.status === Status.OK ? void pool.seen(id, now()) : fail(answer.error || `status ${answer.status}`)))
        .catch((err) => fail(errorLine(err)))
        .finally(() => pinging.delete(id));
    }
  }

  return {
    pool,
    pairs,
    start() {
      if (running) return;
      running = true;
      removeRoutes = udp.router.addAll(routes);
      const idleMs = init.appIdleMs ?? DEFAULT_APP_IDLE_MS;
      sweep = setInterval(() => {
        const t = now();
        // QUIC keep-alives do not reach handlers and cost a stranger nothing: a silent member is pinged, and
        // members whose connection is unknown age out.
        if (running) checkLiveness(t);
        counters.leaves += pool.expire(t, idleMs).length;
        pairs.expire(t);
      }, init.sweepIntervalMs ?? PUNCH_SWEEP_INTERVAL_MS);
      sweep.unref?.();
    },
    stop() {
      if (!running) return;
      running = false;
      removeRoutes?.();
      if (sweep) clearInterval(sweep);
      sweep = undefined;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
    status: () => ({ kinds, members: pool.counts(), capacity: pool.capacity, pairs: pairs.size }),
    counters: () => ({ ...counters, ...coordination.counters }),
  };
}
