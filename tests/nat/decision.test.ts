// NAT decision matrix, RFC 4787 axes and early conclusion (DESIGN §6), plus the class table (nat-class.ts).

import { describe, expect, test } from "bun:test";
import {
  isNatClassName,
  isServiceNat,
  NAT_CLASSES,
  natFromProto,
  natLabel,
  natToProto,
} from "../../src/nat/class.ts";
import {
  decideNat,
  isNatCertain,
  type FormalObservation,
  type NatObservations,
} from "../../src/nat/decision.ts";
import { NatClass } from "../../src/wire/gen/findings_pb.ts";

const ep = (s: string) => {
  const i = s.lastIndexOf(":");
  return { ip: s.slice(0, i), port: Number(s.slice(i + 1)) };
};
const S1 = ep("203.0.113.1:7788");
const S2 = ep("203.0.113.2:7788");
const S3 = ep("203.0.113.3:7788");
const NATTED_LOCAL = ep("10.99.3.2:40000");
const NATTED_MAPPED = ep("203.0.113.103:40000");
const PUBLIC_LOCAL = ep("203.0.113.100:40000");

/** Pre-probe from three servers all seeing `mapped`, passage shown, nothing else yet. */
function base(local = NATTED_LOCAL, mapped = NATTED_MAPPED): NatObservations {
  return {
    localAddress: local,
    preProbe: [S1, S2, S3].map((server) => ({ server, mapped })),
    preProbeFinished: true,
    udpPath: true,
    tcpWorks: null,
    passage: { rawProbes: 2, quicWorks: true, finished: true },
    formal: null,
  };
}

function withFormal(obs: NatObservations, f: Partial<FormalObservation>, mappedEqualsLocal = false): NatObservations {
  const local = ep(`${obs.localAddress!.ip}:41000`);
  const mapped = mappedEqualsLocal ? local : ep(`${NATTED_MAPPED.ip}:41000`);
  return {
    ...obs,
    formal: { localAddress: local, mapped, newPort: 0, newHostFrom: [], newHostDelegates: 2, finished: false, ...f },
  };
}

const FROM_DELEGATE = [ep("198.51.100.7:7788")];

describe("decision matrix (DESIGN §6 step 3)", () => {
  test("NewHost received and mapped ≠ local → full-cone, certain at once", () => {
    const d = decideNat(withFormal(base(), { newHostFrom: FROM_DELEGATE, newPort: 4 }));
    expect(d).toMatchObject({ nat: "full-cone", label: "FullC", rule: "newhost-mapped-differs", certain: true });
    expect(d).toMatchObject({ mapping: "endpoint-independent", filtering: "endpoint-independent", portPreserved: true });
  });

  test("NewHost received and mapped = local → public, certain at once", () => {
    const d = decideNat(withFormal(base(PUBLIC_LOCAL, PUBLIC_LOCAL), { newHostFrom: FROM_DELEGATE }, true));
    expect(d).toMatchObject({ nat: "public", label: "Public", rule: "newhost-mapped-equals", certain: true });
    expect(d).toMatchObject({ mapping: "endpoint-independent", filtering: "endpoint-independent", portPreserved: true });
  });

  test("no NewHost and mapped = local → udp-firewall, certain only after the window", () => {
    const open = withFormal(base(PUBLIC_LOCAL, PUBLIC_LOCAL), {}, true);
    expect(decideNat(open)).toMatchObject({ nat: "udp-firewall", rule: "no-newhost-mapped-equals", certain: false });
    const done = withFormal(base(PUBLIC_LOCAL, PUBLIC_LOCAL), { finished: true }, true);
    expect(decideNat(done)).toMatchObject({
      nat: "udp-firewall",
      label: "UDP-Firewall",
      certain: true,
      filtering: "address-and-port-dependent",
      portPreserved: true,
    });
  });

  test("udp-firewall that lets the source server's other port in reports address-dependent filtering", () => {
    const d = decideNat(withFormal(base(PUBLIC_LOCAL, PUBLIC_LOCAL), { newPort: 4, finished: true }, true));
    expect(d).toMatchObject({ nat: "udp-firewall", filtering: "address-dependent", certain: true });
  });

  test("NewPort received without NewHost → restricted-cone, certain only after the window", () => {
    expect(decideNat(withFormal(base(), { newPort: 3 }))).toMatchObject({
      nat: "restricted-cone",
      rule: "newport-only",
      certain: false,
    });
    const d = decideNat(withFormal(base(), { newPort: 3, finished: true }));
    expect(d).toMatchObject({
      nat: "restricted-cone",
      label: "RC",
      certain: true,
      mapping: "endpoint-independent",
      filtering: "address-dependent",
    });
  });

  test("nothing received → port-restricted-cone, certain only after the window", () => {
    expect(decideNat(withFormal(base(), {}))).toMatchObject({ nat: "port-restricted-cone", rule: "nothing", certain: false });
    const d = decideNat(withFormal(base(), { finished: true }));
    expect(d).toMatchObject({
      nat: "port-restricted-cone",
      label: "P-RC",
      certain: true,
      mapping: "endpoint-independent",
      filtering: "address-and-port-dependent",
      portPreserved: true,
    });
  });

  test("a late NewHost probe overturns a tentative restricted-cone into full-cone", () => {
    const obs = withFormal(base(), { newPort: 4 });
    expect(decideNat(obs).nat).toBe("restricted-cone");
    expect(decideNat({ ...obs, formal: { ...obs.formal!, newHostFrom: FROM_DELEGATE } }).nat).toBe("full-cone");
  });

  test("with no NewHost delegate the negative answers stay uncertain even after the window", () => {
    expect(decideNat(withFormal(base(), { newPort: 4, newHostDelegates: 0, finished: true }))).toMatchObject({
      nat: "restricted-cone",
      certain: false,
    });
    expect(decideNat(withFormal(base(), { newHostDelegates: 0, finished: true }))).toMatchObject({
      nat: "port-restricted-cone",
      certain: false,
    });
    expect(
      decideNat(withFormal(base(PUBLIC_LOCAL, PUBLIC_LOCAL), { newHostDelegates: 0, finished: true }, true)),
    ).toMatchObject({ nat: "udp-firewall", certain: false });
  });

  test("port-restricted-cone stays uncertain when passage was never shown (could be QUIC-Only)", () => {
    const obs = { ...withFormal(base(), { finished: true }), passage: null };
    expect(decideNat(obs)).toMatchObject({ nat: "port-restricted-cone", certain: false });
    expect(decideNat(obs).reason).toContain("QUIC-Only");
  });

  test("the formal socket's own mapping decides mapped = local, and reports port preservation from it", () => {
    const obs = withFormal(base(), { newPort: 4, finished: true });
    obs.formal!.mapped = ep("203.0.113.103:61234");
    expect(decideNat(obs)).toMatchObject({ nat: "restricted-cone", portPreserved: false });
  });

  test("without a formal mapped address the pre-probe decides mapped = local", () => {
    const obs = withFormal(base(PUBLIC_LOCAL, PUBLIC_LOCAL), { finished: true });
    obs.formal!.mapped = null;
    expect(decideNat(obs)).toMatchObject({ nat: "udp-firewall" });
  });
});

describe("pre-probe (DESIGN §6 step 1): symmetric and RFC 4787 mapping", () => {
  test("differing mapped addresses from distinct IPs → symmetric, certain at once", () => {
    const obs = base();
    obs.preProbeFinished = false;
    obs.preProbe = [
      { server: S1, mapped: ep("203.0.113.104:50001") },
      { server: S2, mapped: ep("203.0.113.104:50002") },
    ];
    const d = decideNat(obs);
    expect(d).toMatchObject({ nat: "symmetric", label: "Sym", rule: "symmetric", certain: true, portPreserved: false });
    expect(d.mapping).toBeNull(); // port dependence not tested: no two servers shared an IP
  });

  test("symmetric wins over a NewHost probe (destination-dependent mapping with open filtering)", () => {
    const obs = withFormal(base(), { newHostFrom: FROM_DELEGATE });
    obs.preProbe = [
      { server: S1, mapped: ep("203.0.113.104:50001") },
      { server: S2, mapped: ep("203.0.113.104:50002") },
    ];
    expect(decideNat(obs).nat).toBe("symmetric");
  });

  test("same server IP on two ports giving different mappings → address-and-port-dependent", () => {
    const obs = base();
    obs.preProbe = [
      { server: S1, mapped: ep("203.0.113.104:50001") },
      { server: ep("203.0.113.1:7789"), mapped: ep("203.0.113.104:50002") },
      { server: S2, mapped: ep("203.0.113.104:50003") },
    ];
    expect(decideNat(obs)).toMatchObject({ nat: "symmetric", mapping: "address-and-port-dependent" });
  });

  test("same server IP on two ports agreeing while other IPs differ → address-dependent", () => {
    const obs = base();
    obs.preProbe = [
      { server: S1, mapped: ep("203.0.113.104:50001") },
      { server: ep("203.0.113.1:7789"), mapped: ep("203.0.113.104:50001") },
      { server: S2, mapped: ep("203.0.113.104:50003") },
    ];
    expect(decideNat(obs)).toMatchObject({ nat: "symmetric", mapping: "address-dependent" });
  });

  test("a server that did not answer is ignored", () => {
    const obs = withFormal(base(), { finished: true });
    obs.preProbe = [...obs.preProbe.slice(0, 2), { server: S3, mapped: null }];
    expect(decideNat(obs)).toMatchObject({ nat: "port-restricted-cone", certain: true, mapping: "endpoint-independent" });
  });

  test("a single pre-probe answer leaves the mapping untested and full-cone uncertain until the pre-probe ends", () => {
    const obs = withFormal(base(), { newHostFrom: FROM_DELEGATE });
    obs.preProbe = [{ server: S1, mapped: NATTED_MAPPED }];
    obs.preProbeFinished = false;
    expect(decideNat(obs)).toMatchObject({ nat: "full-cone", certain: false, mapping: null });
  });

  test("two agreeing answers settle the mapping once the pre-probe finished", () => {
    const obs = withFormal(base(), { newHostFrom: FROM_DELEGATE });
    obs.preProbe = obs.preProbe.slice(0, 2);
    obs.preProbeFinished = false;
    expect(decideNat(obs).certain).toBe(false);
    obs.preProbeFinished = true;
    expect(decideNat(obs)).toMatchObject({ nat: "full-cone", certain: true, mapping: "endpoint-independent" });
  });
});

describe("passage (DESIGN §6 step 2) and UDP path", () => {
  test("no raw probe but QUIC works → quic-only, certain when no formal probe runs", () => {
    const obs = base();
    obs.passage = { rawProbes: 0, quicWorks: true, finished: true };
    expect(decideNat(obs)).toMatchObject({ nat: "quic-only", label: "QUIC-Only", rule: "quic-only", certain: true });
  });

  test("quic-only stays uncertain while a formal window is still open, and becomes certain when it ends empty", () => {
    const obs = withFormal(base(), {});
    obs.passage = { rawProbes: 0, quicWorks: true, finished: true };
    expect(decideNat(obs)).toMatchObject({ nat: "quic-only", certain: false });
    obs.formal!.finished = true;
    expect(decideNat(obs)).toMatchObject({ nat: "quic-only", certain: true });
  });

  test("a NewPort probe after an empty passage proves raw UDP passes: restricted-cone, not quic-only", () => {
    const obs = withFormal(base(), { newPort: 1, finished: true });
    obs.passage = { rawProbes: 0, quicWorks: true, finished: true };
    expect(decideNat(obs).nat).toBe("restricted-cone");
  });

  test("passage still waiting does not conclude quic-only", () => {
    const obs = base();
    obs.passage = { rawProbes: 0, quicWorks: true, finished: false };
    expect(decideNat(obs)).toMatchObject({ nat: null, rule: "pending", certain: false });
  });

  test("no UDP path → udp-blocked, certain, naming whether TCP works", () => {
    const obs: NatObservations = {
      localAddress: NATTED_LOCAL,
      preProbe: [S1, S2, S3].map((server) => ({ server, mapped: null })),
      preProbeFinished: true,
      udpPath: false,
      tcpWorks: true,
      passage: null,
      formal: null,
    };
    const d = decideNat(obs);
    expect(d).toMatchObject({ nat: "udp-blocked", label: "UDP-Blocked", rule: "udp-blocked", certain: true });
    expect(d.reason).toContain("TCP works");
    expect(d).toMatchObject({ mapping: null, filtering: null, portPreserved: null });
  });

  test("no UDP and no TCP answer gives no class (the servers may be down)", () => {
    const obs: NatObservations = { ...base(), preProbe: [], udpPath: false, tcpWorks: false, passage: null };
    expect(decideNat(obs)).toMatchObject({ nat: null, rule: "no-answer", certain: false });
  });

  test("an unknown UDP path is inferred from any mapped address", () => {
    const obs = { ...withFormal(base(), { finished: true }), udpPath: null };
    expect(decideNat(obs).nat).toBe("port-restricted-cone");
  });

  test("nothing observed yet is pending, not a class", () => {
    const obs: NatObservations = {
      localAddress: null,
      preProbe: [],
      preProbeFinished: false,
      udpPath: null,
      tcpWorks: null,
      passage: null,
      formal: null,
    };
    expect(decideNat(obs)).toMatchObject({ nat: null, label: null, rule: "pending", certain: false });
    expect(isNatCertain(obs)).toBe(false);
  });

  test("agreeing pre-probe without a formal probe is pending with an endpoint-independent mapping", () => {
    expect(decideNat(base())).toMatchObject({ nat: null, rule: "pending", mapping: "endpoint-independent" });
  });
});

describe("early conclusion", () => {
  test("isNatCertain follows the decision as evidence arrives", () => {
    const obs = withFormal(base(), {});
    expect(isNatCertain(obs)).toBe(false);
    obs.formal!.newPort = 2;
    expect(isNatCertain(obs)).toBe(false);
    obs.formal!.newHostFrom = FROM_DELEGATE;
    expect(isNatCertain(obs)).toBe(true);
  });
});

describe("NAT class table", () => {
  test("has the eight DESIGN §6 classes with their labels and wire values", () => {
    expect(NAT_CLASSES.map((c) => [c.nat, c.label, c.proto])).toEqual([
      ["public", "Public", NatClass.NAT_PUBLIC],
      ["full-cone", "FullC", NatClass.NAT_FULL_CONE],
      ["restricted-cone", "RC", NatClass.NAT_RESTRICTED_CONE],
      ["port-restricted-cone", "P-RC", NatClass.NAT_PORT_RESTRICTED_CONE],
      ["symmetric", "Sym", NatClass.NAT_SYMMETRIC],
      ["udp-firewall", "UDP-Firewall", NatClass.NAT_UDP_FIREWALL],
      ["udp-blocked", "UDP-Blocked", NatClass.NAT_UDP_BLOCKED],
      ["quic-only", "QUIC-Only", NatClass.NAT_QUIC_ONLY],
    ]);
  });

  test("round-trips every class through the proto enum, and NAT_UNKNOWN maps to null", () => {
    for (const c of NAT_CLASSES) {
      expect(natFromProto(natToProto(c.nat))).toBe(c.nat);
      expect(natLabel(c.nat)).toBe(c.label);
      expect(isNatClassName(c.nat)).toBe(true);
    }
    expect(natFromProto(NatClass.NAT_UNKNOWN)).toBeNull();
    expect(natFromProto(99 as NatClass)).toBeNull();
    expect(isNatClassName("cone")).toBe(false);
  });

  test("only public and full-cone may serve", () => {
    expect(NAT_CLASSES.filter((c) => isServiceNat(c.nat)).map((c) => c.nat)).toEqual(["public", "full-cone"]);
  });
});
