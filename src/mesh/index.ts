// The surface of src/mesh: what other folders may import from it.
export { MESH_PATH } from "./link-constants.ts";
export { type MeshLinks, createMeshLinks } from "./link-service.ts";
export { type MeshLink, createMeshLink } from "./link.ts";
export { askFind, askPeers, learnNodeKey, type LearnedKey } from "./mesh-client.ts";
export { type MeshService, type MeshServiceInit, type MeshServiceStatus, type MeshSummary, createMeshService } from "./mesh-service.ts";
export { toJson } from "./record-json.ts";
export { DEFAULT_SEARCH_HOPS, MAX_SEARCH_HOPS } from "./search.ts";
// In-memory links, messages and records for the network simulator and adversary tests.
export { type MemoryNet, type MemoryNetOptions, type MemoryNode, createMemoryNet } from "./memory-net.ts";
export { decodePeersAnswer, encodeFindAnswer, encodePeersAnswer } from "./mesh-messages.ts";
export { answerKeyCheck } from "./record-check.ts";
export { parseFindRequest } from "./search.ts";
export { isSameBytes, recordNodeId, signRecord, verifyRecord } from "./record.ts";
// For services that search through mesh links like mesh.find does (the share registry).
export { type CoreLink } from "./core-link.ts";
export { linkOf } from "./link.ts";
export { FIND_HOP_TIMEOUT_MS } from "./mesh-service-constants.ts";
export { createSeenRequests } from "./search.ts";
export { createRateLimiter } from "./search-rate-limit.ts";
export { MESH_CLOSE } from "./mesh-service-constants.ts";
