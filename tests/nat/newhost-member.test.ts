// NewHost help from a NAT'd member (src/nat/newhost-member.ts): the member sends one probe only for an order its
// pool node sealed to it, on its link to that node, for a target with a valid client proof, within its rates.
// Pure: the send is captured, the clock is a number.
import { describe, expect, test } from "bun:test";
import { SEAL_PURPOSE } from "../../src/constants.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { nodeIdOf } from "../../src/identity/index.ts";
import { createMemberNewHost, usableMembers, MEMBER_PROBES_PER_ORDER, type MemberOrderFrom, type NatdMemberLink } from "../../src/nat/newhost-member.ts";
import { checkNewHostProof, makeNewHostProof, sealNewHostOrder, type NewHostOrderInit } from "../../src/nat/newhost-proof.ts";
import { newHostKey, verifyProbe } from "../../src/nat/probe-packet.ts";
import type { Endpoint } from "../../src/nat/source-check.ts";
import { decodeMessage, Status } from "../../src/wire/codec.ts";
import { NewHostReportSchema } from "../../src/wire/gen/nat_pb.ts";

const BITS = 4;
const memberKey = generateNodeKey();
const poolKey = generateNodeKey();
const hostileKey = generateNodeKey();
const clientKey = crypto.getRandomValues(new Uint8Array(32));
const hostKey = newHostKey(clientKey);
const pool = { publicKey: poolKey.publicKey, ip: "198.51.100.7", port: 7000 };
const fromPool: MemberOrderFrom = { trust: "pinned", remote: { ip: pool.ip, port: pool.port }, peer: { key: poolKey.publicKey } };

function setup(opts: { allowSpecialTargets?: boolean; pool?: typeof pool | null } = {}) {
  let t = 1_800_000_000_000;
  const sent: { bytes: Uint8Array; to: Endpoint }[] = [];
  const member = createMemberNewHost(
    {
      nodeKey: memberKey,
      poolNode: () => (opts.pool === undefined ? pool : opts.pool),
      send: async (bytes, to) => void sent.push({ bytes, to }),
    },
    { now: () => t, allowSpecialTargets: opts.allowSpecialTargets ?? false, powBits: BITS },
  );
  return { member, sent, advance: (ms: number) => (t += ms), now: () => t };
}

async function order(now: number, target: Endpoint, over: { proof?: undefined } = {}, proofFor: Endpoint = target): Promise<NewHostOrderInit> {
  let p = await makeNewHostProof(proofFor, hostKey, { now, bits: BITS });
  // At BITS = 4 one proof in 16 for another endpoint also holds for the target by chance: such a proof
  // would not be one "made for another address".
  while (proofFor !== target && checkNewHostProof(p, target, hostKey, now, BITS).ok) p = await makeNewHostProof(proofFor, hostKey, { now, bits: BITS });
  const o: NewHostOrderInit = {
    targetIp: target.ip,
    targetPort: target.port,
    hostKey,
    issuedAtMs: BigInt(now),
    orderId: crypto.getRandomValues(new Uint8Array(16)),
    avoidIps: [],
    proof: { issuedAtMs: p.issuedAtMs, nonce: p.nonce },
  };
  if ("proof" in over) delete o.proof;
  return o;
}

const seal = (o: NewHostOrderInit, from = poolKey, to = memberKey, purpose: string = SEAL_PURPOSE.natdNewHost) => sealNewHostOrder(from.privateKey, to.publicKey, o, purpose);
const target = { ip: "93.184.216.20", port: 40000 };

describe("member NewHost: accepted orders", () => {
  test("one probe the client verifies with K, to the target, nothing else", async () => {
    const s = setup();
    const ans = await s.member.handle(seal(await order(s.now(), target)), fromPool);
    expect(ans.status).toBe(Status.OK);
    expect(decodeMessage(NewHostReportSchema, ans.payload!, "r").sent).toBe(1);
    expect(s.sent).toHaveLength(MEMBER_PROBES_PER_ORDER);
    expect(s.sent[0]!.to).toEqual(target);
    expect(verifyProbe(s.sent[0]!.bytes, clientKey)).toEqual({ ok: true, source: "newHost" });
    // Smaller than the order that asked for it.
    expect(s.sent[0]!.bytes.length).toBeLessThan(seal(await order(s.now(), target)).length);
    expect(s.member.counters).toMatchObject({ accepted: 1, probesSent: 1 });
  });
});

describe("member NewHost: a hostile or wrong pool node gets nothing", () => {
  const cases: Array<[string, MemberOrderFrom]> = [
    ["another key on the link", { ...fromPool, peer: { key: hostileKey.publicKey } }],
    ["no key on the link", { ...fromPool, peer: { key: null } }],
    ["an untrusted link", { ...fromPool, trust: "untrusted" }],
    ["the pool node's key from another address", { ...fromPool, remote: { ip: "192.0.2.9", port: pool.port } }],
    ["the pool node's IP on another port", { ...fromPool, remote: { ip: pool.ip, port: pool.port + 1 } }],
  ];
  for (const [name, from] of cases) {
    test(name, async () => {
      const s = setup();
      const ans = await s.member.handle(seal(await order(s.now(), target)), from);
      expect(ans.status).toBe(Status.REFUSED);
      expect(s.sent).toHaveLength(0);
    });
  }

  test("no pool joined", async () => {
    const s = setup({ pool: null });
    expect((await s.member.handle(seal(await order(s.now(), target)), fromPool)).status).toBe(Status.REFUSED);
    expect(s.sent).toHaveLength(0);
  });

  test("an order sealed by another node, for another member, or as a mesh delegation", async () => {
    const s = setup();
    const o = await order(s.now(), target);
    expect((await s.member.handle(seal(o, hostileKey), fromPool)).status).toBe(Status.UNAUTHENTICATED);
    expect((await s.member.handle(seal(o, poolKey, hostileKey), fromPool)).status).toBe(Status.UNAUTHENTICATED);
    expect((await s.member.handle(seal(o, poolKey, memberKey, SEAL_PURPOSE.natNewHost), fromPool)).status).toBe(Status.UNAUTHENTICATED);
    expect((await s.member.handle(new Uint8Array([1, 2, 3]), fromPool)).status).toBe(Status.BAD_REQUEST);
    expect(s.sent).toHaveLength(0);
  });
});

describe("member NewHost: only a target the order vouches for", () => {
  test("a proof made for another address, another port, or none", async () => {
    const s = setup();
    const cases = [
      await order(s.now(), target, {}, { ip: "93.184.216.21", port: target.port }),
      await order(s.now(), target, {}, { ip: target.ip, port: target.port + 1 }),
      await order(s.now(), target, { proof: undefined }),
    ];
    for (const o of cases) expect((await s.member.handle(seal(o), fromPool)).status).toBe(Status.REFUSED);
    expect(s.sent).toHaveLength(0);
  });

  test("stale, replayed, multicast and special-range targets", async () => {
    const s = setup();
    expect((await s.member.handle(seal(await order(s.now() - 61_000, target)), fromPool)).status).toBe(Status.REFUSED);
    const once = seal(await order(s.now(), target));
    expect((await s.member.handle(once, fromPool)).status).toBe(Status.OK);
    expect((await s.member.handle(once, fromPool)).status).toBe(Status.REFUSED);
    expect((await s.member.handle(seal(await order(s.now(), { ip: "224.0.0.1", port: 5000 })), fromPool)).status).toBe(Status.BAD_REQUEST);
    expect((await s.member.handle(seal(await order(s.now(), { ip: "127.0.0.1", port: 5000 })), fromPool)).status).toBe(Status.REFUSED);
    expect((await s.member.handle(seal(await order(s.now(), { ip: "10.1.2.3", port: 5000 })), fromPool)).status).toBe(Status.REFUSED);
    expect(s.sent).toHaveLength(1);
  });
});

describe("member NewHost: rates", () => {
  test("the same target once per window, then again", async () => {
    const s = setup();
    expect((await s.member.handle(seal(await order(s.now(), target)), fromPool)).status).toBe(Status.OK);
    expect((await s.member.handle(seal(await order(s.now(), target)), fromPool)).status).toBe(Status.REFUSED);
    s.advance(11_000);
    expect((await s.member.handle(seal(await order(s.now(), target)), fromPool)).status).toBe(Status.OK);
    expect(s.sent).toHaveLength(2);
  });

  test("per target IP: a burst of ports, then rate-limited", async () => {
    const s = setup();
    const statuses: Status[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await s.member.handle(seal(await order(s.now(), { ip: target.ip, port: 41000 + i })), fromPool)).status);
    expect(statuses.filter((x) => x === Status.OK)).toHaveLength(3);
    expect(statuses.slice(3).every((x) => x === Status.RATE_LIMITED)).toBe(true);
    expect(s.sent).toHaveLength(3);
  });

  test("per pool node: a burst over many targets, then rate-limited", async () => {
    const s = setup();
    let ok = 0;
    let limited = 0;
    for (let i = 0; i < 14; i++) {
      const st = (await s.member.handle(seal(await order(s.now(), { ip: `93.184.216.${100 + i}`, port: 40000 })), fromPool)).status;
      if (st === Status.OK) ok++;
      if (st === Status.RATE_LIMITED) limited++;
    }
    expect(ok).toBe(10);
    expect(limited).toBe(4);
    expect(s.sent).toHaveLength(10);
    s.advance(1_000);
    expect((await s.member.handle(seal(await order(s.now(), { ip: "93.184.216.200", port: 40000 })), fromPool)).status).toBe(Status.OK);
  });
});

describe("pool side: members that can help", () => {
  const link = (ip: string, key = generateNodeKey().publicKey, closed = false): NatdMemberLink["link"] => ({
    remote: { ip, port: 5000 },
    peerKey: key,
    closed,
    request: async () => {
      throw new Error("unused");
    },
  });
  const m = (ip: string, opts: { closed?: boolean; wrongId?: boolean } = {}): NatdMemberLink => {
    const k = generateNodeKey().publicKey;
    return { nodeId: opts.wrongId ? nodeIdOf(generateNodeKey().publicKey) : nodeIdOf(k), link: link(ip, k, opts.closed) };
  };

  test("live, bound to their id, one per IP, not the target's, ours or one the client talks to", () => {
    const good = m("192.0.2.1");
    const members = [good, m("192.0.2.1"), m("192.0.2.2", { closed: true }), m("192.0.2.3", { wrongId: true }), m(target.ip), m("192.0.2.4"), m("192.0.2.5"), m("2001:db8::1")];
    const picked = usableMembers(members, target, new Set(["192.0.2.4"]), "192.0.2.5");
    expect(picked).toEqual([good]);
  });
});
