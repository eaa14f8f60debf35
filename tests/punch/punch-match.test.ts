// Random and directed punch matching in the app pool (seed 000 §打洞协助, §定向打洞; DESIGN §7).
import { describe, expect, test } from "bun:test";
import { createAppPool, type AppPool } from "../../src/punch/app-pool.ts";
import { directedMatch, randomMatches } from "../../src/punch/punch-match.ts";
import type { NatClassName } from "../../src/nat/class.ts";
import { idOf, member, seeded, T0 } from "./punch-helpers.ts";

const KINDS = ["app:chat", "app:game"];

function poolWith(nats: (NatClassName | null)[], kind = "app:chat"): AppPool {
  const pool = createAppPool({ kinds: KINDS });
  nats.forEach((nat, i) => pool.join(member({ n: i + 1, nat, kind }), T0));
  return pool;
}

describe("random punch", () => {
  test("returns at most peers_punch (5) compatible members, never the requester", () => {
    const pool = poolWith(new Array(20).fill("port-restricted-cone"));
    const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(1) });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.matches).toHaveLength(5);
    expect(r.matches.some((m) => m.peer.nodeId === idOf(1))).toBe(false);
    expect(new Set(r.matches.map((m) => m.peer.nodeId)).size).toBe(5);
    expect(r.matches.every((m) => m.requester.nodeId === idOf(1))).toBe(true);
  });

  test("honours a smaller max", () => {
    const pool = poolWith(new Array(10).fill("restricted-cone"));
    const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(1), max: 2 });
    expect(r.ok && r.matches.length).toBe(2);
  });

  test("skips incompatible members: a symmetric requester gets only Public/FullC and cones, never Sym", () => {
    const pool = poolWith(["symmetric", "symmetric", "symmetric", "public", "udp-blocked", null]);
    const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(2) });
    expect(r.ok && r.matches.map((m) => m.peer.nat)).toEqual(["public"]);
  });

  test("prefers surer strategies: direct before simultaneous before spray", () => {
    const pool = poolWith(["port-restricted-cone", "symmetric", "symmetric", "port-restricted-cone", "full-cone", "restricted-cone", "public"]);
    const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(3), max: 10 });
    expect(r.ok && r.matches.map((m) => m.strategy.strategy)).toEqual([
      "direct",
      "direct",
      "simultaneous",
      "simultaneous",
      "sym-to-cone-spray",
      "sym-to-cone-spray",
    ]);
  });

  test("allowSpray: false leaves the symmetric members out", () => {
    const pool = poolWith(["port-restricted-cone", "symmetric", "restricted-cone"]);
    const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(3), allowSpray: false });
    expect(r.ok && r.matches.map((m) => m.peer.nodeId)).toEqual([idOf(3)]);
  });

  test("draws at random within a tier (different seeds, different picks)", () => {
    const pool = poolWith(new Array(40).fill("restricted-cone"));
    const picks = new Set<string>();
    for (let s = 1; s <= 8; s++) {
      const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(s), max: 1 });
      if (r.ok) picks.add(r.matches[0]!.peer.nodeId);
    }
    expect(picks.size).toBeGreaterThan(3);
  });

  test("only members of the requester's kind are matched", () => {
    const pool = poolWith(["restricted-cone", "restricted-cone"]);
    pool.join(member({ n: 50, kind: "app:game" }), T0);
    const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(1) });
    expect(r.ok && r.matches.map((m) => m.peer.nodeId)).toEqual([idOf(2)]);
  });

  test("a member at the requester's own address is skipped", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1, ip: "198.51.100.5", port: 7000 }), T0);
    pool.join(member({ n: 2, ip: "198.51.100.5", port: 7000 }), T0);
    const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(1) });
    expect(r).toMatchObject({ ok: false, error: "no-peers" });
  });

  test("errors: not joined, kind not served, nobody compatible", () => {
    const pool = poolWith(["symmetric", "symmetric"]);
    expect(randomMatches(pool, { nodeId: idOf(99), kind: "app:chat" }, { rand: seeded(1) })).toMatchObject({ ok: false, error: "requester-not-joined" });
    expect(randomMatches(pool, { nodeId: idOf(1), kind: "app:none" }, { rand: seeded(1) })).toMatchObject({ ok: false, error: "kind-not-served" });
    const r = randomMatches(pool, { nodeId: idOf(1), kind: "app:chat" }, { rand: seeded(1) });
    expect(r).toMatchObject({ ok: false, error: "no-peers" });
    if (!r.ok) expect(r.message).toContain("can be punched from symmetric");
  });
});

describe("directed punch", () => {
  test("finds the target by node id and gives the class strategy", () => {
    const pool = poolWith(["restricted-cone", "symmetric"]);
    const r = directedMatch(pool, { nodeId: idOf(2), kind: "app:chat", targetId: idOf(1) });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.match.peer.nodeId).toBe(idOf(1));
    expect(r.match.strategy).toMatchObject({ strategy: "sym-to-restricted", forcedDialer: "a" });
  });

  test("a target id in upper case is found", () => {
    const pool = poolWith(["public", "public"]);
    expect(directedMatch(pool, { nodeId: idOf(1), kind: "app:chat", targetId: idOf(2).toUpperCase() }).ok).toBe(true);
  });

  test("reaches a target in another kind's pool (seed: different kinds may connect)", () => {
    const pool = poolWith(["port-restricted-cone"]);
    pool.join(member({ n: 7, kind: "app:game", nat: "full-cone" }), T0);
    const any = directedMatch(pool, { nodeId: idOf(1), kind: "app:chat", targetId: idOf(7) });
    expect(any.ok && any.match.peer.kind).toBe("app:game");
    const wrongKind = directedMatch(pool, { nodeId: idOf(1), kind: "app:chat", targetId: idOf(7), targetKind: "app:chat" });
    expect(wrongKind).toMatchObject({ ok: false, error: "target-not-in-pool" });
  });

  test("errors: target not in pool, same node, same endpoint, incompatible, requester not joined", () => {
    const pool = poolWith(["symmetric", "symmetric"]);
    pool.join(member({ n: 3, ip: "198.51.100.77", port: 9 }), T0);
    pool.join(member({ n: 4, ip: "198.51.100.77", port: 9 }), T0);
    const ask = (nodeId: string, targetId: string) => directedMatch(pool, { nodeId, kind: "app:chat", targetId });
    const notThere = ask(idOf(1), idOf(42));
    expect(notThere).toMatchObject({ ok: false, error: "target-not-in-pool" });
    if (!notThere.ok) expect(notThere.message).toContain("must be connected to this node");
    expect(ask(idOf(1), idOf(1))).toMatchObject({ ok: false, error: "same-node" });
    expect(ask(idOf(3), idOf(4))).toMatchObject({ ok: false, error: "same-endpoint" });
    const incompatible = ask(idOf(1), idOf(2));
    expect(incompatible).toMatchObject({ ok: false, error: "incompatible" });
    if (!incompatible.ok) expect(incompatible.message).toContain("both sides are symmetric");
    expect(ask(idOf(9), idOf(1))).toMatchObject({ ok: false, error: "requester-not-joined" });
  });
});
