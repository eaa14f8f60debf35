// One network, many keys: six real nodes on one /24 (each with its own key, as cheap for an attacker as
// keys are) all join one victim, hoping to hold its incoming mesh slots and its candidate pool. The victim
// keeps at most mesh_per_prefix links per direction and candidates_per_prefix candidates from one /24, and
// a node from another network still gets in.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { netPrefixOf } from "../../src/rpc/index.ts";
import { freeUdpTcpPort, loopbackPrefix, ONE_MACHINE, tempDir } from "../helpers.ts";
import { until } from "../wait.ts";

const [A, B, C] = loopbackPrefix().split(".").map(Number) as [number, number, number];
const net = (k: number) => `${A}.${B}.${(C + k) % 256}`;
const VICTIM = `${net(0)}.1`;
const CROWD = [1, 2, 3, 4, 5, 6].map((i) => `${net(1)}.${i}`);
const HONEST = `${net(2)}.1`;
const MESH_PER_PREFIX = 2;
const CANDIDATES_PER_PREFIX = 3;
const dir = tempDir("findings-adv-crowd-");
let victim: FindingsNode;
const others: FindingsNode[] = [];

async function start(host: string, flags: Record<string, unknown>): Promise<FindingsNode> {
  const home = join(dir.path, host);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const port = await freeUdpTcpPort(host);
  const { config } = loadConfig({ home, flags: { host, server_uport: port, server_tport: port, admin: "", mesh_switch_s: 3600, ...flags } });
  const node = await createNode({ config, home, log: silentLogger });
  await node.start();
  return node;
}

beforeAll(async () => {
  victim = await start(VICTIM, {
    public: true,
    peers: [],
    allow_special_targets: true,
    mesh_per_prefix: MESH_PER_PREFIX,
    candidates_per_prefix: CANDIDATES_PER_PREFIX,
  });
  const peer = `${VICTIM}:${victim.tls.port}#${victim.key.publicKeyHex}`;
  // The crowd: public nodes (no self-check needed), each dialling the victim and sharing what it knows.
  for (const host of CROWD) others.push(await start(host, { ...ONE_MACHINE, public: true, peers: [peer] }));
  others.push(await start(HONEST, { ...ONE_MACHINE, public: true, peers: [peer] }));
}, 60_000);

afterAll(async () => {
  await Promise.all([victim, ...others].map((n) => n?.stop()));
  dir[Symbol.dispose]();
});

/** The IP of "ip:port", "[v6]:port" or a record's "ip:udp/tcp". */
const ipOf = (address: string) => address.replace(/^\[?([^\]]+?)\]?:\d+(\/\d+)?$/, "$1");

test("one /24 holds at most mesh_per_prefix of the victim's links per direction and candidates_per_prefix candidates", async () => {
  const crowdNet = netPrefixOf(CROWD[0]!);
  // Every crowd node has tried to link: the victim refused those over the limit.
  await until(() => (victim.meshService.status().counters.events.linksRefusedCrowded ?? 0) >= CROWD.length - MESH_PER_PREFIX, {
    what: "the victim refusing the crowd's extra links",
    timeoutMs: 30_000,
  });
  await until(() => victim.meshService.status().mesh.links.some((l) => ipOf(l.remote) === HONEST), { what: "the honest node linked", timeoutMs: 30_000 });
  // The crowd did get its share (the limit is a share, not a ban).
  await until(() => victim.meshService.status().candidates.some((c) => netPrefixOf(ipOf(c.address)) === crowdNet), { what: "a crowd candidate", timeoutMs: 30_000 });
  const s = victim.meshService.status();
  expect(s.mesh.links.some((l) => netPrefixOf(ipOf(l.remote)) === crowdNet)).toBe(true);
  for (const direction of ["in", "out"] as const) {
    expect(s.mesh.links.filter((l) => l.direction === direction && netPrefixOf(ipOf(l.remote)) === crowdNet).length).toBeLessThanOrEqual(MESH_PER_PREFIX);
  }
  expect(s.candidates.filter((c) => netPrefixOf(ipOf(c.address)) === crowdNet).length).toBeLessThanOrEqual(CANDIDATES_PER_PREFIX);
}, 60_000);
