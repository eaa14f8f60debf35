// The request router (DESIGN §3–§4): methods from proto/services.proto, a policy per method, one handler
// signature for QUIC streams and WSS links.
export { AnswerError, answerOfError } from "./errors.ts";
export { METHOD, SERVICES, methodName } from "./methods.ts";
export { netGroupOf, netPrefixOf, prefixOf } from "./ip-prefix.ts";
export { TokenBuckets } from "./rate-buckets.ts";
export {
  ANY_TRUST,
  BOTH_TRANSPORTS,
  MESH_ONLY,
  type MethodPolicy,
  PINNED_OR_MESH,
  type RateLimit,
  type Route,
  type RpcAnswer,
  type RpcContext,
  type RpcHandler,
  type RpcReply,
  type Transport,
  type Trust,
  perHost,
  perHostAndNet,
} from "./policy.ts";
export {
  MAX_RATE_BUCKETS,
  type RefusalReason,
  type RouteTable,
  type Router,
  type RouterInit,
  type RouterStats,
  createRouter,
} from "./router.ts";
