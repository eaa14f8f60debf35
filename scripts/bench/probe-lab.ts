// Benchmark: `findings probe` per NAT class in the namespace lab (DESIGN §10), side by side with the classic RFC 3489
// client `stun` (Debian stun-client) against `stund` (Debian stun-server) in the same run: accuracy and time of each.
//
//   bun scripts/bench/probe-lab.ts [--runs 3] [--json] [--bin PATH]
//
// --bin runs `findings probe` from a compiled binary (e.g. dist/findings) instead of `bun src/main.ts`: the
// source run spends ~300 ms importing and transpiling before the probe starts, the binary ~90 ms.
//
// Needs root, iproute2, nftables, stun-client and stun-server (apt-get install -y stun-client stun-server).
// Setup: lab.sh up; three `findings serve` nodes meshed in fl-s1/fl-s2/fl-s3 (tests/lab/lab-servers.ts); stund in
// fl-s2 on its two IPs (-h 203.0.113.2 -a 203.0.113.12, ports 3478/3479). For every class and run, each tool runs
// once, alternating which goes first; before each run the restricted-cone router's box-wide "seen" set is emptied,
// since any tool's earlier traffic to a host keeps that host admitted for 120 s (lab.sh `rc`) and would turn the
// next run's restricted cone into a full cone.
// Reported per tool and class: correct runs / runs, median wall time of the process (what a user waits, Bun
// start-up included for findings), and for findings the median `elapsedMs` of the probe itself.
// The lab's UDP timeout is left as found; udp-blocked runs with --timeout 3 for findings (the classic client has
// its own fixed retransmission schedule).
import { LAB_CLIENTS, labDown, labUnavailableReason, labUp, type LabClass } from "../../tests/lab/lab.ts";
import { BUN } from "../../tests/lab/lab.ts";
import { labIsUp, MAIN, probeIn, resetRestrictedConeSeen, startLabServers, waitForMesh } from "../../tests/lab/lab-servers.ts";

const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf("--runs") + 1] ?? 3) || 3;
const JSON_OUT = args.includes("--json");
const BIN = args.includes("--bin") ? args[args.indexOf("--bin") + 1] : undefined;
const COMMAND = BIN ? [BIN] : [BUN, MAIN];
const STUND_PRIMARY = "203.0.113.2";
const STUND_ALTERNATE = "203.0.113.12";

/** The classic client's "Primary:" line → our class names (stun-client 0.97 client.cxx wording). */
function classicClass(line: string): string {
  if (/Open/.test(line)) return "public";
  if (/Blocked/.test(line)) return "udp-blocked";
  if (/Firewall/.test(line)) return "udp-firewall";
  if (/Dependent Mapping/.test(line)) return "symmetric";
  if (/Independent Filter/.test(line)) return "full-cone";
  if (/Port Dependent Filter/.test(line)) return "port-restricted-cone";
  if (/Address Dependent Filter|Dependent Filter/.test(line)) return "restricted-cone";
  return `? ${line.trim()}`;
}

async function classicIn(ns: string): Promise<{ nat: string; wallMs: number }> {
  const t0 = performance.now();
  const proc = Bun.spawn(["ip", "netns", "exec", ns, "stun", STUND_PRIMARY], { stdout: "pipe", stderr: "pipe" });
  const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  const wallMs = performance.now() - t0;
  const line = out.split("\n").find((l) => l.startsWith("Primary:")) ?? "";
  return { nat: classicClass(line), wallMs };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function startupMs(): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await Bun.spawn([...COMMAND, "--version"], { stdout: "ignore", stderr: "ignore" }).exited;
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

const reason = labUnavailableReason();
if (reason) {
  console.error(`probe-lab: the NAT lab cannot run here: ${reason}`);
  process.exit(2);
}
if (Bun.spawnSync(["which", "stund"]).exitCode !== 0 || Bun.spawnSync(["which", "stun"]).exitCode !== 0) {
  console.error("probe-lab: needs stun-client and stun-server (apt-get install -y stun-client stun-server)");
  process.exit(2);
}

const wasUp = labIsUp();
labUp();
const servers = await startLabServers();
const stund = Bun.spawn(["ip", "netns", "exec", "fl-s2", "stund", "-h", STUND_PRIMARY, "-a", STUND_ALTERNATE], { stdout: "ignore", stderr: "ignore" });
try {
  await waitForMesh(servers, { ownClass: true });
  const bunStartMs = await startupMs();
  type Row = { cls: LabClass; want: string; findings: { nat: string; wallMs: number; elapsedMs: number }[]; classic: { nat: string; wallMs: number }[] };
  const rows: Row[] = [];
  for (const c of LAB_CLIENTS) {
    const row: Row = { cls: c.cls, want: c.nat, findings: [], classic: [] };
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 === 0 ? ["findings", "classic"] : ["classic", "findings"];
      for (const tool of order) {
        resetRestrictedConeSeen();
        if (tool === "findings") {
          const run = await probeIn(c.ns, c.cls === "udpblk" ? ["--timeout", "3"] : [], 120_000, COMMAND);
          row.findings.push({ nat: run.report?.nat ?? `error ${run.code}`, wallMs: run.wallMs, elapsedMs: run.report?.elapsedMs ?? NaN });
        } else {
          row.classic.push(await classicIn(c.ns));
        }
      }
    }
    rows.push(row);
    process.stderr.write(`${c.cls}: findings ${row.findings.map((f) => f.nat).join(",")} | stun ${row.classic.map((f) => f.nat).join(",")}\n`);
  }

  const table = rows.map((r) => ({
    class: r.want,
    findingsCorrect: `${r.findings.filter((f) => f.nat === r.want).length}/${r.findings.length}`,
    findingsWallMs: Math.round(median(r.findings.map((f) => f.wallMs))),
    findingsProbeMs: Math.round(median(r.findings.map((f) => f.elapsedMs))),
    classicCorrect: `${r.classic.filter((f) => f.nat === r.want).length}/${r.classic.length}`,
    classicWallMs: Math.round(median(r.classic.map((f) => f.wallMs))),
    classicSaid: [...new Set(r.classic.map((f) => f.nat))].join(","),
  }));
  if (JSON_OUT) {
    console.log(JSON.stringify({ runs: RUNS, bunStartMs: Math.round(bunStartMs), table }, null, 2));
  } else {
    const head = ["class", "findings ok", "wall ms", "probe ms", "stun ok", "wall ms", "stun said"];
    const lines = table.map((t) => [t.class, t.findingsCorrect, String(t.findingsWallMs), String(t.findingsProbeMs), t.classicCorrect, String(t.classicWallMs), t.classicSaid]);
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    const fmt = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i]!)).join("  ");
    console.log(`findings probe vs stun-client 0.97 (stund on ${STUND_PRIMARY}/${STUND_ALTERNATE}), ${RUNS} run(s) each, medians`);
    console.log(`(findings run as ${BIN ?? "bun src/main.ts"}; its wall time includes start-up: \`findings --version\` takes ${Math.round(bunStartMs)} ms here)`);
    console.log(fmt(head));
    for (const l of lines) console.log(fmt(l));
  }
} finally {
  stund.kill("SIGTERM");
  await stund.exited;
  await servers.stop();
  // Leave the lab as found: a fresh "seen" set for the restricted cone, and down if it was down.
  resetRestrictedConeSeen();
  if (!wasUp) labDown();
}
