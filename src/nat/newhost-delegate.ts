// The delegate side of NewHost (DESIGN §6 step 3: "asks ≥ 2 other nodes over the mesh to send 3 probes each from
// their IPs"): checks the order's proof and limits, then sends 3 SN probes keyed with SHA-256(K).
//
// Checks, cheapest first; any failure refuses the order and sends nothing:
//   1. the asking link is a bootstrapped mesh link with a proven key            → REFUSED
//   2. the asking node's rate (NEWHOST_PER_SOURCE_*)                            → RATE_LIMITED
//   3. the order opens with our key and the asker's key (newhost-proof.ts)      → UNAUTHENTICATED / BAD_REQUEST
//   4. fresh (NEWHOST_MAX_AGE_MS), order id unseen, sane target and key hash    → REFUSED / BAD_REQUEST
//      and, on a public node, a target outside the special ranges               → REFUSED
//   5. the client's proof of work for that target ip:port and key hash          → REFUSED
//   6. our own consent token for that ip:port (newhost-consent.ts): the target
//      asked this very node, which no mesh peer can forge                       → REFUSED
//   7. the target ip:port was not probed in the last NEWHOST_TARGET_DEDUP_MS     → REFUSED
//   8. the target IP's rate (NEWHOST_PER_TARGET_IP_*)                            → RATE_LIMITED
// Then it picks the source IP (an own IP outside the client's avoid list, preferring secondary ones that no
// client ever talks to), sends NEWHOST_PROBES_PER_DELEGATE probes PROBE_SPACING_MS apart, and reports the IP.
import { isIP } from "node:net";
import { DecodeError, LimitError, SealError, errorLine } from "../errors.ts";
import type { NodeKey } from "../identity/index.ts";
import { nodeIdOf } from "../identity/index.ts";
import { encodeMessage, Status } from "../wire/index.ts";
import { NewHostReportSchema, type NewHostOrder } from "../wire/index.ts";
import { MAX_AVOID_IPS, NEWHOST_MAX_AGE_MS, NEWHOST_ORDER_ID_BYTES, PROBE_SPACING_MS, SN_KEY_BYTES } from "./constants.ts";
import { DedupWindow, RateBuckets } from "./rate-limit.ts";
import { checkNewHostProof, openNewHostOrder } from "./newhost-proof.ts";
import type { ConsentIssuer } from "./newhost-consent.ts";
import { specialRangeOf } from "../contracts/index.ts";
import { DEFAULTS } from "../config/index.ts";
import { buildProbe } from "./probe-packet.ts";
import { randomProbeTmpLen } from "./probe-sizes.ts";
import { formatEndpoint, normalizeIp, type Endpoint } from "./source-check.ts";
import type { Logger } from "../contracts/index.ts";

/** NewHost orders a delegate accepts per target IP: 1 per second, bursts of 20 (a run asks each delegate once). */
const NEWHOST_PER_TARGET_IP_RATE_PER_S = 1;
const NEWHOST_PER_TARGET_IP_BURST = 20;
/** NewHost orders a delegate accepts per source node: 5 per second, bursts of 50. */
const NEWHOST_PER_SOURCE_RATE_PER_S = 5;
const NEWHOST_PER_SOURCE_BURST = 50;
/** The same target ip:port is probed by a delegate at most once in this window, in ms. */
const NEWHOST_TARGET_DEDUP_MS = 10_000;

/** NewHost probes each delegate sends (DESIGN §6 step 3). */
const NEWHOST_PROBES_PER_DELEGATE = 3;

/** What the delegate needs to know about the asking link (a MeshLink satisfies it). */
export interface DelegationPeer {
  trust: string;
  peerKey: Uint8Array | null;
}

export interface DelegateAnswer {
  status: Status;
  payload?: Uint8Array;
  error?: string;
}

export interface NewHostDelegateComponents {
  nodeKey: NodeKey;
  /** Sends one datagram to `target` from `fromIp` (an own address), or from the node's main socket when null. */
  sendFrom(bytes: Uint8Array, target: Endpoint, fromIp: string | null): Promise<void>;
  /** The node's own IPs: the one it serves on (null when bound to a wildcard) and any others it has. */
  ownIps(): { main: string | null; others: readonly string[] };
  /** The IP the kernel sends to `target` from, when the main IP is a wildcard. @default none (reported as "") */
  sourceIpFor?: (target: Endpoint) => Promise<string | null>;
  /** Issues the consent tokens clients fetch over HTTPS and checks the ones orders carry. */
  consent: ConsentIssuer;
  log?: Logger;
}

export interface NewHostDelegateInit {
  /** @default Date.now */
  now?: () => number;
  /** @default PROBE_SPACING_MS */
  spacingMs?: number;
  /** Send to special-range targets (loopback, private, documentation…): labs and devnets only (config
   *  allow_special_targets). @default allow_special_targets of defaults.toml */
  allowSpecialTargets?: boolean;
}

export interface NewHostDelegateCounters {
  accepted: number;
  refused: number;
  rateLimited: number;
  probesSent: number;
}

export interface NewHostDelegate {
  handle(payload: Uint8Array, peer: DelegationPeer): Promise<DelegateAnswer>;
  readonly counters: NewHostDelegateCounters;
}

/** True for an address probes may go to: unicast, not unspecified, not multicast or broadcast. */
export function isProbeTarget(ip: string): boolean {
  const fam = isIP(ip);
  if (fam === 4) {
    const [a, b, c, d] = ip.split(".").map(Number) as [number, number, number, number];
    if (a === 0 || a >= 224) return false; // 0/8 "this network", 224/4 multicast, 240/4 reserved + broadcast
    return !(a === 255 && b === 255 && c === 255 && d === 255);
  }
  if (fam === 6) {
    const n = normalizeIp(ip);
    return n !== "::" && !n.startsWith("ff");
  }
  return false;
}

export function createNewHostDelegate(components: NewHostDelegateComponents, init: NewHostDelegateInit = {}): NewHostDelegate {
  const now = init.now ?? Date.now;
  const spacingMs = init.spacingMs ?? PROBE_SPACING_MS;
  const allowSpecial = init.allowSpecialTargets ?? DEFAULTS.allow_special_targets;
  const perSource = new RateBuckets(NEWHOST_PER_SOURCE_RATE_PER_S, NEWHOST_PER_SOURCE_BURST);
  const perTargetIp = new RateBuckets(NEWHOST_PER_TARGET_IP_RATE_PER_S, NEWHOST_PER_TARGET_IP_BURST);
  const orderIds = new DedupWindow(2 * NEWHOST_MAX_AGE_MS);
  const targets = new DedupWindow(NEWHOST_TARGET_DEDUP_MS);
  const counters: NewHostDelegateCounters = { accepted: 0, refused: 0, rateLimited: 0, probesSent: 0 };

  const refuse = (status: Status, error: string): DelegateAnswer => {
    if (status === Status.RATE_LIMITED) counters.rateLimited++;
    else counters.refused++;
    components.log?.debug("NewHost order refused", { error });
    return { status, error };
  };

  function pickSourceIp(order: NewHostOrder): string | null {
    const avoid = new Set(order.avoidIps.slice(0, MAX_AVOID_IPS).map(normalizeIp));
    const { main, others } = components.ownIps();
    const fam = isIP(order.targetIp);
    const usable = (ip: string) => isIP(ip) === fam && !avoid.has(normalizeIp(ip));
    // A secondary IP no client talks to cannot be in any NAT's "seen" set (see source-check.ts R4).
    const secondary = others.find(usable);
    if (secondary) return secondary;
    return main;
  }

  return {
    counters,
    async handle(payload, peer) {
      const t = now();
      // 1–2.
      if (peer.trust !== "mesh" || !peer.peerKey) return refuse(Status.REFUSED, "NewHost orders are taken only on bootstrapped mesh links");
      const source = nodeIdOf(peer.peerKey);
      if (!perSource.take(source, t)) return refuse(Status.RATE_LIMITED, "too many NewHost orders from this node");
      // 3.
      let order: NewHostOrder;
      try {
        order = openNewHostOrder(components.nodeKey.privateKey, peer.peerKey, payload);
      } catch (err) {
        if (err instanceof SealError) return refuse(Status.UNAUTHENTICATED, "NewHost order is not sealed by the asking node for this node");
        if (err instanceof DecodeError || err instanceof LimitError) return refuse(Status.BAD_REQUEST, errorLine(err));
        throw err;
      }
      // 4.
      if (Math.abs(Number(order.issuedAtMs) - t) > NEWHOST_MAX_AGE_MS) return refuse(Status.REFUSED, "NewHost order is stale");
      if (order.orderId.length !== NEWHOST_ORDER_ID_BYTES) return refuse(Status.BAD_REQUEST, `order_id must be ${NEWHOST_ORDER_ID_BYTES} bytes`);
      if (order.hostKey.length !== SN_KEY_BYTES) return refuse(Status.BAD_REQUEST, `host_key must be ${SN_KEY_BYTES} bytes`);
      if (!isProbeTarget(order.targetIp) || order.targetPort < 1 || order.targetPort > 65535) {
        return refuse(Status.BAD_REQUEST, "NewHost target is not a unicast ip:port");
      }
      if (!allowSpecial && specialRangeOf(order.targetIp) !== null) return refuse(Status.REFUSED, "NewHost target is in a special-purpose range");
      if (orderIds.seen(Buffer.from(order.orderId).toString("hex"), t)) return refuse(Status.REFUSED, "NewHost order was already used");
      // 5.
      const target: Endpoint = { ip: normalizeIp(order.targetIp), port: order.targetPort };
      const proof = checkNewHostProof(order.proof, target, order.hostKey, t);
      if (!proof.ok) return refuse(Status.REFUSED, `NewHost order carries no valid client proof (${proof.reason})`);
      // 6.
      const consent = components.consent.check(order.consent, target);
      if (!consent.ok) return refuse(Status.REFUSED, `the target did not ask this node for NewHost probes (consent ${consent.reason})`);
      // 7–8.
      if (targets.seen(formatEndpoint(target), t)) return refuse(Status.REFUSED, "this target was probed moments ago");
      if (!perTargetIp.take(target.ip, t)) return refuse(Status.RATE_LIMITED, "too many NewHost orders for this target IP");

      counters.accepted++;
      const fromIp = pickSourceIp(order);
      const reportedIp = fromIp ?? (await components.sourceIpFor?.(target)) ?? "";
      let sent = 0;
      for (let i = 0; i < NEWHOST_PROBES_PER_DELEGATE; i++) {
        if (i > 0) await Bun.sleep(spacingMs);
        try {
          await components.sendFrom(buildProbe(order.hostKey, "newHost", { tmpLen: randomProbeTmpLen() }), target, fromIp);
          sent++;
        } catch (err) {
          components.log?.debug("NewHost probe not sent", { target: formatEndpoint(target), error: errorLine(err) });
        }
      }
      counters.probesSent += sent;
      return { status: Status.OK, payload: encodeMessage(NewHostReportSchema, { fromIp: reportedIp, sent }) };
    },
  };
}
