// Pure NAT decision: observations of the STUN2 probe → NAT class, RFC 4787 axes, and whether the answer is already
// certain (DESIGN §6 "Procedure" and decision matrix; STUN2 seed 000 §提供的服务 2; RFC 4787 §4.1, §5).
//
// The prober feeds what has arrived so far; decideNat can be called after every event. `certain` means that no
// observation still pending can change the answer, so the prober may stop early; otherwise it waits out its
// timeout (config probe_timeout_s, seed 6 s), marks the phases finished and calls again.
//
// Rules, in the order they are tried (ids are `NatDecision.rule`):
//   no-answer        nothing answered over UDP nor TCP: no class can be given (the servers may be down).
//   udp-blocked      DESIGN §6 class table: no UDP path at all (no QUIC/STUN answer); TCP may still work.
//   symmetric        DESIGN §6 step 1: one local socket, ≥ 3 servers on distinct IPs; differing mapped addresses
//                    → Sym, certain at once (more answers cannot make two different ones equal).
//   quic-only        DESIGN §6 step 2: the source server sent raw probes on the live QUIC 4-tuple; none arrived
//                    but QUIC works → QUIC-Only. Any cone NAT admits packets on an open 4-tuple, so only a
//                    protocol filter explains it. A NewPort/NewHost probe arriving later disproves it.
//   Step 3 matrix (formal probe on a new unconnected socket; "mapped = local" is NewMap.Y in the seed's terms):
//   newhost-mapped-differs     NewHost received, mapped ≠ local → FullC   (certain at once)
//   newhost-mapped-equals      NewHost received, mapped = local → Public  (certain at once)
//   no-newhost-mapped-equals   no NewHost,       mapped = local → UDP-Firewall (after the timeout)
//   newport-only               NewPort received, no NewHost    → RC      (after the timeout)
//   nothing                    neither                         → P-RC    (after the timeout)
//   pending          not enough yet to apply any rule.
// A negative answer (no NewHost) is only certain when the formal window finished and at least one delegate
// agreed to send NewHost probes; P-RC additionally needs the passage test to have shown that raw UDP gets in,
// or it could not be told from QUIC-Only.

import {
  natLabel,
  type FilteringBehavior,
  type MappingBehavior,
  type NatClassName,
  type NatLabel,
} from "./class.ts";
import { formatEndpoint, sameEndpoint, sameIp, type Endpoint } from "./source-check.ts";
import { PRE_PROBE_MIN_SERVERS } from "./constants.ts";

/** One pre-probe exchange: the server asked and the mapped address it saw (null: it did not answer). */
export interface PreProbeAnswer {
  server: Endpoint;
  mapped: Endpoint | null;
}

/** DESIGN §6 step 2. */
export interface PassageObservation {
  /** Passage probes received that passed verifyProbe and checkProbeSource. */
  rawProbes: number;
  /** The QUIC connection to the source server carried requests. */
  quicWorks: boolean;
  /** The wait for passage probes is over. */
  finished: boolean;
}

/** DESIGN §6 step 3, on a new unconnected socket. */
export interface FormalObservation {
  /** The formal socket's local ip:port as the host sees it (the interface address, never 0.0.0.0). */
  localAddress: Endpoint | null;
  /** The mapped address the source server saw for the formal socket; null if it did not answer. */
  mapped: Endpoint | null;
  /** NewPort probes received that passed verifyProbe and checkProbeSource. */
  newPort: number;
  /** Sender of each NewHost probe received that passed verifyProbe and checkProbeSource. */
  newHostFrom: readonly Endpoint[];
  /** Delegates that agreed to send NewHost probes; 0 means NewHost could not be tested. */
  newHostDelegates: number;
  /** The wait for NewPort/NewHost probes is over. */
  finished: boolean;
}

/** Everything observed so far; `null` means "not tested (yet)", never "failed". */
export interface NatObservations {
  /** Local ip:port of the pre-probe socket (the interface address, never 0.0.0.0). */
  localAddress: Endpoint | null;
  /** DESIGN §6 step 1: answers from one local socket, one per server. */
  preProbe: readonly PreProbeAnswer[];
  /** Every pre-probe server answered or timed out. */
  preProbeFinished: boolean;
  /** Some server answered over UDP (QUIC or STUN); false only after every attempt failed. null: inferred from
   *  the other observations. */
  udpPath: boolean | null;
  /** `whoami --tcp` (HTTPS) worked; reported with udp-blocked. */
  tcpWorks: boolean | null;
  passage: PassageObservation | null;
  formal: FormalObservation | null;
}

export type NatRule =
  | "no-answer"
  | "udp-blocked"
  | "symmetric"
  | "quic-only"
  | "newhost-mapped-differs"
  | "newhost-mapped-equals"
  | "no-newhost-mapped-equals"
  | "newport-only"
  | "nothing"
  | "pending";

export interface NatDecision {
  nat: NatClassName | null;
  label: NatLabel | null;
  mapping: MappingBehavior | null;
  filtering: FilteringBehavior | null;
  portPreserved: boolean | null;
  /** No observation still pending can change `nat`. */
  certain: boolean;
  rule: NatRule;
  reason: string;
}

interface MappingFacts {
  /** Two answers disagree. */
  differs: boolean;
  mapping: MappingBehavior | null;
  /** All answers agree and come from enough distinct server IPs that the pre-probe cannot still show Sym. */
  settled: boolean;
  detail: string;
}

function answered(obs: NatObservations): { server: Endpoint; mapped: Endpoint }[] {
  return obs.preProbe.flatMap((a) => (a.mapped ? [{ server: a.server, mapped: a.mapped }] : []));
}

function countDistinctIps(eps: readonly Endpoint[]): number {
  const seen: Endpoint[] = [];
  for (const e of eps) if (!seen.some((s) => sameIp(s.ip, e.ip))) seen.push(e);
  return seen.length;
}

/** RFC 4787 §4.1 from the pre-probe. Same-IP/other-port server pairs tell address-dependent from
 *  address-and-port-dependent; without such a pair the port dependence is "not tested" (null). */
function mappingFacts(obs: NatObservations): MappingFacts {
  const got = answered(obs);
  const differs = got.some((a) => !sameEndpoint(a.mapped, got[0]!.mapped));
  const ips = countDistinctIps(got.map((a) => a.server));
  if (!differs) {
    const settled = ips >= PRE_PROBE_MIN_SERVERS || (obs.preProbeFinished && ips >= 2);
    return {
      differs,
      mapping: ips >= 2 ? "endpoint-independent" : null,
      settled,
      detail: `${got.length} pre-probe answer(s) from ${ips} IP(s) agree`,
    };
  }
  let samePairAgrees = false;
  let samePairDiffers = false;
  for (let i = 0; i < got.length; i++) {
    for (let j = i + 1; j < got.length; j++) {
      const a = got[i]!;
      const b = got[j]!;
      if (!sameIp(a.server.ip, b.server.ip) || a.server.port === b.server.port) continue;
      if (sameEndpoint(a.mapped, b.mapped)) samePairAgrees = true;
      else samePairDiffers = true;
    }
  }
  const crossIpDiffers = got.some((a) =>
    got.some((b) => !sameIp(a.server.ip, b.server.ip) && !sameEndpoint(a.mapped, b.mapped)),
  );
  let mapping: MappingBehavior | null = null;
  if (samePairDiffers) mapping = "address-and-port-dependent";
  else if (samePairAgrees && crossIpDiffers) mapping = "address-dependent";
  const list = got.map((a) => `${formatEndpoint(a.server)}→${formatEndpoint(a.mapped)}`).join(", ");
  // Two differing mappings already prove symmetric; the port dependence needs a same-IP pair, so wait for
  // the rest of the pre-probe unless that pair is in (a cross-IP pair can answer first under load).
  return { differs, mapping, settled: mapping !== null || obs.preProbeFinished, detail: `pre-probe mappings differ (${list})` };
}

/** Port preservation: the mapped port equals the local port, from the formal socket if known, else from every
 *  pre-probe answer (RFC 4787 §4.2.1). */
function portPreservedOf(obs: NatObservations): boolean | null {
  const f = obs.formal;
  if (f?.mapped && f.localAddress) return f.mapped.port === f.localAddress.port;
  const got = answered(obs);
  if (obs.localAddress && got.length > 0) return got.every((a) => a.mapped.port === obs.localAddress!.port);
  return null;
}

/** "mapped = local" (no translation) from the formal socket, else from the pre-probe; null when unknown. */
function noTranslation(obs: NatObservations): boolean | null {
  const f = obs.formal;
  if (f?.mapped && f.localAddress) return sameEndpoint(f.mapped, f.localAddress);
  const got = answered(obs);
  if (obs.localAddress && got.length > 0) return got.every((a) => sameEndpoint(a.mapped, obs.localAddress!));
  return null;
}

function udpPathOf(obs: NatObservations): boolean | null {
  if (obs.udpPath !== null) return obs.udpPath;
  if (answered(obs).length > 0 || obs.formal?.mapped || obs.passage?.quicWorks) return true;
  return null;
}

function decision(
  nat: NatClassName | null,
  rule: NatRule,
  certain: boolean,
  reason: string,
  axes: { mapping?: MappingBehavior | null; filtering?: FilteringBehavior | null; portPreserved?: boolean | null },
): NatDecision {
  return {
    nat,
    label: nat === null ? null : natLabel(nat),
    mapping: axes.mapping ?? null,
    filtering: axes.filtering ?? null,
    portPreserved: axes.portPreserved ?? null,
    certain,
    rule,
    reason,
  };
}

/** Applies the rules at the top of this file to what was observed so far. Pure; never throws. */
export function decideNat(obs: NatObservations): NatDecision {
  const udp = udpPathOf(obs);
  if (udp === false) {
    if (obs.tcpWorks === false) {
      return decision(null, "no-answer", false, "no server answered over UDP nor TCP: the servers may be down", {});
    }
    const tcp = obs.tcpWorks === true ? "TCP works" : "TCP not tested";
    return decision("udp-blocked", "udp-blocked", true, `no server answered over UDP (${tcp})`, {});
  }

  const facts = mappingFacts(obs);
  const portPreserved = portPreservedOf(obs);
  if (facts.differs) {
    return decision("symmetric", "symmetric", true, facts.detail, { mapping: facts.mapping, portPreserved });
  }
  const mapping = facts.mapping;

  const f = obs.formal;
  const p = obs.passage;
  const newHost = f ? f.newHostFrom.length : 0;
  const newPort = f ? f.newPort : 0;
  const rawSeen = (p?.rawProbes ?? 0) > 0 || newHost > 0 || newPort > 0;

  if (p && p.finished && p.quicWorks && !rawSeen) {
    // Step 2. Formal probes still on their way could prove raw UDP gets in after all.
    const certain = f === null || f.finished;
    return decision("quic-only", "quic-only", certain, "QUIC works but no raw probe arrived on its 4-tuple", {
      mapping,
      portPreserved,
    });
  }

  if (f === null) {
    return decision(null, "pending", false, `waiting for the formal probe (${facts.detail})`, { mapping, portPreserved });
  }

  const direct = noTranslation(obs);
  if (direct === null) {
    return decision(null, "pending", false, "the mapped address of the formal socket is not known", {
      mapping,
      portPreserved,
    });
  }

  if (newHost > 0) {
    const from = f.newHostFrom.map(formatEndpoint).join(", ");
    if (direct) {
      // No translation at all, so no mapping can depend on the destination: Public is certain at once.
      return decision("public", "newhost-mapped-equals", true, `NewHost probe from ${from} arrived and mapped = local`, {
        mapping: "endpoint-independent",
        filtering: "endpoint-independent",
        portPreserved: true,
      });
    }
    return decision("full-cone", "newhost-mapped-differs", facts.settled, `NewHost probe from ${from} arrived and mapped ≠ local`, {
      mapping,
      filtering: "endpoint-independent",
      portPreserved,
    });
  }

  const newHostTested = f.newHostDelegates > 0;
  const waitOver = f.finished && newHostTested;
  const caveat = !f.finished ? " (window still open)" : !newHostTested ? " (NewHost not tested: no delegate)" : "";

  if (direct) {
    return decision("udp-firewall", "no-newhost-mapped-equals", waitOver, `no NewHost probe and mapped = local${caveat}`, {
      mapping: "endpoint-independent",
      filtering: newPort > 0 ? "address-dependent" : "address-and-port-dependent",
      portPreserved: true,
    });
  }
  if (newPort > 0) {
    return decision("restricted-cone", "newport-only", waitOver && facts.settled, `NewPort probes arrived, no NewHost${caveat}`, {
      mapping,
      filtering: "address-dependent",
      portPreserved,
    });
  }
  // Without a passage probe seen, "nothing arrived" could be a protocol filter (QUIC-Only) as well.
  const passageShown = (p?.rawProbes ?? 0) > 0;
  const pCaveat = caveat || (passageShown ? "" : " (passage not shown: could be QUIC-Only)");
  return decision("port-restricted-cone", "nothing", waitOver && facts.settled && passageShown, `no NewPort or NewHost probe arrived${pCaveat}`, {
    mapping,
    filtering: "address-and-port-dependent",
    portPreserved,
  });
}

/** Early conclusion: true when the answer can no longer change, so the prober may stop waiting. */
export function isNatCertain(obs: NatObservations): boolean {
  return decideNat(obs).certain;
}
