// The surface of src/natd: Findings nodes behind NAT as members of public nodes' findings:<network> pools, with
// punched links to each other (seed 001 §组网节点, §应用池).
export { type NatdService, type NatdStatus, createNatdService, natdKind, withNetworkKind } from "./natd-service.ts";
