// The punch room's public surface: app pool, stakes, punch matching/strategy/brokering, share pool
// (DESIGN §5, §7; seed 000 §应用池, §打洞协助, §经济激励; seed 001 §分享池). Other rooms import from here.
// Services and the app-side client (this edges: sockets, timers).
export { SHARE_FETCH_MAX } from "./constants.ts";
export { type AddressChange, type JoinInfo, type PunchClient, PunchRefusedError, createPunchClient, isPunchRefused } from "./punch-client.ts";
export {
  MAX_PUNCH_REQUEST_BYTES,
  readShareFetch,
  readShareRegister,
  statusOfShareRefusal,
} from "./punch-messages.ts";
export { type PunchResult, describeResult, failedResult } from "./punch-result.ts";
export { type Rand } from "./punch-roles.ts";
export { type PunchService, createPunchService } from "./punch-service.ts";
export { bootstrapStake, servedKinds } from "./stakes.ts";
