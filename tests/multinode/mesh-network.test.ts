// A 12-node Findings network on loopback (DESIGN §5, §8; seed 001 §组网规则, §公钥广播与验证): pools fill, the mesh reaches its size, `find` and `peers` answer, a liar is banned, a third of the nodes dying is healed, a restart reuses peers.json.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { until } from "../wait.ts";
import { BUN, Network, ROOT, runCli, statuses, type ConfigValues, type NodeProcess, type NodeStatus } from "./harness.ts";

const N = 12;
const MESH_OUT = 3;
const MESH_IN = 6;
/** How long the mesh may take to form or heal: ~15 s alone, several times that when two runs share a loaded
 *  2-core machine. Each test's own timeout is longer than the waits inside it, so a slow test fails with
 *  its own message instead of being cut off (which also kills every node). */
const MESH_WAIT_MS = 90_000;
const TEST_MS = MESH_WAIT_MS + 45_000;
/** Nodes (0-based) that serve app:chat: two share a stake address (a server group), one has its own. */
const CHAT: Record<number, { stake: string; userId: string }> = {
  2: { stake: "stake-group-a", userId: "a-3" },
  6: { stake: "stake-group-a", userId: "a-7" },
  10: { stake: "stake-b", userId: "b-11" },
};

function configFor(i: number): ConfigValues {
  const base: ConfigValues = {
    mesh_out: MESH_OUT,
    mesh_in: MESH_IN,
    mesh_switch_s: 3,
    // Every TCP dial on loopback leaves from 127.0.0.1, so all nodes share one source IP.
    max_links_per_ip: 256,
    log_level: "info",
  };
  const chat = CHAT[i];
  return chat ? { ...base, user_id: chat.userId, stakes: { "app:chat": chat.stake } } : base;
}

const net = await Network.create("mesh12");
/** Node i (0-based) lives on host i + 1 of the network's own loopback /24. */
const host = (i: number) => net.host(i + 1);
const LIAR_HOST = net.host(200);
let nodes: NodeProcess[] = [];

/** Nodes whose mesh has the configured size (checked per poll) — a switch briefly drops a link, so
 *  "full" is collected over polls, then the whole network is checked at one instant with a slack of
 *  one link per node. */
async function waitForMesh(group: NodeProcess[], timeoutMs: number, label: string): Promise<{ ms: number; last: NodeStatus[] }> {
  const t0 = Date.now();
  const ids = new Set(group.map((n) => n.ready.id));
  const full = new Set<string>();
  let seen: (NodeStatus | null)[] = [];
  const last = await until(
    async () => {
      const all = (seen = await statuses(group));
      all.forEach((s, i) => {
        if (s && s.mesh.mesh.out === MESH_OUT && s.mesh.mesh.links.every((l) => ids.has(l.peer))) full.add(group[i]!.name);
      });
      const okNow = all.every((s) => s && s.mesh.serving && s.mesh.mesh.out >= MESH_OUT - 1 && s.mesh.candidates.filter((c) => ids.has(c.id)).length >= Math.min(group.length - 1, 8) && s.mesh.mesh.links.every((l) => ids.has(l.peer)));
      return full.size === group.length && okNow ? (all as NodeStatus[]) : null;
    },
    { what: label, timeoutMs, intervalMs: 500 },
  ).catch((err: Error) => {
    const state = seen.map((s, i) => `${group[i]!.name}: ${s ? `out ${s.mesh.mesh.out} in ${s.mesh.mesh.in} candidates ${s.mesh.candidates.length}${s.mesh.serving ? "" : " not serving"}` : "no answer"}`);
    throw new Error(`${err.message}; never full: ${group.filter((n) => !full.has(n.name)).map((n) => n.name).join(", ") || "none"}; last: ${state.join("; ")}`);
  });
  return { ms: Date.now() - t0, last };
}

beforeAll(net.watch("start", async () => {
  const t0 = Date.now();
  const first = await net.start({ name: "n1", host: host(0), public: true, config: configFor(0) });
  // Each later node knows one earlier node's address only (no key: first contact).
  const rest = await net.startAll(
    Array.from({ length: N - 1 }, (_, k) => {
      const i = k + 1;
      const peerIndex = Math.floor(Math.random() * Math.min(i, 4));
      return { name: `n${i + 1}`, host: host(i), peers: [net.address(peerIndex + 1)], config: configFor(i) };
    }),
  );
  nodes = [first, ...rest];
  console.log(`12 processes ready in ${Date.now() - t0} ms`);
}), 120_000);

afterAll(async () => {
  await net.stopAll();
});

describe("a 12-node network on loopback", () => {
  net.test("every node fills its candidate pool and reaches a mesh of the configured size", async () => {
    const { ms, last } = await waitForMesh(nodes, MESH_WAIT_MS, "12 nodes meshed");
    console.log(`converged in ${ms} ms`);
    for (const s of last) {
      expect(s.mesh.role).toBe("service");
      expect(s.mesh.mesh.in).toBeLessThanOrEqual(MESH_IN);
      const peers = s.mesh.mesh.links.map((l) => l.peer);
      expect(new Set(peers).size).toBe(peers.length); // one link per peer
      expect(peers).not.toContain(s.node.id);
      expect(s.mesh.bans).toEqual([]);
    }
    // Links are seen from both ends: every "out" here is an "in" there. The 12 statuses are not read at one
    // instant and every node switches a link every 3 s, so a few switches are half-done in any one read (more
    // on a loaded machine): the check waits for a read with at most 3 of them.
    const bothEnds = (all: (NodeStatus | null)[]) => {
      const byId = new Map(all.flatMap((s) => (s ? [[s.node.id, s] as const] : [])));
      let outs = 0;
      let matched = 0;
      for (const s of byId.values()) {
        for (const l of s.mesh.mesh.links.filter((x) => x.direction === "out")) {
          outs++;
          if (byId.get(l.peer)?.mesh.mesh.links.some((x) => x.peer === s.node.id && x.direction === "in")) matched++;
        }
      }
      return byId.size === nodes.length && matched >= outs - 3 ? { outs, matched } : null;
    };
    const seen = bothEnds(last) ?? (await until(async () => bothEnds(await statuses(nodes)), { what: "links seen from both ends", timeoutMs: 30_000, intervalMs: 500 }));
    expect(seen.outs).toBeGreaterThanOrEqual(N * (MESH_OUT - 1));
    expect(seen.matched).toBeGreaterThanOrEqual(seen.outs - 3);
  }, TEST_MS);

  net.test("links are switched for fresh candidates every mesh_switch_s", async () => {
    const switches = await until(
      async () => {
        const all = await statuses(nodes);
        const n = all.filter((s) => (s?.mesh.counters.events.switches ?? 0) > 0).length;
        return n >= N / 2 ? n : null;
      },
      { what: "switches on most nodes", timeoutMs: 15_000, intervalMs: 500 },
    );
    expect(switches).toBeGreaterThanOrEqual(N / 2);
  }, TEST_MS);

  net.test("find returns exactly the nodes configured with a kind, grouped by stake address", async () => {
    const chatIds = Object.keys(CHAT).map((i) => nodes[Number(i)]!.ready.id).sort();
    // Ask a node that does not serve the kind, as a user would, over QUIC.
    const r = await runCli(["find", "app:chat", "--server", net.address(1), "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { kind: string; nodes: { id: string; kinds: string[]; stakes: Record<string, string> }[]; groups: { stakeAddress: string; members: { nodeId: string; identityId: string }[] }[] };
    expect(out.kind).toBe("app:chat");
    expect(out.nodes.map((n) => n.id).sort()).toEqual(chatIds);
    const groupA = out.groups.find((g) => g.stakeAddress === "stake-group-a")!;
    expect(groupA.members.map((m) => m.identityId).sort()).toEqual(["a-3", "a-7"]);
    expect(groupA.members.map((m) => m.nodeId).sort()).toEqual([nodes[2]!.ready.id, nodes[6]!.ready.id].sort());
    expect(out.groups.find((g) => g.stakeAddress === "stake-b")!.members).toEqual([{ nodeId: nodes[10]!.ready.id, identityId: "b-11" }]);
    expect(out.groups).toHaveLength(2);

    const none = await runCli(["find", "app:nobody", "--server", net.address(5), "--json"]);
    expect(none.code).toBe(0);
    expect(JSON.parse(none.stdout)).toEqual({ kind: "app:nobody", nodes: [], groups: [] });
  }, TEST_MS);

  net.test("peers lists a node's own record and its candidates; status prints the admin view", async () => {
    const target = nodes[5]!;
    const r = await runCli(["peers", "--server", `${target.host}:${net.port}#${target.ready.publicKey}`, "--json"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { pinned: boolean; peers: { id: string; addresses: string[] }[] };
    expect(out.pinned).toBe(true);
    expect(out.peers[0]!.id).toBe(target.ready.id);
    const ids = new Set(nodes.map((n) => n.ready.id));
    expect(out.peers.length).toBeGreaterThanOrEqual(9);
    for (const p of out.peers) expect(ids.has(p.id)).toBe(true);

    const s = await runCli(["status", "--admin", target.adminAddress, "--json"]);
    expect(s.code).toBe(0);
    const st = JSON.parse(s.stdout) as NodeStatus;
    expect(st.node.id).toBe(target.ready.id);
    expect(st.mesh.mesh.maxOut).toBe(MESH_OUT);
    // The human view is a second /status read: a mesh switch may change the link counts in between, so it
    // is checked against itself (its counts match its link lines) and against what does not change.
    const human = await runCli(["status", "--admin", target.adminAddress]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`node      ${target.ready.id}`);
    expect(human.stdout).toContain("role      service (serving)");
    const counts = human.stdout.match(new RegExp(`^mesh      out (\\d+)/${MESH_OUT}  in (\\d+)/${MESH_IN}$`, "m"));
    expect(counts).not.toBeNull();
    expect(human.stdout.match(/^  out /gm)?.length ?? 0).toBe(Number(counts![1]));
    expect(human.stdout.match(/^  in  /gm)?.length ?? 0).toBe(Number(counts![2]));
  }, TEST_MS);

  net.test("a record whose key is not at its address is merged nowhere, and its sharer (maybe an honest relay) is not banned", async () => {
    const target = nodes[4]!;
    // The victim is a node the target knows: the sharer copies its record from the target.
    const known = new Set((await target.status()).mesh.candidates.map((c) => c.id));
    const victim = nodes.find((n) => n !== target && known.has(n.ready.id))!;
    const proc = net.spawn([BUN, join(ROOT, "tests", "multinode", "liar-node.ts"), "--host", LIAR_HOST, "--port", String(net.port), "--home", join(net.root, "liar"), "--target", target.peerAddress, "--victim", victim.host, "--redial-ms", "1000"]);
    try {
      const lines: Record<string, unknown>[] = [];
      const reader = (async () => {
        let buf = "";
        for await (const chunk of proc.stdout) {
          buf += new TextDecoder().decode(chunk);
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            lines.push(JSON.parse(buf.slice(0, nl)));
            buf = buf.slice(nl + 1);
          }
        }
      })();
      const ready = (await until(() => lines.find((l) => l.event === "ready" || l.event === "error"), { what: "liar ready", timeoutMs: 25_000, intervalMs: 100 })) as { event: string; id: string; forgedId: string };
      expect(ready).toMatchObject({ event: "ready" });

      // A failed key check is evidence against the named record only: the sharer cannot be told
      // apart from an honest relay of a stale or selectively answered record.
      const st = await until(async () => {
        const s = await target.status();
        return (s.mesh.counters.events.checksKeyFailed ?? 0) >= 1 ? s : null;
      }, { what: "the forged record's key check failed", timeoutMs: 15_000, intervalMs: 200, retryErrors: true });
      expect(st.mesh.bans.some((b) => b.target === ready.id || b.target === LIAR_HOST)).toBe(false);
      expect(st.mesh.candidates.map((c) => c.id)).not.toContain(ready.forgedId);
      expect(st.mesh.candidates.map((c) => c.id)).toContain(victim.ready.id); // the genuine record stays

      // Nobody else merged the forged record either.
      for (const s of await statuses(nodes)) expect(s!.mesh.candidates.map((c) => c.id)).not.toContain(ready.forgedId);
      void reader;
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  }, TEST_MS);

  net.test("killing a third of the nodes is healed", async () => {
    const dead = [0, 3, 7, 9].map((i) => nodes[i]!);
    const survivors = nodes.filter((n) => !dead.includes(n));
    await Promise.all(dead.map((n) => n.kill()));
    const { ms, last } = await waitForMesh(survivors, MESH_WAIT_MS, "survivors re-meshed");
    console.log(`healed in ${ms} ms after killing ${dead.length} of ${N}`);
    const deadIds = new Set(dead.map((n) => n.ready.id));
    for (const s of last) for (const l of s.mesh.mesh.links) expect(deadIds.has(l.peer)).toBe(false);
    nodes = survivors;
  }, TEST_MS);

  net.test("a restarted node rejoins from peers.json alone", async () => {
    const node = nodes[nodes.length - 1]!;
    expect(await node.stop()).toBe(0);
    const file = join(node.home, "peers.json");
    expect(existsSync(file)).toBe(true);
    const cached = JSON.parse(readFileSync(file, "utf8")) as { peers: { id: string }[] };
    expect(cached.peers.length).toBeGreaterThanOrEqual(5);

    // Same home, same address, no --peer and no --public: only the cache can bring it back.
    const again = await net.start({ name: `${node.name}-restarted`, host: node.host, home: node.home, config: configFor(N - 1) });
    expect(again.ready.id).toBe(node.ready.id);
    const s = await until(async () => {
      const st = await again.status();
      return st.mesh.serving && st.mesh.mesh.out === MESH_OUT ? st : null;
    }, { what: "restarted node meshed", timeoutMs: MESH_WAIT_MS, intervalMs: 300, retryErrors: true });
    expect(s.mesh.peerCache.loaded).toBeGreaterThanOrEqual(5);
    expect(s.mesh.role).toBe("service");
  }, TEST_MS);
});
