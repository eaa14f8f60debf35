// Benchmark: `findings punch <id>` per NAT pair in the namespace lab (DESIGN §7, §10): success rate over repeated
// runs and the time from the start of the command to an established, pinned and checked link.
//
//   bun scripts/bench/punch-grid.ts [--runs 5] [--width 4] [--json]
//
// Needs root, iproute2 and nftables (tests/lab/README.md). Setup: lab.sh up (left as found afterwards); one
// `findings serve` in fl-s1 serving app:chat; one `findings punch --wait` app per lab client: public, full-cone,
// restricted-cone, port-restricted-cone and symmetric behind bare Linux NATs and behind firewalled home routers
// (·fw), udp-firewall, and QUIC-only (·fw). For every ordered pair (puncher → waiter) and run, one
// `findings punch <waiter id> --json` process runs in the puncher's namespace; `--width` pairs that share no
// namespace run at once (punch-lab.ts pairPhases), and runs are interleaved over the pairs. Before each run the
// pair's restricted-cone routers' "seen" sets are emptied (otherwise earlier runs' traffic keeps hosts admitted
// and a restricted cone behaves like a full cone towards them).
// Reported per pair: connected runs / runs, median `elapsedMs` (command start → link up: Bun start-up excluded,
// bootstrap + join + request + punch included), median `punchMs` (offer → link) and the strategy. Pairs the node
// refuses (symmetric ↔ symmetric / QUIC-only) are timed as refusals.
import { labDown, labUnavailableReason, labUp, type LabClass } from "../../tests/lab/lab.ts";
import { holdLabLock } from "../../tests/lab/lab-lock.ts";
import { labIsUp } from "../../tests/lab/lab-servers.ts";
import {
  expectedOutcome,
  foreignRouterTables,
  disturbsWaiter,
  NAT_OF,
  pairPhases,
  punchOnce,
  removeAppHomes,
  resetRestrictedConeSeen,
  startPunchNode,
  startWaiter,
  type PairOutcome,
  type Waiter,
} from "./punch-lab.ts";

const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf("--runs") + 1] ?? 5) || 5;
const JSON_OUT = args.includes("--json");
const WIDTH = args.includes("--width") ? Number(args[args.indexOf("--width") + 1]) || 4 : 4;
const CLASSES: LabClass[] = ["public", "fullc", "rc", "prc", "sym", "udpfw", "fullc-fw", "rc-fw", "prc-fw", "sym-fw", "quic-fw", "prc-fw2"];
const SHORT: Record<LabClass, string> = { public: "Public", fullc: "FullC", rc: "RC", prc: "P-RC", sym: "Sym", udpfw: "UDP-FW", udpblk: "UDP-Blk", "fullc-fw": "FullC·fw", "rc-fw": "RC·fw", "prc-fw": "P-RC·fw", "sym-fw": "Sym·fw", "quic-fw": "QUIC·fw", "prc-fw2": "P-RC·fw2" };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const reason = labUnavailableReason();
if (reason) {
  console.error(`punch-grid: the NAT lab cannot run here: ${reason}`);
  process.exit(2);
}
// The lab is machine-wide: hold it for the whole run, so lab tests wait (tests/lab/lab-lock.ts).
const releaseLab = await holdLabLock();
const wasUp = labIsUp();
labUp();
const foreign = foreignRouterTables();
if (foreign.length) console.error(`punch-grid: warning: the routers carry foreign rules (${foreign.join("; ")}); figures may be off`);

interface Cell {
  from: LabClass;
  to: LabClass;
  expected: PairOutcome;
  strategy: string;
  ok: number;
  runs: number;
  elapsedMs: number[];
  punchMs: number[];
  wallMs: number[];
  reasons: string[];
}

const node = await startPunchNode();
const waiters = new Map<LabClass, Waiter>();
try {
  for (let i = 0; i < CLASSES.length; i += WIDTH) for (const w of await Promise.all(CLASSES.slice(i, i + WIDTH).map((c) => startWaiter(c, { server: node.server })))) waiters.set(w.cls, w);
  const cells: Cell[] = [];
  for (const from of CLASSES) for (const to of CLASSES) if (from !== to) cells.push({ from, to, expected: expectedOutcome(from, to), strategy: "", ok: 0, runs: 0, elapsedMs: [], punchMs: [], wallMs: [], reasons: [] });
  const t0 = performance.now();
  for (let run = 0; run < RUNS; run++) {
    for (const phase of pairPhases(CLASSES, WIDTH)) {
      await Promise.all(phase.map(([from, to]) => measure(cells.find((x) => x.from === from && x.to === to)!)));
    }
    // A failed attempt left these waiters' bare routers re-mapping their sockets' flows (for 30 s): give them new
    // sockets before the next round.
    for (const cls of new Set(cells.filter((c) => disturbsWaiter(c.from, c.to)).map((c) => c.to))) {
      await waiters.get(cls)!.stop();
      waiters.set(cls, await startWaiter(cls, { server: node.server, name: `wait-${cls}-${run + 1}` }));
    }
    if (!JSON_OUT) process.stderr.write(`punch-grid: round ${run + 1}/${RUNS} done (${Math.round((performance.now() - t0) / 1000)} s)\n`);
  }
  async function measure(c: Cell): Promise<void> {
      resetRestrictedConeSeen([c.from, c.to]);
      const r = await punchOnce(c.from, { server: node.server, targetId: waiters.get(c.to)!.id });
      c.runs++;
      c.wallMs.push(r.wallMs);
      const res = r.result;
      if (res) c.strategy = String(res.strategy);
      if (res?.connected) {
        c.ok++;
        c.elapsedMs.push(res.elapsedMs as number);
        c.punchMs.push(res.punchMs as number);
      } else {
        c.elapsedMs.push((res?.elapsedMs as number) ?? r.wallMs);
        const why = String(res?.reason ?? r.stderr.trim().split("\n").at(-1) ?? "?").slice(0, 120);
        if (!c.reasons.includes(why)) c.reasons.push(why);
      }
  }
  if (JSON_OUT) {
    console.log(JSON.stringify({ runs: RUNS, cells: cells.map((c) => ({ ...c, medianElapsedMs: median(c.elapsedMs), medianPunchMs: median(c.punchMs) })) }, null, 2));
  } else {
    const w = 11;
    const lines: string[] = [];
    lines.push(`findings punch grid, ${RUNS} runs per pair: connected/runs and median ms from command start to link (punch → waiting side)`);
    lines.push(["puncher \\ waiter".padEnd(11), ...CLASSES.map((c) => SHORT[c].padStart(w))].join(""));
    for (const from of CLASSES) {
      const row = [SHORT[from].padEnd(11)];
      for (const to of CLASSES) {
        const c = cells.find((x) => x.from === from && x.to === to);
        if (!c) row.push("—".padStart(w));
        else if (c.expected === "refused") row.push(`refused`.padStart(w));
        else row.push(`${c.ok}/${c.runs} ${Number.isNaN(median(c.elapsedMs)) ? "-" : Math.round(median(c.elapsedMs))}`.padStart(w));
      }
      lines.push(row.join(""));
    }
    lines.push("");
    lines.push("pair                      strategy            ok    elapsed ms (median)  punch ms (median)  process wall ms (median)");
    for (const c of cells) {
      lines.push(
        `${`${SHORT[c.from]} → ${SHORT[c.to]}`.padEnd(26)}${c.strategy.padEnd(20)}${`${c.ok}/${c.runs}`.padEnd(6)}${String(Math.round(median(c.elapsedMs))).padEnd(21)}${String(Number.isNaN(median(c.punchMs)) ? "-" : Math.round(median(c.punchMs))).padEnd(19)}${Math.round(median(c.wallMs))}`,
      );
      for (const r of c.reasons) if (c.expected === "connect") lines.push(`    failure: ${r}`);
    }
    console.log(lines.join("\n"));
  }
} finally {
  await Promise.all([...waiters.values()].map((w) => w.stop()));
  await node.stop();
  removeAppHomes();
  if (!wasUp) labDown();
  await releaseLab();
}
