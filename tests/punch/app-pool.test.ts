// App pool: per-kind limits, rejoin and address-change detection, connection map, expiry (seed 000 §应用池, §信令协调).
import { describe, expect, test } from "bun:test";
import { createAppPool } from "../../src/punch/app-pool.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { idOf, member, T0 } from "./punch-helpers.ts";

const KINDS = ["app:chat", "blockchain:bitcoin"];

describe("app pool", () => {
  test("defaults to 500 members per kind", () => {
    expect(createAppPool({ kinds: KINDS }).capacity).toBe(DEFAULTS.punch_xpool);
    expect(DEFAULTS.punch_xpool).toBe(500);
  });

  test("refuses member limit+1 of a kind with a clear status, while other kinds still accept", () => {
    const pool = createAppPool({ kinds: KINDS, capacity: 3 });
    for (let i = 1; i <= 3; i++) expect(pool.join(member({ n: i }), T0).status).toBe("joined");
    const r = pool.join(member({ n: 4 }), T0);
    expect(r.status).toBe("full");
    if (r.status === "full") {
      expect(r.capacity).toBe(3);
      expect(r.message).toContain("is full (3 members)");
    }
    expect(pool.join(member({ n: 4, kind: "blockchain:bitcoin" }), T0).status).toBe("joined");
    expect(pool.counts()).toEqual({ "app:chat": 3, "blockchain:bitcoin": 1 });
  });

  test("a rejoin of a member is accepted even when the kind is full", () => {
    const pool = createAppPool({ kinds: KINDS, capacity: 2 });
    pool.join(member({ n: 1 }), T0);
    pool.join(member({ n: 2 }), T0);
    expect(pool.join(member({ n: 2 }), T0 + 1).status).toBe("rejoined");
    expect(pool.size).toBe(2);
  });

  test("refuses a kind the node does not serve", () => {
    const pool = createAppPool({ kinds: KINDS });
    const r = pool.join(member({ kind: "app:other" }), T0);
    expect(r.status).toBe("kind-not-served");
    if (r.status === "kind-not-served") expect(r.message).toContain("served: app:chat, blockchain:bitcoin");
  });

  test("a rejoin from a new address replaces the member and reports the address change", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1, ip: "198.51.100.1", port: 40000 }), T0);
    const r = pool.join(member({ n: 1, ip: "198.51.100.1", port: 40001, nat: "symmetric" }), T0 + 5);
    expect(r.status).toBe("rejoined");
    if (r.status !== "rejoined") return;
    expect(r.addressChanged).toBe(true);
    expect(r.previous.address.port).toBe(40000);
    expect(r.member.nat).toBe("symmetric");
    expect(r.member.joinedAt).toBe(T0);
    expect(r.member.lastSeen).toBe(T0 + 5);
    expect(pool.size).toBe(1);
    expect(pool.get("app:chat", idOf(1))!.address).toEqual({ ip: "198.51.100.1", port: 40001 });
  });

  test("a rejoin from the same address reports no change", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1 }), T0);
    const r = pool.join(member({ n: 1 }), T0 + 1);
    expect(r.status === "rejoined" && r.addressChanged).toBe(false);
    expect(r.status === "rejoined" && r.connectionChanged).toBe(false);
  });

  test("IPv4-mapped IPv6 and IPv4 are the same address", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1, ip: "::ffff:198.51.100.9", port: 5000 }), T0);
    expect(pool.get("app:chat", idOf(1))!.address.ip).toBe("198.51.100.9");
    const r = pool.join(member({ n: 1, ip: "198.51.100.9", port: 5000 }), T0 + 1);
    expect(r.status === "rejoined" && r.addressChanged).toBe(false);
  });

  test("after a rejoin on a new connection, closing the old connection keeps the member", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1, connectionId: "old" }), T0);
    const r = pool.join(member({ n: 1, connectionId: "new" }), T0 + 1);
    expect(r.status === "rejoined" && r.connectionChanged).toBe(true);
    expect(pool.leave("old")).toEqual([]);
    expect(pool.byId(idOf(1))?.connectionId).toBe("new");
    expect(pool.leave("new").map((m) => m.nodeId)).toEqual([idOf(1)]);
    expect(pool.size).toBe(0);
  });

  test("leave removes every membership of the connection, in all kinds", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1, connectionId: "c" }), T0);
    pool.join(member({ n: 1, connectionId: "c", kind: "blockchain:bitcoin" }), T0);
    pool.join(member({ n: 2, connectionId: "d" }), T0);
    expect(pool.byConnection("c")).toHaveLength(2);
    expect(pool.leave("c")).toHaveLength(2);
    expect(pool.byId(idOf(1))).toBeUndefined();
    expect(pool.counts()).toEqual({ "app:chat": 1, "blockchain:bitcoin": 0 });
  });

  test("byId finds a member in a given kind, or its most recently seen membership", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1, connectionId: "c1" }), T0);
    pool.join(member({ n: 1, connectionId: "c2", kind: "blockchain:bitcoin" }), T0 + 10);
    expect(pool.byId(idOf(1))!.kind).toBe("blockchain:bitcoin");
    expect(pool.byId(idOf(1), "app:chat")!.kind).toBe("app:chat");
    pool.seen("c1", T0 + 20);
    expect(pool.byId(idOf(1))!.kind).toBe("app:chat");
    expect(pool.byId(idOf(9))).toBeUndefined();
  });

  test("updateAddress reports a change once and updates every membership", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1, ip: "198.51.100.1", port: 1000 }), T0);
    pool.join(member({ n: 1, ip: "198.51.100.1", port: 1000, kind: "blockchain:bitcoin" }), T0);
    expect(pool.updateAddress(idOf(1), { ip: "198.51.100.1", port: 1001 }, T0 + 1)).toBe(true);
    expect(pool.updateAddress(idOf(1), { ip: "198.51.100.1", port: 1001 }, T0 + 2)).toBe(false);
    expect(pool.get("blockchain:bitcoin", idOf(1))!.address.port).toBe(1001);
    expect(pool.updateAddress(idOf(2), { ip: "198.51.100.1", port: 1 }, T0)).toBe(false);
  });

  test("expire removes members not seen within the idle time; seen() keeps them", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1, connectionId: "a" }), T0);
    pool.join(member({ n: 2, connectionId: "b" }), T0);
    expect(pool.seen("a", T0 + 90_000)).toBe(1);
    const gone = pool.expire(T0 + 120_001, 120_000);
    expect(gone.map((m) => m.nodeId)).toEqual([idOf(2)]);
    expect(pool.members("app:chat").map((m) => m.nodeId)).toEqual([idOf(1)]);
    expect(pool.byConnection("b")).toEqual([]);
  });

  test("remove drops one kind or all kinds of a node", () => {
    const pool = createAppPool({ kinds: KINDS });
    pool.join(member({ n: 1 }), T0);
    pool.join(member({ n: 1, kind: "blockchain:bitcoin" }), T0);
    expect(pool.remove(idOf(1), "app:chat")).toHaveLength(1);
    expect(pool.byId(idOf(1))!.kind).toBe("blockchain:bitcoin");
    expect(pool.remove(idOf(1))).toHaveLength(1);
    expect(pool.size).toBe(0);
  });

  test("a non-positive capacity is a programming error", () => {
    expect(() => createAppPool({ kinds: KINDS, capacity: 0 })).toThrow(RangeError);
  });
});
