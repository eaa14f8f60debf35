// The network simulator (src/sim) on a 200-node network: 3 seeds, 10 % hostile nodes from 4 /24s
// running every attack of src/sim/hostile.ts, 10 %/min churn, two simulated minutes, fixed seeds. The
// real mesh cores run over shaped memory links on the virtual clock; the figures are asserted.
import { beforeAll, describe, expect, test } from "bun:test";
import { hopsSvg, loadSvg, convergenceSvg } from "../../src/sim/plot.ts";
import { runSimulation, type SimResult } from "../../src/sim/run.ts";

let r: SimResult;

beforeAll(async () => {
  r = await runSimulation({ nodes: 200, seeds: 3, minutes: 2, churn: 10, sybil: 0.1, sybilPrefixes: 4, kinds: 10, seed: 1 });
}, 600_000);

describe("a 200-node network with churn and 10 % hostile nodes", () => {
  test("runs the simulated time with every node started", () => {
    expect(r.simulatedSeconds).toBeGreaterThanOrEqual(120);
    expect(r.series.at(-1)!.live).toBe(200);
    // Joins, churn and the self-check leave almost every honest node serving.
    const last = r.series.at(-1)!;
    expect(last.serving / last.honest).toBeGreaterThanOrEqual(0.95);
    expect(last.meanLinks).toBeGreaterThan(3);
  });

  test("searches from honest nodes find honest servers, within the hop limit", () => {
    expect(r.finds).toBeGreaterThanOrEqual(20);
    expect(r.findSuccess!).toBeGreaterThanOrEqual(0.99);
    expect(r.p99Hops!).toBeLessThanOrEqual(3);
    // A search asks a few dozen nodes, not the whole network.
    expect(r.requestsPerFind!).toBeLessThanOrEqual(40);
  });

  test("load stays within 30 requests per node per minute on average and 100 at most, searches included", () => {
    expect(r.requestsWithFindsPerNodePerMin.mean).toBeLessThanOrEqual(30);
    expect(r.requestsWithFindsPerNodePerMin.max).toBeLessThanOrEqual(100);
  });

  test("no honest node is banned: forged records and refused key checks count against the record, not its relays", () => {
    expect(r.bannedHonest).toBe(0);
  });

  test("no honest node is eclipsed: outgoing links are spread over /24s and /16s, and a node short of links asks for help", () => {
    expect(r.eclipsedHonest).toBe(0);
  });

  test("plots are SVG", () => {
    for (const svg of [convergenceSvg(r), hopsSvg(r), loadSvg(r)]) expect(svg).toStartWith("<svg");
  });
});
