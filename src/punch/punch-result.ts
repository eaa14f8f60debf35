// The result of one punch attempt, as `findings punch --json` prints it (DESIGN §7; STYLE §9 "reports are
// filled in as the run goes; null means not tested; elapsedMs is always set").
import type { NatClassName } from "../nat/index.ts";
import type { PunchOffer } from "./punch-info.ts";

export interface PunchResult {
  connected: boolean;
  /** The peer's address on the punched link ("ip:port"); null when no link came up. */
  peer: string | null;
  /** Round trip of one request over the punched link, in ms; null when no link came up. */
  rttMs: number | null;
  /** From the start of the attempt (the CLI: from the start of the command) to the established link, or to
   *  the failure, in ms. */
  elapsedMs: number;
  /** "direct" | "simultaneous" | "sym-to-restricted" | "sym-to-cone-spray" (punch-strategy.ts), or
   *  "impossible" when the node refused the pair. */
  strategy: string;
  /** One line: why it failed. Only when connected is false. */
  reason?: string;
  /** "dial" (QUIC client) or "listen" (QUIC server); null when no attempt was made. */
  role: "dial" | "listen" | null;
  peerId: string | null;
  nat: NatClassName | null;
  peerNat: NatClassName | null;
  /** Whether the node's plan expected this pair to connect (a spray is a bet). */
  expectSuccess: boolean | null;
  /** Attempt id (hex), the same at both sides: correlates their results and logs. */
  attemptId: string | null;
  /** Time of the attempt itself (offer → link), in ms. */
  punchMs: number;
  /** Hole-opening datagrams this side sent (openers and spray probes), and those it got from the peer. */
  packetsSent: number;
  packetsReceived: number;
  /** Spray only: the symmetric side's sockets, the cone side's probes, and the port that met. */
  spray?: { sockets: number; probes: number; hitPort: number | null };
}

/** A failure before any attempt (node unreachable, request refused): the same shape, with the reason. */
export function failedResult(reason: string, fields: Partial<PunchResult> & { elapsedMs: number }): PunchResult {
  return {
    connected: false,
    peer: null,
    rttMs: null,
    strategy: "none",
    reason,
    role: null,
    peerId: null,
    nat: null,
    peerNat: null,
    expectSuccess: null,
    attemptId: null,
    punchMs: 0,
    packetsSent: 0,
    packetsReceived: 0,
    ...fields,
  };
}

/** The fields every attempt result takes from its offer. */
export function resultBase(offer: PunchOffer, nat: NatClassName | null): Pick<PunchResult, "strategy" | "role" | "peerId" | "nat" | "peerNat" | "expectSuccess" | "attemptId"> {
  return {
    strategy: offer.strategy,
    role: offer.role,
    peerId: offer.peerId,
    nat,
    peerNat: offer.peerNat,
    expectSuccess: offer.expectSuccess,
    attemptId: offer.attemptHex,
  };
}

/** Two links to one run of a peer that came up within this long of each other are a crossing (both sides
 *  punched each other at once), not a re-mapping, in ms. */
const CROSSING_WINDOW_MS = 5_000;

/** One live link to a peer, as the choice between two sees it: who dialled, when it came up, and the SPKI of
 *  the certificate the peer's run presented (a new run of the peer has a new certificate). */
export interface LinkSide {
  role: PunchResult["role"];
  at: number;
  peerSpki: string;
}

/** Whether a newer live link to a peer replaces the older one: yes when the peer restarted (another
 *  certificate: the old link is dead, whatever it says) or its mapping changed (the old link is likely dead),
 *  unless both came up from one run of the peer within CROSSING_WINDOW_MS; then both sides keep the link the
 *  smaller node id dialled, so they agree instead of each closing the other's choice. */
export function newerLinkWins(older: LinkSide, newer: LinkSide, ids: { self: string; peer: string }): boolean {
  if (newer.peerSpki !== older.peerSpki) return true;
  if (newer.at - older.at >= CROSSING_WINDOW_MS) return true;
  const dialer = (role: PunchResult["role"]) => (role === "dial" ? ids.self : ids.peer);
  return dialer(newer.role) <= dialer(older.role);
}

/** One readable line for terminals, built from the JSON object (STYLE §9). */
export function describeResult(r: PunchResult): string {
  const who = r.peerId ? `${r.peerId.slice(0, 16)}…` : "peer";
  if (r.connected) return `connected to ${who} at ${r.peer} (${r.strategy}, ${r.role}) in ${r.elapsedMs} ms, rtt ${r.rttMs ?? "?"} ms`;
  return `not connected to ${who} (${r.strategy}): ${r.reason ?? "unknown reason"} after ${r.elapsedMs} ms`;
}
