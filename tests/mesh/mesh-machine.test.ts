// The role state machine and its step (src/mesh/mesh-machine.ts, admission.ts, mesh-upkeep.ts,
// dialer.ts): transitions and actions as data, no links, no timers.
import { describe, expect, test } from "bun:test";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import type { CoreLink } from "../../src/mesh/core-link.ts";
import { createBackoff, createDialBook } from "../../src/mesh/dialer.ts";
import { createMeshState, step, type MeshAction, type MeshState, type MeshStateInit } from "../../src/mesh/mesh-machine.ts";
import { MESH_CLOSE } from "../../src/mesh/mesh-service-constants.ts";
import { createOwnRecord } from "../../src/mesh/own-record.ts";
import { buildRecord } from "../../src/mesh/record.ts";
import type { NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { SELF_CHECKERS } from "../../src/mesh/self-check.ts";
import { seeded } from "../seeded.ts";

const T0 = 1_800_000_000_000;
const rand = seeded(7);

function machine(init: Partial<MeshStateInit> = {}): MeshState {
  const key = generateNodeKey();
  const own = createOwnRecord({ nodeKey: key, host: "192.0.2.1", spki: "ab".repeat(32), stakes: {}, ports: () => ({ udpPort: 7788, tcpPort: 7788 }), nat: () => null });
  return createMeshState({ myId: key.nodeId, own, now: T0, clientOnly: false, public: false, configPeers: 1, shortlist: 100, meshOut: 2, meshIn: 2, switchIntervalMs: 60_000, shareCount: 10, ...init });
}

function recordOf(key: NodeKey, i: number): NodeRecord {
  return buildRecord(key, { addresses: [{ ip: `198.51.100.${i}`, udpPort: 7788, tcpPort: 7788 }], spki: "cd".repeat(32), seq: 1, now: T0 });
}

function fakeLink(peer: NodeKey, direction: "in" | "out", ip = "198.51.100.9", helloRecord?: NodeRecord): CoreLink {
  let open = true;
  return {
    helloRecord,
    peerNodeId: peer.nodeId,
    trust: "mesh",
    direction,
    rttMs: 5,
    remote: { ip, port: 7788 },
    socketRemote: { ip, port: 7788 },
    local: { ip: "192.0.2.1", port: 7788 },
    openedAt: T0,
    get isOpen() {
      return open;
    },
    request: () => Promise.reject(new Error("not used")),
    close: () => void (open = false),
    onClose: () => () => {},
  };
}

const types = (actions: MeshAction[]) => actions.map((a) => a.type);

describe("roles", () => {
  test("start: --client-only is a client, --public serves, a node with peers checks itself, one without is a client", () => {
    const client = machine({ clientOnly: true });
    expect(types(step(client, { type: "start", helpTargets: 3 }, T0, rand))).toEqual(["requestHelp", "schedule"]);
    expect(client.role).toBe("client");

    const pub = machine({ public: true });
    const acts = step(pub, { type: "start", helpTargets: 0 }, T0, rand);
    expect(pub.role).toBe("service");
    expect(pub.own.current()).toBeDefined();
    expect(acts).toContainEqual({ type: "schedule", timer: "refill", ms: pub.settings.refillDelayMs });

    // The self-check waits for the start help: its checkers come from the records the help brings.
    const checking = machine();
    expect(types(step(checking, { type: "start", helpTargets: 2 }, T0, rand))).toEqual(["requestHelp", "schedule"]);
    expect(checking.role).toBe("checking");
    expect(step(checking, { type: "helpDone", broughtNews: true }, T0 + 500, rand)).toEqual([{ type: "selfCheck", from: "start" }]);
    expect(types(step(checking, { type: "tick" }, T0 + 1_000, rand))).not.toContain("selfCheck");

    const alone = machine({ configPeers: 0 });
    step(alone, { type: "start", helpTargets: 0 }, T0, rand);
    expect(alone.role).toBe("client");
  });

  test("the start self-check runs while the help still runs once the pool holds SELF_CHECKERS candidates besides the configured peers", () => {
    const s = machine({ configPeers: 2 });
    step(s, { type: "start", helpTargets: 2 }, T0, rand);
    // Each in its own network, so the pool's per-prefix limit keeps them all.
    const add = (i: number) =>
      s.candidates.add(buildRecord(generateNodeKey(), { addresses: [{ ip: `203.${i}.0.1`, udpPort: 7788, tcpPort: 7788 }], spki: "cd".repeat(32), seq: 1, now: T0 }), T0, { rttMs: 10 });
    for (let i = 1; i < SELF_CHECKERS + 2; i++) add(i);
    expect(types(step(s, { type: "tick" }, T0 + 1_000, rand))).not.toContain("selfCheck");
    add(50);
    expect(step(s, { type: "tick" }, T0 + 2_000, rand)).toContainEqual({ type: "selfCheck", from: "start" });
    expect(s.role).toBe("checking");
    // Once: neither the next tick nor the help's end asks again.
    expect(types(step(s, { type: "tick" }, T0 + 3_000, rand))).not.toContain("selfCheck");
    expect(types(step(s, { type: "helpDone", broughtNews: true }, T0 + 3_500, rand))).not.toContain("selfCheck");
  });

  test("a failed self-check makes a client that checks again soon, then less often up to the switch interval; a passed one serves", () => {
    const s = machine();
    step(s, { type: "start", helpTargets: 1 }, T0, rand);
    const retry = s.settings.helpRetryMs;
    let t = T0 + 1_000;
    step(s, { type: "selfCheckDone", reachable: false, observedIp: null, detail: {} }, t, rand);
    expect(s.role).toBe("client");
    // Waits of 2, 4, 8 … times the help retry, never more than the switch interval.
    for (let wait = 2 * retry; ; wait = Math.min(2 * wait, s.settings.switchIntervalMs)) {
      expect(types(step(s, { type: "tick" }, t + wait - 1, rand))).not.toContain("selfCheck");
      expect(types(step(s, { type: "tick" }, t + wait + 1, rand))).toContain("selfCheck");
      expect(s.role).toBe("checking");
      t += wait + 1;
      if (wait === s.settings.switchIntervalMs) break;
      step(s, { type: "selfCheckDone", reachable: false, observedIp: null, detail: {} }, t, rand);
    }
    step(s, { type: "selfCheckDone", reachable: true, observedIp: "203.0.113.5", detail: {} }, t + 1_000, rand);
    expect(s.role).toBe("service");
    expect(s.own.current()!.addresses[0]!.ip).toBe("192.0.2.1"); // a specific host keeps its own IP
  });

  test("stop ends every role: timers cancelled, the cache written, later events ignored", () => {
    const s = machine({ public: true });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    expect(types(step(s, { type: "stop" }, T0 + 1, rand))).toEqual(["cancelTimers", "writeCache"]);
    expect(s.role).toBe("stopped");
    expect(step(s, { type: "tick" }, T0 + 2, rand)).toEqual([]);
    const fresh = machine();
    expect(types(step(fresh, { type: "stop" }, T0, rand))).toEqual(["cancelTimers"]);
  });
});

describe("links and dials", () => {
  test("a node that does not serve refuses mesh links; a serving one keeps them up to mesh_in and shares on each", () => {
    const s = machine();
    step(s, { type: "start", helpTargets: 1 }, T0, rand);
    const early = fakeLink(generateNodeKey(), "in");
    expect(step(s, { type: "linkUp", link: early }, T0, rand)).toEqual([{ type: "close", link: early, reason: MESH_CLOSE.notServing }]);
    step(s, { type: "selfCheckDone", reachable: true, observedIp: null, detail: {} }, T0, rand);
    const [a, b, c] = [fakeLink(generateNodeKey(), "in"), fakeLink(generateNodeKey(), "in"), fakeLink(generateNodeKey(), "in")];
    expect(types(step(s, { type: "linkUp", link: a }, T0, rand))).toEqual(["watch", "share"]);
    step(s, { type: "linkUp", link: b }, T0, rand);
    expect(step(s, { type: "linkUp", link: c }, T0, rand)).toEqual([{ type: "close", link: c, reason: MESH_CLOSE.full }]);
    expect(s.meshPool.list("in").length).toBe(2);
  });

  test("the record of an inbound link's hello joins the candidate pool, link kept or refused as full, only if it is the dialler's at the address it was reached", () => {
    const s = machine({ public: true });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    const [a, b, c] = [generateNodeKey(), generateNodeKey(), generateNodeKey()];
    step(s, { type: "linkUp", link: fakeLink(a, "in", "198.51.100.1", recordOf(a, 1)) }, T0, rand);
    step(s, { type: "linkUp", link: fakeLink(b, "in", "198.51.100.2", recordOf(b, 2)) }, T0, rand);
    // mesh_in is 2: c is refused as full, and still becomes a candidate, proven at its address.
    const full = fakeLink(c, "in", "198.51.100.3", recordOf(c, 3));
    expect(step(s, { type: "linkUp", link: full }, T0, rand)).toEqual([{ type: "close", link: full, reason: MESH_CLOSE.full }]);
    expect(s.candidates.ids().sort()).toEqual([a.nodeId, b.nodeId, c.nodeId].sort());
    expect(s.candidates.get(c.nodeId)?.rttMs).toBe(5);
    expect(s.events.candidatesFromHello).toBe(3);

    const t = machine({ public: true });
    step(t, { type: "start", helpTargets: 0 }, T0, rand);
    const [d, e, f, g] = [generateNodeKey(), generateNodeKey(), generateNodeKey(), generateNodeKey()];
    // Someone else's record, a record for another address, an outbound link's, a forged one: none.
    step(t, { type: "linkUp", link: fakeLink(d, "in", "198.51.100.4", recordOf(e, 4)) }, T0, rand);
    step(t, { type: "linkUp", link: fakeLink(e, "in", "198.51.100.5", recordOf(e, 6)) }, T0, rand);
    step(t, { type: "linkUp", link: fakeLink(f, "out", "198.51.100.7", recordOf(f, 7)) }, T0, rand);
    const forged = recordOf(g, 8);
    forged.kinds = ["blockchain:bitcoin"];
    step(t, { type: "linkUp", link: fakeLink(g, "in", "198.51.100.8", forged) }, T0, rand);
    expect(t.candidates.size).toBe(0);
    expect(t.events.candidatesFromHello).toBeUndefined();
  });

  test("a peer that refuses our link as full is not dialled again for half a switch interval and goes first on eviction", () => {
    const s = machine({ public: true });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    const peer = generateNodeKey();
    s.candidates.add(recordOf(peer, 7), T0, { rttMs: 5 });
    const link = fakeLink(peer, "out", "198.51.100.7");
    step(s, { type: "linkUp", link }, T0, rand);
    step(s, { type: "linkDown", link, code: MESH_CLOSE.full.code }, T0 + 10, rand);
    expect(s.events.dialsRefusedFull).toBe(1);
    expect(s.dials.cooling(peer.nodeId, T0 + 10 + s.settings.switchIntervalMs / 2 - 1)).toBe(true);
    expect(s.dials.cooling(peer.nodeId, T0 + 10 + s.settings.switchIntervalMs / 2 + 1)).toBe(false);
    // Another close (the peer went away) cools it down for the usual short while only.
    const other = generateNodeKey();
    const gone = fakeLink(other, "out", "198.51.100.8");
    step(s, { type: "linkUp", link: gone }, T0, rand);
    step(s, { type: "linkDown", link: gone, code: 1001 }, T0 + 10, rand);
    expect(s.events.dialsRefusedFull).toBe(1);
  });

  test("of two crossing links to one peer both ends keep the one dialled by the smaller node id", () => {
    const s = machine({ public: true });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    const peer = generateNodeKey();
    const mine = fakeLink(peer, "out");
    const theirs = fakeLink(peer, "in");
    step(s, { type: "linkUp", link: mine }, T0, rand);
    const acts = step(s, { type: "linkUp", link: theirs }, T0, rand);
    const keep = s.myId < peer.nodeId ? mine : theirs;
    const drop = keep === mine ? theirs : mine;
    expect(acts).toContainEqual({ type: "close", link: drop, reason: MESH_CLOSE.duplicate });
    expect(s.live.get(peer.nodeId)).toBe(keep);
  });

  test("a second link dialled the same way replaces the first (the peer restarted before we saw the close)", () => {
    const s = machine({ public: true });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    const peer = generateNodeKey();
    const before = fakeLink(peer, "in");
    const after = fakeLink(peer, "in");
    step(s, { type: "linkUp", link: before }, T0, rand);
    const acts = step(s, { type: "linkUp", link: after }, T0, rand);
    expect(acts).toContainEqual({ type: "close", link: before, reason: MESH_CLOSE.duplicate });
    expect(types(acts)).toContain("watch");
    expect(s.live.get(peer.nodeId)).toBe(after);
  });

  test("fill dials picks for the missing outgoing links; a candidate failing twice is dropped", () => {
    const s = machine({ public: true });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    const keys = [generateNodeKey(), generateNodeKey(), generateNodeKey()];
    keys.forEach((k, i) => s.candidates.add(recordOf(k, i + 1), T0));
    const dials = step(s, { type: "refill" }, T0, rand).filter((a) => a.type === "dial");
    expect(dials.length).toBe(2);
    expect(s.dials.dialing.size).toBe(2);
    const id = [...s.dials.dialing][0]!;
    step(s, { type: "dialDone", id, error: "refused" }, T0, rand);
    expect(s.candidates.has(id)).toBe(true);
    expect(s.dials.cooling(id, T0 + 1)).toBe(true);
    step(s, { type: "dialDone", id, error: "refused" }, T0 + 20_000, rand);
    expect(s.candidates.has(id)).toBe(false);
    expect(s.events.candidatesDropped).toBe(1);
  });

  test("outgoing links into /24s that turn out to hold several keys are trimmed to mesh_per_prefix at the next sweep, youngest first", () => {
    const s = machine({ public: true, meshOut: 8, meshIn: 16, meshPerPrefix: 2 });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    // Four links into four /24s of four /16s, each /24 known by one key (the peer) when it opened.
    const nets = ["66.6.1", "66.7.1", "66.8.1", "66.9.1"];
    const links = nets.map((net, i) => {
      const peer = generateNodeKey();
      const link = { ...fakeLink(peer, "out", `${net}.1`), openedAt: T0 + i };
      s.candidates.add(buildRecord(peer, { addresses: [{ ip: `${net}.1`, udpPort: 7788, tcpPort: 7788 }], spki: "cd".repeat(32), seq: 1, now: T0 }), T0);
      expect(types(step(s, { type: "linkUp", link }, T0 + i, rand))).toEqual(["watch", "share"]);
      return link;
    });
    const closes = (t: number) => step(s, { type: "tick" }, t, rand).filter((a) => a.type === "close");
    expect(closes(T0 + s.settings.sweepMs + 10)).toEqual([]);
    // The pool learns a second key in each /24: the four networks count as one group of 2 links.
    for (const net of nets) s.candidates.add(buildRecord(generateNodeKey(), { addresses: [{ ip: `${net}.2`, udpPort: 7788, tcpPort: 7788 }], spki: "cd".repeat(32), seq: 1, now: T0 }), T0);
    const trimmed = closes(T0 + 2 * s.settings.sweepMs + 20);
    expect(trimmed.map((a) => a.type === "close" && a.link)).toEqual([links[3], links[2]]);
    expect(trimmed.every((a) => a.type === "close" && a.reason === MESH_CLOSE.crowded)).toBe(true);
  });

  test("a liar is banned by id and IP, its link closed and its candidates dropped", () => {
    const s = machine({ public: true });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    const liar = generateNodeKey();
    const link = fakeLink(liar, "in", "198.51.100.1");
    step(s, { type: "linkUp", link }, T0, rand);
    s.candidates.add(recordOf(liar, 1), T0);
    const acts = step(s, { type: "lie", sharer: { label: "liar", id: liar.nodeId, ip: "198.51.100.1" }, why: "forged" }, T0, rand);
    expect(acts).toContainEqual({ type: "close", link, reason: MESH_CLOSE.banned });
    expect(s.bans.isBanned(liar.nodeId, T0)).toBe(true);
    expect(s.bans.isBanned("198.51.100.1", T0)).toBe(true);
    expect(s.candidates.size).toBe(0);
    // The same lie again issues no second ban.
    expect(step(s, { type: "lie", sharer: { label: "liar", id: liar.nodeId, ip: "198.51.100.1" }, why: "forged" }, T0, rand)).toEqual([]);
  });
});

describe("record age", () => {
  test("a serving node re-signs its record every record_resign_s, with a higher seq and a fresh issue time", () => {
    const s = machine({ public: true, recordResignMs: 3_600_000, recordMaxAgeMs: 86_400_000 });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    const first = s.own.current()!;
    step(s, { type: "tick" }, T0 + 3_599_000, rand);
    expect(s.own.current()).toBe(first);
    step(s, { type: "tick" }, T0 + 3_600_000, rand);
    const second = s.own.current()!;
    expect(second.seq).toBeGreaterThan(first.seq);
    expect(second.issuedAtMs).toBe(BigInt(T0 + 3_600_000));
    expect(s.events["recordsResigned"]).toBe(1);
  });

  test("a candidate whose record passed record_max_age_s is dropped, even while it is seen", () => {
    const s = machine({ public: true, recordMaxAgeMs: 86_400_000 });
    step(s, { type: "start", helpTargets: 0 }, T0, rand);
    const peer = generateNodeKey();
    s.candidates.add(recordOf(peer, 3), T0);
    for (let t = T0 + 600_000; t <= T0 + 86_400_000; t += 600_000) {
      s.candidates.seen(peer.nodeId, t);
      step(s, { type: "tick" }, t, rand);
    }
    expect(s.candidates.has(peer.nodeId)).toBe(true);
    // Expiry runs with the tick's housekeeping, at most one sweep period later.
    step(s, { type: "tick" }, T0 + 86_400_001 + s.settings.sweepMs, rand);
    expect(s.candidates.has(peer.nodeId)).toBe(false);
  });
});

describe("the shared dial book and back-off", () => {
  test("a cooldown blocks, expires, and the longest one wins", () => {
    const book = createDialBook({ cooldownMs: 1_000 });
    book.coolDown("x", T0, 5_000);
    book.coolDown("x", T0);
    expect(book.blocked("x", T0 + 4_999)).toBe(true);
    expect(book.blocked("x", T0 + 5_000)).toBe(false);
    book.begin("y");
    expect(book.blocked("y", T0)).toBe(true);
    book.end("y");
    expect(book.blocked("y", T0)).toBe(false);
  });

  test("a link that comes up resets the failure count", () => {
    const book = createDialBook({ maxFailures: 2 });
    expect(book.failed("x", T0)).toBe(false);
    book.succeeded("x");
    expect(book.failed("x", T0)).toBe(false);
    expect(book.failed("x", T0)).toBe(true);
  });

  test("the back-off doubles up to its cap and starts over after news", () => {
    const b = createBackoff(3_000, 10_000);
    b.settle(false);
    b.settle(false);
    expect(b.waitMs).toBe(10_000);
    b.settle(true);
    expect(b.waitMs).toBe(3_000);
  });
});
