// `findings devnet N` (DESIGN §1): N nodes in one process on loopback mesh with each other, answer `find` and `peers`, and stop cleanly on SIGTERM.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN, MAIN, ROOT, runCli } from "./harness.ts";

const home = mkdtempSync(join(tmpdir(), "findings-devnet-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

test("a devnet of 4 meshes, is searchable, and stops on SIGTERM", async () => {
  const proc = Bun.spawn([BUN, MAIN, "devnet", "4", "--json", "--prefix", "127.0.6", "--port", "17788", "--kind", "app:demo", "--home", home], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const killer = setTimeout(() => proc.kill("SIGKILL"), 40_000);
  try {
    const lines: { event: string; nodes?: { id: string; address: string }[]; ms?: number }[] = [];
    const reader = proc.stdout.getReader();
    let buf = "";
    while (!lines.some((l) => l.event === "meshed")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`devnet exited: ${await new Response(proc.stderr).text()}`);
      buf += new TextDecoder().decode(value);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
    }
    const ready = lines.find((l) => l.event === "ready")!;
    expect(ready.nodes).toHaveLength(4);
    const found = await runCli(["find", "app:demo", "--server", "127.0.6.4:17788", "--json"]);
    expect((JSON.parse(found.stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id).sort()).toEqual(ready.nodes!.map((n) => n.id).sort());
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  } finally {
    clearTimeout(killer);
    proc.kill("SIGKILL");
  }
}, 45_000);
