// Share pool of TCP app servers: dial-back before listing, dedup, limits, rechecks, fetch of 6 (seed 001 §分享池, DESIGN §5).
import { describe, expect, test } from "bun:test";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { SHARE_FETCH_MAX } from "../../src/punch/constants.ts";
import { createSharePool, type SharePool } from "../../src/share/pool.ts";
import { seeded, T0 } from "../punch/punch-helpers.ts";

const KIND = "app:chat";
const MIN = 60_000;

/** Registers and confirms ip:port (the dial-back worked). */
function list(pool: SharePool, ip: string, port: number, now = T0): void {
  const p = pool.pending({ kind: KIND, ip, port, sourceIp: ip }, now);
  if (p.status !== "dial") throw new Error(`expected dial, got ${JSON.stringify(p)}`);
  const c = pool.confirm(p.ref, now);
  if (c.status !== "listed") throw new Error(`expected listed, got ${c.status}`);
}

describe("share pool registration", () => {
  test("defaults to 1000 servers per kind", () => {
    expect(createSharePool({ kinds: [KIND] }).capacity).toBe(DEFAULTS.share_xpool);
  });

  test("a registration is listed only after the dial-back is confirmed", () => {
    const pool = createSharePool({ kinds: [KIND] });
    const p = pool.pending({ kind: KIND, ip: "198.51.100.1", port: 8333, sourceIp: "198.51.100.1" }, T0);
    expect(p).toEqual({ status: "dial", ref: { kind: KIND, ip: "198.51.100.1", port: 8333 } });
    expect(pool.fetch(KIND, T0, { rand: seeded(1) })).toEqual([]);
    expect(pool.list(KIND)).toEqual([]);
    expect(pool.confirm({ kind: KIND, ip: "198.51.100.1", port: 8333 }, T0 + 100).status).toBe("listed");
    expect(pool.fetch(KIND, T0 + 100, { rand: seeded(1) }).map((e) => `${e.ip}:${e.port}`)).toEqual(["198.51.100.1:8333"]);
  });

  test("a failed dial-back lists nothing", () => {
    const pool = createSharePool({ kinds: [KIND] });
    const p = pool.pending({ kind: KIND, ip: "", port: 8333, sourceIp: "198.51.100.1" }, T0);
    expect(p.status).toBe("dial");
    expect(pool.reject({ kind: KIND, ip: "198.51.100.1", port: 8333 }, T0 + 1).status).toBe("dropped");
    expect(pool.list(KIND)).toEqual([]);
  });

  test("a confirm without a registration lists nothing", () => {
    const pool = createSharePool({ kinds: [KIND] });
    expect(pool.confirm({ kind: KIND, ip: "198.51.100.1", port: 1 }, T0).status).toBe("unknown");
    expect(pool.list(KIND)).toEqual([]);
  });

  test("an empty ip means the connection's source IP; another IP is refused", () => {
    const pool = createSharePool({ kinds: [KIND] });
    const p = pool.pending({ kind: KIND, ip: "", port: 9000, sourceIp: "::ffff:198.51.100.4" }, T0);
    expect(p.status === "dial" && p.ref.ip).toBe("198.51.100.4");
    const r = pool.pending({ kind: KIND, ip: "203.0.113.50", port: 9000, sourceIp: "198.51.100.4" }, T0);
    expect(r).toMatchObject({ status: "refused", reason: "not-your-address" });
  });

  test("bad addresses and unserved kinds are refused", () => {
    const pool = createSharePool({ kinds: [KIND] });
    expect(pool.pending({ kind: KIND, ip: "not-an-ip", port: 1, sourceIp: "198.51.100.1" }, T0)).toMatchObject({ reason: "bad-address" });
    expect(pool.pending({ kind: KIND, ip: "", port: 70000, sourceIp: "198.51.100.1" }, T0)).toMatchObject({ reason: "bad-address" });
    expect(pool.pending({ kind: "app:x", ip: "", port: 1, sourceIp: "198.51.100.1" }, T0)).toMatchObject({ reason: "kind-not-served" });
  });

  test("dedup by ip:port: a second registration while dialling is refused, after listing it is a no-op", () => {
    const pool = createSharePool({ kinds: [KIND] });
    const input = { kind: KIND, ip: "198.51.100.1", port: 8333, sourceIp: "198.51.100.1" };
    expect(pool.pending(input, T0).status).toBe("dial");
    expect(pool.pending(input, T0 + 1)).toMatchObject({ status: "refused", reason: "in-progress" });
    pool.confirm(input, T0 + 2);
    expect(pool.pending(input, T0 + 3).status).toBe("listed");
    expect(pool.list(KIND)).toHaveLength(1);
  });

  test("capacity: server limit+1 is refused as full", () => {
    const pool = createSharePool({ kinds: [KIND], capacity: 3, maxPerIp: 100 });
    for (let i = 1; i <= 3; i++) list(pool, `198.51.100.${i}`, 80);
    const r = pool.pending({ kind: KIND, ip: "198.51.100.9", port: 80, sourceIp: "198.51.100.9" }, T0);
    expect(r).toMatchObject({ status: "refused", reason: "full" });
  });

  test("a confirm that would overflow the list is refused as full", () => {
    const pool = createSharePool({ kinds: [KIND], capacity: 1 });
    const a = pool.pending({ kind: KIND, ip: "", port: 1, sourceIp: "198.51.100.1" }, T0);
    const b = pool.pending({ kind: KIND, ip: "", port: 2, sourceIp: "198.51.100.2" }, T0);
    expect(a.status === "dial" && pool.confirm(a.ref, T0).status).toBe("listed");
    expect(b.status === "dial" && pool.confirm(b.ref, T0).status).toBe("full");
  });

  test("one IP may hold at most maxPerIp servers, pending included", () => {
    const pool = createSharePool({ kinds: [KIND], maxPerIp: 2 });
    list(pool, "198.51.100.1", 1);
    expect(pool.pending({ kind: KIND, ip: "", port: 2, sourceIp: "198.51.100.1" }, T0).status).toBe("dial");
    expect(pool.pending({ kind: KIND, ip: "", port: 3, sourceIp: "198.51.100.1" }, T0)).toMatchObject({ reason: "too-many-per-ip" });
  });

  test("dial-backs in flight are bounded and forgotten after pendingMs", () => {
    const pool = createSharePool({ kinds: [KIND], maxPending: 2, pendingMs: 1000 });
    expect(pool.pending({ kind: KIND, ip: "", port: 1, sourceIp: "198.51.100.1" }, T0).status).toBe("dial");
    expect(pool.pending({ kind: KIND, ip: "", port: 1, sourceIp: "198.51.100.2" }, T0).status).toBe("dial");
    expect(pool.pending({ kind: KIND, ip: "", port: 1, sourceIp: "198.51.100.3" }, T0)).toMatchObject({ reason: "too-many-pending" });
    expect(pool.pending({ kind: KIND, ip: "", port: 1, sourceIp: "198.51.100.3" }, T0 + 1001).status).toBe("dial");
    // The forgotten registration can no longer be confirmed into the list.
    expect(pool.confirm({ kind: KIND, ip: "198.51.100.1", port: 1 }, T0 + 1002).status).toBe("unknown");
  });
});

describe("share pool rechecks", () => {
  test("stale entries are handed out once per recheck interval, oldest first", () => {
    const pool = createSharePool({ kinds: [KIND] });
    list(pool, "198.51.100.1", 1, T0);
    list(pool, "198.51.100.2", 1, T0 + 5 * MIN);
    expect(pool.staleEntries(T0 + 9 * MIN, { recheckMs: 10 * MIN })).toEqual([]);
    const due = pool.staleEntries(T0 + 16 * MIN, { recheckMs: 10 * MIN });
    expect(due.map((e) => e.ip)).toEqual(["198.51.100.1", "198.51.100.2"]);
    expect(pool.staleEntries(T0 + 17 * MIN, { recheckMs: 10 * MIN })).toEqual([]);
    expect(pool.staleEntries(T0 + 27 * MIN, { recheckMs: 10 * MIN, max: 1 }).map((e) => e.ip)).toEqual(["198.51.100.1"]);
  });

  test("a successful recheck refreshes the entry", () => {
    const pool = createSharePool({ kinds: [KIND] });
    list(pool, "198.51.100.1", 1, T0);
    const [e] = pool.staleEntries(T0 + 11 * MIN, { recheckMs: 10 * MIN });
    expect(pool.confirm(e!, T0 + 11 * MIN).status).toBe("refreshed");
    expect(pool.get(e!)!.verifiedAt).toBe(T0 + 11 * MIN);
    expect(pool.staleEntries(T0 + 12 * MIN, { recheckMs: 10 * MIN })).toEqual([]);
  });

  test("one failed recheck hides the server from fetch; a second drops it", () => {
    const pool = createSharePool({ kinds: [KIND] });
    list(pool, "198.51.100.1", 1, T0);
    list(pool, "198.51.100.2", 1, T0);
    const ref = { kind: KIND, ip: "198.51.100.1", port: 1 };
    expect(pool.reject(ref, T0 + 1)).toEqual({ status: "kept", failures: 1 });
    expect(pool.fetch(KIND, T0 + 2, { rand: seeded(1) }).map((e) => e.ip)).toEqual(["198.51.100.2"]);
    expect(pool.reject(ref, T0 + 3)).toEqual({ status: "dropped", failures: 2 });
    expect(pool.get(ref)).toBeUndefined();
  });

  test("a recovered server is shown again after a good recheck", () => {
    const pool = createSharePool({ kinds: [KIND] });
    list(pool, "198.51.100.1", 1, T0);
    const ref = { kind: KIND, ip: "198.51.100.1", port: 1 };
    pool.reject(ref, T0 + 1);
    pool.confirm(ref, T0 + 2);
    expect(pool.fetch(KIND, T0 + 3, { rand: seeded(1) })).toHaveLength(1);
  });

  test("expire drops servers not verified within maxAge", () => {
    const pool = createSharePool({ kinds: [KIND] });
    list(pool, "198.51.100.1", 1, T0);
    list(pool, "198.51.100.2", 1, T0 + 30 * MIN);
    expect(pool.expire(T0 + 61 * MIN, 60 * MIN).map((e) => e.ip)).toEqual(["198.51.100.1"]);
    expect(pool.counts()).toEqual({ [KIND]: 1 });
  });

  test("drop removes a listed server", () => {
    const pool = createSharePool({ kinds: [KIND] });
    list(pool, "198.51.100.1", 1, T0);
    expect(pool.drop({ kind: KIND, ip: "198.51.100.1", port: 1 })).toBe(true);
    expect(pool.drop({ kind: KIND, ip: "198.51.100.1", port: 1 })).toBe(false);
  });
});

describe("share pool fetch", () => {
  test("returns at most 6 entries even when more are asked for", () => {
    const pool = createSharePool({ kinds: [KIND], maxPerIp: 100 });
    for (let i = 1; i <= 20; i++) list(pool, "198.51.100.1", 1000 + i);
    expect(SHARE_FETCH_MAX).toBe(6);
    expect(pool.fetch(KIND, T0, { rand: seeded(1) })).toHaveLength(6);
    expect(pool.fetch(KIND, T0, { rand: seeded(1), max: 50 })).toHaveLength(6);
    expect(pool.fetch(KIND, T0, { rand: seeded(1), max: 2 })).toHaveLength(2);
  });

  test("fresh servers come first, drawn at random; then the most recently verified", () => {
    const pool = createSharePool({ kinds: [KIND], maxPerIp: 100, freshMs: 30 * MIN });
    for (let i = 1; i <= 3; i++) list(pool, "198.51.100.1", i, T0 + i * MIN); // old by the fetch time
    for (let i = 1; i <= 10; i++) list(pool, "198.51.100.2", i, T0 + 40 * MIN);
    const now = T0 + 45 * MIN;
    const got = pool.fetch(KIND, now, { rand: seeded(4) });
    expect(got.every((e) => e.ip === "198.51.100.2")).toBe(true);
    const seen = new Set<number>();
    for (let s = 1; s <= 6; s++) for (const e of pool.fetch(KIND, now, { rand: seeded(s), max: 1 })) seen.add(e.port);
    expect(seen.size).toBeGreaterThan(2);
    // With only 2 fresh, the rest is filled newest-verified first.
    const small = createSharePool({ kinds: [KIND], maxPerIp: 100, freshMs: 30 * MIN });
    for (let i = 1; i <= 5; i++) list(small, "198.51.100.1", i, T0 + i * MIN);
    for (let i = 1; i <= 2; i++) list(small, "198.51.100.2", i, T0 + 40 * MIN);
    const mixed = small.fetch(KIND, now, { rand: seeded(1) });
    expect(mixed.slice(0, 2).every((e) => e.ip === "198.51.100.2")).toBe(true);
    expect(mixed.slice(2).map((e) => e.port)).toEqual([5, 4, 3, 2]);
  });

  test("an unserved kind fetches nothing", () => {
    expect(createSharePool({ kinds: [KIND] }).fetch("app:x", T0, { rand: seeded(1) })).toEqual([]);
  });
});
