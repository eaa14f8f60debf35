// Client-side source rules for SN probes: a probe counts as evidence only if it came from where its test says
// (DESIGN §6 "The client checks source rules"; STUN2 seed 000 §提供的服务 2, seed 001 §组网池 NewHost).
//
// A valid MAC proves a probe was made by someone holding the key; it does not prove which path it took. The
// filtering tests are only meaningful if each probe comes from the kind of endpoint the test is about:
//   R1 passage  — from the source server's exact ip:port, on the socket that holds the live QUIC 4-tuple: any
//                 cone NAT lets that in, so only a protocol filter (quic-only) can stop it.
//   R2 NewPort  — from the source server's IP on another port, on the formal socket: reaching us proves the
//                 filter keys on the address only (restricted cone), not on address and port.
//   R3 NewHost  — from an IP other than the source server's, on the formal socket: reaching us proves the filter
//                 lets in hosts we never sent to (full cone / public).
//   R4 NewHost  — and from an IP this host did not send to during the run (pre-probe servers, mesh links, QUIC
//                 peers). Some NATs filter per remote host for the whole box rather than per mapping (the
//                 "seen destinations" style of restricted cone, as in the DESIGN §10 lab router); a NewHost probe
//                 from a host we contacted from any socket would then get in and fake a full cone.
//   R5 NewPort / NewHost on the QUIC socket, or passage on the formal socket — the server mixed up the
//                 targets; not evidence of anything.

import type { ProbeSource } from "./probe-packet.ts";

/** An IP address and UDP port; `ip` is IPv4 dotted-quad or IPv6 text (brackets and zone allowed). */
export interface Endpoint {
  ip: string;
  port: number;
}

/** Which local socket a probe arrived on: the one holding the live QUIC connection, or the fresh formal one. */
export type ProbeSocket = "quic" | "formal";

export interface SourceRules {
  /** ip:port of the server that runs the test (the client's QUIC peer). */
  sourceServer: Endpoint;
  /** Every IP this host sent UDP to during the run, from any socket; the source server may be among them. */
  contactedIps?: Iterable<string>;
  /** The socket the probe arrived on. */
  arrivedOn: ProbeSocket;
}

export type SourceRejectReason =
  | "passage-not-from-source-endpoint"
  | "passage-on-formal-socket"
  | "newport-not-from-source-ip"
  | "newport-from-source-port"
  | "newport-on-quic-socket"
  | "newhost-from-source-ip"
  | "newhost-from-contacted-ip"
  | "newhost-on-quic-socket";

export type SourceVerdict = { ok: true; source: ProbeSource } | { ok: false; reason: SourceRejectReason };

const V4_MAPPED_PREFIX = "::ffff:";

/** Canonical text of an IP so the same address always compares equal: lower case, no brackets, IPv4-mapped IPv6
 *  (`::ffff:a.b.c.d`, which dual-stack sockets report) folded to IPv4, IPv6 compressed per RFC 5952. */
export function normalizeIp(ip: string): string {
  let s = ip.trim().toLowerCase();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (s.startsWith(V4_MAPPED_PREFIX) && s.includes(".")) return s.slice(V4_MAPPED_PREFIX.length);
  if (!s.includes(":")) return s;
  const zoneAt = s.indexOf("%");
  const zone = zoneAt >= 0 ? s.slice(zoneAt) : "";
  const bare = zoneAt >= 0 ? s.slice(0, zoneAt) : s;
  try {
    // The WHATWG URL parser prints IPv6 hosts in RFC 5952 form; it throws on text that is not an address.
    const host = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    if (host.startsWith(V4_MAPPED_PREFIX)) {
      const [hi, lo] = host.slice(V4_MAPPED_PREFIX.length).split(":").map((h) => parseInt(h, 16));
      if (hi !== undefined && lo !== undefined && !Number.isNaN(hi) && !Number.isNaN(lo)) {
        return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
      }
    }
    return host + zone;
  } catch {
    return s;
  }
}

export function sameIp(a: string, b: string): boolean {
  return normalizeIp(a) === normalizeIp(b);
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && sameIp(a.ip, b.ip);
}

/** `ip:port`, with brackets for IPv6. */
export function formatEndpoint(e: Endpoint): string {
  const ip = normalizeIp(e.ip);
  return ip.includes(":") ? `[${ip}]:${e.port}` : `${ip}:${e.port}`;
}

function inSet(ip: string, ips: Iterable<string> | undefined): boolean {
  if (ips === undefined) return false;
  const n = normalizeIp(ip);
  for (const c of ips) if (normalizeIp(c) === n) return true;
  return false;
}

/** Applies rules R1–R5 (top of file) to one probe whose MAC already verified. Pure; never throws. */
export function checkProbeSource(source: ProbeSource, from: Endpoint, rules: SourceRules): SourceVerdict {
  const server = rules.sourceServer;
  switch (source) {
    case "passage":
      if (rules.arrivedOn !== "quic") return { ok: false, reason: "passage-on-formal-socket" };
      if (!sameEndpoint(from, server)) return { ok: false, reason: "passage-not-from-source-endpoint" };
      return { ok: true, source };
    case "newPort":
      if (rules.arrivedOn !== "formal") return { ok: false, reason: "newport-on-quic-socket" };
      if (!sameIp(from.ip, server.ip)) return { ok: false, reason: "newport-not-from-source-ip" };
      if (from.port === server.port) return { ok: false, reason: "newport-from-source-port" };
      return { ok: true, source };
    case "newHost":
      if (rules.arrivedOn !== "formal") return { ok: false, reason: "newhost-on-quic-socket" };
      if (sameIp(from.ip, server.ip)) return { ok: false, reason: "newhost-from-source-ip" };
      if (inSet(from.ip, rules.contactedIps)) return { ok: false, reason: "newhost-from-contacted-ip" };
      return { ok: true, source };
  }
}
