// NewHost help from a NAT'd member, over real QUIC and UDP on loopback: a public node whose findings:main pool
// holds one NAT'd member is the source server of a probe; it asks that member (not a mesh peer, none has the
// client's consent) for the NewHost probe, and the prober takes it as NewHost evidence from a host it never
// sent to. The member binds a wildcard address, so it talks from 127.0.0.1, an IP no server of the probe uses.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { createNatdService, type NatdService } from "../../src/natd/natd-service.ts";
import type { NatdMesh } from "../../src/natd/natd-parts.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { runProbe } from "../../src/nat/probe-client.ts";
import { freeUdpTcpPort, loopbackPrefix, ONE_MACHINE, tempDir } from "../helpers.ts";
import { until } from "../wait.ts";

setDefaultTimeout(40_000);
const PREFIX = loopbackPrefix();
const HOSTS = [1, 2].map((i) => `${PREFIX}.${i}`);
const PORT = await freeUdpTcpPort(HOSTS[0]!);
const CLIENT_IP = `${PREFIX}.100`;
const dir = tempDir("findings-natd-newhost-");
const nodes: FindingsNode[] = [];
let member: NatdService | undefined;
const memberKey = generateNodeKey();

beforeAll(async () => {
  for (const [i, host] of HOSTS.entries()) {
    const home = join(dir.path, `n${i}`);
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const { config } = loadConfig({
      home,
      flags: { host, server_uport: PORT, server_tport: PORT, admin: "", public: i === 0, peers: i === 0 ? [] : [`${HOSTS[0]}:${PORT}`], natd_links: 0, ...ONE_MACHINE, probe_timeout_s: 3, allow_special_targets: true },
    });
    const node = await createNode({ config, home, log: silentLogger });
    nodes.push(node);
    await node.start();
  }
  const pool = nodes[0]!;
  await until(() => pool.meshService.role === "service" && pool.meshService.record() !== undefined, { what: "the pool node serving", timeoutMs: 30_000 });
  // The NAT'd member: a mesh client that knows the pool node's record.
  const mesh: NatdMesh = { role: "client", candidates: () => [pool.meshService.record()!], shareable: () => [], learn: async () => 0, isBanned: () => false };
  member = createNatdService(
    { nodeKey: memberKey, mesh, ownNat: () => "full-cone" },
    { network: "main", links: 1, shareCount: 4, host: "0.0.0.0", preferIps: [HOSTS[0]!], tickMs: 200, allowSpecialTargets: true },
  );
  await member.start();
  await until(() => pool.natd.members().some((m) => m.nodeId === memberKey.nodeId), { what: "the member's link kept by the pool node", timeoutMs: 20_000 });
}, 60_000);

afterAll(async () => {
  await member?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
  dir[Symbol.dispose]();
});

test("the pool node's NAT'd member sends the NewHost probe; the prober counts it as a host it never sent to", async () => {
  const servers = HOSTS.map((ip) => ({ ip, port: PORT }));
  const r = await runProbe({ servers, localIp: CLIENT_IP, timeoutMs: 4_000, minServers: 2 });
  expect(r.nat).toBe("public");
  const decision = r.evidence.find((e) => e.test === "decision");
  expect(decision).toMatchObject({ rule: "newhost-mapped-equals", certain: true });
  // The deciding probe came from the member's address, which no server of the probe uses.
  const received = r.evidence.find((e) => e.test === "new-host" && typeof e.received === "string");
  expect(String(received?.received)).toStartWith("127.0.0.1:");
  await until(() => member!.counters().newhost_probes === 1, { what: "the member's report" });
  expect(member!.counters()).toMatchObject({ newhost_accepted: 1, newhost_refused: 0, newhost_rate_limited: 0 });
  expect(nodes[0]!.nat.counters().newHostOrdersSent).toBeGreaterThanOrEqual(1);
});
