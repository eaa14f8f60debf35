// The benchmarks `npm run bench` runs (scripts/bench/run.ts), and how each one's result becomes the figures of
// the summary. A bench is a module here that exports an async function returning its figures and stays
// runnable on its own (`if (import.meta.main)`); the registry names the function and the options it is called
// with. A module that does not export it yet is run as a script with `--json` instead, its JSON taken from its
// output. Each bench runs in a child process of its own (run.ts), so one that hangs is killed at its bound
// and one that fails shows as n/a.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface BenchContext {
  quick: boolean;
}

export interface BenchEntry {
  name: string;
  /** What it measures, for the list of benches. */
  title: string;
  /** File in scripts/bench. */
  file: string;
  /** The exported function to call; the first listed that the module exports is used. */
  exports: string[];
  /** Options for that function. */
  options(ctx: BenchContext): Record<string, unknown>;
  /** Arguments when the module exports none of `exports` and is run as a script (it must print JSON). */
  scriptArgs?(ctx: BenchContext): string[];
  /** Needs the NAT lab: root, lab.sh and its lock. */
  lab?: boolean;
  /** Upper bound of the run, in seconds (the child process is killed then). */
  timeoutS(ctx: BenchContext): number;
  /** The summary's figures from the bench's result. */
  figures(result: any): Partial<Summary>;
}

/** The figures of the summary (`npm run bench -- --json` prints them with the per-bench details). */
export interface Summary {
  /** `findings serve` Binding answers/s over coturn's, median rounds, same run. */
  bindingRatio: number;
  /** The same over the servers' own CPU time (steadier when the machine is busy). */
  bindingRatioPerCpu: number;
  bindingAnswersPerSecond: number;
  coturnAnswersPerSecond: number;
  /** whoami requests/s over 64 QUIC connections to one node. */
  whoamiPerSecond: number;
  /** Server CPU ms per new app connection (handshake with Retry + one request). */
  serverCpuMsPerConnection: number;
  storm: { n: number; lost: number };
  /** The largest n reached. */
  idleConnections: { n: number; rssMiB: number; idleCpuPct: number; dropped: number; openPerSecond?: number };
  /** Idle meshed `findings serve`. */
  nodeRssMiB: number;
  /** A node holding 500 apps in its pool. */
  rss500AppsMiB: number;
  /** `findings probe` wall time on the udp-blocked client, and the classic RFC 3489 client's, same run. */
  probeUdpBlockedSeconds: number;
  probeClassicUdpBlockedSeconds: number;
  /** Worst pair median (ms, command start → link) per pair type of the punch grid. */
  punch: Record<string, number>;
}

const num = (x: unknown): number | undefined => (typeof x === "number" && Number.isFinite(x) ? x : undefined);

/** Drops the keys whose value is undefined, so a missing figure stays missing (n/a), not 0. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The row with the largest `n` when a bench reports several sizes, else the result itself. */
function largest(result: any): any {
  const list = [result?.idleConnections, result?.rows, result?.levels, result?.sizes].find(Array.isArray) as any[] | undefined;
  if (list && list.length > 0) return [...list].sort((a, b) => (num(b?.n) ?? 0) - (num(a?.n) ?? 0))[0];
  return result?.idleConnections ?? result?.largest ?? result;
}

export const BENCHES: BenchEntry[] = [
  {
    name: "binding",
    title: "RFC 5389 Binding answers/s, `findings serve` and coturn, one core each",
    file: "binding.ts",
    exports: ["runBinding"],
    options: ({ quick }) => ({ only: ["node", "coturn"], rounds: quick ? 2 : 3, seconds: quick ? 2 : 3 }),
    timeoutS: ({ quick }) => (quick ? 90 : 180),
    figures: (r) => {
      const server = (key: string) => (r?.servers as any[] | undefined)?.find((s) => s.key === key);
      return defined({
        bindingRatio: num(r?.bindingRatio),
        bindingRatioPerCpu: num(r?.bindingRatioPerCpu),
        bindingAnswersPerSecond: num(server("node")?.median?.perSecond),
        coturnAnswersPerSecond: num(server("coturn")?.median?.perSecond),
      });
    },
  },
  {
    name: "whoami",
    title: "whoami requests/s over QUIC, one node",
    file: "whoami-quic.ts",
    exports: ["runWhoami", "benchWhoami"],
    options: ({ quick }) => ({ quick, caseMs: quick ? 1000 : 2000 }),
    scriptArgs: () => ["--json"],
    timeoutS: ({ quick }) => (quick ? 60 : 150),
    figures: (r) => defined({ whoamiPerSecond: num(r?.whoamiPerSecond) }),
  },
  {
    name: "storm",
    title: "reconnect storm: N apps dial one node at once; server CPU per new connection",
    file: "storm.ts",
    exports: ["runStorm", "benchStorm"],
    options: ({ quick }) => ({ quick }),
    scriptArgs: ({ quick }) => ["--json", ...(quick ? ["--quick"] : [])],
    timeoutS: ({ quick }) => (quick ? 150 : 400),
    figures: (r) => {
      const n = num(r?.n ?? r?.storm?.n);
      const lost = num(r?.lost ?? r?.storm?.lost);
      return defined({
        storm: n !== undefined && lost !== undefined ? { n, lost } : undefined,
        serverCpuMsPerConnection: num(r?.serverCpuMsPerConnection),
      });
    },
  },
  {
    name: "idle",
    title: "idle app connections held by one node",
    file: "idle-connections.ts",
    exports: ["runIdleConnections", "benchIdleConnections", "runIdle"],
    options: ({ quick }) => ({ quick }),
    scriptArgs: ({ quick }) => ["--json", ...(quick ? ["--quick"] : [])],
    timeoutS: ({ quick }) => (quick ? 240 : 900),
    figures: (r) => {
      const top = largest(r);
      const n = num(top?.n);
      if (n === undefined) return {};
      const idle = defined({ n, rssMiB: num(top.rssMiB), idleCpuPct: num(top.idleCpuPct), dropped: num(top.dropped), openPerSecond: num(top.openPerSecond) });
      return defined({ idleConnections: idle as Summary["idleConnections"], serverCpuMsPerConnection: num(r?.serverCpuMsPerConnection) });
    },
  },
  {
    name: "memory",
    title: "RSS of an idle meshed node and of a node holding 500 apps",
    file: "node-memory.ts",
    exports: ["benchNodeMemory", "runNodeMemory"],
    options: () => ({}),
    scriptArgs: () => ["--json"],
    timeoutS: ({ quick }) => (quick ? 120 : 240),
    figures: (r) => defined({ nodeRssMiB: num(r?.nodeRssMiB), rss500AppsMiB: num(r?.rss500AppsMiB) }),
  },
  {
    name: "probe",
    title: "`findings probe` per NAT class in the lab, against the classic `stun` client",
    file: "probe-lab.ts",
    exports: ["benchProbeLab", "runProbeLab"],
    options: ({ quick }) => ({ runs: quick ? 1 : 3 }),
    scriptArgs: ({ quick }) => ["--json", "--runs", quick ? "1" : "3"],
    lab: true,
    timeoutS: ({ quick }) => (quick ? 400 : 1200),
    figures: (r) => {
      const row = (r?.table as any[] | undefined)?.find((t) => t.class === "udp-blocked");
      return defined({
        probeUdpBlockedSeconds: num(r?.probeUdpBlockedSeconds) ?? (num(row?.findingsWallMs) !== undefined ? row.findingsWallMs / 1000 : undefined),
        probeClassicUdpBlockedSeconds: num(r?.classicUdpBlockedSeconds) ?? (num(row?.classicWallMs) !== undefined ? row.classicWallMs / 1000 : undefined),
      });
    },
  },
  {
    name: "punch",
    title: "`findings punch` per NAT pair in the lab",
    file: "punch-grid.ts",
    exports: ["benchPunchGrid", "runPunchGrid"],
    options: ({ quick }) => ({ runs: quick ? 1 : 5 }),
    scriptArgs: ({ quick }) => ["--json", "--runs", quick ? "1" : "5"],
    lab: true,
    timeoutS: ({ quick }) => (quick ? 900 : 2400),
    figures: (r) => {
      const version = Array.isArray(r?.versions) ? r.versions[0] : r;
      const punch: Record<string, number> = {};
      for (const t of (version?.byStrategy as any[] | undefined) ?? []) {
        const worst = Array.isArray(t.elapsedMs) ? num(t.elapsedMs[1]) : num(t.elapsedMs);
        if (worst !== undefined) punch[String(t.type)] = worst;
      }
      if (Object.keys(punch).length === 0) {
        // Without per-type ranges: the worst connected pair median per strategy.
        for (const c of (version?.cells as any[] | undefined) ?? []) {
          const m = num(c?.medianElapsedMs);
          if (c?.expected !== "connect" || !(c?.ok > 0) || m === undefined) continue;
          punch[c.strategy] = Math.max(punch[c.strategy] ?? 0, m);
        }
      }
      return Object.keys(punch).length > 0 ? { punch } : {};
    },
  },
];

/** Which of `names` the module at `path` exports as a function, read from its source (importing a module
 *  that runs its bench at the top level would start that bench). */
export function exportedFunction(path: string, names: string[]): string | null {
  const source = readFileSync(path, "utf8");
  return names.find((n) => new RegExp(`^export (async )?function ${n}\\b`, "m").test(source)) ?? null;
}

export function benchPath(entry: BenchEntry): string {
  return join(import.meta.dir, entry.file);
}
