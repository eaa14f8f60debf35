// The network simulator (src/sim) against a fair attacker: 20 % hostile nodes from 8 /24s, each /24 in a
// /16 of its own (--sybil-spread), so the /16 limit of outgoing links does not hold them together.
// The /24s known to hold several keys count as one network group: no honest node gives them more
// than a few of its outgoing links, and none is eclipsed.
import { beforeAll, describe, expect, test } from "bun:test";
import { runSimulation, type SimResult } from "../../src/sim/run.ts";

let r: SimResult;

beforeAll(async () => {
  r = await runSimulation({ nodes: 100, seeds: 3, minutes: 2, churn: 0, sybil: 0.2, sybilPrefixes: 8, sybilSpread: true, kinds: 10, seed: 1 });
}, 600_000);

describe("a 100-node network with 20 % hostile nodes from 8 /24s in 8 /16s", () => {
  test("no honest node is eclipsed or banned", () => {
    expect(r.eclipsedHonest).toBe(0);
    expect(r.bannedHonest).toBe(0);
  });

  test("hostile nodes hold at most 3 of an honest node's 8 outgoing links (2 once its pool knows a second key in each of their /24s)", () => {
    expect(r.hostileOutMax).toBeLessThanOrEqual(3);
  });

  test("searches still find honest servers", () => {
    expect(r.findSuccess!).toBeGreaterThanOrEqual(0.99);
  });
});
