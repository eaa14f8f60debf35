// Mapping lifetime planner against synthetic NATs (DESIGN §6 "Mapping lifetime", STUN2 生存期).

import { describe, expect, test } from "bun:test";
import {
  finishLifetime,
  lifetimeBounds,
  planLifetimeProbes,
  planRefinement,
  type LifetimeEstimate,
  type LifetimePlanInit,
  type LifetimeSample,
} from "../../src/nat/lifetime-plan.ts";

/** Runs the whole search against a NAT whose mapping lives `lifetimeS` seconds (a probe at d arrives iff d <
 *  lifetime), optionally losing the probes at the delays in `lost`. Returns the estimate, rounds and the wall
 *  time the real test would take (each round costs its longest delay). */
function simulate(lifetimeS: number, init: LifetimePlanInit = {}, lost: number[] = []) {
  const samples: LifetimeSample[] = [];
  const probe = (delays: number[]) => {
    for (const d of delays) samples.push({ delayS: d, ok: d < lifetimeS && !lost.includes(d) });
  };
  const first = planLifetimeProbes(init);
  probe(first);
  let wallS = Math.max(...first);
  let round = 1;
  for (;;) {
    const next = planRefinement(lifetimeBounds(samples), round, init);
    if (next.length === 0) break;
    probe(next);
    wallS += Math.max(...next);
    round++;
  }
  const bounds = lifetimeBounds(samples);
  return { estimate: finishLifetime(bounds), rounds: round - 1, wallS, bounds };
}

function contains(e: LifetimeEstimate, lifetimeS: number) {
  expect(e.lowerBound).toBeLessThanOrEqual(lifetimeS);
  if (e.upperBound !== null) expect(e.upperBound).toBeGreaterThanOrEqual(lifetimeS);
}

describe("planLifetimeProbes", () => {
  test("defaults to the DESIGN §6 delays 10-300 s", () => {
    expect(planLifetimeProbes()).toEqual([10, 20, 30, 45, 60, 90, 120, 180, 300]);
  });

  test("drops delays above max and tries max itself", () => {
    expect(planLifetimeProbes({ maxS: 100 })).toEqual([10, 20, 30, 45, 60, 90, 100]);
    expect(planLifetimeProbes({ maxS: 60 })).toEqual([10, 20, 30, 45, 60]);
  });

  test("sorts, de-duplicates and ignores non-positive custom delays", () => {
    expect(planLifetimeProbes({ delaysS: [30, 5, 5, -1, 0, 15], maxS: 30 })).toEqual([5, 15, 30]);
  });

  test("with no usable delay still tries max", () => {
    expect(planLifetimeProbes({ delaysS: [], maxS: 40 })).toEqual([40]);
  });
});

describe("lifetimeBounds", () => {
  test("lower is the longest success, upper the shortest longer failure", () => {
    const s = [
      { delayS: 10, ok: true },
      { delayS: 20, ok: true },
      { delayS: 30, ok: false },
      { delayS: 45, ok: false },
    ];
    expect(lifetimeBounds(s)).toEqual({ lowerBound: 20, upperBound: 30, inconsistent: 0 });
  });

  test("a failure below a success counts as a lost probe, not expiry", () => {
    const s = [
      { delayS: 10, ok: false },
      { delayS: 20, ok: true },
      { delayS: 30, ok: false },
    ];
    expect(lifetimeBounds(s)).toEqual({ lowerBound: 20, upperBound: 30, inconsistent: 1 });
  });

  test("a success a few ms above a failure at the expiry edge still leaves an upper bound", () => {
    const s = [
      { delayS: 19, ok: true },
      { delayS: 20.01, ok: false },
      { delayS: 20.03, ok: true },
      { delayS: 20.05, ok: false },
    ];
    expect(lifetimeBounds(s)).toEqual({ lowerBound: 20.03, upperBound: 20.05, inconsistent: 1 });
  });

  test("no success gives lower 0; no failure gives upper null", () => {
    expect(lifetimeBounds([{ delayS: 10, ok: false }])).toEqual({ lowerBound: 0, upperBound: 10, inconsistent: 0 });
    expect(lifetimeBounds([{ delayS: 300, ok: true }])).toEqual({ lowerBound: 300, upperBound: null, inconsistent: 0 });
  });
});

describe("planRefinement", () => {
  test("splits (lower, upper) evenly with 3 sockets", () => {
    expect(planRefinement({ lowerBound: 20, upperBound: 30, inconsistent: 0 }, 1)).toEqual([23, 25, 28]);
  });

  test("stops within resolution, without an upper bound, and after the last round", () => {
    expect(planRefinement({ lowerBound: 28, upperBound: 30, inconsistent: 0 }, 1)).toEqual([]);
    expect(planRefinement({ lowerBound: 300, upperBound: null, inconsistent: 0 }, 1)).toEqual([]);
    expect(planRefinement({ lowerBound: 20, upperBound: 30, inconsistent: 0 }, 4)).toEqual([]);
  });

  test("never proposes a delay outside the open interval, even for tiny intervals", () => {
    expect(planRefinement({ lowerBound: 20, upperBound: 23, inconsistent: 0 }, 1, { refineSockets: 5 })).toEqual([21, 22]);
  });
});

describe("search against synthetic NATs", () => {
  test("a true lifetime of 20 s yields bounds containing 20 within 2 s", () => {
    const { estimate } = simulate(20);
    contains(estimate, 20);
    expect(estimate.upperBound! - estimate.lowerBound).toBeLessThanOrEqual(2);
  });

  for (const lifetime of [5, 12, 30, 33, 58, 61, 119, 180, 240, 299]) {
    test(`a true lifetime of ${lifetime} s is bracketed within 2 s`, () => {
      const { estimate } = simulate(lifetime);
      contains(estimate, lifetime);
      expect(estimate.upperBound! - estimate.lowerBound).toBeLessThanOrEqual(2);
      expect(Math.abs(estimate.seconds - lifetime)).toBeLessThanOrEqual(2);
    });
  }

  test("a mapping that outlives max is reported as at least max", () => {
    expect(simulate(1000).estimate).toEqual({ seconds: 300, lowerBound: 300, upperBound: null });
  });

  test("a lost early probe does not drag the estimate down", () => {
    const { estimate, bounds } = simulate(45, {}, [20]);
    contains(estimate, 45);
    expect(bounds.inconsistent).toBe(1);
  });

  test("the first round costs its longest delay, not the sum (lab NAT with 20 s UDP timeout, max 60 s)", () => {
    const { estimate, wallS } = simulate(20, { maxS: 60 });
    contains(estimate, 20);
    expect(wallS).toBeLessThan(60 + 3 * 30);
  });
});
