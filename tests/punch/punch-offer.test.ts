// Brokering one attempt: each side gets the other's address, token, NAT class and SPKI, plus its role (seed 000 §消息包).
import { describe, expect, test } from "bun:test";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { createAppPool } from "../../src/punch/app-pool.ts";
import { brokerPunch } from "../../src/punch/punch-offer.ts";
import { SPRAY_SOCKETS } from "../../src/punch/constants.ts";
import { decideRoles } from "../../src/punch/punch-roles.ts";
import type { NatClassName } from "../../src/nat/class.ts";
import { NatClass } from "../../src/wire/gen/findings_pb.ts";
import { PunchInfoSchema, PunchRole } from "../../src/wire/gen/punch_pb.ts";
import { countingBytes, idOf, member, T0 } from "./punch-helpers.ts";

function twoMembers(natA: NatClassName | null, natB: NatClassName | null, deltaB?: number) {
  const pool = createAppPool({ kinds: ["app:chat"] });
  const a = pool.join(member({ n: 1, nat: natA, ip: "198.51.100.1", port: 1111 }), T0);
  const b = pool.join(member({ n: 2, nat: natB, ip: "198.51.100.2", port: 2222, portDelta: deltaB }), T0);
  if (a.status !== "joined" || b.status !== "joined") throw new Error("join failed");
  return { a: a.member, b: b.member };
}

describe("brokerPunch", () => {
  test("each side's info describes the other side, with tokens crossed and one attempt id", () => {
    const { a, b } = twoMembers("restricted-cone", "port-restricted-cone");
    const p = brokerPunch(a, b, { randomBytes: countingBytes() });
    expect(p.forA).toMatchObject({ peerId: idOf(2), ip: "198.51.100.2", port: 2222, natt: NatClass.NAT_PORT_RESTRICTED_CONE, strategy: "simultaneous" });
    expect(p.forB).toMatchObject({ peerId: idOf(1), ip: "198.51.100.1", port: 1111, natt: NatClass.NAT_RESTRICTED_CONE });
    expect([...p.forA.token]).toEqual([...p.tokens.b]);
    expect([...p.forA.ownToken]).toEqual([...p.tokens.a]);
    expect([...p.forB.token]).toEqual([...p.tokens.a]);
    expect([...p.forA.spki]).toEqual([...b.spki]);
    expect([...p.forB.spki]).toEqual([...a.spki]);
    expect([...p.forA.attemptId]).toEqual([...p.forB.attemptId]);
    expect(p.tokens.a.length).toBeGreaterThanOrEqual(8);
  });

  test("roles are opposite and follow the token rule the apps can re-derive", () => {
    const { a, b } = twoMembers("restricted-cone", "restricted-cone");
    for (let seed = 1; seed < 20; seed += 3) {
      const p = brokerPunch(a, b, { randomBytes: countingBytes(seed * 17) });
      expect(p.forA.role).not.toBe(p.forB.role);
      const roles = decideRoles({ token: p.forA.ownToken, ip: "198.51.100.1", port: 1111 }, { token: p.forA.token, ip: "198.51.100.2", port: 2222 })!;
      expect(p.forA.role).toBe(roles.listener === "a" ? PunchRole.LISTEN : PunchRole.DIAL);
    }
  });

  test("a symmetric side against P-RC gets the dial role and a spray plan", () => {
    const { a, b } = twoMembers("port-restricted-cone", "symmetric", 1);
    const p = brokerPunch(a, b);
    expect(p.forB.role).toBe(PunchRole.DIAL);
    expect(p.forA.role).toBe(PunchRole.LISTEN);
    expect(p.forA.strategy).toBe("sym-to-cone-spray");
    expect(p.forA.spray).toMatchObject({ sockets: SPRAY_SOCKETS, probes: 1024, predictedBase: 2222, predictedDelta: 1 });
    expect(p.forA.listenerOpens).toBe(true);
  });

  test("an unknown NAT class is sent as NAT_UNKNOWN", () => {
    const { a, b } = twoMembers(null, "public");
    const p = brokerPunch(a, b);
    expect(p.forB.natt).toBe(NatClass.NAT_UNKNOWN);
    expect(p.forA.role).toBe(PunchRole.DIAL);
  });

  test("an impossible pair comes back without roles and with the reason", () => {
    const { a, b } = twoMembers("symmetric", "symmetric");
    const p = brokerPunch(a, b);
    expect(p.forA.role).toBe(PunchRole.UNSPECIFIED);
    expect(p.forA.expectSuccess).toBe(false);
    expect(p.forA.reason).toContain("symmetric");
  });

  test("the info survives a wire round trip", () => {
    const { a, b } = twoMembers("port-restricted-cone", "symmetric");
    const p = brokerPunch(a, b);
    const back = fromBinary(PunchInfoSchema, toBinary(PunchInfoSchema, p.forA));
    expect(back.peerId).toBe(p.forA.peerId);
    expect(back.spray?.odds).toBeCloseTo(p.plan.spray!.odds, 10);
  });
});
