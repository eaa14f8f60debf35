// `findings devnet N` (DESIGN §1): N nodes in one process on loopback mesh with each other, answer `find` and `peers`, and stop cleanly on SIGTERM.
import { afterAll, expect } from "bun:test";
import { join } from "node:path";
import { BUN, MAIN, Network, runCli } from "./harness.ts";

// The devnet's hosts are <prefix>.1 … .4 of a loopback /24 of this run's own, on a port free there.
const net = await Network.create("devnet");
afterAll(() => net.stopAll());

net.test("a devnet of 4 meshes, is searchable, and stops on SIGTERM", async () => {
  const home = join(net.root, "home");
  const proc = net.spawn([BUN, MAIN, "devnet", "4", "--json", "--prefix", net.prefix, "--port", String(net.port), "--kind", "app:demo", "--home", home]);
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
    expect(ready.nodes!.map((n) => n.address)).toEqual([1, 2, 3, 4].map((i) => net.address(i)));
    const found = await runCli(["find", "app:demo", "--server", net.address(4), "--json"]);
    expect((JSON.parse(found.stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id).sort()).toEqual(ready.nodes!.map((n) => n.id).sort());
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  } finally {
    clearTimeout(killer);
  }
}, 45_000);
