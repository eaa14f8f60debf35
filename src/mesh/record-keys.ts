// Keys of a record for the candidate pool's indexes (the endpoint its key check proves, the network
// (/24, /48) it counts in for diversity), and the pool's RTT median.
import { netPrefixOf } from "../rpc/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import { provenAddress } from "./record.ts";

/** The endpoint a record's key check proves (the TCP address it dials, record.ts provenAddress):
 *  two records with the same one name the same node, so the newer checked one replaces the other.
 *  Other addresses a record lists are its node's word only and never displace anyone. */
export function addressKeys(rec: NodeRecord): string[] {
  const a = provenAddress(rec);
  return a ? [`${normalizeIp(a.ip)}/tcp/${a.tcpPort}`] : [];
}

/** The network (IPv4 /24, IPv6 /48) a record counts in for diversity: that of its proven address (the one
 *  its key check dials), so listing other addresses neither hides a node's network nor blames another. */
export function netPrefixes(rec: NodeRecord): string[] {
  const a = provenAddress(rec);
  return a ? [netPrefixOf(a.ip)] : [];
}

/** Lower-case, and "::ffff:1.2.3.4" → "1.2.3.4", so one endpoint has one key. */
export function normalizeIp(ip: string): string {
  const lower = ip.toLowerCase();
  return lower.startsWith("::ffff:") && /^\d+\.\d+\.\d+\.\d+$/.test(lower.slice(7)) ? lower.slice(7) : lower;
}

/** Most recent RTT samples kept per candidate; the median of these is its latency. */
export const RTT_SAMPLES = 8;

/** Adds an RTT sample to a candidate's window and sets its median. */
export function pushSample(e: { samples: number[]; rttMs: number | null }, rttMs: number): void {
  if (!Number.isFinite(rttMs) || rttMs < 0) return;
  e.samples.push(rttMs);
  if (e.samples.length > RTT_SAMPLES) e.samples.shift();
  const sorted = [...e.samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  e.rttMs = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
