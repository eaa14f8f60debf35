// Builds dist/findings and runs it alone from an empty folder with nothing on PATH but itself.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { BUN, ROOT, tempDir } from "../helpers.ts";

const dir = tempDir("findings-bin-");
const bin = join(dir.path, "findings");

async function run(args: string[], home = join(dir.path, "home")) {
  const proc = Bun.spawn([bin, ...args, "--home", home], { cwd: dir.path, env: { PATH: dir.path, HOME: dir.path }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

describe("the compiled binary", () => {
  beforeAll(async () => {
    // Two test runs at once build the same dist/findings: build and copy under one lock, so neither copies
    // the other's half-written file.
    mkdirSync(join(ROOT, ".tmp"), { recursive: true });
    const buildAndCopy = ["sh", "-c", '"$0" "$1" && cp "$2" "$3"', BUN, join(ROOT, "scripts", "build.ts"), join(ROOT, "dist", "findings"), bin];
    const build = Bun.spawn(["flock", join(ROOT, ".tmp", "build.lock"), ...buildAndCopy], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [code, err] = await Promise.all([build.exited, new Response(build.stderr).text()]);
    if (code !== 0) throw new Error(`build failed: ${err}`);
  }, 180_000);

  test("prints its version and help", async () => {
    const pkg = await Bun.file(join(ROOT, "package.json")).json();
    const proc = Bun.spawn([bin, "--version"], { cwd: dir.path, env: { PATH: dir.path } , stdout: "pipe" });
    expect((await new Response(proc.stdout).text()).trim()).toBe(pkg.version);
    const help = Bun.spawn([bin, "--help"], { cwd: dir.path, env: { PATH: dir.path }, stdout: "pipe" });
    const text = await new Response(help.stdout).text();
    expect(text).toContain("config");
    expect(text).toContain("id");
  });

  test("prints the effective config with port 7788 for UDP and TCP", async () => {
    const r = await run(["config"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^server_uport = 7788$/m);
    expect(r.stdout).toMatch(/^server_tport = 7788$/m);
  });

  test("keeps the same node id across runs with the same home", async () => {
    const a = await run(["id", "--json"]);
    const b = await run(["id", "--json"]);
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout).nodeId).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(b.stdout).nodeId).toBe(JSON.parse(a.stdout).nodeId);
    expect(existsSync(join(dir.path, "home", "node.key"))).toBe(true);
  });

  test("exits non-zero with one line on a bad config value", async () => {
    const proc = Bun.spawn([bin, "config", "--home", join(dir.path, "home")], { cwd: dir.path, env: { PATH: dir.path, FINDINGS_SERVER_UPORT: "99999" }, stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).not.toBe(0);
    expect(err.trim().split("\n")).toHaveLength(1);
    expect(err).toContain("FINDINGS_SERVER_UPORT: 99999 is not allowed");
  });

  test("serves whoami over QUIC and HTTPS with the embedded QUIC native module", async () => {
    const home = join(dir.path, "serve-home");
    const node = Bun.spawn([bin, "serve", "--json", "--home", home, "--host", "127.0.0.1", "--port", "0", "--admin", "", "--public"], {
      cwd: dir.path,
      env: { PATH: dir.path, HOME: dir.path },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      const reader = node.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the binary's serve exited before it was ready");
        text += new TextDecoder().decode(value);
      }
      const ready = JSON.parse(text.slice(0, text.indexOf("\n")));
      const quic = await run(["whoami", "--json", "--server", `127.0.0.1:${ready.udpPort}#${ready.publicKey}`]);
      expect(quic.code).toBe(0);
      expect(JSON.parse(quic.stdout)).toMatchObject({ via: "quic", pinned: true });
      const https = await run(["whoami", "--json", "--tcp", "--server", `127.0.0.1:${ready.tcpPort}`]);
      expect(JSON.parse(https.stdout)).toMatchObject({ via: "https" });
    } finally {
      node.kill("SIGTERM");
      expect(await node.exited).toBe(0);
    }
  }, 30_000);
});
