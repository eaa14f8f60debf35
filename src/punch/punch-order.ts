// Which side of a punch sends its first packet first (DESIGN §7 "both listen and dial at once", refined;
// seed 000 §基本规则; measured in the §10 NAT lab, whose routers are Linux netfilter NATs).
//
// Why order matters: a NAT built on connection tracking (Linux, and the many home routers that run it) keeps
// an entry for an unsolicited inbound packet even when it drops it or answers it with ICMP ("poisoning"). If
// the peer's first packet reaches our NAT before we sent anything to the peer, the tuple peer → our mapping is
// taken; our own first packet to the peer then clashes with it and the NAT gives us ANOTHER external port for
// this peer. That only hurts when the peer's filter checks ports:
//   - the first sender's NAT is poisoned? No: it sent first, so the peer's packet is a reply for it.
//   - the second sender's NAT is poisoned by the first's packet and maps it to a new port; the first sender
//     must then accept that new port: fine when it filters by address only (restricted cone), or when the
//     second side's box does not poison at all (a stateful firewall without NAT forwards the packet and drops
//     it before the entry is confirmed: UDP-Firewall).
// Hence who goes first, by filtering:
//   restricted cone   first   (filters by IP only: it accepts the second sender's new port)
//   port-restricted   second to a restricted cone, first to a UDP firewall
//   UDP firewall      last    (never poisoned, so its port never changes)
//   symmetric vs RC   RC first; the symmetric side must not send at all before, or its first packet poisons
//                     the RC side's NAT for exactly the tuple it will use.
// Equal ranks (two P-RC) send together: with a short path their packets cannot cross in time and Linux NATs on
// both sides fail; longer real paths often let them cross. An open listener (Public/FullC) sends nothing: its
// openers would only poison the dialer's NAT.
import type { NatClassName } from "../nat/index.ts";
import { PUNCH_SECOND_SENDER_DELAY_MS, PUNCH_SECOND_SENDER_MIN_MS, PUNCH_SECOND_SENDER_RTTS } from "./constants.ts";
import type { PunchStrategyName } from "./punch-strategy.ts";

export type SendOrder = "first" | "second" | "together" | "silent";

/** One side of an attempt as this side sees it. */
export interface PunchSides {
  strategy: PunchStrategyName;
  role: "dial" | "listen";
  myNat: NatClassName | null;
  peerNat: NatClassName | null;
}

/** Lower goes first in a cone ↔ cone simultaneous open. */
function coneRank(nat: NatClassName | null): number {
  switch (nat) {
    case "restricted-cone":
      return 0;
    case "port-restricted-cone":
    case "quic-only":
      return 1;
    case "udp-firewall":
      return 2;
    default:
      return 1;
  }
}

/** When this side sends its first packet to the peer. */
export function sendOrder({ strategy, role, myNat, peerNat }: PunchSides): SendOrder {
  switch (strategy) {
    case "direct":
      // The open listener needs no hole; the dialer's packets are replies for nobody, so it just goes.
      return role === "listen" ? "silent" : "first";
    case "sym-to-restricted":
      return myNat === "symmetric" ? "second" : "first";
    case "simultaneous": {
      const mine = coneRank(myNat);
      const theirs = coneRank(peerNat);
      return mine === theirs ? "together" : mine < theirs ? "first" : "second";
    }
    case "sym-to-cone-spray":
    case "impossible":
      return "together";
  }
}

/** Whether this side punches from a fresh socket instead of the one the node saw. The second sender of a
 *  simultaneous open whose peer filters by address only (restricted cone) may come from any port, and its
 *  NAT may have to re-map it (the first sender's packet got there first). A Linux NAT then hands the re-mapped
 *  port to every later flow of the same socket (nf_nat find_appropriate_src reuses the newest mapping of a
 *  source), so the mapping the node knows would silently stop being the one new peers meet. A fresh socket
 *  keeps the main one clean: the restricted-cone side learns the new port from our openers and handshake. */
export function useFreshSocket({ strategy, myNat, peerNat }: PunchSides, order: SendOrder): boolean {
  if (strategy !== "simultaneous" || order !== "second" || peerNat !== "restricted-cone") return false;
  return myNat === "port-restricted-cone" || myNat === "quic-only";
}

/** How long a side that sends second waits after its offer, in ms (constants.ts PUNCH_SECOND_SENDER_*):
 *  `requested` = this side asked for the punch, so the peer had its offer first; `nodeRttMs` = this side's RTT
 *  to the node. */
export function secondSenderDelayMs(requested: boolean, nodeRttMs: number | undefined): number {
  if (requested) return PUNCH_SECOND_SENDER_MIN_MS;
  if (nodeRttMs === undefined || !Number.isFinite(nodeRttMs) || nodeRttMs < 0) return PUNCH_SECOND_SENDER_DELAY_MS;
  return PUNCH_SECOND_SENDER_MIN_MS + PUNCH_SECOND_SENDER_RTTS * nodeRttMs;
}

/** How long a dialer that cannot see openers (QUIC-Only) waits before its first handshake: nothing when it sent
 *  second (the listener went first and its turn is long past), else until the listener's turn surely came, the
 *  longest a second sender waits plus the margin for its packet to leave its NAT. */
export function blindDialWaitMs(order: SendOrder, nodeRttMs: number | undefined): number {
  if (order === "second") return 0;
  return PUNCH_SECOND_SENDER_MIN_MS + secondSenderDelayMs(false, nodeRttMs);
}
