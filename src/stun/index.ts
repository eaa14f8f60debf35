// The surface of src/stun: what other folders may import from it.
export { decodeBindingResponse, encodeBindingRequest, looksLikeLegacyStun, looksLikeStun } from "./binding.ts";
export { STUN_MAGIC_COOKIE, STUN_TRANSACTION_ID_BYTES } from "./constants.ts";
export { type BindingResponder, createBindingResponder } from "./responder.ts";
