// A policy that lets every test request through, for tests of other things than the policy itself.
import { ANY_TRUST, type MethodPolicy, type Route, type RpcHandler } from "../../src/rpc/policy.ts";

export const OPEN_POLICY: MethodPolicy = { trust: ANY_TRUST, rate: [{ ratePerS: 1e6, burst: 1e6 }], maxInFlight: 1e6, maxPayloadBytes: 64 * 1024 };

/** `handler` under OPEN_POLICY (optionally narrowed, e.g. to one transport). */
export function open(handler: RpcHandler, policy: Partial<MethodPolicy> = {}): Route {
  return { ...OPEN_POLICY, ...policy, handler };
}
