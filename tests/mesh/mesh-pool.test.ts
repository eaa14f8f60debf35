// Mesh pool: link limits, duplicates, deficit and 1–2 link switching (seed 001 §组网池, §候选池).
import { describe, expect, test } from "bun:test";
import { createMeshPool, SWITCH_JITTER } from "../../src/mesh/mesh-pool.ts";
import { seeded } from "../seeded.ts";

const T0 = 1_000_000;
const MIN = 60_000;

const id = (i: number) => i.toString(16).padStart(64, "0");

describe("mesh pool limits", () => {
  test("accepts up to 8 outgoing and 16 incoming links by default, then refuses", () => {
    const p = createMeshPool();
    for (let i = 0; i < 8; i++) expect(p.add({ id: id(i), direction: "out", openedAt: T0 })).toBe("added");
    expect(p.canAccept("out")).toBe(false);
    expect(p.canAccept("in")).toBe(true);
    expect(p.add({ id: id(100), direction: "out", openedAt: T0 })).toBe("full");
    for (let i = 8; i < 24; i++) expect(p.add({ id: id(i), direction: "in", openedAt: T0 })).toBe("added");
    expect(p.add({ id: id(101), direction: "in", openedAt: T0 })).toBe("full");
    expect(p.size).toBe(24);
  });

  test("limits are configurable", () => {
    const p = createMeshPool({ maxOut: 1, maxIn: 0 });
    expect(p.canAccept("in")).toBe(false);
    expect(p.add({ id: id(1), direction: "out", openedAt: T0 })).toBe("added");
    expect(p.add({ id: id(2), direction: "out", openedAt: T0 })).toBe("full");
  });

  test("a second link to the same node is refused as duplicate, whatever its direction", () => {
    const p = createMeshPool();
    p.add({ id: id(1), direction: "out", openedAt: T0 });
    expect(p.add({ id: id(1).toUpperCase(), direction: "in", openedAt: T0 })).toBe("duplicate");
  });

  test("removing a link frees its slot and shows as a deficit to dial", () => {
    const p = createMeshPool({ maxOut: 3 });
    for (let i = 0; i < 3; i++) p.add({ id: id(i), direction: "out", openedAt: T0 });
    expect(p.deficit()).toBe(0);
    expect(p.remove(id(1))).toBe(true);
    expect(p.remove(id(1))).toBe(false);
    expect(p.deficit()).toBe(1);
    expect(p.canAccept("out")).toBe(true);
  });

  test("keeps each link's direction, open time and RTT", () => {
    const p = createMeshPool();
    p.add({ id: id(1), direction: "in", openedAt: T0 });
    p.setRtt(id(1), 12.5);
    p.setRtt(id(1), Number.NaN);
    expect(p.get(id(1))).toEqual({ id: id(1), direction: "in", openedAt: T0, rttMs: 12.5 });
    expect(p.list("out")).toEqual([]);
    expect(p.list("in").length).toBe(1);
  });
});

describe("planSwitch", () => {
  function full(interval = 5 * MIN) {
    const p = createMeshPool({ maxOut: 8, switchIntervalMs: interval, now: T0 });
    for (let i = 0; i < 8; i++) p.add({ id: id(i), direction: "out", openedAt: T0 });
    for (let i = 8; i < 12; i++) p.add({ id: id(i), direction: "in", openedAt: T0 });
    return p;
  }

  test("does nothing before the interval has passed", () => {
    const p = full();
    expect(p.planSwitch(T0 + 5 * MIN - 1, seeded(1))).toBeNull();
  });

  test("drops 1 or 2 outgoing links (never incoming) and dials as many, over many rounds", () => {
    const p = full();
    const rand = seeded(2);
    const sizes = new Set<number>();
    let now = T0;
    for (let round = 0; round < 60; round++) {
      now = p.nextSwitchAt;
      const plan = p.planSwitch(now, rand)!;
      expect(plan.drop.length).toBeGreaterThanOrEqual(1);
      expect(plan.drop.length).toBeLessThanOrEqual(2);
      expect(plan.dial).toBe(plan.drop.length);
      expect(new Set(plan.drop).size).toBe(plan.drop.length);
      for (const d of plan.drop) expect(p.get(d)!.direction).toBe("out");
      sizes.add(plan.drop.length);
    }
    expect(sizes).toEqual(new Set([1, 2]));
  });

  test("the next switch time is drawn within the jitter around the interval", () => {
    const interval = 5 * MIN;
    const p = full(interval);
    const rand = seeded(3);
    let now = T0 + interval;
    for (let i = 0; i < 50; i++) {
      p.planSwitch(now, rand);
      const gap = p.nextSwitchAt - now;
      expect(gap).toBeGreaterThanOrEqual(interval * (1 - SWITCH_JITTER));
      expect(gap).toBeLessThanOrEqual(interval * (1 + SWITCH_JITTER));
      now = p.nextSwitchAt;
    }
  });

  test("keeps links younger than half an interval", () => {
    for (let seed = 0; seed < 20; seed++) {
      const q = createMeshPool({ maxOut: 2, switchIntervalMs: 10 * MIN, now: T0 });
      q.add({ id: id(1), direction: "out", openedAt: T0 });
      q.add({ id: id(2), direction: "out", openedAt: T0 + 6 * MIN });
      const plan = q.planSwitch(T0 + 10 * MIN, seeded(seed))!;
      expect(plan.drop).toEqual([id(1)]);
    }
  });

  test("while short of outgoing links it dials the deficit and drops nothing", () => {
    const p = full();
    p.remove(id(0));
    p.remove(id(1));
    p.remove(id(2));
    expect(p.planSwitch(T0 + 5 * MIN, seeded(4))).toEqual({ drop: [], dial: 3 });
  });

  test("drops nothing when there is no candidate to switch to, and no more than there are candidates", () => {
    const p = full();
    expect(p.planSwitch(T0 + 5 * MIN, seeded(5), { candidates: 0 })).toEqual({ drop: [], dial: 0 });
    for (let seed = 0; seed < 20; seed++) {
      const q = full();
      const plan = q.planSwitch(T0 + 5 * MIN, seeded(seed), { candidates: 1 })!;
      expect(plan.drop.length).toBe(1);
    }
  });
});

describe("network groups", () => {
  test("outgoing links take as many per /16 as per /24, incoming ones twice that", () => {
    const p = createMeshPool({ maxOut: 8, maxIn: 16, perPrefix: 2 });
    const g = "66.6.0.0/16";
    expect(p.add({ id: id(1), direction: "out", openedAt: T0, prefix: "66.6.1.0/24", group: g })).toBe("added");
    expect(p.add({ id: id(2), direction: "out", openedAt: T0, prefix: "66.6.2.0/24", group: g })).toBe("added");
    expect(p.hasRoomFor("out", "66.6.3.0/24", g)).toBe(false);
    expect(p.add({ id: id(3), direction: "out", openedAt: T0, prefix: "66.6.3.0/24", group: g })).toBe("crowded");
    expect(p.add({ id: id(4), direction: "out", openedAt: T0, prefix: "67.1.1.0/24", group: "67.1.0.0/16" })).toBe("added");
    for (let i = 0; i < 4; i++) expect(p.add({ id: id(10 + i), direction: "in", openedAt: T0, prefix: `66.6.${10 + i}.0/24`, group: g })).toBe("added");
    expect(p.add({ id: id(20), direction: "in", openedAt: T0, prefix: "66.6.20.0/24", group: g })).toBe("crowded");
  });

  test("limits follow links as they come and go (refused, duplicate and removed links leave no count)", () => {
    const p = createMeshPool({ maxOut: 2, maxIn: 4, perPrefix: 2 });
    const g = "66.6.0.0/16";
    const at = (i: number, direction: "in" | "out", net = 1) => ({ id: id(i), direction, openedAt: T0, prefix: `66.6.${net}.0/24`, group: g });
    for (let round = 0; round < 3; round++) {
      expect(p.add(at(1, "out"))).toBe("added");
      expect(p.add(at(1, "in"))).toBe("duplicate");
      expect(p.add(at(2, "out", 2))).toBe("added");
      expect(p.add(at(3, "out", 3))).toBe("full");
      expect(p.hasRoomFor("out", "66.6.3.0/24", g)).toBe(false);
      expect(p.add(at(4, "in", 4))).toBe("added");
      expect(p.remove(id(2))).toBe(true);
      expect(p.deficit()).toBe(1);
      // One outgoing link into the /16 left: room for one more there.
      expect(p.hasRoomFor("out", "66.6.3.0/24", g)).toBe(true);
      expect(p.remove(id(1))).toBe(true);
      expect(p.remove(id(4))).toBe(true);
      expect(p.size).toBe(0);
      expect(p.deficit()).toBe(2);
    }
  });
});

describe("networks of several keys", () => {
  // Three /24s in three /16s, each known to hold several keys (an attacker's rented /24s), and
  // networks of one key each.
  const shared = new Set(["66.6.1.0/24", "66.7.1.0/24", "66.8.1.0/24"]);
  const link = (i: number, direction: "in" | "out", prefix: string, openedAt = T0) => ({ id: id(i), direction, openedAt, prefix, group: prefix.replace(/\.\d+\.0\/24$/, ".0.0/16") });

  test("count together as one network group: 2 outgoing links into them, 4 incoming, whatever their /16s", () => {
    const p = createMeshPool({ maxOut: 8, maxIn: 16, perPrefix: 2, sharedNet: (net) => shared.has(net) });
    expect(p.add(link(1, "out", "66.6.1.0/24"))).toBe("added");
    expect(p.add(link(2, "out", "66.7.1.0/24"))).toBe("added");
    expect(p.hasRoomFor("out", "66.8.1.0/24", "66.8.0.0/16")).toBe(false);
    expect(p.add(link(3, "out", "66.8.1.0/24"))).toBe("crowded");
    // A network of one key is not held back.
    expect(p.add(link(4, "out", "23.1.1.0/24"))).toBe("added");
    const ins = ["66.6.1.0/24", "66.6.1.0/24", "66.7.1.0/24", "66.8.1.0/24"];
    ins.forEach((net, i) => expect(p.add(link(10 + i, "in", net))).toBe("added"));
    expect(p.add(link(20, "in", "66.7.1.0/24"))).toBe("crowded");
    expect(p.add(link(21, "in", "24.1.1.0/24"))).toBe("added");
  });

  test("two of our links into one /24 make it a network of several keys, even when no candidate says so", () => {
    const p = createMeshPool({ maxOut: 8, maxIn: 16, perPrefix: 2 });
    expect(p.add(link(1, "out", "30.1.1.0/24"))).toBe("added");
    expect(p.add(link(2, "out", "31.1.1.0/24"))).toBe("added");
    expect(p.add(link(3, "out", "30.1.1.0/24"))).toBe("added");
    // 30.1.1/24 holds two links now: a second link into 31.1.1/24 would make three into shared networks.
    expect(p.add(link(4, "out", "31.1.1.0/24"))).toBe("crowded");
    expect(p.add(link(5, "out", "32.1.1.0/24"))).toBe("added");
  });

  test("links over the limit once more keys are known are named youngest first; the oldest stay", () => {
    const known = new Set<string>();
    const p = createMeshPool({ maxOut: 8, maxIn: 16, perPrefix: 2, sharedNet: (net) => known.has(net) });
    const nets = ["66.6.1.0/24", "66.7.1.0/24", "66.8.1.0/24", "66.9.1.0/24"];
    nets.forEach((net, i) => expect(p.add(link(1 + i, "out", net, T0 + i * 1000))).toBe("added"));
    const inNets = ["70.1.1.0/24", "71.1.1.0/24", "72.1.1.0/24", "73.1.1.0/24", "74.1.1.0/24"];
    inNets.forEach((net, i) => expect(p.add(link(10 + i, "in", net, T0 + i * 1000))).toBe("added"));
    expect(p.overShared()).toEqual([]);
    for (const net of [...nets, ...inNets]) known.add(net);
    // Outgoing: the 2 oldest kept, 2 over; incoming: 4 kept, 1 over.
    expect(p.overShared()).toEqual([id(4), id(3), id(14)]);
  });
});
