// The request router (DESIGN §3–§4): methods from proto/services.proto, a policy per method, one handler
// signature for QUIC streams and WSS links.
export { AnswerError, answerOfError } from "./errors.ts";
export { METHOD, methodName, SERVICES } from "./methods.ts";
export { ANY_TRUST, BOTH_TRANSPORTS, MESH_ONLY, PINNED_OR_MESH, perHost } from "./policy.ts";
export type { MethodPolicy, RateLimit, Route, RpcAnswer, RpcContext, RpcHandler, RpcReply, Transport, Trust } from "./policy.ts";
export { createRouter, MAX_RATE_BUCKETS } from "./router.ts";
export type { RefusalReason, Router, RouterInit, RouterStats, RouteTable } from "./router.ts";
