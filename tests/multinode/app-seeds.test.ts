// What an app gets from a network with an address only (DESIGN §3, §5, §8): the node's key learned on first
// use (its signed record and a key check) and remembered, a changed key refused; the node's reward address and
// identity id in every bootstrap answer; the share registry over WSS, and servers of a kind found through the
// mesh (share.find) from another node than the one that lists them.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "../wait.ts";
import { Network, runCli, type NodeProcess } from "./harness.ts";

const net = await Network.create("app-seeds");
let n1: NodeProcess;
let n2: NodeProcess;
let tcp: Server;
let tcpPort = 0;
/** "ip:port" the registry listed. */
let listed = "";
const homes: string[] = [];
const newHome = () => {
  const h = mkdtempSync(join(tmpdir(), "findings-app-"));
  homes.push(h);
  return h;
};

beforeAll(net.watch("start", async () => {
  n1 = await net.start({ name: "n1", host: net.host(1), public: true, config: { user_id: "alice", stakes: { "app:web": "stake-web-1", "*": "general-1" } } });
  n2 = await net.start({ name: "n2", host: net.host(2), peers: [net.address(1)], config: { stakes: { "app:web": "stake-web-2" } } });
  await until(async () => (await n2.status()).mesh.candidates.some((c) => c.id === n1.ready.id) && (await n1.status()).mesh.candidates.some((c) => c.id === n2.ready.id), {
    what: "n1 and n2 know each other",
    timeoutMs: 30_000,
    intervalMs: 200,
    retryErrors: true,
  });
  // The TCP server an app lists (on every loopback address: the app's source address is the one listed).
  tcp = createServer((s) => s.destroy());
  await new Promise<void>((r) => tcp.listen(0, "0.0.0.0", () => r()));
  tcpPort = (tcp.address() as { port: number }).port;
}), 120_000);

afterAll(async () => {
  tcp?.close();
  await net.stopAll();
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

type NodeOut = { address: string; nodeId: string; key: string; keySource: string; stakeAddress: string; stakeSource: string; identityId: string };

describe("keys from the network", () => {
  net.test("whoami with an address only learns the key on first use, says so, and knows it the next time", async () => {
    const home = newHome();
    const first = await runCli(["whoami", "--json", "--home", home, "--server", net.address(1)]);
    expect(first.code).toBe(0);
    const a = JSON.parse(first.stdout) as { pinned: boolean; keySource: string; node: NodeOut };
    expect(a).toMatchObject({ pinned: true, keySource: "learned" });
    expect(a.node).toMatchObject({ nodeId: n1.ready.id, key: n1.ready.publicKey, keySource: "learned", stakeAddress: "general-1", stakeSource: "default", identityId: "alice" });
    expect(first.stderr).toContain(`learned the key of ${net.address(1)} on first use`);
    const known = JSON.parse(readFileSync(join(home, "known_hosts.json"), "utf8")) as { hosts: Record<string, { key: string }> };
    expect(known.hosts[net.address(1)]?.key).toBe(n1.ready.publicKey);

    const second = await runCli(["whoami", "--json", "--home", home, "--server", net.address(1)]);
    expect(JSON.parse(second.stdout)).toMatchObject({ keySource: "known", node: { nodeId: n1.ready.id } });
    expect(second.stderr).toBe("");
    // ADDR#key still pins by hand.
    const pinned = await runCli(["whoami", "--json", "--home", home, "--server", `${net.address(1)}#${n1.ready.publicKey}`]);
    expect(JSON.parse(pinned.stdout)).toMatchObject({ keySource: "pinned" });
    // The next node's record comes from the node this home already trusts (n1, which knows n2), and n2 proves it.
    const next = await runCli(["whoami", "--json", "--home", home, "--server", net.address(2)]);
    expect(JSON.parse(next.stdout)).toMatchObject({ keySource: "learned", node: { nodeId: n2.ready.id, recordFrom: net.address(1) } });
    expect(next.stderr).toContain(`(record from ${net.address(1)})`);
  }, 90_000);

  net.test("a key that changed is refused loudly until it is forgotten", async () => {
    const home = newHome();
    writeFileSync(join(home, "known_hosts.json"), JSON.stringify({ hosts: { [net.address(1)]: { key: n2.ready.publicKey, firstSeen: "2026-01-01T00:00:00.000Z" } } }));
    const refused = await runCli(["whoami", "--json", "--home", home, "--server", net.address(1)]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toMatch(/no longer proves the key known for it.*findings known-hosts --forget/);
    const forget = await runCli(["known-hosts", "--json", "--home", home, "--forget", net.address(1)]);
    expect(JSON.parse(forget.stdout)).toMatchObject({ forgotten: true });
    const again = await runCli(["whoami", "--json", "--home", home, "--server", net.address(1)]);
    expect(JSON.parse(again.stdout)).toMatchObject({ keySource: "learned", node: { key: n1.ready.publicKey } });
  }, 90_000);

  net.test("punch with an address only: joins, and names the node's reward address for the kind", async () => {
    const home = newHome();
    const r = await runCli(["punch", "--json", "--home", home, "--server", net.address(1), "--kind", "app:web", "--nat", "public", "--timeout", "10"]);
    const out = JSON.parse(r.stdout.trim().split("\n")[0]!) as { keySource: string; node: NodeOut };
    expect(out.keySource).toBe("learned");
    expect(out.node).toMatchObject({ nodeId: n1.ready.id, stakeAddress: "stake-web-1", stakeSource: "kind", identityId: "alice" });
  }, 90_000);

  net.test("probe shows the first server's reward address and identity", async () => {
    const home = newHome();
    const r = await runCli(["probe", "--json", "--home", home, "--server", net.address(1), "--timeout", "1"]);
    const out = JSON.parse(r.stdout) as { keySource: string; node: NodeOut };
    expect(out).toMatchObject({ keySource: "learned", node: { nodeId: n1.ready.id, stakeAddress: "general-1", identityId: "alice" } });
  }, 90_000);
});

describe("share pool for every app and node", () => {
  net.test("register with an address only names the kind's reward address; fetch works over WSS too", async () => {
    const home = newHome();
    const reg = await runCli(["share", "register", "--json", "--home", home, "--server", net.address(1), "--kind", "app:web", "--port", String(tcpPort)]);
    expect(reg.code).toBe(0);
    listed = (JSON.parse(reg.stdout) as { address: string }).address;
    expect(listed).toMatch(new RegExp(`:${tcpPort}$`));
    expect(JSON.parse(reg.stdout)).toMatchObject({ listed: true, keySource: "learned", node: { stakeAddress: "stake-web-1", stakeSource: "kind", identityId: "alice" } });
    // An app without UDP: the same registry over WSS on the TLS port (the harness uses one port for both).
    const wss = await runCli(["share", "fetch", "--json", "--wss", "--home", newHome(), "--server", net.address(1), "--kind", "app:web"]);
    expect(wss.code).toBe(0);
    const w = JSON.parse(wss.stdout) as { servers: { address: string; nodeId: string }[]; keySource: string };
    expect(w.keySource).toBe("learned");
    expect((JSON.parse(wss.stdout) as { node: NodeOut }).node).toMatchObject({ nodeId: n1.ready.id, stakeAddress: "stake-web-1", stakeSource: "kind", identityId: "alice" });
    expect(w.servers).toEqual([expect.objectContaining({ address: listed, nodeId: n1.ready.id })]);
    expect(existsSync(join(home, "known_hosts.json"))).toBe(true);
  }, 90_000);

  net.test("fetch --search at another node finds the server through the mesh, answered by its holder", async () => {
    const plain = await runCli(["share", "fetch", "--json", "--home", newHome(), "--server", net.address(2), "--kind", "app:web"]);
    expect(JSON.parse(plain.stdout)).toMatchObject({ servers: [], node: { nodeId: n2.ready.id, stakeAddress: "stake-web-2" } });
    const found = await runCli(["share", "fetch", "--json", "--search", "--home", newHome(), "--server", net.address(2), "--kind", "app:web"]);
    expect(found.code).toBe(0);
    const out = JSON.parse(found.stdout) as { servers: { address: string; nodeId: string }[] };
    expect(out.servers).toEqual([expect.objectContaining({ address: listed, nodeId: n1.ready.id })]);
    // An app without UDP searches the same way over WSS.
    const overWss = await runCli(["share", "fetch", "--json", "--search", "--wss", "--home", newHome(), "--server", net.address(2), "--kind", "app:web"]);
    expect(overWss.code).toBe(0);
    expect((JSON.parse(overWss.stdout) as { servers: unknown[] }).servers).toEqual([expect.objectContaining({ address: listed, nodeId: n1.ready.id })]);
  }, 90_000);
});
