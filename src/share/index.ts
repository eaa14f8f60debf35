// The surface of src/share: what other folders may import from it.
export { shareFetch, shareRegister } from "./client.ts";
export { type ShareRefusal } from "./pool.ts";
export { type ShareService, createShareService } from "./service.ts";
