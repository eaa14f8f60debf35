// `npm run bench`'s registry turns each bench's result into the summary's figures, whatever shape of the
// result a bench has today, and the table says n/a (with the reason) for what did not run.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCHES, exportedFunction, type BenchEntry } from "../../scripts/bench/registry.ts";
import { formatTable, type BenchOutcome } from "../../scripts/bench/run.ts";

const bench = (name: string): BenchEntry => BENCHES.find((b) => b.name === name)!;

describe("bench registry", () => {
  test("binding: the ratios and both servers' answers/s", () => {
    const row = (perSecond: number) => ({ perSecond, perCpuSecond: perSecond });
    const result = {
      servers: [
        { key: "node", median: row(120_000) },
        { key: "coturn", median: row(100_000) },
      ],
      bindingRatio: 1.2,
      bindingRatioPerCpu: 1.2,
    };
    expect(bench("binding").figures(result)).toEqual({
      bindingRatio: 1.2,
      bindingRatioPerCpu: 1.2,
      bindingAnswersPerSecond: 120_000,
      coturnAnswersPerSecond: 100_000,
    });
  });

  test("a figure missing from a result stays missing, never 0", () => {
    expect(bench("binding").figures({ servers: [], bindingRatio: null })).toEqual({});
    expect(bench("whoami").figures({})).toEqual({});
    expect(bench("storm").figures({ n: 2000 })).toEqual({});
  });

  test("storm: n and lost, and the server CPU per connection", () => {
    expect(bench("storm").figures({ n: 2000, lost: 3, serverCpuMsPerConnection: 1.4, neverUp: 1 })).toEqual({ storm: { n: 2000, lost: 3 }, serverCpuMsPerConnection: 1.4 });
  });

  test("idle connections: the largest n of a list of sizes, or the one result", () => {
    const sizes = [
      { n: 1000, rssMiB: 80, idleCpuPct: 2, dropped: 0 },
      { n: 10_000, rssMiB: 700, idleCpuPct: 30, dropped: 4, openPerSecond: 900 },
      { n: 5000, rssMiB: 350, idleCpuPct: 12, dropped: 0 },
    ];
    expect(bench("idle").figures({ rows: sizes }).idleConnections).toEqual(sizes[1]!);
    expect(bench("idle").figures({ n: 1000, rssMiB: 80, idleCpuPct: 2, dropped: 0 }).idleConnections).toEqual(sizes[0]!);
  });

  test("probe: the figure a bench names, or the udp-blocked row of its table", () => {
    expect(bench("probe").figures({ probeUdpBlockedSeconds: 1.2, classicUdpBlockedSeconds: 1.1 })).toEqual({ probeUdpBlockedSeconds: 1.2, probeClassicUdpBlockedSeconds: 1.1 });
    const table = [{ class: "public", findingsWallMs: 500 }, { class: "udp-blocked", findingsWallMs: 6100, classicWallMs: 1100 }];
    expect(bench("probe").figures({ runs: 3, table })).toEqual({ probeUdpBlockedSeconds: 6.1, probeClassicUdpBlockedSeconds: 1.1 });
  });

  test("punch: the worst pair median per pair type, from ranges or from the cells", () => {
    const byStrategy = [
      { type: "simultaneous", elapsedMs: [600, 1900] },
      { type: "quic-only simultaneous", elapsedMs: [700, 1200] },
    ];
    expect(bench("punch").figures({ versions: [{ byStrategy }] })).toEqual({ punch: { simultaneous: 1900, "quic-only simultaneous": 1200 } });
    const cells = [
      { strategy: "spray", expected: "connect", ok: 2, medianElapsedMs: 2500 },
      { strategy: "spray", expected: "connect", ok: 1, medianElapsedMs: 1300 },
      { strategy: "impossible", expected: "refused", ok: 0, medianElapsedMs: 90 },
    ];
    expect(bench("punch").figures({ runs: 1, versions: [{ cells }] })).toEqual({ punch: { spray: 2500 } });
  });

  test("exportedFunction finds the first listed export in a module's source", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-registry-"));
    try {
      const file = join(dir, "b.ts");
      writeFileSync(file, "// runStorm is mentioned here\nexport async function benchStorm() {}\nexport function runOther() {}\n");
      expect(exportedFunction(file, ["runStorm", "benchStorm"])).toBe("benchStorm");
      expect(exportedFunction(file, ["runStorm"])).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the table shows each figure against its goal, and n/a with the reason for benches that did not run", () => {
    const outcomes: Record<string, BenchOutcome> = {
      binding: { status: "ok", seconds: 40 },
      storm: { status: "failed", seconds: 0, error: "scripts/bench/storm.ts does not exist (yet)" },
      probe: { status: "skipped", seconds: 0, error: "needs root" },
    };
    const table = formatTable({ bindingRatio: 1.25, bindingRatioPerCpu: 1.2, bindingAnswersPerSecond: 125_000, coturnAnswersPerSecond: 100_000 }, outcomes, BENCHES);
    const line = (figure: string) => table.split("\n").find((l) => l.includes(figure))!;
    expect(line("Binding")).toContain("1.25×");
    expect(line("Binding")).toMatch(/\| yes +\|$/);
    expect(line("lost")).toContain("n/a (failed: scripts/bench/storm.ts does not exist (yet))");
    expect(line("probe")).toContain("n/a (skipped: needs root)");
    expect(line("whoami")).toContain("not run");
  });
});
