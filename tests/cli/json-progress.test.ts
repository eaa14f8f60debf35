// `--json` shapes and progress lines of the commands, run as a user runs them against a `findings serve` on a
// random loopback address: with --json (or without a terminal) stdout is JSON lines only and stderr stays quiet;
// on a pseudo-terminal (`script` from util-linux) or with FINDINGS_PROGRESS=1 a single updating line shows progress.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, cleanEnv, MAIN, ROOT, runCli, startServe, tempDir, type CliResult, type ServeProcess } from "../helpers.ts";
import { collectLines, until } from "../wait.ts";

const dir = tempDir("findings-json-");
const host = `127.${100 + Math.floor(Math.random() * 150)}.${1 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
const script = Bun.which("script");
/** How the progress line starts each redraw: carriage return, erase line. */
const REDRAW = "\r\x1b[2K";
let node: ServeProcess;
let server: string;
let homes = 0;
const home = () => join(dir.path, `h${++homes}`);

beforeAll(async () => {
  const h = join(dir.path, "node");
  mkdirSync(h, { recursive: true });
  writeFileSync(join(h, "config.toml"), '[stakes]\n"app:chat" = ""\n');
  node = await startServe(["--home", h, "--host", host, "--port", "0", "--admin", `${host}:0`, "--public"]);
  server = `${host}:${node.ready.udpPort}`;
}, 30_000);
afterAll(async () => {
  await node?.stop();
  dir[Symbol.dispose]();
});

/** Every stdout line is one JSON object (NDJSON); returns them. */
function jsonLines(stdout: string): Record<string, unknown>[] {
  expect(stdout.endsWith("\n")).toBe(true);
  return stdout
    .slice(0, -1)
    .split("\n")
    .map((line) => {
      const v = JSON.parse(line) as unknown;
      expect(typeof v === "object" && v !== null && !Array.isArray(v)).toBe(true);
      return v as Record<string, unknown>;
    });
}

/** A command that answers once: exactly one compact object on stdout, and nothing on stderr unless it failed. */
function oneObject(r: CliResult): Record<string, unknown> {
  const lines = jsonLines(r.stdout);
  expect(lines).toHaveLength(1);
  expect(r.stderr).not.toContain(REDRAW);
  return lines[0]!;
}

/** Runs `findings ARGS` on a pseudo-terminal; returns everything the terminal showed. */
async function onTerminal(args: string[], timeoutMs: number): Promise<string> {
  const command = [BUN, MAIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const env: Record<string, string> = { TERM: "xterm", COLUMNS: "200" };
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FINDINGS_") && !(k in env)) env[k] = v;
  const p = Bun.spawn([script!, "-qec", command, "/dev/null"], { cwd: ROOT, env, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGTERM"), timeoutMs);
  const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  clearTimeout(timer);
  return out;
}

describe("commands that answer once print one JSON object", () => {
  test("id, config, whoami, peers, find, status", async () => {
    const h = home();
    expect(oneObject(await runCli(["id", "--json", "--home", h]))).toHaveProperty("nodeId");
    expect(oneObject(await runCli(["config", "--json", "--home", h]))).toHaveProperty("config");
    expect(oneObject(await runCli(["whoami", "--json", "--home", h, "--server", server]))).toHaveProperty("address");
    expect(oneObject(await runCli(["peers", "--json", "--home", h, "--server", server]))).toHaveProperty("peers");
    expect(oneObject(await runCli(["find", "app:chat", "--json", "--home", h, "--server", server]))).toHaveProperty("nodes");
    const status = oneObject(await runCli(["status", "--json", "--home", h, "--admin", node.ready.admin!.replace("http://", "")]));
    expect((status.node as { id: string }).id).toBe(node.ready.id);
  }, 60_000);

  test("probe --json: the report, no progress", async () => {
    const r = await runCli(["probe", "--json", "--home", home(), "--server", server, "--timeout", "2"]);
    const report = oneObject(r);
    expect(report).toHaveProperty("evidence");
    expect(report).toHaveProperty("nat");
    expect(r.stderr).not.toContain("probe ");
  }, 30_000);

  test("probe without --json and without a terminal: the summary, no progress", async () => {
    const r = await runCli(["probe", "--home", home(), "--server", server, "--timeout", "2"]);
    expect(r.stdout).toMatch(/^NAT class: /);
    expect(r.stderr).not.toContain(REDRAW);
  }, 30_000);

  test("punch (one-shot) --json: one compact object even when it fails", async () => {
    const r = await runCli(["punch", "cd".repeat(32), "--json", "--home", home(), "--server", `${server}#${node.ready.publicKey}`, "--kind", "app:chat", "--nat", "public", "--host", host]);
    expect(r.code).toBe(1);
    const out = oneObject(r);
    expect(out).toMatchObject({ connected: false });
    expect(r.stdout).not.toContain("\n  "); // not indented
    expect(r.stderr.trim().split("\n")).toHaveLength(1); // the reason, once
  }, 30_000);
});

describe("commands that emit events print NDJSON", () => {
  test("punch --wait --json: a hello line, then one line per punched peer; punch <id> answers once", async () => {
    const env = cleanEnv();
    const args = ["punch", "--wait", "--json", "--home", home(), "--server", `${server}#${node.ready.publicKey}`, "--kind", "app:chat", "--nat", "public", "--host", host];
    const waiter = Bun.spawn([BUN, MAIN, ...args], { env, cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    try {
      const lines = collectLines(waiter.stdout);
      const hello = JSON.parse(await until(() => lines[0], { what: "the hello line", timeoutMs: 15_000 })) as Record<string, unknown>;
      expect(hello).toMatchObject({ waiting: true, kind: "app:chat" });
      const r = await runCli(["punch", hello.id as string, "--json", "--home", home(), "--server", `${server}#${node.ready.publicKey}`, "--kind", "app:chat", "--nat", "public", "--host", host]);
      expect(r.code).toBe(0);
      expect(oneObject(r)).toMatchObject({ connected: true, peerId: hello.id });
      await until(() => lines[1], { what: "the waiting side's result line", timeoutMs: 10_000 });
      waiter.kill("SIGTERM");
      await waiter.exited;
      const events = jsonLines(lines.join("\n") + "\n");
      expect(events[1]).toMatchObject({ connected: true });
      expect(await new Response(waiter.stderr).text()).toBe("");
    } finally {
      waiter.kill("SIGKILL");
    }
  }, 40_000);
});

describe("progress on a terminal", () => {
  test.skipIf(!script)("probe on a pseudo-terminal shows what it tests, elapsed and expected time on one line", async () => {
    const out = await onTerminal(["probe", "--home", home(), "--server", server, "--timeout", "2"], 30_000);
    expect(out).toContain(`${REDRAW}probe 0 s of up to 4 s · start: `);
    expect(out).toMatch(/\r\x1b\[2Kprobe \d+ s of up to \d+ s · (pre-probe|passage|formal|new-host|decision): /);
    expect(out).toContain("NAT class: "); // the summary after the line was cleared
    expect(out).not.toMatch(/probe \d+ s of up to[^\r]*\n/); // the line never scrolls: it is redrawn in place
  }, 40_000);

  test.skipIf(!script)("punch --wait on a pseudo-terminal shows that it is waiting, and for how long", async () => {
    const out = await onTerminal(["punch", "--wait", "--home", home(), "--server", `${server}#${node.ready.publicKey}`, "--kind", "app:chat", "--nat", "public", "--host", host], 4000);
    expect(out).toMatch(/\x1b\[2K[0-9a-f]{64}\r?\nwaiting in app:chat as /); // stdout lines go above the line
    expect(out).toMatch(/\r\x1b\[2Kpunch \d+ s · waiting in app:chat as [0-9.]+:\d+ \(nat public\); Ctrl-C to stop/);
  }, 20_000);

  test("FINDINGS_PROGRESS=1 forces the line on stderr without a terminal; stdout stays the same", async () => {
    const r = await runCli(["probe", "--home", home(), "--server", server, "--timeout", "2"], { env: { FINDINGS_PROGRESS: "1" } });
    expect(r.stderr).toContain(`${REDRAW}probe `);
    expect(r.stdout).toMatch(/^NAT class: /);
    expect(r.stdout).not.toContain(REDRAW);
    const json = await runCli(["probe", "--json", "--home", home(), "--server", server, "--timeout", "2"], { env: { FINDINGS_PROGRESS: "1" } });
    expect(json.stderr).not.toContain(REDRAW); // --json always wins
    oneObject(json);
  }, 40_000);
});
