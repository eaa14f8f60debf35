// SIGTERM (the unit's KillSignal) is a clean stop: a meshed `findings serve` exits 0, its peer sees
// the mesh link closed, peers.json is written and the log says the node stopped.
import { afterAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, startServe, tempDir, type ServeProcess } from "../helpers.ts";

const home = tempDir("findings-clean-stop-");
const started: ServeProcess[] = [];

afterAll(async () => {
  await Promise.all(started.map((n) => n.stop("SIGKILL")));
  home[Symbol.dispose]();
});

interface MeshStatus {
  mesh: { mesh: { links: { peer: string; direction: "in" | "out" }[] }; candidates: { id: string }[] };
}

/** Polls an async `probe` until it returns true; fails naming `what` after `timeoutMs`. */
async function waitFor(what: string, probe: () => Promise<boolean>, { timeoutMs, intervalMs }: { timeoutMs: number; intervalMs: number }): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await Bun.sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function meshStatus(admin: string): Promise<MeshStatus> {
  return (await (await fetch(`${admin}/status`)).json()) as MeshStatus;
}

async function serve(name: string, extra: string[]): Promise<ServeProcess> {
  const port = await freePort();
  const admin = `127.0.0.1:${await freePort()}`;
  // Both nodes are on loopback, a range a public node refuses to dial unless told it is a lab.
  const node = await startServe(["--home", join(home.path, name), "--host", "127.0.0.1", "--port", String(port), "--admin", admin, "--log-level", "debug", ...extra], {
    env: { FINDINGS_ALLOW_SPECIAL_TARGETS: "true" },
  });
  started.push(node);
  return node;
}

test("SIGTERM stops a meshed node cleanly", async () => {
  const peer = await serve("peer", ["--public"]);
  const node = await serve("node", ["--peer", `127.0.0.1:${peer.ready.udpPort}#${peer.ready.publicKey}`]);

  // Meshed: the peer holds a link from the node, and the node knows the peer as a candidate.
  await waitFor("the mesh link", async () => (await meshStatus(peer.ready.admin!)).mesh.mesh.links.some((l) => l.peer === node.ready.id), { timeoutMs: 20_000, intervalMs: 200 });
  await waitFor("the peer as a candidate", async () => (await meshStatus(node.ready.admin!)).mesh.candidates.some((c) => c.id === peer.ready.id), { timeoutMs: 10_000, intervalMs: 200 });

  const peersFile = join(home.path, "node", "peers.json");
  const signalledAt = Date.now();
  expect(await node.stop("SIGTERM")).toBe(0);

  await waitFor("the peer's link closed", async () => !(await meshStatus(peer.ready.admin!)).mesh.mesh.links.length, { timeoutMs: 10_000, intervalMs: 100 });
  // The peer saw a WebSocket close from the node ("going away", 1001), not a dropped connection.
  const lines = peer.stderr().split("\n");
  const established = lines.find((l) => l.includes("mesh link established") && l.includes(`peer=${node.ready.id.slice(0, 16)}`));
  const serial = /serial=(\d+)/.exec(established ?? "")?.[1];
  expect(serial).toBeDefined();
  const closed = lines.find((l) => l.includes("mesh link closed") && l.includes(`serial=${serial} `));
  expect(closed).toContain("code=1001 reason=node stopping");

  // peers.json was written by the stop and holds the peer.
  expect(existsSync(peersFile)).toBe(true);
  const cache = JSON.parse(readFileSync(peersFile, "utf8")) as { savedAt: number; peers: { id: string }[] };
  expect(cache.savedAt).toBeGreaterThanOrEqual(signalledAt);
  expect(cache.peers.map((p) => p.id)).toContain(peer.ready.id);

  // The log file (flushed before exit) says the node stopped on SIGTERM.
  const logs = readdirSync(join(home.path, "node", "logs"));
  const log = readFileSync(join(home.path, "node", "logs", logs[0]!), "utf8");
  expect(log).toContain('"msg":"shutting down"');
  expect(log).toContain('"signal":"SIGTERM"');
  expect(log).toContain('"msg":"node stopped"');
}, 60_000);
