// The surface of src/nat: what other folders may import from it.
export { NAT_CLASSES, type NatClassName, isNatClassName, natFromProto, natToProto } from "./class.ts";
export { LIFETIME_MAX_S, SN_MAX_BYTES, SN_MIN_BYTES } from "./constants.ts";
export { type ProbeOptions, type ProbeProgress, type ProbeServer, runProbe } from "./probe-client.ts";
export { summarizeProbe } from "./probe-report.ts";
export { type NatService, createNatService } from "./service.ts";
export { normalizeIp } from "./source-check.ts";
export { type MemberNewHost, type NatdMemberLink, createMemberNewHost } from "./newhost-member.ts";
export { MAX_NEWHOST_ORDER_BYTES } from "./newhost-proof.ts";
