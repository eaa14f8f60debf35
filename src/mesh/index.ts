// The surface of src/mesh: what other folders may import from it.
export { MESH_PATH } from "./link-constants.ts";
export { type MeshLinks, createMeshLinks } from "./link-service.ts";
export { type MeshLink, createMeshLink } from "./link.ts";
export { askFind, askPeers } from "./mesh-client.ts";
export { type MeshService, type MeshServiceStatus, createMeshService } from "./mesh-service.ts";
export { toJson } from "./record-json.ts";
export { MAX_SEARCH_HOPS } from "./search.ts";
