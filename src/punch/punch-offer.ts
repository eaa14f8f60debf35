// Brokering one punch attempt: fresh tokens, the plan, and the PunchInfo each side receives (seed 000 §消息包
// Message{IP, Port, Token, NATT}; DESIGN §7 "plus the peer's SPKI so the punched link can be pinned").
//
// Each side gets the other's address, token, NAT class and SPKI, its own token, its role and the strategy.
// The node decides the roles (punch-strategy.ts planPunch) and sends them, so the apps need not re-derive
// them; they can (decideRoles) and must agree. Pure apart from the injectable random source.
import { create } from "@bufbuild/protobuf";
import { natToProto } from "../nat/index.ts";
import { NatClass } from "../wire/index.ts";
import { PunchInfoSchema, PunchRole, SprayPlanSchema, type PunchInfo } from "../wire/index.ts";
import type { AppMember } from "./app-pool.ts";
import { PUNCH_ATTEMPT_ID_BYTES } from "./constants.ts";
import { cryptoRandomBytes, newPunchToken, type RandomBytes, type SideName } from "./punch-roles.ts";
import { planPunch, type PunchPlan, type SprayParams } from "./punch-strategy.ts";

export interface BrokeredPunch {
  attemptId: Uint8Array;
  /** a = the first member given (usually the requester), b = the second. */
  plan: PunchPlan;
  tokens: { a: Uint8Array; b: Uint8Array };
  /** What side a receives (it describes b). */
  forA: PunchInfo;
  /** What side b receives (it describes a). */
  forB: PunchInfo;
}

function sprayMessage(spray: SprayParams) {
  return create(SprayPlanSchema, {
    sockets: spray.sockets,
    probes: spray.probes,
    portMin: spray.portMin,
    portMax: spray.portMax,
    probeIntervalMs: spray.probeIntervalMs,
    predictedBase: spray.predicted?.base ?? 0,
    predictedDelta: spray.predicted?.delta ?? 0,
    predictedCount: spray.predicted?.count ?? 0,
    odds: spray.odds,
  });
}

function infoFor(
  side: SideName,
  me: AppMember,
  peer: AppMember,
  plan: PunchPlan,
  attemptId: Uint8Array,
  tokens: { mine: Uint8Array; peer: Uint8Array },
): PunchInfo {
  return create(PunchInfoSchema, {
    attemptId,
    peerId: peer.nodeId,
    peerKind: peer.kind,
    ip: peer.address.ip,
    port: peer.address.port,
    token: tokens.peer,
    ownToken: tokens.mine,
    natt: peer.nat ? natToProto(peer.nat) : NatClass.NAT_UNKNOWN,
    spki: peer.spki,
    strategy: plan.strategy,
    role: plan.dialer === side ? PunchRole.DIAL : plan.listener === side ? PunchRole.LISTEN : PunchRole.UNSPECIFIED,
    listenerOpens: plan.listenerOpens,
    spray: plan.spray ? sprayMessage(plan.spray) : undefined,
    expectSuccess: plan.expectSuccess,
    reason: plan.reason,
  });
}

/** Plans one attempt between two members. An "impossible" plan still comes back (with no roles) so the
 *  caller can report its reason; callers normally match first (punch-match.ts) and never get one. */
export function brokerPunch(a: AppMember, b: AppMember, options: { randomBytes?: RandomBytes } = {}): BrokeredPunch {
  const randomBytes = options.randomBytes ?? cryptoRandomBytes;
  const attemptId = randomBytes(PUNCH_ATTEMPT_ID_BYTES);
  const tokens = { a: newPunchToken(randomBytes), b: newPunchToken(randomBytes) };
  const plan = planPunch(
    { nat: a.nat, token: tokens.a, ip: a.address.ip, port: a.address.port, portDelta: a.portDelta },
    { nat: b.nat, token: tokens.b, ip: b.address.ip, port: b.address.port, portDelta: b.portDelta },
  );
  return {
    attemptId,
    plan,
    tokens,
    forA: infoFor("a", a, b, plan, attemptId, { mine: tokens.a, peer: tokens.b }),
    forB: infoFor("b", b, a, plan, attemptId, { mine: tokens.b, peer: tokens.a }),
  };
}
