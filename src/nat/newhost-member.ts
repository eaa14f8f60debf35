// NewHost help from NAT'd members of a node's findings:<network> pool (seed 001 §组网池: "NAT受限节点虽然不能直接
// 接受其它节点的连入以提供服务，但配合 NewHost 则没问题"). A NewHost probe only has to come from a host the
// prober never sent to; a NAT'd member's public mapping is such a host. A member cannot be reached over TCP, so
// it cannot hand out the consent tokens public delegates require (newhost-consent.ts). Instead its pool node —
// the prober's source server, which proved the target by its own cookie exchange — vouches for the target in an
// order sealed to the member and sent on the member's own link to it (node-link.new-host).
//
// Pool side (orderMemberNewHost): the source server seals a NewHostOrder (purpose SEAL_PURPOSE.natdNewHost) to the
// member's proven key and reports the member's public IP (its link's remote address) as the probe's source.
//
// Member side (createMemberNewHost), checks cheapest first; any failure refuses the order and sends nothing:
//   1. the request came on the member's link to its pool node: pinned, that node's key, its ip:port → REFUSED
//   2. the pool node's rate (MEMBER_PER_POOL_*)                                               → RATE_LIMITED
//   3. the order opens with our key and the pool node's key                                    → UNAUTHENTICATED
//   4. fresh, order id unseen, sane key hash, a unicast target outside the special ranges     → REFUSED / BAD_REQUEST
//   5. the client's proof of work for that target ip:port and key hash (newhost-proof.ts)      → REFUSED
//   6. the target ip:port was not helped in the last MEMBER_TARGET_DEDUP_MS                    → REFUSED
//   7. the target IP's rate (MEMBER_PER_TARGET_IP_*)                                           → RATE_LIMITED
// Then one probe (≤ PROBE_MAX_BYTES, smaller than the order that asked for it: no amplification) from the
// membership's socket.
import { isIP } from "node:net";
import { SEAL_PURPOSE } from "../constants.ts";
import { DecodeError, LimitError, SealError, errorLine } from "../errors.ts";
import type { NodeKey } from "../identity/index.ts";
import { nodeIdOf } from "../identity/index.ts";
import type { Logger } from "../contracts/index.ts";
import { specialRangeOf } from "../contracts/index.ts";
import { DEFAULTS } from "../config/index.ts";
import { METHOD } from "../rpc/index.ts";
import type { Envelope } from "../wire/index.ts";
import { decodeMessage, encodeMessage, NewHostReportSchema, Status, type NewHostOrder, type NewHostProof } from "../wire/index.ts";
import type { DelegateOutcome } from "./cone-server.ts";
import { NEWHOST_MAX_AGE_MS, NEWHOST_ORDER_ID_BYTES, NEWHOST_POW_BITS, SN_KEY_BYTES } from "./constants.ts";
import type { DelegateAnswer } from "./newhost-delegate.ts";
import { isProbeTarget } from "./newhost-delegate.ts";
import { checkNewHostProof, openNewHostOrder, sealNewHostOrder } from "./newhost-proof.ts";
import { buildProbe } from "./probe-packet.ts";
import { randomProbeTmpLen } from "./probe-sizes.ts";
import { DedupWindow, RateBuckets } from "./rate-limit.ts";
import { formatEndpoint, normalizeIp, sameIp, type Endpoint } from "./source-check.ts";

/** Orders a member takes from its pool node: 2 per second, bursts of 10 (a node asks one member per formal step). */
const MEMBER_PER_POOL_RATE_PER_S = 2;
const MEMBER_PER_POOL_BURST = 10;
/** Orders a member takes per target IP: one per 2 s, bursts of 3 (a probe run needs one). */
const MEMBER_PER_TARGET_IP_RATE_PER_S = 0.5;
const MEMBER_PER_TARGET_IP_BURST = 3;
/** The same target ip:port is helped at most once in this window, in ms. */
const MEMBER_TARGET_DEDUP_MS = 10_000;
/** Probes a member sends per order: one small packet. */
export const MEMBER_PROBES_PER_ORDER = 1;
/** How long a source server waits for a member's answer, in ms. */
const MEMBER_ORDER_TIMEOUT_MS = 2_000;

/** The pool node a member joined, as the member pinned it. */
export interface PoolNodeView {
  publicKey: Uint8Array;
  ip: string;
  port: number;
}

/** What the member knows about the link an order came on (an RpcContext satisfies it). */
export interface MemberOrderFrom {
  trust: string;
  remote: { ip: string; port: number };
  peer: { key: Uint8Array | null };
}

export interface MemberNewHostComponents {
  nodeKey: NodeKey;
  /** The pool node we are a member of; null when none. */
  poolNode(): PoolNodeView | null;
  /** Sends one datagram from the membership's socket. */
  send(bytes: Uint8Array, target: Endpoint): Promise<void>;
  log?: Logger;
}

export interface MemberNewHostInit {
  /** @default Date.now */
  now?: () => number;
  /** Send to special-range targets (config allow_special_targets). @default allow_special_targets of defaults.toml */
  allowSpecialTargets?: boolean;
  /** Proof-of-work bits required (tests lower it). @default NEWHOST_POW_BITS */
  powBits?: number;
}

export interface MemberNewHostCounters {
  accepted: number;
  refused: number;
  rateLimited: number;
  probesSent: number;
}

export interface MemberNewHost {
  handle(payload: Uint8Array, from: MemberOrderFrom): Promise<DelegateAnswer>;
  readonly counters: MemberNewHostCounters;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function createMemberNewHost(components: MemberNewHostComponents, init: MemberNewHostInit = {}): MemberNewHost {
  const now = init.now ?? Date.now;
  const allowSpecial = init.allowSpecialTargets ?? DEFAULTS.allow_special_targets;
  const powBits = init.powBits ?? NEWHOST_POW_BITS;
  const perPool = new RateBuckets(MEMBER_PER_POOL_RATE_PER_S, MEMBER_PER_POOL_BURST);
  const perTargetIp = new RateBuckets(MEMBER_PER_TARGET_IP_RATE_PER_S, MEMBER_PER_TARGET_IP_BURST);
  const orderIds = new DedupWindow(2 * NEWHOST_MAX_AGE_MS);
  const targets = new DedupWindow(MEMBER_TARGET_DEDUP_MS);
  const counters: MemberNewHostCounters = { accepted: 0, refused: 0, rateLimited: 0, probesSent: 0 };

  const refuse = (status: Status, error: string): DelegateAnswer => {
    if (status === Status.RATE_LIMITED) counters.rateLimited++;
    else counters.refused++;
    components.log?.debug("NewHost order from the pool node refused", { error });
    return { status, error };
  };

  return {
    counters,
    async handle(payload, from) {
      const t = now();
      // 1–2.
      const pool = components.poolNode();
      const fromPool =
        pool !== null &&
        from.trust !== "untrusted" &&
        from.peer.key !== null &&
        sameBytes(from.peer.key, pool.publicKey) &&
        sameIp(from.remote.ip, pool.ip) &&
        from.remote.port === pool.port;
      if (!fromPool) return refuse(Status.REFUSED, "NewHost orders are taken only from our pool node, on our link to it");
      if (!perPool.take(nodeIdOf(pool.publicKey), t)) return refuse(Status.RATE_LIMITED, "too many NewHost orders from the pool node");
      // 3.
      let order: NewHostOrder;
      try {
        order = openNewHostOrder(components.nodeKey.privateKey, pool.publicKey, payload, SEAL_PURPOSE.natdNewHost);
      } catch (err) {
        if (err instanceof SealError) return refuse(Status.UNAUTHENTICATED, "NewHost order is not sealed by the pool node for this node");
        if (err instanceof DecodeError || err instanceof LimitError) return refuse(Status.BAD_REQUEST, errorLine(err));
        throw err;
      }
      // 4.
      if (Math.abs(Number(order.issuedAtMs) - t) > NEWHOST_MAX_AGE_MS) return refuse(Status.REFUSED, "NewHost order is stale");
      if (order.orderId.length !== NEWHOST_ORDER_ID_BYTES) return refuse(Status.BAD_REQUEST, `order_id must be ${NEWHOST_ORDER_ID_BYTES} bytes`);
      if (order.hostKey.length !== SN_KEY_BYTES) return refuse(Status.BAD_REQUEST, `host_key must be ${SN_KEY_BYTES} bytes`);
      if (!isProbeTarget(order.targetIp) || order.targetPort < 1 || order.targetPort > 65535) return refuse(Status.BAD_REQUEST, "NewHost target is not a unicast ip:port");
      if (!allowSpecial && specialRangeOf(order.targetIp) !== null) return refuse(Status.REFUSED, "NewHost target is in a special-purpose range");
      if (orderIds.seen(Buffer.from(order.orderId).toString("hex"), t)) return refuse(Status.REFUSED, "NewHost order was already used");
      // 5.
      const target: Endpoint = { ip: normalizeIp(order.targetIp), port: order.targetPort };
      const proof = checkNewHostProof(order.proof, target, order.hostKey, t, powBits);
      if (!proof.ok) return refuse(Status.REFUSED, `NewHost order carries no valid client proof (${proof.reason})`);
      // 6–7.
      if (targets.seen(formatEndpoint(target), t)) return refuse(Status.REFUSED, "this target was helped moments ago");
      if (!perTargetIp.take(target.ip, t)) return refuse(Status.RATE_LIMITED, "too many NewHost orders for this target IP");

      counters.accepted++;
      let sent = 0;
      for (let i = 0; i < MEMBER_PROBES_PER_ORDER; i++) {
        try {
          await components.send(buildProbe(order.hostKey, "newHost", { tmpLen: randomProbeTmpLen() }), target);
          sent++;
        } catch (err) {
          components.log?.debug("NewHost probe not sent", { target: formatEndpoint(target), error: errorLine(err) });
        }
      }
      counters.probesSent += sent;
      // The pool node knows our public IP better than we do (it is its link's remote address).
      return { status: Status.OK, payload: encodeMessage(NewHostReportSchema, { fromIp: "", sent }) };
    },
  };
}

/** A NAT'd member of the findings pool and its live link (the link's peerKey is the key it proved at bind). */
export interface NatdMemberLink {
  nodeId: string;
  link: {
    readonly remote: { ip: string; port: number };
    readonly peerKey?: Uint8Array;
    readonly closed: boolean;
    request(method: string, payload?: Uint8Array, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Envelope>;
  };
}

/** Members that can help `target`: live, bound to the key of their id, one per public IP, not on the target's IP,
 *  ours, or one the client talks to (its NewHost probe would not count, source-check.ts R4). */
export function usableMembers(members: readonly NatdMemberLink[], target: Endpoint, avoidIps: ReadonlySet<string>, ownIp: string | null): NatdMemberLink[] {
  const byIp = new Map<string, NatdMemberLink>();
  for (const m of members) {
    const ip = normalizeIp(m.link.remote.ip);
    if (m.link.closed || !m.link.peerKey || nodeIdOf(m.link.peerKey) !== m.nodeId || isIP(ip) !== isIP(normalizeIp(target.ip))) continue;
    if (sameIp(ip, target.ip) || avoidIps.has(ip) || (ownIp !== null && sameIp(ip, ownIp)) || byIp.has(ip)) continue;
    byIp.set(ip, m);
  }
  return [...byIp.values()];
}

/** Pool side: asks `member` for its NewHost probe towards `req.target`; never throws. */
export async function orderMemberNewHost(
  nodeKey: NodeKey,
  member: NatdMemberLink,
  req: { target: Endpoint; hostKey: Uint8Array; avoidIps: string[]; proof: NewHostProof; clientConn: Uint8Array; issuedAtMs: bigint },
  signal?: AbortSignal,
): Promise<DelegateOutcome> {
  const fromIp = normalizeIp(member.link.remote.ip);
  const result: DelegateOutcome = { nodeId: member.nodeId, fromIp: "", sent: 0, error: "" };
  try {
    const payload = sealNewHostOrder(
      nodeKey.privateKey,
      member.link.peerKey!,
      {
        targetIp: req.target.ip,
        targetPort: req.target.port,
        hostKey: req.hostKey,
        issuedAtMs: req.issuedAtMs,
        orderId: crypto.getRandomValues(new Uint8Array(NEWHOST_ORDER_ID_BYTES)),
        avoidIps: req.avoidIps,
        proof: req.proof,
        clientConn: req.clientConn,
      },
      SEAL_PURPOSE.natdNewHost,
    );
    const ans = await member.link.request(METHOD.nodeLink.newHost, payload, { timeoutMs: MEMBER_ORDER_TIMEOUT_MS, signal });
    if (ans.status !== Status.OK) {
      result.error = ans.error || `status ${ans.status}`;
      return result;
    }
    const report = decodeMessage(NewHostReportSchema, ans.payload, "NewHostReport", 512);
    result.sent = Math.min(report.sent, MEMBER_PROBES_PER_ORDER);
    result.fromIp = result.sent > 0 ? fromIp : "";
    return result;
  } catch (err) {
    result.error = errorLine(err);
    return result;
  }
}
