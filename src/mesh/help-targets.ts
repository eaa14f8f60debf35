// Whom to ask for online help and the self-check (DESIGN §3 first contact): the configured peers
// (--peer "ip:port[#key]", UDP and TCP port taken as equal), then nodes from records (the peer cache
// at start, the candidate pool later).
import { parseAddress } from "../contracts/index.ts";
import { errorLine } from "../errors.ts";
import type { HostPort } from "../contracts/index.ts";
import type { NodeAddress, NodeRecord } from "../wire/index.ts";
import type { Rand } from "./candidate-pool.ts";
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

/** Fisher–Yates in place. */
export function shuffle<T>(xs: T[], rand: Rand): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
