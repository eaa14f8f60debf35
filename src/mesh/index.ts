// The surface of src/mesh: what other folders may import from it.
export { MESH_PATH } from "./link-constants.ts";
export { type MeshLinks, createMeshLinks } from "./link-service.ts";
export { type MeshLink, createMeshLink } from "./link.ts";
export { askFind, askPeers } from "./mesh-client.ts";
export { type MeshService, type MeshServiceInit, type MeshServiceStatus, createMeshService } from "./mesh-service.ts";
export { toJson } from "./record-json.ts";
export { DEFAULT_SEARCH_HOPS, MAX_SEARCH_HOPS } from "./search.ts";
// In-memory links, messages and records for the network simulator and adversary tests.
export { type MemoryNet, type MemoryNetOptions, type MemoryNode, createMemoryNet } from "./memory-net.ts";
export { decodePeersAnswer, encodeFindAnswer, encodePeersAnswer } from "./mesh-messages.ts";
export { answerKeyCheck } from "./record-check.ts";
export { parseFindRequest } from "./search.ts";
export { recordNodeId, signRecord } from "./record.ts";
export { MESH_CLOSE } from "./mesh-service-constants.ts";
