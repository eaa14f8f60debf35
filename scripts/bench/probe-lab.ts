// Benchmark: `findings probe` per NAT class in the namespace lab (DESIGN §10), side by side with the classic RFC 3489
// client `stun` (Debian stun-client) against `stund` (Debian stun-server) in the same run: accuracy and time of each.
//
//   bun scripts/bench/probe-lab.ts [--runs 3] [--json] [--bin PATH] [--base-bin PATH] [--udp-blocked-timeout S] [--classes prc,quic-only]
//
// As a module: `benchProbeLab({ runs, bin })` returns the same figures (`probeUdpBlockedSeconds` among them) for
// a runner that calls each bench module.
//
// --bin runs `findings probe` from a compiled binary (e.g. dist/findings) instead of `bun src/main.ts`: the
// source run spends ~300 ms importing and transpiling before the probe starts, the binary ~90 ms. --base-bin adds a
// second findings (another version, e.g. a build of main) run right after the first each time, so both see the
// machine's load of the moment; its figures are the base* columns.
//
// Needs root, iproute2, nftables, stun-client and stun-server (apt-get install -y stun-client stun-server).
// Setup: the lab lock (tests/lab/lab-lock.ts), lab.sh up; three `findings serve` nodes meshed in fl-s1/fl-s2/fl-s3
// (tests/lab/lab-servers.ts); stund in fl-s2 on its two IPs (-h 203.0.113.2 -a 203.0.113.12, ports 3478/3479). For
// every class and run, each tool runs once, alternating which goes first; before each run the restricted-cone
// router's box-wide "seen" set is emptied, since any tool's earlier traffic to a host keeps that host admitted for
// 120 s (lab.sh `rc`) and would turn the next run's restricted cone into a full cone. The quic-only row is the
// port-restricted-cone client while its router drops every UDP datagram that is not QUIC (withQuicOnlyRouter).
// Reported per tool and class: correct runs / runs, median wall time of the process (what a user waits, Bun
// start-up included for findings), and for findings the median `elapsedMs` of the probe itself.
// The lab's UDP timeout is left as found. udp-blocked runs with the default --timeout (6 s) unless
// --udp-blocked-timeout says otherwise: the probe decides on the evidence, the timeout is only its upper bound.
import { LAB_CLIENTS, labDown, labUnavailableReason, labUp, type LabClass } from "../../tests/lab/lab.ts";
import { BUN } from "../../tests/lab/lab.ts";
import { holdLabLock } from "../../tests/lab/lab-lock.ts";
import { labIsUp, MAIN, probeIn, resetRestrictedConeSeen, startLabServers, waitForMesh, withQuicOnlyRouter } from "../../tests/lab/lab-servers.ts";

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

async function startupMs(command: string[]): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await Bun.spawn([...command, "--version"], { stdout: "ignore", stderr: "ignore" }).exited;
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

export interface ProbeLabRow {
  class: string;
  findingsCorrect: string;
  findingsWallMs: number;
  findingsProbeMs: number;
  /** The same for --base-bin, when given. */
  baseCorrect?: string;
  baseWallMs?: number;
  baseProbeMs?: number;
  classicCorrect: string;
  classicWallMs: number;
  classicSaid: string;
}

export interface ProbeLabFigures {
  runs: number;
  /** How findings was started ("bun src/main.ts" or the binary's path) and what `--version` takes that way. */
  command: string;
  bunStartMs: number;
  table: ProbeLabRow[];
  /** Median wall time of `findings probe` on the udp-blocked client, s (start-up included). */
  probeUdpBlockedSeconds: number;
  /** The classic client's median wall time there, same run, s. */
  classicUdpBlockedSeconds: number;
  /** Classes where findings' median wall time exceeds the classic client's. */
  slowerThanClassic: string[];
}

export interface ProbeLabOptions {
  runs?: number;
  /** A compiled `findings` to run instead of `bun src/main.ts`. */
  bin?: string;
  /** Another `findings` binary, run alongside for comparison. */
  baseBin?: string;
  /** --timeout for the udp-blocked runs, s (default: the probe's own default). */
  udpBlockedTimeoutS?: number;
  /** Also measure the quic-only row (default true). */
  quicOnly?: boolean;
  /** Only these rows (lab classes, or "quic-only"); all when absent. */
  classes?: string[];
  onProgress?: (line: string) => void;
}

/** Why the bench cannot run here, or null. */
export function probeLabUnavailable(): string | null {
  const reason = labUnavailableReason();
  if (reason) return `the NAT lab cannot run here: ${reason}`;
  if (Bun.spawnSync(["which", "stund"]).exitCode !== 0 || Bun.spawnSync(["which", "stun"]).exitCode !== 0) {
    return "needs stun-client and stun-server (apt-get install -y stun-client stun-server)";
  }
  return null;
}

/** Runs the bench (holds the lab lock throughout) and returns its figures. */
export async function benchProbeLab(opts: ProbeLabOptions = {}): Promise<ProbeLabFigures> {
  const why = probeLabUnavailable();
  if (why) throw new Error(`probe-lab: ${why}`);
  const runs = opts.runs ?? 3;
  const command = opts.bin ? [opts.bin] : [BUN, MAIN];
  const release = await holdLabLock();
  const wasUp = labIsUp();
  try {
    labUp();
    const servers = await startLabServers();
    const stund = Bun.spawn(["ip", "netns", "exec", "fl-s2", "stund", "-h", STUND_PRIMARY, "-a", STUND_ALTERNATE], { stdout: "ignore", stderr: "ignore" });
    try {
      await waitForMesh(servers, { ownClass: true });
      const bunStartMs = await startupMs(command);
      type Sample = { nat: string; wallMs: number };
      const cases: { cls: LabClass; ns: string; want: string; quicOnly: boolean }[] = LAB_CLIENTS.map((c) => ({ cls: c.cls, ns: c.ns, want: c.nat, quicOnly: false }));
      if (opts.quicOnly !== false) cases.push({ cls: "prc", ns: LAB_CLIENTS.find((c) => c.cls === "prc")!.ns, want: "quic-only", quicOnly: true });
      if (opts.classes) cases.splice(0, cases.length, ...cases.filter((c) => opts.classes!.includes(c.quicOnly ? "quic-only" : c.cls)));
      const table: ProbeLabRow[] = [];
      let blocked = { findings: NaN, classic: NaN };
      for (const c of cases) {
        const findings: (Sample & { elapsedMs: number })[] = [];
        const base: (Sample & { elapsedMs: number })[] = [];
        const classic: Sample[] = [];
        const extra = c.cls === "udpblk" && opts.udpBlockedTimeoutS !== undefined ? ["--timeout", String(opts.udpBlockedTimeoutS)] : [];
        const one = async (i: number) => {
          for (const tool of i % 2 === 0 ? ["findings", "classic"] : ["classic", "findings"]) {
            resetRestrictedConeSeen();
            if (tool === "findings") {
              const run = await probeIn(c.ns, extra, 120_000, command);
              findings.push({ nat: run.report?.nat ?? `error ${run.code}`, wallMs: run.wallMs, elapsedMs: run.report?.elapsedMs ?? NaN });
              if (run.report && run.report.nat !== c.want) opts.onProgress?.(`${c.want}: wrong answer ${run.report.nat}; evidence ${JSON.stringify(run.report.evidence)}`);
              if (opts.baseBin) {
                resetRestrictedConeSeen();
                const b = await probeIn(c.ns, extra, 120_000, [opts.baseBin]);
                base.push({ nat: b.report?.nat ?? `error ${b.code}`, wallMs: b.wallMs, elapsedMs: b.report?.elapsedMs ?? NaN });
              }
            } else {
              classic.push(await classicIn(c.ns));
            }
          }
        };
        for (let i = 0; i < runs; i++) await (c.quicOnly ? withQuicOnlyRouter(() => one(i)) : one(i));
        const row: ProbeLabRow = {
          class: c.want,
          findingsCorrect: `${findings.filter((f) => f.nat === c.want).length}/${findings.length}`,
          findingsWallMs: Math.round(median(findings.map((f) => f.wallMs))),
          findingsProbeMs: Math.round(median(findings.map((f) => f.elapsedMs))),
          ...(opts.baseBin
            ? {
                baseCorrect: `${base.filter((f) => f.nat === c.want).length}/${base.length}`,
                baseWallMs: Math.round(median(base.map((f) => f.wallMs))),
                baseProbeMs: Math.round(median(base.map((f) => f.elapsedMs))),
              }
            : {}),
          classicCorrect: `${classic.filter((f) => f.nat === c.want).length}/${classic.length}`,
          classicWallMs: Math.round(median(classic.map((f) => f.wallMs))),
          classicSaid: [...new Set(classic.map((f) => f.nat))].join(","),
        };
        table.push(row);
        if (c.cls === "udpblk") blocked = { findings: row.findingsWallMs, classic: row.classicWallMs };
        opts.onProgress?.(`${c.want}: findings ${findings.map((f) => `${f.nat} ${Math.round(f.wallMs)}`).join(", ")} | stun ${classic.map((f) => `${f.nat} ${Math.round(f.wallMs)}`).join(", ")}`);
      }
      return {
        runs,
        command: opts.bin ?? "bun src/main.ts",
        bunStartMs: Math.round(bunStartMs),
        table,
        probeUdpBlockedSeconds: Math.round(blocked.findings) / 1000,
        classicUdpBlockedSeconds: Math.round(blocked.classic) / 1000,
        slowerThanClassic: table.filter((r) => r.findingsWallMs > r.classicWallMs).map((r) => r.class),
      };
    } finally {
      stund.kill("SIGTERM");
      await stund.exited;
      await servers.stop();
    }
  } finally {
    // Leave the lab as found: a fresh "seen" set for the restricted cone, and down if it was down.
    resetRestrictedConeSeen();
    if (!wasUp) labDown();
    await release();
  }
}

/** The figures as a table for a terminal. */
export function formatProbeLab(f: ProbeLabFigures): string {
  const withBase = f.table.some((t) => t.baseWallMs !== undefined);
  const head = ["class", "findings ok", "wall ms", "probe ms", ...(withBase ? ["base ok", "wall ms", "probe ms"] : []), "stun ok", "wall ms", "stun said"];
  const lines = f.table.map((t) => [
    t.class,
    t.findingsCorrect,
    String(t.findingsWallMs),
    String(t.findingsProbeMs),
    ...(withBase ? [t.baseCorrect ?? "", String(t.baseWallMs), String(t.baseProbeMs)] : []),
    t.classicCorrect,
    String(t.classicWallMs),
    t.classicSaid,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  return [
    `findings probe vs stun-client 0.97 (stund on ${STUND_PRIMARY}/${STUND_ALTERNATE}), ${f.runs} run(s) each, medians`,
    `(findings run as ${f.command}; its wall time includes start-up: \`findings --version\` takes ${f.bunStartMs} ms here)`,
    ...(withBase ? ["(base: another findings binary, run right after each findings run)"] : []),
    fmt(head),
    ...lines.map(fmt),
  ].join("\n");
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const arg = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const why = probeLabUnavailable();
  if (why) {
    console.error(`probe-lab: ${why}`);
    process.exit(2);
  }
  const timeout = arg("--udp-blocked-timeout");
  const classes = arg("--classes")?.split(",");
  const figures = await benchProbeLab({
    runs: Number(arg("--runs") ?? 3) || 3,
    bin: arg("--bin"),
    baseBin: arg("--base-bin"),
    classes,
    udpBlockedTimeoutS: timeout === undefined ? undefined : Number(timeout),
    onProgress: (l) => process.stderr.write(`${l}\n`),
  });
  console.log(args.includes("--json") ? JSON.stringify(figures, null, 2) : formatProbeLab(figures));
}
