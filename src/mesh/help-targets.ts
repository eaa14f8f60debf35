// Whom to ask for online help and the self-check (DESIGN §3 first contact): at start the configured
// peers (--peer "ip:port[#key]", UDP and TCP port taken as equal) and the peer cache; later, and for
// the self-check, nodes of the candidate pool, the configured peers only filling up.
import { parseAddress } from "../contracts/index.ts";
import { errorLine } from "../errors.ts";
import type { HostPort } from "../contracts/index.ts";
import type { NodeAddress, NodeRecord } from "../wire/index.ts";
import type { Rand } from "./candidate-pool.ts";
import { normalizeIp } from "./candidate-addresses.ts";
import type { HelpTarget } from "./online-help.ts";

export interface AskTarget {
  /** The TCP (mesh) address and key, for online help. */
  help: HelpTarget;
  /** The UDP address, for the self-check. */
  udp: HostPort;
}

/** Parses the configured peers; bad entries go to `onBad` and are skipped. */
export function configTargets(peers: readonly string[], onBad: (peer: string, error: string) => void): AskTarget[] {
  const out: AskTarget[] = [];
  for (const text of peers) {
    try {
      const a = parseAddress(text, "peers");
      out.push({ help: { addr: { ip: a.ip, port: a.port }, publicKey: a.publicKey }, udp: { ip: a.ip, port: a.port } });
    } catch (err) {
      onBad(text, errorLine(err));
    }
  }
  return out;
}

/** Targets of records that carry both a TCP and a UDP port. `provenOf` gives the addresses a key check
 *  proved for a record (then only those are used); without it, any address of the record. */
export function recordTargets(records: readonly NodeRecord[], provenOf?: (rec: NodeRecord) => readonly NodeAddress[] | undefined): AskTarget[] {
  const out: AskTarget[] = [];
  for (const rec of records) {
    const a = (provenOf?.(rec) ?? rec.addresses).find((x) => x.tcpPort && x.udpPort);
    if (a) out.push({ help: { addr: { ip: a.ip, port: a.tcpPort }, publicKey: rec.publicKey }, udp: { ip: a.ip, port: a.udpPort } });
  }
  return out;
}

/** A target's TCP endpoint, "ip/port" (IP normalized), to tell a configured peer among candidates. */
export function targetKey(t: HelpTarget): string {
  return `${normalizeIp(t.addr.ip)}/${t.addr.port}`;
}

/** Up to `n` targets: `first` in order, then `rest` shuffled to fill up; each endpoint once. */
export function fillUp(first: readonly AskTarget[], rest: readonly AskTarget[], n: number, rand: Rand = Math.random): AskTarget[] {
  const seen = new Set<string>();
  const out: AskTarget[] = [];
  for (const t of [...first, ...shuffle([...rest], rand)]) {
    if (out.length >= n) break;
    const k = targetKey(t.help);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(t);
  }
  return out;
}

/** Fisher–Yates in place. */
export function shuffle<T>(xs: T[], rand: Rand): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
