// Candidate pool: merge planning, dedup, RTT, expiry, eviction with diversity, weighted picks (seed 001 §候选池).
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { NodeAddressSchema, NodeRecordSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { createCandidatePool, type CandidatePool } from "../../src/mesh/candidate-pool.ts";
import { recordNodeId } from "../../src/mesh/record.ts";
import { seeded } from "../seeded.ts";

const T0 = 1_700_000_000_000;
const HOUR = 3600_000;


let counter = 0;
/** Pool tests need no signatures (the caller verifies before the pool sees a record). */
function rec(opts: { key?: Uint8Array; ip?: string; udp?: number; tcp?: number; seq?: number; kinds?: string[]; extra?: { ip: string; udpPort: number; tcpPort: number }[] } = {}): NodeRecord {
  counter++;
  // A distinct public key per record: the counter in the first 4 bytes.
  const key = opts.key ?? Uint8Array.from({ length: 32 }, (_, i) => (i < 4 ? (counter >>> (i * 8)) & 0xff : 0xaa));
  return create(NodeRecordSchema, {
    publicKey: key,
    addresses: [{ ip: opts.ip ?? `10.${(counter >> 8) & 0xff}.${counter & 0xff}.1`, udpPort: opts.udp ?? 7788, tcpPort: opts.tcp ?? 7788 }, ...(opts.extra ?? [])].map((a) => create(NodeAddressSchema, a)),
    kinds: opts.kinds ?? [],
    seq: BigInt(opts.seq ?? 1),
    signature: Uint8Array.from({ length: 64 }, (_, i) => (counter + i) & 0xff),
  });
}

function newer(r: NodeRecord, changes: Partial<{ ip: string }> = {}): NodeRecord {
  return create(NodeRecordSchema, {
    ...r,
    addresses: changes.ip ? [create(NodeAddressSchema, { ip: changes.ip, udpPort: 7788, tcpPort: 7788 })] : r.addresses,
    seq: r.seq + 1n,
    signature: new Uint8Array(64).fill(Number(r.seq % 200n) + 1),
  });
}

const SELF = "f".repeat(64);
const pool = (over: Partial<Parameters<typeof createCandidatePool>[0]> = {}): CandidatePool => createCandidatePool({ selfId: SELF, ...over });

describe("adding records", () => {
  test("a new record is added, a newer seq updates it, an older or equal seq is stale", () => {
    const p = pool();
    const r = rec();
    expect(p.add(r, T0, { rttMs: 20 }).outcome).toBe("added");
    expect(p.add(r, T0).outcome).toBe("stale");
    const r2 = newer(r);
    expect(p.add(r2, T0 + 1).outcome).toBe("updated");
    expect(p.get(recordNodeId(r))!.record.seq).toBe(2n);
    expect(p.get(recordNodeId(r))!.rttMs).toBe(20);
    expect(p.size).toBe(1);
  });

  test("our own record is never added", () => {
    const key = new Uint8Array(32).fill(3);
    const self = rec({ key });
    const p = createCandidatePool({ selfId: recordNodeId(self) });
    expect(p.add(self, T0).outcome).toBe("self");
    expect(p.size).toBe(0);
  });

  test("a checked record at an address held by another node id replaces it (one node per endpoint)", () => {
    const p = pool();
    const old = rec({ ip: "203.0.113.5" });
    const fresh = rec({ ip: "203.0.113.5" });
    p.add(old, T0);
    const res = p.add(fresh, T0 + 1);
    expect(res).toEqual({ outcome: "added", removed: [recordNodeId(old)] });
    expect(p.has(recordNodeId(old))).toBe(false);
    expect(p.size).toBe(1);
  });

  test("the same IP with other ports is another node (devnet on loopback); only the proven TCP endpoint is the same node", () => {
    const p = pool();
    const a = rec({ ip: "127.0.0.1", udp: 7001, tcp: 7001 });
    const b = rec({ ip: "127.0.0.1", udp: 7002, tcp: 7002 });
    p.add(a, T0);
    p.add(b, T0);
    expect(p.size).toBe(2);
    // The key check dials the TCP port: a shared UDP port is the record's word only.
    expect(p.add(rec({ ip: "127.0.0.1", udp: 7002, tcp: 7999 }), T0).removed).toEqual([]);
    expect(p.add(rec({ ip: "127.0.0.1", udp: 7555, tcp: 7002 }), T0).removed).toEqual([recordNodeId(b)]);
  });

  test("addresses listed after the proven one displace nobody", () => {
    const p = pool();
    const honest = rec({ ip: "203.0.113.7" });
    p.add(honest, T0);
    const greedy = rec({ ip: "198.51.100.9", extra: [{ ip: "203.0.113.7", udpPort: 7788, tcpPort: 7788 }] });
    expect(p.add(greedy, T0)).toEqual({ outcome: "added", removed: [] });
    expect(p.has(recordNodeId(honest))).toBe(true);
    // Nor do they make a newcomer at that address a duplicate in a merge.
    const plan = p.planMerge([greedy, rec({ ip: "203.0.113.50" }), rec({ ip: "198.51.100.77", extra: [{ ip: "203.0.113.50", udpPort: 7788, tcpPort: 7788 }] })], T0);
    expect(plan.check.length).toBe(2);
  });

  test("the proven address is the first with a TCP port", () => {
    const p = pool();
    const a = rec({ ip: "203.0.113.9", tcp: 0, extra: [{ ip: "203.0.113.10", udpPort: 7788, tcpPort: 7788 }] });
    p.add(a, T0);
    expect(p.add(rec({ ip: "203.0.113.10" }), T0).removed).toEqual([recordNodeId(a)]);
  });

  test("an IPv4-mapped IPv6 address is the same endpoint as the IPv4 address", () => {
    const p = pool();
    const a = rec({ ip: "203.0.113.8" });
    p.add(a, T0);
    expect(p.add(rec({ ip: "::ffff:203.0.113.8" }), T0).removed).toEqual([recordNodeId(a)]);
  });
});

describe("planMerge", () => {
  test("skips self, banned ids and IPs, known records that are not newer, and duplicates in the batch", () => {
    const selfRec = rec({ key: new Uint8Array(32).fill(9) });
    const p = createCandidatePool({ selfId: recordNodeId(selfRec) });
    const known = rec();
    p.add(known, T0);
    const bannedById = rec();
    const bannedByIp = rec({ ip: "198.51.100.66" });
    const fresh = rec();
    const dupOlder = rec();
    const dupNewer = newer(dupOlder);
    const sameAddressAsFresh = rec({ ip: fresh.addresses[0]!.ip });
    const banned = new Set([recordNodeId(bannedById), "198.51.100.66"]);
    const plan = p.planMerge([selfRec, known, bannedById, bannedByIp, fresh, dupOlder, dupNewer, sameAddressAsFresh], T0, { isBanned: (x) => banned.has(x) });
    expect(plan.check.map(recordNodeId)).toEqual([recordNodeId(fresh), recordNodeId(dupOlder)]);
    expect(plan.check[1]!.seq).toBe(2n); // the newer duplicate is the one checked
    const reasons = Object.fromEntries(plan.skipped.map((s) => [s.id, s.reason]));
    expect(reasons[recordNodeId(selfRec)]).toBe("self");
    expect(reasons[recordNodeId(known)]).toBe("known");
    expect(reasons[recordNodeId(bannedById)]).toBe("banned");
    expect(reasons[recordNodeId(bannedByIp)]).toBe("banned");
    expect(reasons[recordNodeId(sameAddressAsFresh)]).toBe("duplicate");
    expect(plan.skipped.filter((s) => s.reason === "duplicate").length).toBe(2);
  });

  test("caps the checks of one merge and reports the rest as over-cap", () => {
    const p = pool({ maxChecksPerMerge: 3 });
    const plan = p.planMerge(Array.from({ length: 10 }, () => rec()), T0);
    expect(plan.check.length).toBe(3);
    expect(plan.skipped.filter((s) => s.reason === "over-cap").length).toBe(7);
  });

  test("a known node with a newer seq at the same proven address is refreshed without a check", () => {
    const p = pool();
    const r = rec();
    p.add(r, T0);
    const plan = p.planMerge([newer(r)], T0);
    expect(plan.refresh.length).toBe(1);
    expect(plan.check.length).toBe(0);
  });

  test("a known node that moved is checked again", () => {
    const p = pool();
    const a = rec();
    p.add(a, T0);
    const plan = p.planMerge([newer(a, { ip: "203.0.113.200" })], T0);
    expect(plan.check.length).toBe(1);
    expect(plan.refresh.length).toBe(0);
  });

  test("a record that failed its check is skipped until the cooldown ends", () => {
    const p = pool({ failedCooldownMs: 1000 });
    const bad = rec();
    p.noteCheckFailed(bad, T0);
    expect(p.planMerge([bad], T0 + 500).skipped).toEqual([{ id: recordNodeId(bad), reason: "failed-check" }]);
    expect(p.planMerge([bad], T0 + 1000).check.length).toBe(1);
  });
});

describe("RTT, liveness and expiry", () => {
  test("the RTT is the median of the recent samples and a sample counts as seen", () => {
    const p = pool();
    const r = rec();
    p.add(r, T0, { rttMs: 10 });
    p.sampleRtt(recordNodeId(r), { rttMs: 100, now: T0 + 5 });
    p.sampleRtt(recordNodeId(r), { rttMs: 20, now: T0 + 9 });
    expect(p.get(recordNodeId(r))!.rttMs).toBe(20);
    expect(p.get(recordNodeId(r))!.lastSeen).toBe(T0 + 9);
  });

  test("the median follows a full window of samples: the oldest goes as each new one comes", () => {
    const p = pool();
    const r = rec();
    const id = recordNodeId(r);
    p.add(r, T0, { rttMs: 50 });
    // 8 samples of 50, then steady 50s (the window keeps its median), then 10s take over one by one.
    for (let i = 0; i < 12; i++) p.sampleRtt(id, { rttMs: 50, now: T0 + i });
    expect(p.get(id)!.rttMs).toBe(50);
    for (let i = 0; i < 3; i++) p.sampleRtt(id, { rttMs: 10, now: T0 + 20 + i });
    expect(p.get(id)!.rttMs).toBe(50);
    p.sampleRtt(id, { rttMs: 10, now: T0 + 30 });
    expect(p.get(id)!.rttMs).toBe(30);
    p.sampleRtt(id, { rttMs: 10, now: T0 + 31 });
    expect(p.get(id)!.rttMs).toBe(10);
  });

  test("expire removes candidates not seen for the TTL and keeps the others", () => {
    const p = pool({ ttlMs: HOUR });
    const a = rec();
    const b = rec();
    p.add(a, T0);
    p.add(b, T0);
    p.seen(recordNodeId(b), T0 + HOUR);
    expect(p.expire(T0 + HOUR)).toEqual([]);
    expect(p.expire(T0 + HOUR + 1)).toEqual([recordNodeId(a)]);
    expect(p.has(recordNodeId(b))).toBe(true);
  });

  test("remove frees the address for another node", () => {
    const p = pool();
    const a = rec({ ip: "203.0.113.7" });
    p.add(a, T0);
    expect(p.remove(recordNodeId(a))).toBe(true);
    expect(p.add(rec({ ip: "203.0.113.7" }), T0).removed).toEqual([]);
  });
});

describe("eviction when full", () => {
  test("the pool never holds more than its capacity", () => {
    const p = pool({ capacity: 10 });
    for (let i = 0; i < 50; i++) p.add(rec(), T0 + i, { rttMs: (i * 7) % 300 });
    expect(p.size).toBe(10);
  });

  test("a candidate not seen for half the TTL goes first", () => {
    const p = pool({ capacity: 3, ttlMs: HOUR });
    const stale = rec();
    p.add(stale, T0, { rttMs: 5 });
    p.add(rec(), T0 + HOUR / 2 + 1, { rttMs: 300 });
    p.add(rec(), T0 + HOUR / 2 + 1, { rttMs: 300 });
    const res = p.add(rec(), T0 + HOUR / 2 + 2, { rttMs: 300 });
    expect(res).toEqual({ outcome: "added", removed: [recordNodeId(stale)] });
  });

  test("a never-measured candidate goes before measured ones", () => {
    const p = pool({ capacity: 3 });
    const unmeasured = rec();
    p.add(rec(), T0, { rttMs: 300 });
    p.add(unmeasured, T0);
    p.add(rec(), T0, { rttMs: 300 });
    expect(p.add(rec(), T0, { rttMs: 300 }).removed).toEqual([recordNodeId(unmeasured)]);
  });

  test("the fullest RTT band gives up its slowest member, so the only far node stays", () => {
    const p = pool({ capacity: 5 });
    const near = [10, 20, 30, 40].map((ms) => {
      const r = rec();
      p.add(r, T0, { rttMs: ms });
      return r;
    });
    const far = rec();
    p.add(far, T0, { rttMs: 250 });
    const res = p.add(rec(), T0, { rttMs: 5 });
    expect(res).toEqual({ outcome: "added", removed: [recordNodeId(near[3]!)] });
    expect(p.has(recordNodeId(far))).toBe(true);
  });

  test("a candidate that refused our link as full lately gives its place to a newcomer, however near it is", () => {
    const p = pool({ capacity: 3, refusedFullMemoryMs: 60_000 });
    const fullNear = rec();
    p.add(fullNear, T0, { rttMs: 5 });
    for (const ms of [10, 20]) p.add(rec(), T0, { rttMs: ms });
    p.noteRefusedFull(recordNodeId(fullNear), T0 + 1000);
    expect(p.add(rec(), T0 + 2000, { rttMs: 250 })).toEqual({ outcome: "added", removed: [recordNodeId(fullNear)] });
  });

  test("a refusal as full is forgotten after its memory or when the candidate accepts a link", () => {
    const p = pool({ capacity: 3, refusedFullMemoryMs: 60_000 });
    const [a, b] = [rec(), rec()];
    for (const [r, ms] of [[a, 5], [b, 10], [rec(), 20]] as const) p.add(r, T0, { rttMs: ms });
    p.noteRefusedFull(recordNodeId(a), T0);
    p.noteRefusedFull(recordNodeId(b), T0);
    p.seen(recordNodeId(b), T0 + 1);
    // a's refusal is older than the memory, b accepted since: the usual rule (a newcomer slower than all is refused).
    expect(p.add(rec(), T0 + 60_001, { rttMs: 45 }).outcome).toBe("full");
  });

  test("a newcomer that would itself be evicted is refused as full", () => {
    const p = pool({ capacity: 3 });
    for (const ms of [10, 20, 30]) p.add(rec(), T0, { rttMs: ms });
    const res = p.add(rec(), T0, { rttMs: 45 });
    expect(res.outcome).toBe("full");
    expect(p.size).toBe(3);
  });
});

describe("pickForSwitch", () => {
  function fill(n: number): { p: CandidatePool; byRtt: Map<string, number> } {
    const p = pool({ capacity: n });
    const byRtt = new Map<string, number>();
    for (let i = 1; i <= n; i++) {
      const r = rec();
      p.add(r, T0, { rttMs: i });
      byRtt.set(recordNodeId(r), i);
    }
    return { p, byRtt };
  }

  test("prefers low latency but keeps about a fifth of picks for the far third", () => {
    const { p, byRtt } = fill(30);
    const rand = seeded(1);
    const counts = { near: 0, mid: 0, far: 0 };
    const farSeen = new Set<string>();
    const DRAWS = 30_000;
    for (let i = 0; i < DRAWS; i++) {
      const [r] = p.pickForSwitch(1, rand);
      const rtt = byRtt.get(recordNodeId(r!))!;
      if (rtt <= 10) counts.near++;
      else if (rtt <= 20) counts.mid++;
      else {
        counts.far++;
        farSeen.add(recordNodeId(r!));
      }
    }
    expect(counts.near / DRAWS).toBeGreaterThan(0.45);
    expect(counts.near / DRAWS).toBeLessThan(0.56);
    expect(counts.mid / DRAWS).toBeGreaterThan(0.25);
    expect(counts.far / DRAWS).toBeGreaterThan(0.15);
    expect(counts.far / DRAWS).toBeLessThan(0.25);
    expect(farSeen.size).toBe(10);
  });

  test("each /24 weighs as one candidate: four keys in one network are drawn as often as one key elsewhere", () => {
    const p = pool({ capacity: 20 });
    const crowded = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = rec({ ip: `66.6.1.${i + 1}` });
      p.add(r, T0);
      crowded.add(recordNodeId(r));
    }
    // Unmeasured, so every candidate has the same latency weight.
    for (let i = 0; i < 4; i++) p.add(rec({ ip: `20.${i}.1.1` }), T0);
    const rand = seeded(5);
    let hits = 0;
    const DRAWS = 20_000;
    for (let i = 0; i < DRAWS; i++) if (crowded.has(recordNodeId(p.pickForSwitch(1, rand)[0]!))) hits++;
    expect(hits / DRAWS).toBeGreaterThan(0.15);
    expect(hits / DRAWS).toBeLessThan(0.25);
  });

  test("returns distinct candidates, skips excluded ones, and is repeatable with the same seed", () => {
    const { p } = fill(10);
    const exclude = p.list().slice(0, 3).map((c) => c.id);
    const a = p.pickForSwitch(5, seeded(7), { exclude }).map(recordNodeId);
    const b = p.pickForSwitch(5, seeded(7), { exclude }).map(recordNodeId);
    expect(a).toEqual(b);
    expect(new Set(a).size).toBe(5);
    for (const id of exclude) expect(a).not.toContain(id);
    expect(p.pickForSwitch(20, seeded(7), { exclude }).length).toBe(7);
  });

  test("works on an empty pool and with unmeasured candidates", () => {
    expect(pool().pickForSwitch(2, seeded(1))).toEqual([]);
    const p = pool();
    p.add(rec(), T0);
    expect(p.pickForSwitch(2, seeded(1)).length).toBe(1);
  });
});

describe("share and byKind", () => {
  test("share gives up to n distinct records, never the recipient's own, covering the pool over time", () => {
    const p = pool();
    const all = Array.from({ length: 30 }, () => rec());
    for (const r of all) p.add(r, T0, { rttMs: 10 });
    const recipient = recordNodeId(all[0]!);
    const rand = seeded(3);
    const covered = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const shared = p.share(10, recipient, rand).map(recordNodeId);
      expect(shared.length).toBe(10);
      expect(new Set(shared).size).toBe(10);
      expect(shared).not.toContain(recipient);
      shared.forEach((id) => covered.add(id));
    }
    expect(covered.size).toBe(29);
    expect(pool().share(10, undefined, rand)).toEqual([]);
  });

  test("byKind lists the candidates serving a kind, nearest first", () => {
    const p = pool();
    const slow = rec({ kinds: ["blockchain:bitcoin"] });
    const fast = rec({ kinds: ["app:chat", "blockchain:bitcoin"] });
    p.add(slow, T0, { rttMs: 90 });
    p.add(fast, T0, { rttMs: 9 });
    p.add(rec({ kinds: ["app:chat"] }), T0, { rttMs: 1 });
    expect(p.byKind("blockchain:bitcoin").map(recordNodeId)).toEqual([recordNodeId(fast), recordNodeId(slow)]);
    expect(p.byKind("depots:x")).toEqual([]);
  });
});
