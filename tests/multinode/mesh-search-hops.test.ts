// Search travels the mesh (DESIGN §8): in a chain n1–n2–n3–n4 where nobody shares candidates, `find` asked at n1 returns the node serving the kind at the far end, which n1 and n2 do not know.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { until } from "../wait.ts";
import { Network, runCli, type ConfigValues, type NodeProcess } from "./harness.ts";

// One outgoing link each, no sharing on new links (help answers carry only the helper's own
// record), no switching: each node links to the one it was given, and the chain stays a chain.
const BASE: ConfigValues = { mesh_out: 1, mesh_in: 2, mesh_share: 0, mesh_switch_s: 3600, max_links_per_ip: 256 };

const net = await Network.create("chain");
/** Chain node i (0-based) lives on host i + 1 of the network's own loopback /24. */
const host = (i: number) => net.host(i + 1);
const chain: NodeProcess[] = [];

beforeAll(net.watch("start", async () => {
  for (let i = 0; i < 4; i++) {
    const config = i === 3 ? { ...BASE, user_id: "far-end", stakes: { "app:far": "stake-far" } } : BASE;
    const node = await net.start({ name: `c${i + 1}`, host: host(i), public: i === 0, peers: i === 0 ? [] : [net.address(i)], config });
    chain.push(node);
    // The next node may start once this one has linked to its predecessor.
    if (i > 0) {
      await until(async () => {
        const [s, prev] = await Promise.all([node.status(), chain[i - 1]!.status()]);
        return s.mesh.mesh.links.some((l) => l.direction === "out" && l.peer === chain[i - 1]!.ready.id) && prev.mesh.candidates.some((c) => c.id === node.ready.id);
      }, { what: `c${i + 1} linked to c${i}, and c${i} learned c${i + 1} on that link`, timeoutMs: 20_000, intervalMs: 200, retryErrors: true });
    }
  }
}), 180_000);

afterAll(async () => {
  await net.stopAll();
});

describe("search through the mesh", () => {
  net.test("the chain holds: the asked node and its neighbour do not know the far end", async () => {
    const far = chain[3]!.ready.id;
    const [s1, s2, s3] = await Promise.all([chain[0]!.status(), chain[1]!.status(), chain[2]!.status()]);
    expect(s1.mesh.candidates.map((c) => c.id)).not.toContain(far);
    expect(s2.mesh.candidates.map((c) => c.id)).not.toContain(far);
    expect(s3.mesh.candidates.map((c) => c.id)).toContain(far);
    expect(s1.mesh.mesh.links.map((l) => l.peer)).toEqual([chain[1]!.ready.id]);
  });

  net.test("find at one end returns the node at the other end, through at least two hops", async () => {
    const before = await chain[2]!.status();
    // --hops 3 (the most a node forwards; 2 is the default): the search reaches the far end itself.
    const r = await runCli(["find", "app:far", "--server", net.address(1), "--hops", "3", "--json"]);
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { nodes: { id: string; identityId: string }[]; groups: { stakeAddress: string; members: { nodeId: string; identityId: string }[] }[] };
    expect(out.nodes.map((n) => n.id)).toEqual([chain[3]!.ready.id]);
    expect(out.groups).toEqual([{ stakeAddress: "stake-far", members: [{ nodeId: chain[3]!.ready.id, identityId: "far-end" }] }]);
    // The search reached c3 (two hops from c1) and c4 (three).
    const [after3, after4] = await Promise.all([chain[2]!.status(), chain[3]!.status()]);
    expect((after3.mesh.counters.messagesIn["mesh.find"] ?? 0) - (before.mesh.counters.messagesIn["mesh.find"] ?? 0)).toBe(1);
    expect(after4.mesh.counters.messagesIn["mesh.find"]).toBe(1);
  }, 160_000); // longer than its CLI calls (30 s each at most) together

  net.test("the hop budget bounds the search", async () => {
    const ask = async (hops: number) => {
      const r = await runCli(["find", "app:far", "--server", net.address(1), "--hops", String(hops), "--json"]);
      expect(r.code).toBe(0);
      return (JSON.parse(r.stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id);
    };
    // hops 1 reaches c2 only; hops 2 reaches c3, whose candidate pool holds c4.
    expect(await ask(0)).toEqual([]);
    expect(await ask(1)).toEqual([]);
    expect(await ask(2)).toEqual([chain[3]!.ready.id]);
    const bad = await runCli(["find", "app:far", "--server", net.address(1), "--hops", "9"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("--hops");
  }, 160_000); // longer than its CLI calls (30 s each at most) together
});
