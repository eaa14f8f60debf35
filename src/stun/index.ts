// The surface of src/stun: what other folders may import from it.
export { looksLikeLegacyStun, looksLikeStun } from "./binding.ts";
export { STUN_MAGIC_COOKIE } from "./constants.ts";
export { type BindingResponder, createBindingResponder } from "./responder.ts";
