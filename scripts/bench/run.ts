// `npm run bench`: runs every benchmark of scripts/bench/registry.ts one after the other, each in a child
// process of its own with an upper bound on its time, and prints one table of the figures against their
// goals. Benches with a reference (coturn for Binding, the classic `stun` client for probe) measure it in the
// same run. A bench that is missing, fails or overruns shows as n/a with its reason; lab benches (probe,
// punch) are skipped, with the reason, without root, the lab, or while another run holds the lab's lock.
//
//   npm run bench [-- --quick] [--json] [--only binding,whoami] [--lab-wait] [--verbose]
//
// --quick  short runs (fewer rounds and sizes; the figures are rougher)
// --json   the same as one JSON object on the last line of stdout
// --lab-wait  wait for the NAT lab's lock instead of skipping the lab benches
// --verbose   show the benches' own output (their stderr is always shown)
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { BENCHES, benchPath, exportedFunction, type BenchContext, type BenchEntry, type Summary } from "./registry.ts";

/** Marks the child's result line on its stdout. */
const RESULT_MARK = "@@bench-result ";
/** After SIGTERM at the bound, how long a bench may take to clean up before SIGKILL. */
const KILL_GRACE_MS = 5_000;
const LAB_LOCK_FILE = process.env.FL_NATLAB_LOCK_FILE ?? "/tmp/fl-natlab.lock";

const args = process.argv.slice(2);
const has = (flag: string) => args.includes(flag);
const value = (flag: string) => (args.indexOf(flag) >= 0 ? args[args.indexOf(flag) + 1] : undefined);
const ctx: BenchContext = { quick: has("--quick") };
/** The bench running now: its process group is ours to end when this runner is interrupted. */
let current: number | undefined;

export interface BenchOutcome {
  status: "ok" | "failed" | "timeout" | "skipped";
  seconds: number;
  error?: string;
  result?: unknown;
}

if (import.meta.main) {
  const child = value("--child");
  if (child !== undefined) await runChild(child);
  else await main();
}

// ---------------------------------------------------------------------------------------------
// Child: one bench, its result as JSON on the last line.

async function runChild(name: string): Promise<void> {
  try {
    const entry = BENCHES.find((b) => b.name === name);
    if (!entry) throw new Error(`no bench named ${name}`);
    const path = benchPath(entry);
    if (!existsSync(path)) throw new Error(`scripts/bench/${entry.file} does not exist (yet)`);
    const fn = exportedFunction(path, entry.exports);
    let result: unknown;
    if (fn !== null) {
      const mod = await import(path);
      result = await mod[fn](entry.options(ctx));
    } else if (entry.scriptArgs) {
      result = await runScript(path, entry.scriptArgs(ctx));
    } else {
      throw new Error(`scripts/bench/${entry.file} exports none of ${entry.exports.join(", ")}`);
    }
    console.log(RESULT_MARK + JSON.stringify(result));
    process.exit(0); // a bench may leave a handle open; its figures are in
  } catch (err) {
    console.log(RESULT_MARK + JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    process.exit(1);
  }
}

/** Runs a bench script that prints JSON (on its last line, or as the last pretty-printed object). */
async function runScript(path: string, scriptArgs: string[]): Promise<unknown> {
  const proc = Bun.spawn([process.execPath, path, ...scriptArgs], { stdout: "pipe", stderr: "inherit", env: { ...process.env } });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`${path.split("/").pop()} exited ${code}`);
  const lines = out.trimEnd().split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i]!.startsWith("{")) continue;
    try {
      return JSON.parse(lines.slice(i).join("\n"));
    } catch {
      // not the start of the object; look further up
    }
  }
  throw new Error(`${path.split("/").pop()} printed no JSON`);
}

// ---------------------------------------------------------------------------------------------
// Parent: every bench in turn, then the table.

async function main(): Promise<void> {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (current !== undefined) killGroup(current, "SIGKILL");
      process.exit(130);
    });
  }
  const only = value("--only")?.split(",");
  const selected = BENCHES.filter((b) => !only || only.includes(b.name));
  const started = new Date();
  const load = loadavg()[0]!.toFixed(1);
  const outcomes: Record<string, BenchOutcome> = {};
  for (const entry of selected) {
    const skip = entry.lab ? labSkipReason() : null;
    if (skip !== null) {
      outcomes[entry.name] = { status: "skipped", seconds: 0, error: skip };
      process.stderr.write(`bench ${entry.name}: skipped (${skip})\n`);
      continue;
    }
    process.stderr.write(`bench ${entry.name}: ${entry.title} (bound ${entry.timeoutS(ctx)} s)\n`);
    outcomes[entry.name] = await runBench(entry);
    const o = outcomes[entry.name]!;
    process.stderr.write(`bench ${entry.name}: ${o.status} in ${o.seconds.toFixed(0)} s${o.error ? `: ${o.error}` : ""}\n`);
  }
  const summary: Partial<Summary> = {};
  for (const entry of selected) {
    const o = outcomes[entry.name]!;
    if (o.status !== "ok") continue;
    try {
      for (const [k, v] of Object.entries(entry.figures(o.result))) if (!(k in summary)) (summary as Record<string, unknown>)[k] = v;
    } catch (err) {
      o.error = `its result has an unexpected shape: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  const header = `findings benchmarks${ctx.quick ? " (--quick)" : ""}: Bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs, ` +
    `load average ${load} at the start, ${started.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  console.log(header);
  console.log(formatTable(summary, outcomes, selected));
  if (has("--json")) {
    console.log(JSON.stringify({ quick: ctx.quick, bun: Bun.version, cpus: navigator.hardwareConcurrency, loadAverage: Number(load), startedAt: started.toISOString(), ...summary, benches: outcomes }));
  }
}

/** Why the lab benches cannot run now, or null. */
function labSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (the NAT lab uses network namespaces)";
  const check = spawnSync("bash", [new URL("../../tests/lab/lab.sh", import.meta.url).pathname, "check"], { encoding: "utf8" });
  if (check.status !== 0) return `the NAT lab cannot run here: ${(check.stderr || check.stdout).trim().split("\n").pop()}`;
  if (!has("--lab-wait") && spawnSync("flock", ["-n", LAB_LOCK_FILE, "true"]).status !== 0) {
    return "another run holds the NAT lab's lock (--lab-wait waits for it)";
  }
  return null;
}


function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Runs one bench in a child process (its own process group, killed whole at the bound). */
async function runBench(entry: BenchEntry): Promise<BenchOutcome> {
  const t0 = performance.now();
  const proc = Bun.spawn([process.execPath, import.meta.path, "--child", entry.name, ...(ctx.quick ? ["--quick"] : [])], {
    stdout: "pipe",
    stderr: "pipe",
    detached: true,
    env: { ...process.env },
  });
  current = proc.pid;
  let timedOut = false;
  const kill = (signal: NodeJS.Signals) => killGroup(proc.pid, signal);
  const bound = setTimeout(() => {
    timedOut = true;
    kill("SIGTERM");
    setTimeout(() => kill("SIGKILL"), KILL_GRACE_MS).unref();
  }, entry.timeoutS(ctx) * 1000);
  let resultLine: string | undefined;
  const lastErr: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    }
    if (pending) onLine(pending);
  };
  await Promise.all([
    pump(proc.stdout, (line) => {
      if (line.startsWith(RESULT_MARK)) resultLine = line.slice(RESULT_MARK.length);
      else if (has("--verbose")) process.stderr.write(`  [${entry.name}] ${line}\n`);
    }),
    pump(proc.stderr, (line) => {
      process.stderr.write(`  [${entry.name}] ${line}\n`);
      lastErr.push(line);
      if (lastErr.length > 5) lastErr.shift();
    }),
    proc.exited,
  ]);
  clearTimeout(bound);
  kill("SIGKILL"); // whatever the bench started and left behind
  current = undefined;
  const seconds = (performance.now() - t0) / 1000;
  if (timedOut) return { status: "timeout", seconds, error: `stopped at its bound of ${entry.timeoutS(ctx)} s` };
  let parsed: any;
  try {
    parsed = resultLine === undefined ? undefined : JSON.parse(resultLine);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined) return { status: "failed", seconds, error: lastErr.at(-1) ?? `exited ${proc.exitCode} without a result` };
  if (proc.exitCode !== 0 && typeof parsed?.error === "string") return { status: "failed", seconds, error: parsed.error };
  return { status: "ok", seconds, result: parsed };
}

// ---------------------------------------------------------------------------------------------
// The table: the figures of the performance goals, measured, reference, goal, met.

type Cell = string;

export function formatTable(s: Partial<Summary>, outcomes: Record<string, BenchOutcome>, selected: BenchEntry[]): string {
  const na = (bench: string) => {
    const o = outcomes[bench];
    if (!o) return "not run";
    return o.status === "ok" ? "n/a (not in its result)" : `n/a (${o.status}${o.error ? `: ${o.error}` : ""})`;
  };
  const f = (x: number | undefined, digits = 0) => (x === undefined ? undefined : x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }));
  const met = (ok: boolean | undefined) => (ok === undefined ? "" : ok ? "yes" : "no");
  const rows: Cell[][] = [];
  const row = (figure: string, bench: string, measured: string | undefined, reference: string, goal: string, ok: boolean | undefined) =>
    rows.push([figure, measured ?? na(bench), reference, goal, measured === undefined ? "" : met(ok)]);

  row("RFC 5389 Binding answers/s vs coturn", "binding",
    s.bindingRatio === undefined ? undefined : `${f(s.bindingRatio, 2)}× (${f(s.bindingAnswersPerSecond)}/s; per CPU-s ${f(s.bindingRatioPerCpu, 2)}×)`,
    s.coturnAnswersPerSecond === undefined ? "coturn = 1.0×" : `coturn ${f(s.coturnAnswersPerSecond)}/s`, "≥ 1.1×", s.bindingRatio === undefined ? undefined : s.bindingRatio >= 1.1);
  row("whoami req/s over QUIC, 64 connections", "whoami", f(s.whoamiPerSecond), "—", "≥ 5,000", s.whoamiPerSecond === undefined ? undefined : s.whoamiPerSecond >= 5000);
  row("server CPU per new app connection, ms", "storm", f(s.serverCpuMsPerConnection, 2), "—", "≤ 0.8", s.serverCpuMsPerConnection === undefined ? undefined : s.serverCpuMsPerConnection <= 0.8);
  row("apps dialing one node at once: lost", "storm", s.storm ? `${f(s.storm.lost)} of ${f(s.storm.n)}` : undefined, "—", "0 lost", s.storm ? s.storm.lost === 0 : undefined);
  const idle = s.idleConnections;
  row("idle app connections held", "idle",
    idle ? `${f(idle.n)} held, ${f(idle.rssMiB)} MiB, ${f(idle.idleCpuPct, 1)} % CPU, ${f(idle.dropped)} dropped` : undefined, "—",
    "10,000 with ≤ 600 MiB, ≤ 10 %", idle ? idle.n >= 10_000 && idle.rssMiB <= 600 && idle.idleCpuPct <= 10 && idle.dropped === 0 : undefined);
  row("idle node RSS (findings serve, meshed), MiB", "memory",
    s.nodeRssMiB === undefined ? undefined : `${f(s.nodeRssMiB, 1)}${s.rss500AppsMiB === undefined ? "" : ` (500 apps: ${f(s.rss500AppsMiB, 1)})`}`, "—", "≤ 60", s.nodeRssMiB === undefined ? undefined : s.nodeRssMiB <= 60);
  row("findings probe, udp-blocked, s", "probe", f(s.probeUdpBlockedSeconds, 2),
    s.probeClassicUdpBlockedSeconds === undefined ? "classic stun client" : `classic stun client ${f(s.probeClassicUdpBlockedSeconds, 2)} s`, "≤ 1.5",
    s.probeUdpBlockedSeconds === undefined ? undefined : s.probeUdpBlockedSeconds <= 1.5);
  if (s.punch && Object.keys(s.punch).length > 0) {
    for (const [type, ms] of Object.entries(s.punch)) {
      const limit = /spray/.test(type) ? 1500 : 1000;
      row(`punch ${type}, worst pair median, ms`, "punch", f(ms), "—", `≤ ${f(limit)}`, ms <= limit);
    }
  } else {
    row("punch, median per pair type, ms", "punch", undefined, "—", "≤ 1,000 (spray ≤ 1,500)", undefined);
  }

  const head = ["figure", "measured", "reference (same run)", "goal", "met"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  const out = [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line), ""];
  out.push("bench     status    seconds  note");
  for (const entry of selected) {
    const o = outcomes[entry.name];
    if (!o) continue;
    out.push(`${entry.name.padEnd(10)}${o.status.padEnd(10)}${o.seconds.toFixed(0).padStart(7)}  ${o.error ?? ""}`);
  }
  return out.join("\n");
}
