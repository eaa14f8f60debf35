// Benchmark: the TCP pipe through a punched link on loopback (`findings punch --wait --expose` and
// `findings punch ID --forward`, each its own process, plus a `findings serve` node), against a plain TCP
// connection to the same sink. MiB/s of one connection, of N parallel connections through one link, and CPU
// seconds per MiB of the two pipe processes (from /proc/PID/stat). Bounded: each case moves --mib MiB.
// Run: ./node_modules/.bin/bun scripts/bench/pipe.ts [--mib 64] [--parallel 4] [--host 127.0.0.1]
import { createServer, connect, type Server } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { collectLines } from "../../tests/wait.ts";
import { argValue } from "./args.ts";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");
const BUN = process.execPath;
const MIB = Number(argValue("--mib") ?? 64);
const PARALLEL = Number(argValue("--parallel") ?? 4);
const HOST = argValue("--host") ?? "127.0.0.1";
const CLK_TCK = 100;


/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

interface Proc {
  pid: number;
  lines: string[];
  next(pred: (o: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

function spawn(args: string[]): Proc {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FINDINGS_")) env[k] = v;
  const proc = Bun.spawn([BUN, MAIN, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
  const lines = collectLines(proc.stdout);
  let err = "";
  void (async () => {
    for await (const c of proc.stderr) err += new TextDecoder().decode(c);
  })();
  return {
    pid: proc.pid,
    lines,
    async next(pred, ms = 20_000) {
      const end = Date.now() + ms;
      for (;;) {
        for (const l of lines) {
          try {
            const o = JSON.parse(l) as Record<string, unknown>;
            if (pred(o)) return o;
          } catch {
            // not JSON
          }
        }
        if (proc.exitCode !== null || Date.now() > end) throw new Error(`${args[0]} gave no matching line: ${lines.join(" | ")} ${err}`);
        await Bun.sleep(20);
      }
    },
    async stop() {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

/** A sink that counts what it reads and answers the count after the client's FIN. */
function startSink(): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on("data", (d: Buffer) => (n += d.length));
    s.on("end", () => s.end(String(n)));
  });
  return new Promise((r) => server.listen(0, HOST, () => r({ server, port: (server.address() as { port: number }).port })));
}

/** Sends `bytes` bytes to host:port and waits for the sink's count. */
async function send(port: number, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(256 * 1024, 7);
  const s = connect({ host: HOST, port, allowHalfOpen: true });
  await new Promise<void>((r) => s.once("connect", () => r()));
  const answer = new Promise<string>((r) => {
    let text = "";
    s.on("data", (d: Buffer) => (text += d.toString()));
    s.on("end", () => r(text));
  });
  let left = bytes;
  while (left > 0) {
    const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
    left -= part.length;
    if (!s.write(part)) await new Promise<void>((r) => s.once("drain", () => r()));
  }
  s.end();
  const got = Number(await answer);
  s.destroy();
  if (got !== bytes) throw new Error(`the sink got ${got} of ${bytes} bytes`);
}

async function measure(label: string, port: number, conns: number, pids: number[]): Promise<Record<string, string | number>> {
  const per = Math.floor((MIB * 1024 * 1024) / conns);
  const cpu0 = pids.map(cpuSeconds);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conns }, () => send(port, per)));
  const s = (performance.now() - t0) / 1000;
  const cpu = pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - cpu0[i]!, 0);
  const mib = (per * conns) / (1024 * 1024);
  return { case: label, connections: conns, MiB: Math.round(mib), seconds: +s.toFixed(2), "MiB/s": +(mib / s).toFixed(1), ...(pids.length ? { "pipe CPU ms/MiB": +((cpu * 1000) / mib).toFixed(1) } : {}) };
}

const home = mkdtempSync(join(tmpdir(), "findings-bench-pipe-"));
const procs: Proc[] = [];
try {
  const sink = await startSink();
  writeFileSync(join(home, "config.toml"), `[stakes]\n"app:bench" = ""\n`);
  const node = spawn(["serve", "--json", "--home", home, "--host", HOST, "--port", "0", "--admin", "", "--public", "--log-level", "warn"]);
  procs.push(node);
  const ready = await node.next((o) => o.event === "ready");
  const server = `${HOST}:${ready.udpPort as number}#${ready.publicKey as string}`;
  const common = ["--json", "--server", server, "--kind", "app:bench", "--nat", "public", "--host", HOST];
  const ex = spawn(["punch", "--wait", "--expose", `${HOST}:${sink.port}`, ...common, "--home", mkdtempSync(join(home, "a-"))]);
  procs.push(ex);
  const hello = await ex.next((o) => o.waiting === true);
  const fw = spawn(["punch", hello.id as string, "--forward", `${HOST}:0`, ...common, "--home", mkdtempSync(join(home, "b-"))]);
  procs.push(fw);
  const listening = await fw.next((o) => o.forwarding === true);
  const fport = Number(String(listening.listen).split(":").pop());
  const rows = [
    await measure("plain TCP", sink.port, 1, []),
    await measure("pipe", fport, 1, [ex.pid, fw.pid]),
    await measure("plain TCP", sink.port, PARALLEL, []),
    await measure("pipe", fport, PARALLEL, [ex.pid, fw.pid]),
  ];
  console.table(rows);
  console.log(JSON.stringify(rows));
  sink.server.close();
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(home, { recursive: true, force: true });
}
