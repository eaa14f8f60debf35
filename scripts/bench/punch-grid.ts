// Benchmark: `findings punch <id>` per NAT pair in the namespace lab (DESIGN §7, §10): success rate over repeated
// runs and the time from the start of the command to an established, pinned and checked link.
//
//   bun scripts/bench/punch-grid.ts [--runs 5] [--width 4] [--json] [--no-quic-only] [--base DIR] [--pairs sym-udpfw,udpfw-sym]
//
// Needs root, iproute2 and nftables (tests/lab/README.md). The whole run holds the lab lock (tests/lab/lab-lock.ts).
// Setup: lab.sh up (left as found afterwards); one `findings serve` in fl-s1 serving app:chat; one `findings punch
// --wait` app per lab client: public, full-cone, restricted-cone, port-restricted-cone and symmetric behind bare
// Linux NATs and behind firewalled home routers (·fw), udp-firewall, QUIC-only (·fw) and a second firewalled P-RC
// home. For every ordered pair (puncher → waiter) and run, one `findings punch <waiter id> --json` process runs in
// the puncher's namespace; `--width` pairs that share no namespace run at once (punch-lab.ts pairPhases), runs are
// interleaved over the pairs. Before each run the pair's restricted-cone routers' "seen" sets are emptied
// (otherwise earlier runs' traffic keeps hosts admitted and a restricted cone behaves like a full cone towards
// them). Then (unless --no-quic-only) the quic-only pairs behind the bare P-RC router: it passes only QUIC
// (withQuicOnlyRouter) while a second waiter in its namespace says `--nat quic-only`, punched from and punching to
// public, full-cone, restricted-cone and udp-firewall.
// --base DIR runs a second, complete set (node on port 7791, waiters, punchers) from another checkout's
// src/main.ts, alternating with this one run by run, so both versions share the machine's load of the moment.
// Reported per pair: connected runs / runs, median `elapsedMs` (command start → link up: Bun start-up excluded,
// bootstrap + join + request + punch included), median `punchMs` (offer → link) and the strategy; per pair type
// the range of the pairs' medians. Pairs the node refuses (symmetric ↔ symmetric / QUIC-only) are timed as refusals.
import { resolve } from "node:path";
import { labDown, labUnavailableReason, labUp, type LabClass } from "../../tests/lab/lab.ts";
import { labIsUp, withQuicOnlyRouter } from "../../tests/lab/lab-servers.ts";
import { holdLabLock } from "../../tests/lab/lab-lock.ts";
import {
  disturbsWaiter,
  expectedOutcome,
  foreignRouterTables,
  MAIN,
  pairPhases,
  PUNCH_NODE_PORT,
  punchOnce,
  removeAppHomes,
  resetRestrictedConeSeen,
  startPunchNode,
  startWaiter,
  type PairOutcome,
  type PunchNode,
  type PunchRun,
  type Waiter,
} from "./punch-lab.ts";

const args = process.argv.slice(2);
const arg = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const RUNS = Number(arg("--runs") ?? 5) || 5;
const JSON_OUT = args.includes("--json");
const QUIC_ONLY = !args.includes("--no-quic-only");
const WIDTH = Number(arg("--width") ?? 4) || 4;
const BASE = arg("--base");
/** Only these ordered pairs ("from-to" by lab class, e.g. sym-udpfw); all when absent. */
const PAIRS = arg("--pairs")?.split(",");
const wanted = (from: Side, to: Side) => !PAIRS || PAIRS.includes(`${from}-${to}`);
const CLASSES: LabClass[] = ["public", "fullc", "rc", "prc", "sym", "udpfw", "fullc-fw", "rc-fw", "prc-fw", "sym-fw", "quic-fw", "prc-fw2"];
/** Classes punched with the QUIC-only client (prc behind a QUIC-only router), both ways. */
const QUIC_ONLY_PEERS: LabClass[] = ["public", "fullc", "rc", "udpfw"];
type Side = LabClass | "quic-only";
const SHORT: Record<Side, string> = {
  public: "Public",
  fullc: "FullC",
  rc: "RC",
  prc: "P-RC",
  sym: "Sym",
  udpfw: "UDP-FW",
  udpblk: "UDP-Blk",
  "fullc-fw": "FullC·fw",
  "rc-fw": "RC·fw",
  "prc-fw": "P-RC·fw",
  "sym-fw": "Sym·fw",
  "quic-fw": "QUIC·fw",
  "prc-fw2": "P-RC·fw2",
  "quic-only": "QUIC-Only",
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

interface Cell {
  from: Side;
  to: Side;
  expected: PairOutcome;
  strategy: string;
  ok: number;
  runs: number;
  elapsedMs: number[];
  /** elapsedMs of the connected runs. */
  okElapsedMs: number[];
  punchMs: number[];
  wallMs: number[];
  /** Spray probes the cone side sent, when this side was the cone. */
  probes: number[];
  reasons: string[];
}

/** One version of the code under test: its node, its waiters, its cells. */
interface Version {
  label: string;
  main: string;
  port: number;
  node?: PunchNode;
  waiters: Map<Side, Waiter>;
  cells: Cell[];
  quicOnlyCells: Cell[];
}

const cell = (from: Side, to: Side, expected: PairOutcome): Cell => ({ from, to, expected, strategy: "", ok: 0, runs: 0, elapsedMs: [], okElapsedMs: [], punchMs: [], wallMs: [], probes: [], reasons: [] });

function newVersion(label: string, main: string, port: number): Version {
  const v: Version = { label, main, port, waiters: new Map(), cells: [], quicOnlyCells: [] };
  for (const from of CLASSES) for (const to of CLASSES) if (from !== to && wanted(from, to)) v.cells.push(cell(from, to, expectedOutcome(from, to)));
  if (QUIC_ONLY) {
    for (const p of QUIC_ONLY_PEERS) {
      if (wanted("quic-only", p)) v.quicOnlyCells.push(cell("quic-only", p, "connect"));
      if (wanted(p, "quic-only")) v.quicOnlyCells.push(cell(p, "quic-only", "connect"));
    }
  }
  return v;
}

function record(c: Cell, r: PunchRun): void {
  c.runs++;
  c.wallMs.push(r.wallMs);
  const res = r.result;
  if (res) c.strategy = String(res.strategy);
  if (res?.connected) {
    c.ok++;
    c.elapsedMs.push(res.elapsedMs as number);
    c.okElapsedMs.push(res.elapsedMs as number);
    c.punchMs.push(res.punchMs as number);
    const spray = res.spray as { probes?: number } | undefined;
    if (spray?.probes) c.probes.push(spray.probes);
  } else {
    c.elapsedMs.push((res?.elapsedMs as number) ?? r.wallMs);
    const why = String(res?.reason ?? r.stderr.trim().split("\n").at(-1) ?? "?").slice(0, 120);
    if (!c.reasons.includes(why)) c.reasons.push(why);
  }
}

async function punchCell(v: Version, c: Cell): Promise<void> {
  resetRestrictedConeSeen(c.from === "quic-only" || c.to === "quic-only" ? undefined : [c.from, c.to]);
  const server = v.node!.server;
  const target = v.waiters.get(c.to)!.id;
  const name = `${v.label}-punch-${c.from}`;
  const r = c.from === "quic-only" ? await punchOnce("prc", { server, targetId: target, nat: "quic-only", name, main: v.main }) : await punchOnce(c.from, { server, targetId: target, name, main: v.main });
  record(c, r);
}

/** Per pair type: the range of the pairs' medians (connected runs only). */
function byStrategy(cells: Cell[]) {
  const byType = new Map<string, { elapsed: number[]; punch: number[]; ok: number; runs: number }>();
  for (const c of cells) {
    if (c.expected !== "connect") continue;
    const type = c.from === "quic-only" || c.to === "quic-only" ? `quic-only ${c.strategy}` : c.strategy;
    const t = byType.get(type) ?? { elapsed: [], punch: [], ok: 0, runs: 0 };
    byType.set(type, t);
    t.ok += c.ok;
    t.runs += c.runs;
    if (c.ok > 0) t.elapsed.push(median(c.okElapsedMs)), t.punch.push(median(c.punchMs));
  }
  return [...byType].map(([type, t]) => ({
    type,
    ok: `${t.ok}/${t.runs}`,
    elapsedMs: [Math.round(Math.min(...t.elapsed)), Math.round(Math.max(...t.elapsed))],
    punchMs: [Math.round(Math.min(...t.punch)), Math.round(Math.max(...t.punch))],
  }));
}

function report(v: Version): string[] {
  const cells = [...v.cells, ...v.quicOnlyCells];
  const w = 11;
  const lines: string[] = [];
  lines.push(`${v.label} (${v.main}): findings punch grid, ${RUNS} runs per pair: connected/runs and median ms from command start to link (punch → waiting side)`);
  lines.push(["puncher \\ waiter".padEnd(11), ...CLASSES.map((c) => SHORT[c].padStart(w))].join(""));
  for (const from of CLASSES) {
    const row = [SHORT[from].padEnd(11)];
    for (const to of CLASSES) {
      const c = cells.find((x) => x.from === from && x.to === to);
      if (!c) row.push("—".padStart(w));
      else if (c.expected === "refused") row.push("refused".padStart(w));
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
  lines.push("");
  lines.push("pair type                 ok       elapsed ms (range of pair medians)  punch ms (range)");
  for (const b of byStrategy(cells)) lines.push(`${b.type.padEnd(26)}${b.ok.padEnd(9)}${`${b.elapsedMs[0]}–${b.elapsedMs[1]}`.padEnd(36)}${b.punchMs[0]}–${b.punchMs[1]}`);
  return lines;
}

const reason = labUnavailableReason();
if (reason) {
  console.error(`punch-grid: the NAT lab cannot run here: ${reason}`);
  process.exit(2);
}
const releaseLab = await holdLabLock();
const wasUp = labIsUp();
labUp();
const foreign = foreignRouterTables();
if (foreign.length) console.error(`punch-grid: warning: the routers carry foreign rules (${foreign.join("; ")}); figures may be off`);

const versions: Version[] = [newVersion("now", MAIN, PUNCH_NODE_PORT)];
if (BASE) versions.push(newVersion("base", resolve(BASE, "src/main.ts"), PUNCH_NODE_PORT + 1));
const log = (m: string) => JSON_OUT || process.stderr.write(`punch-grid: ${m}\n`);
try {
  for (const v of versions) {
    v.node = await startPunchNode({ port: v.port, main: v.main });
    for (let i = 0; i < CLASSES.length; i += WIDTH) {
      const batch = CLASSES.slice(i, i + WIDTH);
      for (const w of await Promise.all(batch.map((c) => startWaiter(c, { server: v.node!.server, main: v.main, name: `${v.label}-wait-${c}` })))) v.waiters.set(w.cls, w);
    }
  }
  const t0 = performance.now();
  // Alternate which version goes first, run by run.
  const order = (run: number) => (run % 2 === 0 ? versions : [...versions].reverse());
  for (let run = 0; run < RUNS; run++) {
    for (const phase of pairPhases(CLASSES, WIDTH)) {
      for (const v of order(run)) {
        const cells = phase.flatMap(([from, to]) => v.cells.filter((c) => c.from === from && c.to === to));
        await Promise.all(cells.map((c) => punchCell(v, c)));
      }
    }
    // A failed attempt left these waiters' bare routers re-mapping their sockets' flows (for 30 s): new sockets
    // before the next round.
    for (const v of versions) {
      for (const cls of new Set(v.cells.filter((c) => c.runs > 0 && disturbsWaiter(c.from as LabClass, c.to as LabClass)).map((c) => c.to as LabClass))) {
        await v.waiters.get(cls)!.stop();
        v.waiters.set(cls, await startWaiter(cls, { server: v.node!.server, main: v.main, name: `${v.label}-wait-${cls}-${run + 1}` }));
      }
    }
    log(`round ${run + 1}/${RUNS} done (${Math.round((performance.now() - t0) / 1000)} s)`);
  }
  if (versions[0]!.quicOnlyCells.length) {
    await withQuicOnlyRouter(async () => {
      for (const v of versions) v.waiters.set("quic-only", await startWaiter("prc", { server: v.node!.server, name: `${v.label}-wait-quic-only`, nat: "quic-only", main: v.main }));
      for (let run = 0; run < RUNS; run++) for (let i = 0; i < versions[0]!.quicOnlyCells.length; i++) for (const v of order(run)) await punchCell(v, v.quicOnlyCells[i]!);
      await Promise.all(versions.map((v) => v.waiters.get("quic-only")!.stop()));
      for (const v of versions) v.waiters.delete("quic-only");
    });
    log(`quic-only pairs done (${Math.round((performance.now() - t0) / 1000)} s)`);
  }
  if (JSON_OUT) {
    const out = versions.map((v) => {
      const cells = [...v.cells, ...v.quicOnlyCells];
      return { label: v.label, main: v.main, byStrategy: byStrategy(cells), cells: cells.map((c) => ({ ...c, medianElapsedMs: median(c.elapsedMs), medianPunchMs: median(c.punchMs) })) };
    });
    console.log(JSON.stringify({ runs: RUNS, versions: out }, null, 2));
  } else {
    console.log(versions.map((v) => report(v).join("\n")).join("\n\n"));
  }
} finally {
  for (const v of versions) {
    await Promise.all([...v.waiters.values()].map((w) => w.stop()));
    await v.node?.stop();
  }
  removeAppHomes();
  if (!wasUp) labDown();
  await releaseLab();
}
