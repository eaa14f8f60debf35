// The eight NAT classes of Findings and the RFC 4787 behaviour axes they report (DESIGN §6 table, RFC 4787 §4.1, §5).

import { NatClass } from "../wire/index.ts";

/** JSON value of a NAT class, as printed by `findings probe --json` (DESIGN §6). */
export type NatClassName =
  | "public"
  | "full-cone"
  | "restricted-cone"
  | "port-restricted-cone"
  | "symmetric"
  | "udp-firewall"
  | "udp-blocked"
  | "quic-only";

/** Short label of a NAT class, as the seeds write it (STUN2 seed §节点信息: `Public` | `FullC`). */
export type NatLabel = "Public" | "FullC" | "RC" | "P-RC" | "Sym" | "UDP-Firewall" | "UDP-Blocked" | "QUIC-Only";

/** RFC 4787 §4.1 mapping behaviour: what the mapped address depends on. */
export type MappingBehavior = "endpoint-independent" | "address-dependent" | "address-and-port-dependent";

/** RFC 4787 §5 filtering behaviour: whom inbound packets to a mapping are accepted from. */
export type FilteringBehavior = "endpoint-independent" | "address-dependent" | "address-and-port-dependent";

export interface NatClassInfo {
  nat: NatClassName;
  label: NatLabel;
  proto: NatClass;
  meaning: string;
}

/** The DESIGN §6 table, in its order. */
export const NAT_CLASSES: readonly NatClassInfo[] = [
  { nat: "public", label: "Public", proto: NatClass.NAT_PUBLIC, meaning: "no NAT, unsolicited UDP gets in (Open Internet)" },
  { nat: "full-cone", label: "FullC", proto: NatClass.NAT_FULL_CONE, meaning: "endpoint-independent mapping and filtering" },
  { nat: "restricted-cone", label: "RC", proto: NatClass.NAT_RESTRICTED_CONE, meaning: "endpoint-independent mapping, address-dependent filtering" },
  { nat: "port-restricted-cone", label: "P-RC", proto: NatClass.NAT_PORT_RESTRICTED_CONE, meaning: "endpoint-independent mapping, address-and-port-dependent filtering" },
  { nat: "symmetric", label: "Sym", proto: NatClass.NAT_SYMMETRIC, meaning: "mapping depends on the destination" },
  { nat: "udp-firewall", label: "UDP-Firewall", proto: NatClass.NAT_UDP_FIREWALL, meaning: "public address, but unsolicited UDP is dropped" },
  { nat: "udp-blocked", label: "UDP-Blocked", proto: NatClass.NAT_UDP_BLOCKED, meaning: "no UDP path at all (TCP may still work)" },
  { nat: "quic-only", label: "QUIC-Only", proto: NatClass.NAT_QUIC_ONLY, meaning: "QUIC passes but other UDP is dropped" },
];

const BY_NAME = new Map<string, NatClassInfo>(NAT_CLASSES.map((c) => [c.nat, c]));
const BY_PROTO = new Map<NatClass, NatClassInfo>(NAT_CLASSES.map((c) => [c.proto, c]));

export function isNatClassName(value: string): value is NatClassName {
  return BY_NAME.has(value);
}

export function natInfo(nat: NatClassName): NatClassInfo {
  return BY_NAME.get(nat)!;
}

export function natLabel(nat: NatClassName): NatLabel {
  return natInfo(nat).label;
}

export function natToProto(nat: NatClassName): NatClass {
  return natInfo(nat).proto;
}

/** The class a wire value names; null for NAT_UNKNOWN and for values this build does not know. */
export function natFromProto(value: NatClass): NatClassName | null {
  return BY_PROTO.get(value)?.nat ?? null;
}

/** Only Public and FullC nodes can accept unsolicited peers, so only they may serve (STUN2 seed §组网 注,
 *  DESIGN §4 node record). */
export function isServiceNat(nat: NatClassName): boolean {
  return nat === "public" || nat === "full-cone";
}
