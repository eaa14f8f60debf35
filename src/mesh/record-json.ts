// JSON form of a NodeRecord for CLI output and /status (`findings peers --json`, `findings find --json`; DESIGN §4, §6).
import { bytesToHex } from "@noble/hashes/utils.js";
import { NatClass, type NodeRecord } from "../wire/index.ts";
import { formatNodeAddress, recordNodeId } from "./record.ts";

export interface RecordJson {
  id: string;
  publicKey: string;
  /** "ip:udp/tcp" each. */
  addresses: string[];
  spki: string;
  nat: string;
  kinds: string[];
  /** kind ("*" = default) → reward address. */
  stakes: Record<string, string>;
  identityId: string;
  seq: number;
}

/** JSON values of DESIGN §6, so `peers` and `probe` print NAT classes the same way. */
const NAT_JSON: Record<NatClass, string> = {
  [NatClass.NAT_UNKNOWN]: "unknown",
  [NatClass.NAT_PUBLIC]: "public",
  [NatClass.NAT_FULL_CONE]: "full-cone",
  [NatClass.NAT_RESTRICTED_CONE]: "restricted-cone",
  [NatClass.NAT_PORT_RESTRICTED_CONE]: "port-restricted-cone",
  [NatClass.NAT_SYMMETRIC]: "symmetric",
  [NatClass.NAT_UDP_FIREWALL]: "udp-firewall",
  [NatClass.NAT_UDP_BLOCKED]: "udp-blocked",
  [NatClass.NAT_QUIC_ONLY]: "quic-only",
};

export function natJson(nat: NatClass): string {
  return NAT_JSON[nat] ?? "unknown";
}

export function toJson(rec: NodeRecord): RecordJson {
  const stakes: Record<string, string> = {};
  for (const s of rec.stakes) stakes[s.kind] = s.address;
  return {
    id: recordNodeId(rec),
    publicKey: bytesToHex(rec.publicKey),
    addresses: rec.addresses.map(formatNodeAddress),
    spki: bytesToHex(rec.spki),
    nat: natJson(rec.nat),
    kinds: [...rec.kinds],
    stakes,
    identityId: rec.identityId,
    // seq ≤ MAX_RECORD_SEQ (Number.MAX_SAFE_INTEGER) for verified records, so this is exact.
    seq: Number(rec.seq),
  };
}
