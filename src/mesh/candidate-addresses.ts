// The addresses of a candidate record: which ones its key check proved, the endpoint keys and networks
// it counts in (candidate-pool.ts), the address it is dialled at, and the pool's RTT median.
import { netPrefixOf } from "../rpc/index.ts";
import type { NodeAddress, NodeRecord } from "../wire/index.ts";
import { checkableAddresses, provenAddress } from "./record.ts";

/** The endpoints a record's key check proves (the TCP addresses it dials): two records with the same one
 *  name the same node, so the newer checked one replaces the other. Given `proven`, only those: the
 *  addresses a record lists but no check proved are its node's word only and never displace anyone.
 *  Without it, every checkable address (a record not yet checked). */
export function addressKeys(rec: NodeRecord, proven?: readonly NodeAddress[]): string[] {
  return (proven ?? checkableAddresses(rec)).map((a) => `${normalizeIp(a.ip)}/tcp/${a.tcpPort}`);
}

/** The networks (IPv4 /24, IPv6 /48) a record counts in for diversity: those of its proven addresses
 *  (default: its primary address), so listing other addresses neither hides a node's network nor
 *  blames another. */
export function netPrefixes(rec: NodeRecord, proven?: readonly NodeAddress[]): string[] {
  const list = proven ?? [provenAddress(rec)].filter((a): a is NodeAddress => a !== null);
  return [...new Set(list.map((a) => netPrefixOf(a.ip)))];
}

/** The proven addresses of a record being added: the check's result (kept to addresses the record has),
 *  else those proven for the older record that this one still lists, else its primary address. */
export function provenOf(rec: NodeRecord, given: readonly NodeAddress[] | undefined, known: { readonly proven: readonly NodeAddress[] } | undefined): NodeAddress[] {
  const listed = checkableAddresses(rec);
  const has = (a: NodeAddress) => listed.find((b) => normalizeIp(b.ip) === normalizeIp(a.ip) && b.tcpPort === a.tcpPort);
  if (given) return given.map(has).filter((a): a is NodeAddress => a !== undefined);
  if (known) return known.proven.map(has).filter((a): a is NodeAddress => a !== undefined);
  const primary = provenAddress(rec);
  return primary ? [primary] : [];
}

/** The address to dial a candidate at: its first proven address. */
export function dialAddress(c: { readonly proven: readonly NodeAddress[] }): { ip: string; port: number } | null {
  const a = c.proven[0];
  return a ? { ip: a.ip, port: a.tcpPort } : null;
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
  // A full window that drops the value it takes in keeps its median (a steady link, sampled every sweep).
  if (e.samples.length > RTT_SAMPLES && e.samples.shift() === rttMs && e.rttMs !== null) return;
  const sorted = [...e.samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  e.rttMs = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
