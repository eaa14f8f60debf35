// Strategy table for every pair of NAT classes, roles, spray parameters (seed 000 §基本规则, §例外; DESIGN §7).
import { describe, expect, test } from "bun:test";
import { SPRAY_PREDICT_WINDOW, SPRAY_PROBES, SPRAY_SOCKETS } from "../../src/punch/constants.ts";
import {
  isPunchable,
  planPunch,
  portDeltaOf,
  predictedPort,
  sprayOdds,
  strategyFor,
  type PunchStrategyName,
} from "../../src/punch/punch-strategy.ts";
import type { NatClassName } from "../../src/nat/class.ts";

const CLASSES: (NatClassName | null)[] = [
  "public",
  "full-cone",
  "restricted-cone",
  "port-restricted-cone",
  "symmetric",
  "udp-firewall",
  "udp-blocked",
  "quic-only",
  null,
];

// Row = side a, column = side b, in CLASSES order. Letter = strategy, suffix = forced dialer ("·" = token rule).
// D direct, S simultaneous, R sym-to-restricted, Y sym-to-cone-spray, X impossible.
const TABLE = `
            Pub  FullC RC   P-RC Sym  FW   Blk  QUIC ?
  Pub       D·   D·    Db   Db   Db   Db   X    Db   Db
  FullC     D·   D·    Db   Db   Db   Db   X    Db   Db
  RC        Da   Da    S·   S·   Rb   S·   X    Sb   X
  P-RC      Da   Da    S·   S·   Yb   S·   X    Sb   X
  Sym       Da   Da    Ra   Ya   X    Ya   X    Ya   X
  FW        Da   Da    S·   S·   Yb   S·   X    Sb   X
  Blk       X    X     X    X    X    X    X    X    X
  QUIC      Da   Da    Sa   Sa   Yb   Sa   X    S·   X
  ?         Da   Da    X    X    X    X    X    X    X
`;

const NAMES: Record<string, PunchStrategyName> = { D: "direct", S: "simultaneous", R: "sym-to-restricted", Y: "sym-to-cone-spray", X: "impossible" };

const rows = TABLE.trim().split("\n").slice(1).map((line) => line.trim().split(/\s+/).slice(1));

describe("strategy table", () => {
  test("the table is square over all eight classes plus unknown", () => {
    expect(rows).toHaveLength(CLASSES.length);
    for (const r of rows) expect(r).toHaveLength(CLASSES.length);
  });

  for (let i = 0; i < CLASSES.length; i++) {
    for (let j = 0; j < CLASSES.length; j++) {
      const cell = rows[i]![j]!;
      const a = CLASSES[i]!;
      const b = CLASSES[j]!;
      test(`${a ?? "unknown"} ↔ ${b ?? "unknown"} is ${cell}`, () => {
        const s = strategyFor(a, b);
        expect(s.strategy).toBe(NAMES[cell[0]!]!);
        const forced = cell[1] === "a" || cell[1] === "b" ? cell[1] : null;
        expect(s.forcedDialer).toBe(forced);
        expect(s.reason.length).toBeGreaterThan(0);
        expect(s.expectSuccess).toBe(s.strategy !== "impossible");
      });
    }
  }

  test("the table is symmetric: swapping sides swaps the forced dialer", () => {
    for (const a of CLASSES) {
      for (const b of CLASSES) {
        const ab = strategyFor(a, b);
        const ba = strategyFor(b, a);
        expect(ba.strategy).toBe(ab.strategy);
        expect(ba.forcedDialer).toBe(ab.forcedDialer === null ? null : ab.forcedDialer === "a" ? "b" : "a");
      }
    }
  });

  test("the seed's exception holds: Sym reaches Public/FullC by dialing out", () => {
    for (const open of ["public", "full-cone"] as const) {
      const s = strategyFor("symmetric", open);
      expect(s.strategy).toBe("direct");
      expect(s.forcedDialer).toBe("a");
    }
  });

  test("reasons name the impossible cases", () => {
    expect(strategyFor("symmetric", "symmetric").reason).toContain("both sides are symmetric");
    expect(strategyFor("udp-blocked", "public").reason).toContain("UDP-Blocked");
    expect(strategyFor(null, "restricted-cone").reason).toContain("findings probe");
  });

  test("isPunchable can leave out the costly spray", () => {
    expect(isPunchable("symmetric", "port-restricted-cone")).toBe(true);
    expect(isPunchable("symmetric", "port-restricted-cone", { allowSpray: false })).toBe(false);
    expect(isPunchable("symmetric", "restricted-cone", { allowSpray: false })).toBe(true);
    expect(isPunchable("symmetric", "symmetric")).toBe(false);
  });
});

describe("planPunch", () => {
  const side = (nat: NatClassName | null, token: number[], ip = "198.51.100.1", port = 4000, portDelta: number | null = null) => ({
    nat,
    token: Uint8Array.from(token),
    ip,
    port,
    portDelta,
  });

  test("between two cones the token rule picks the roles", () => {
    const p = planPunch(side("restricted-cone", [1]), side("port-restricted-cone", [2], "198.51.100.2"));
    expect(p).toMatchObject({ strategy: "simultaneous", dialer: "a", listener: "b", decidedBy: "token", listenerOpens: true, spray: null });
  });

  test("the class forces the dialer whatever the tokens say", () => {
    const p = planPunch(side("public", [1]), side("symmetric", [200], "198.51.100.2"));
    expect(p).toMatchObject({ strategy: "direct", dialer: "b", listener: "a", decidedBy: "nat", listenerOpens: false });
  });

  test("equal tokens fall back to the IPs", () => {
    const p = planPunch(side("full-cone", [7], "198.51.100.9"), side("public", [7], "198.51.100.10"));
    expect(p).toMatchObject({ dialer: "a", listener: "b", decidedBy: "ip" });
  });

  test("an impossible pair has no roles", () => {
    const p = planPunch(side("symmetric", [1]), side("symmetric", [2], "198.51.100.2"));
    expect(p).toMatchObject({ strategy: "impossible", dialer: null, listener: null, decidedBy: null, expectSuccess: false });
  });

  test("one endpoint twice is impossible", () => {
    const p = planPunch(side("public", [1]), side("public", [1]));
    expect(p.strategy).toBe("impossible");
    expect(p.reason).toContain("same endpoint");
  });

  test("a spray plan: the symmetric side dials with many sockets, the cone side probes", () => {
    const p = planPunch(side("port-restricted-cone", [9]), side("symmetric", [1], "198.51.100.2", 30000));
    expect(p.strategy).toBe("sym-to-cone-spray");
    expect(p.dialer).toBe("b");
    expect(p.spray).toMatchObject({ sockets: SPRAY_SOCKETS, probes: SPRAY_PROBES, portMin: 1024, portMax: 65535, predicted: null });
    expect(p.spray!.odds).toBeGreaterThan(0.97);
  });

  test("a known allocation step on the symmetric side adds predicted ports", () => {
    const p = planPunch(side("symmetric", [1], "198.51.100.2", 30000, 2), side("udp-firewall", [9]));
    expect(p.spray!.predicted).toEqual({ base: 30000, delta: 2, count: SPRAY_PREDICT_WINDOW });
  });
});

describe("spray helpers", () => {
  test("birthday odds: 256 sockets × 1024 probes over 64512 ports ≈ 98 %", () => {
    expect(sprayOdds(256, 1024, 64512)).toBeCloseTo(0.983, 2);
    expect(sprayOdds(1, 1, 100)).toBeCloseTo(0.01, 6);
    expect(sprayOdds(0, 1024, 64512)).toBe(0);
    expect(sprayOdds(60, 60, 100)).toBe(1);
  });

  test("portDeltaOf needs three ports with one constant non-zero step", () => {
    expect(portDeltaOf([40000, 40002, 40004])).toBe(2);
    expect(portDeltaOf([40010, 40009, 40008, 40007])).toBe(-1);
    expect(portDeltaOf([40000, 40002])).toBeNull();
    expect(portDeltaOf([40000, 40002, 40005])).toBeNull();
    expect(portDeltaOf([40000, 40000, 40000])).toBeNull();
    expect(portDeltaOf([1000, 2000, 3000])).toBeNull();
  });

  test("predicted ports wrap inside the allocation range", () => {
    const range = { portMin: 1024, portMax: 65535 };
    expect(predictedPort(range, 30000, 2, 3)).toBe(30006);
    expect(predictedPort(range, 65534, 1, 2)).toBe(1024);
    expect(predictedPort(range, 1025, -1, 2)).toBe(65535);
  });
});
