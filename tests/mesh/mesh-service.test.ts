// The mesh service inside real nodes (src/mesh/mesh-service.ts; DESIGN §3, §5; seed 001 §组网规则, §公钥广播与验证): roles and the self-check, peer sharing, mesh_in, bans (user, malformed answers, lying checkers), the peer cache.
import { open } from "../rpc/open-policy.ts";
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig, type Overrides } from "../../src/config/load.ts";
import { loadOrCreateNodeKey } from "../../src/identity/node-key.ts";
import { askPeers } from "../../src/mesh/mesh-client.ts";
import { encodeSelfCheckAnswer } from "../../src/mesh/mesh-messages.ts";
import { MESH_CLOSE } from "../../src/mesh/mesh-service-constants.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { Status } from "../../src/wire/codec.ts";
import { freeUdpTcpPort, loopbackPrefix, ONE_MACHINE, tempDir } from "../helpers.ts";
import { until } from "../wait.ts";

const PREFIX = loopbackPrefix();
const PORT = await freeUdpTcpPort(`${PREFIX}.1`);
const dir = tempDir("findings-mesh-service-");
const running: FindingsNode[] = [];
let serial = 0;

afterEach(async () => {
  await Promise.all(running.splice(0).map((n) => n.stop()));
});

/** A node on its own loopback host <PREFIX>.<n>, admin off, short switch interval. */
async function startNode(n: number, flags: Overrides = {}, home = join(dir.path, `n${n}-${serial++}`)): Promise<FindingsNode> {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const { config } = loadConfig({
    home,
    flags: { host: `${PREFIX}.${n}`, server_uport: PORT, server_tport: PORT, admin: "", mesh_switch_s: 3, max_links_per_ip: 256, ...ONE_MACHINE, ...flags },
  });
  const node = await createNode({ config, home, log: silentLogger });
  running.push(node);
  await node.start();
  return node;
}

const addr = (node: FindingsNode) => ({ ip: node.tls.host, port: node.tls.port });
const peerOf = (node: FindingsNode) => `${node.tls.host}:${node.tls.port}`;


describe("roles and the self-check", () => {
  test("a --public node serves at once and answers peers with its own record", async () => {
    const a = await startNode(1, { public: true, stakes: { "app:chat": "stake-1" } });
    await a.meshService.ready;
    expect(a.meshService.role).toBe("service");
    const rec = a.meshService.record()!;
    expect(rec.kinds).toEqual(["app:chat"]);
    const peers = await askPeers({ ip: `${PREFIX}.1`, port: PORT });
    expect(peers.records).toHaveLength(1);
    expect(peers.records[0]!.publicKey).toEqual(a.key.publicKey);
  });

  test("a node with only a --peer address passes the self-check, joins the mesh and shares both ways", async () => {
    const a = await startNode(1, { public: true });
    const b = await startNode(2, { peers: [peerOf(a)] });
    await b.meshService.ready;
    const st = b.meshService.status();
    expect(st.role).toBe("service");
    expect(st.selfCheck!.reachable).toBe(true);
    expect(st.selfCheck!.observedIp).toBe(`${PREFIX}.2`);
    await until(() => b.meshService.status().mesh.out === 1, { what: "b linked to a" });
    await until(() => a.meshService.status().candidates.some((c) => c.id === b.key.nodeId), { what: "a learned b on the new link" });
    expect(b.meshService.status().candidates.map((c) => c.id)).toEqual([a.key.nodeId]);
    const link = a.meshService.status().mesh.links[0]!;
    expect(link).toMatchObject({ peer: b.key.nodeId, direction: "in" });
    expect(a.meshService.status().counters.messagesIn[METHOD.mesh.peers]).toBeGreaterThanOrEqual(2); // help + exchange
  });

  test("a node with no peers and no --public does not serve", async () => {
    const a = await startNode(1);
    await a.meshService.ready;
    expect(a.meshService.role).toBe("client");
    expect(a.meshService.record()).toBeUndefined();
  });

  test("a client-only node learns candidates but refuses mesh links", async () => {
    const a = await startNode(1, { public: true });
    const c = await startNode(3, { client_only: true, peers: [peerOf(a)] });
    await c.meshService.ready;
    expect(c.meshService.role).toBe("client");
    expect(c.meshService.record()).toBeUndefined();
    expect(c.meshService.status().candidates.map((x) => x.id)).toEqual([a.key.nodeId]);
    const link = await a.mesh.dialMesh(addr(c), c.key.publicKey);
    expect((await link.closed).code).toBe(MESH_CLOSE.notServing.code);
  });

  test("a checker that claims a dial-back it never made is banned, and the self-check fails", async () => {
    const a = await startNode(1, { public: true });
    a.udp.router.add(
      METHOD.mesh.selfCheck,
      open((_payload, ctx) => ({ status: Status.OK, payload: encodeSelfCheckAnswer({ observedIp: ctx.remote.ip, tcpReachable: true, udpReachable: true }) }), { transports: ["quic"] }),
      { replace: true },
    );
    const b = await startNode(2, { peers: [peerOf(a)] });
    await b.meshService.ready;
    const st = b.meshService.status();
    expect(st.role).toBe("client");
    expect(st.selfCheck!.results[0]).toMatchObject({ claimedTcp: true, sawTcp: false, lied: true });
    expect(st.bans.map((x) => x.target)).toContain(`${PREFIX}.1`);
  });
});

describe("limits and bans", () => {
  test("an inbound link past mesh_in is closed as mesh pool full", async () => {
    const a = await startNode(1, { public: true, mesh_in: 1 });
    const b = await startNode(2, { public: true });
    const c = await startNode(3, { public: true });
    const first = await b.mesh.dialMesh(addr(a), a.key.publicKey);
    await until(() => a.meshService.status().mesh.in === 1, { what: "a holds b" });
    const second = await c.mesh.dialMesh(addr(a), a.key.publicKey);
    expect((await second.closed).code).toBe(MESH_CLOSE.full.code);
    expect(first.isOpen).toBe(true);
  });

  test("a peer listed in bans.json cannot hold a mesh link", async () => {
    const bHome = join(dir.path, "banned-b");
    mkdirSync(bHome, { recursive: true, mode: 0o700 });
    const bId = loadOrCreateNodeKey(bHome).nodeId;
    const aHome = join(dir.path, "banning-a");
    mkdirSync(aHome, { recursive: true, mode: 0o700 });
    writeFileSync(join(aHome, "bans.json"), JSON.stringify({ ids: [bId] }));
    const a = await startNode(1, { public: true }, aHome);
    const b = await startNode(2, { public: true }, bHome);
    const link = await b.mesh.dialMesh(addr(a), a.key.publicKey);
    expect((await link.closed).code).toBe(MESH_CLOSE.banned.code);
    expect(a.meshService.status().bans).toContainEqual(expect.objectContaining({ target: bId, source: "user" }));
  });

  test("a bad bans.json stops the node from starting with the file named", async () => {
    const home = join(dir.path, "bad-bans");
    mkdirSync(home, { recursive: true, mode: 0o700 });
    writeFileSync(join(home, "bans.json"), JSON.stringify({ ids: ["not-an-id"] }));
    const { config } = loadConfig({ home, flags: { host: `${PREFIX}.9`, server_uport: PORT, server_tport: PORT, admin: "", public: true } });
    const node = await createNode({ config, home, log: silentLogger });
    running.push(node);
    await expect(node.start()).rejects.toThrow("bans.json");
  });

  test("a peer whose peers answer does not decode is banned and its link closed", async () => {
    const a = await startNode(1, { public: true });
    const b = await startNode(2, { public: true });
    b.mesh.router.add(METHOD.mesh.peers, open(() => new Uint8Array([0xff, 0xff, 0xff]), { transports: ["wss"] }), { replace: true });
    const link = await b.mesh.dialMesh(addr(a), a.key.publicKey);
    expect((await link.closed).code).toBe(MESH_CLOSE.banned.code);
    const ban = a.meshService.status().bans.find((x) => x.target === b.key.nodeId)!;
    expect(ban.reason).toContain("undecodable peers answer");
  });
});

describe("the peer cache", () => {
  test("peers.json is written at stop and brings a restarted node back without --peer", async () => {
    const a = await startNode(1, { public: true });
    const bHome = join(dir.path, "cache-b");
    const b = await startNode(2, { peers: [peerOf(a)] }, bHome);
    await until(() => b.meshService.status().mesh.out === 1, { what: "b meshed" });
    await b.stop();
    running.splice(running.indexOf(b), 1);
    expect(existsSync(join(bHome, "peers.json"))).toBe(true);
    const again = await startNode(2, {}, bHome);
    await again.meshService.ready;
    const st = again.meshService.status();
    expect(st.peerCache.loaded).toBe(1);
    expect(st.role).toBe("service");
    // The restarted node checks itself again before it serves and dials; on a loaded machine that takes a while.
    // Either end may dial first (a redials the candidate it lost), and one link per peer is kept: b is back
    // when it holds a link to a, whichever way it runs.
    const linkedToA = () => again.meshService.status().mesh.links.some((l) => l.peer === a.key.nodeId);
    await until(linkedToA, { what: "restarted b meshed with a", timeoutMs: 30_000 }).catch((e) => {
      const st2 = again.meshService.status();
      // This wait has failed now and then in a full run only; print both ends so the next failure says why.
      console.log("restarted b", JSON.stringify({ role: st2.role, cands: st2.candidates, mesh: st2.mesh, ev: st2.counters.events, out: st2.counters.messagesOut, bans: st2.bans, peerCache: st2.peerCache }));
      const sa = a.meshService.status();
      console.log("a", JSON.stringify({ role: sa.role, cands: sa.candidates, mesh: sa.mesh, ev: sa.counters.events, bans: sa.bans }));
      throw e;
    });
  }, 60_000);
});
