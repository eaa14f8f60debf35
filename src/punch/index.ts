// The punch room's public surface: app pool, stakes, punch matching/strategy/brokering, share pool
// (DESIGN §5, §7; seed 000 §应用池, §打洞协助, §经济激励; seed 001 §分享池). Other rooms import from here.
export * from "./app-pool.ts";
export * from "./constants.ts";
export * from "./punch-match.ts";
export * from "./punch-messages.ts";
export * from "./punch-offer.ts";
export * from "./punch-pairs.ts";
export * from "./punch-roles.ts";
export * from "./punch-strategy.ts";
export * from "../share/pool.ts";
export * from "./stakes.ts";
// Services and the app-side client (this edges: sockets, timers).
export * from "./constants.ts";
export * from "./punch-info.ts";
export * from "./punch-order.ts";
export * from "./punch-packet.ts";
export * from "./punch-result.ts";
export * from "./punch-attempt.ts";
export * from "./punch-client.ts";
export * from "./punch-service.ts";
export * from "../share/client.ts";
export * from "../share/service.ts";
