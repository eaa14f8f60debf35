// `findings punch` as a user runs it, against a `findings serve` on loopback (public ↔ public): --wait and a
// directed punch, a random punch, NOT_FOUND, a full pool, and signalling coordination when the waiting app
// restarts on a new port (DESIGN §7).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, cleanEnv, freePort, MAIN, ROOT, runCli, startServe, tempDir, type ServeProcess } from "../helpers.ts";
import { collectLines, until } from "../wait.ts";

const home = tempDir("findings-punch-cli-");
let node: ServeProcess;
let server: string;

function homeWith(name: string, config = ""): string {
  const dir = join(home.path, name);
  mkdirSync(dir, { recursive: true });
  if (config) writeFileSync(join(dir, "config.toml"), config);
  return dir;
}

beforeAll(async () => {
  const h = homeWith("node", `punch_xpool = 3\n[stakes]\n"*" = "0xDEFAULT"\n"app:chat" = ""\n"blockchain:bitcoin" = "bc1qnode"\n`);
  node = await startServe(["--home", h, "--host", "127.0.0.1", "--port", "0", "--admin", "", "--public"]);
  server = `127.0.0.1:${node.ready.udpPort}#${node.ready.publicKey}`;
}, 30_000);

afterAll(async () => {
  await node?.stop();
  home[Symbol.dispose]();
});

/** A long-running `findings punch` whose stdout is read line by line. */
interface Running {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  lines: string[];
  stderr(): string;
  /** The first JSON line (after `from`) that satisfies `pred`. */
  next(pred: (o: Record<string, unknown>) => boolean, ms?: number, from?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

function spawnPunch(args: string[]): Running {
  const env = cleanEnv();
  const proc = Bun.spawn([BUN, MAIN, "punch", "--json", ...args], { env, cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const lines = collectLines(proc.stdout);
  let err = "";
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  const running: Running = {
    proc,
    lines,
    stderr: () => err,
    async next(pred, ms = 10_000, from = 0) {
      const match = () => {
        for (const l of lines.slice(from)) {
          try {
            const o = JSON.parse(l) as Record<string, unknown>;
            if (pred(o)) return o;
          } catch {
            // not JSON
          }
        }
        if (proc.exitCode !== null) throw new Error(`findings punch exited ${proc.exitCode}: ${err.trim()}`);
        return null;
      };
      return until(match, { what: "a matching line", timeoutMs: ms, intervalMs: 25 }).catch((e: Error) => {
        throw new Error(`${e.message}; stdout: ${lines.join(" | ")}; stderr: ${err.trim()}`);
      });
    },
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      const code = await proc.exited;
      clearTimeout(t);
      return code;
    },
  };
  return running;
}

const waiting: Running[] = [];
afterAll(async () => {
  await Promise.all(waiting.map((w) => w.stop()));
});

async function wait(name: string, extra: string[] = []): Promise<{ run: Running; id: string; hello: Record<string, unknown> }> {
  const run = spawnPunch(["--wait", "--home", homeWith(name), "--server", server, "--kind", "app:chat", "--nat", "public", "--host", "127.0.0.1", ...extra]);
  waiting.push(run);
  const hello = await run.next((o) => o.waiting === true);
  return { run, id: hello.id as string, hello };
}

describe("findings punch on loopback", () => {
  test("--wait prints its id and stake; a directed punch connects and both sides print the result", async () => {
    const a = await wait("wait-a");
    expect(a.id).toMatch(/^[0-9a-f]{64}$/);
    expect(a.hello).toMatchObject({ kind: "app:chat", nat: "public", natSource: "flag", stakeAddress: "0xDEFAULT", stakeSource: "default", identityId: node.ready.id });
    const r = await runCli(["punch", a.id, "--json", "--home", homeWith("puncher-1"), "--server", server, "--kind", "app:chat", "--nat", "public", "--host", "127.0.0.1"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ connected: true, peer: a.hello.address, strategy: "direct", peerId: a.id });
    expect(out.rttMs as number).toBeGreaterThan(0);
    expect(out.elapsedMs as number).toBeGreaterThan(0);
    const seen = await a.run.next((o) => o.connected === true && o.attemptId === out.attemptId);
    expect(seen).toMatchObject({ strategy: "direct", peerNat: "public" });
    await a.run.stop();
  }, 30_000);

  test("a random punch reaches a waiting member", async () => {
    const a = await wait("wait-r");
    const r = await runCli(["punch", "--json", "--home", homeWith("puncher-r"), "--server", server, "--kind", "app:chat", "--nat", "public", "--host", "127.0.0.1"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ connected: true, peerId: a.id });
    await a.run.stop();
  }, 30_000);

  test("a punch to a node that is not in the pool fails fast with NOT_FOUND", async () => {
    const t0 = Date.now();
    const r = await runCli(["punch", "cd".repeat(32), "--json", "--home", homeWith("puncher-nf"), "--server", server, "--kind", "app:chat", "--nat", "public", "--host", "127.0.0.1"]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ connected: false });
    expect(out.reason).toMatch(/not-found.*node cdcdcdcdcdcdcdcd is not in any pool/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  }, 30_000);

  test("bad flags fail with one clear line", async () => {
    const bad = await runCli(["punch", "--server", server, "--kind", "app:chat", "--nat", "cone", "--home", homeWith("bad")]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^findings: Invalid flag --nat: "cone" is not allowed/);
    // An address without the key is no bad flag: the key is learned on first use (and said so).
    const noKey = await runCli(["punch", "--json", "--server", `127.0.0.1:${node.ready.udpPort}`, "--kind", "app:chat", "--nat", "public", "--home", homeWith("bad")]);
    expect(noKey.stderr).toMatch(/^findings: learned the key of 127\.0\.0\.1:\d+ on first use/);
    expect(JSON.parse(noKey.stdout.trim().split("\n")[0]!)).toMatchObject({ keySource: "learned", node: { nodeId: node.ready.id } });
  }, 30_000);

  test("a full pool refuses the next app with a clear FULL", async () => {
    // punch_xpool = 3 on this node.
    const members = [await wait("full-1"), await wait("full-2"), await wait("full-3")];
    const r = await runCli(["punch", "--wait", "--json", "--home", homeWith("full-4"), "--server", server, "--kind", "app:chat", "--nat", "public", "--host", "127.0.0.1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^findings: app\.join refused \(full\): app pool for kind "app:chat" is full \(3 members\)/);
    await Promise.all(members.map((m) => m.run.stop()));
  }, 30_000);

  test("findings share register lists a TCP server after the dial-back; share fetch returns it", async () => {
    const { createServer } = await import("node:net");
    const srv = createServer((c) => c.destroy());
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const reg = await runCli(["share", "register", "--json", "--server", server, "--kind", "app:chat", "--port", String(port), "--home", homeWith("share")]);
      expect(reg.code).toBe(0);
      expect(JSON.parse(reg.stdout)).toMatchObject({ listed: true, kind: "app:chat", address: `127.0.0.1:${port}`, keySource: "pinned", node: { nodeId: node.ready.id } });
      const got = await runCli(["share", "fetch", "--json", "--server", server, "--kind", "app:chat", "--home", homeWith("share")]);
      expect(JSON.parse(got.stdout).servers.map((x: { address: string }) => x.address)).toContain(`127.0.0.1:${port}`);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
    // A port nobody listens on (the closed server stays listed until its recheck: a restart should not lose it).
    const nobody = createServer();
    await new Promise<void>((r) => nobody.listen(0, "127.0.0.1", () => r()));
    const freePortNow = (nobody.address() as { port: number }).port;
    await new Promise<void>((r) => nobody.close(() => r()));
    const closed = await runCli(["share", "register", "--server", server, "--kind", "app:chat", "--port", String(freePortNow), "--home", homeWith("share")]);
    expect(closed.code).toBe(1);
    expect(closed.stderr).toMatch(/^findings: share\.register refused \(not-found\): dial-back to 127\.0\.0\.1:\d+ over TCP failed/);
  }, 30_000);

  test("signalling coordination: the waiting app restarts on a new port and the puncher reconnects without doing anything", async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const a1 = await wait("move-a", ["--port", String(p1)]);
    const b = spawnPunch([a1.id, "--keep", "--home", homeWith("move-b"), "--server", server, "--kind", "app:chat", "--nat", "public", "--host", "127.0.0.1"]);
    waiting.push(b);
    const first = await b.next((o) => o.connected === true);
    expect(first.peer).toBe(`127.0.0.1:${p1}`);
    // The app dies without a goodbye (its old connection lingers on the node until the idle timeout) and
    // comes back with the same identity from another port.
    await a1.run.stop("SIGKILL");
    const seen = b.lines.length;
    const a2 = await wait("move-a", ["--port", String(p2)]);
    expect(a2.id).toBe(a1.id);
    const again = await b.next((o) => o.connected === true, 10_000, seen);
    expect(again.peer).toBe(`127.0.0.1:${p2}`);
    const mine = await a2.run.next((o) => o.connected === true);
    expect(mine.attemptId).toBe(again.attemptId);
    await Promise.all([b.stop(), a2.run.stop()]);
  }, 30_000);
});
