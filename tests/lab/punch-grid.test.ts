// Hole punching through real kernel NATs (DESIGN §7, §10): one `findings serve` node in fl-s1, a `findings punch
// --wait` app behind each NAT class, and `findings punch <id>` from every other class. Every pair among public,
// full-cone, restricted-cone, port-restricted-cone and udp-firewall connects; symmetric connects with public,
// full-cone, restricted-cone (sym-to-restricted) and udp-firewall (the birthday spray beats it); symmetric ↔
// port-restricted-cone and symmetric ↔ symmetric are refused by the node at once, udp-blocked fails fast, each with
// a clear reason. Plus a random punch and a mapping change behind a NAT. Skips with the reason when namespaces
// cannot be built here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { strategyFor } from "../../src/punch/punch-strategy.ts";
import { labDown, labUnavailableReason, labUp, type LabClass } from "./lab.ts";
import { labIsUp, withQuicOnlyRouter } from "./lab-servers.ts";
import {
  expectedOutcome,
  foreignRouterTables,
  NAT_OF,
  punchOnce,
  removeAppHomes,
  resetRestrictedConeSeen,
  startKeeper,
  startPunchNode,
  startWaiter,
  type LineProc,
  type PunchNode,
  type Waiter,
} from "../../scripts/bench/punch-lab.ts";
import { holdLabLock } from "./lab-lock.ts";

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`SKIPPED: the NAT lab cannot run here: ${unavailable}`);
// The lab is machine-wide: hold it for this whole file, so another run's lab tests wait (tests/lab/lab-lock.ts).
const releaseLab = unavailable === null ? await holdLabLock() : async () => {};
afterAll(releaseLab);

const CLASSES: LabClass[] = ["public", "fullc", "rc", "prc", "sym", "udpfw"];
/** Connected punches of one pair take well under a second in the lab; the spray's budget is ≈ 8.3 s. */
const DIRECT_BUDGET_MS = 3_000;
const SPRAY_BUDGET_MS = 9_500;

describe.skipIf(unavailable !== null)("findings punch in the NAT lab", () => {
  let wasUp = false;
  let node: PunchNode;
  const waiters = new Map<LabClass, Waiter>();
  const extra: LineProc[] = [];

  beforeAll(async () => {
    wasUp = labIsUp();
    labUp();
    const foreign = foreignRouterTables();
    if (foreign.length) throw new Error(`the lab's routers carry rules of someone else's test (${foreign.join("; ")}); run again when it is done`);
    node = await startPunchNode();
    const started = await Promise.all(CLASSES.map((c) => startWaiter(c, { server: node.server })));
    for (const w of started) waiters.set(w.cls, w);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...waiters.values(), ...extra].map((w) => w.stop()));
    await node?.stop();
    removeAppHomes();
    if (!wasUp) labDown();
  }, 30_000);

  test("each waiting app joined from its NAT's public address and got the node's stake address", () => {
    for (const w of waiters.values()) {
      expect(w.hello).toMatchObject({ kind: "app:chat", nat: NAT_OF[w.cls], stakeAddress: "0xLABDEFAULT", stakeSource: "default", identityId: node.id });
    }
    expect(waiters.get("prc")!.hello.address).toMatch(/^203\.0\.113\.103:\d+$/);
    expect(waiters.get("udpfw")!.hello.address).toMatch(/^198\.51\.100\.2:\d+$/);
  });

  for (const from of CLASSES) {
    for (const to of CLASSES) {
      if (from === to) continue;
      const strategy = strategyFor(NAT_OF[from], NAT_OF[to]).strategy;
      if (expectedOutcome(from, to) === "refused") {
        test(`${NAT_OF[from]} → ${NAT_OF[to]}: refused at once with the reason (no spray against a Linux NAT)`, async () => {
          const run = await punchOnce(from, { server: node.server, targetId: waiters.get(to)!.id });
          expect(run.code).toBe(1);
          expect(run.result).toMatchObject({ connected: false, strategy: "impossible" });
          expect(run.result!.reason).toMatch(/refused.*a birthday spray cannot meet a NAT that re-maps/);
          expect(run.result!.elapsedMs as number).toBeLessThan(1_500);
          expect(run.stderr.trim().split("\n")).toHaveLength(1);
        }, 20_000);
        continue;
      }
      test(`${NAT_OF[from]} → ${NAT_OF[to]}: connects (${strategy})`, async () => {
        resetRestrictedConeSeen();
        const waiter = waiters.get(to)!;
        const seen = waiter.lines.length;
        const run = await punchOnce(from, { server: node.server, targetId: waiter.id });
        const r = run.result;
        expect(r).not.toBeNull();
        expect({ code: run.code, connected: r!.connected, strategy: r!.strategy, reason: r!.reason }).toEqual({ code: 0, connected: true, strategy, reason: undefined });
        expect(r!.elapsedMs as number).toBeLessThan(strategy === "sym-to-cone-spray" ? SPRAY_BUDGET_MS : DIRECT_BUDGET_MS);
        expect(r!.rttMs as number).toBeGreaterThan(0);
        // The waiting side reports the same attempt as connected; exactly one side dialled.
        const theirs = await waiter.next((o) => o.attemptId === r!.attemptId, 5_000, seen);
        expect(theirs).toMatchObject({ connected: true, strategy });
        expect(new Set([r!.role, theirs.role])).toEqual(new Set(["dial", "listen"]));
      }, 20_000);
    }
  }

  test("symmetric ↔ symmetric is refused by the node at once, with the reason", async () => {
    const run = await punchOnce("sym", { server: node.server, targetId: waiters.get("sym")!.id, name: "punch-sym-2" });
    expect(run.code).toBe(1);
    expect(run.result).toMatchObject({ connected: false, strategy: "impossible" });
    expect(run.result!.reason).toMatch(/refused.*symmetric ↔ symmetric: both sides are symmetric/);
    expect(run.result!.elapsedMs as number).toBeLessThan(1_500);
  }, 20_000);

  test("an app behind a UDP-blocking NAT fails fast: it cannot reach the node over QUIC", async () => {
    const run = await punchOnce("udpblk", { server: node.server, targetId: waiters.get("public")!.id, extra: ["--timeout", "5"] });
    expect(run.code).toBe(1);
    expect(run.result).toMatchObject({ connected: false });
    expect(run.result!.reason).toMatch(/cannot reach the node 203\.0\.113\.1:\d+ over QUIC in time \(UDP blocked\?\)/);
    expect(run.result!.elapsedMs as number).toBeLessThan(6_000);
  }, 20_000);

  test("QUIC-Only (a router that passes only QUIC) ↔ restricted cone and ↔ UDP firewall connect both ways; the QUIC-Only side dials", async () => {
    await withQuicOnlyRouter(async () => {
      const qo = await startWaiter("prc", { server: node.server, name: "wait-quic-only", nat: "quic-only" });
      extra.push(qo);
      // Leaves the pool afterwards: later random punches must not pick a QUIC-Only member without its router.
      try {
        for (const peer of ["rc", "udpfw"] as LabClass[]) {
          resetRestrictedConeSeen();
          const seen = qo.lines.length;
          const to = await punchOnce(peer, { server: node.server, targetId: qo.id, name: `punch-${peer}-to-qo` });
          expect({ code: to.code, connected: to.result?.connected, strategy: to.result?.strategy, role: to.result?.role, reason: to.result?.reason }).toEqual({
            code: 0,
            connected: true,
            strategy: "simultaneous",
            role: "listen",
            reason: undefined,
          });
          expect(await qo.next((o) => o.attemptId === to.result!.attemptId, 5_000, seen)).toMatchObject({ connected: true, role: "dial" });
          resetRestrictedConeSeen();
          const from = await punchOnce("prc", { server: node.server, targetId: waiters.get(peer)!.id, nat: "quic-only", name: "punch-qo" });
          expect({ code: from.code, connected: from.result?.connected, role: from.result?.role, reason: from.result?.reason }).toEqual({ code: 0, connected: true, role: "dial", reason: undefined });
        }
      } finally {
        await qo.stop();
      }
    });
  }, 40_000);

  test("a random punch from behind a restricted cone reaches several members at once", async () => {
    resetRestrictedConeSeen();
    const run = await punchOnce("rc", { server: node.server, targetId: null, name: "punch-rc-random", extra: ["--max", "3"] });
    expect(run.code).toBe(0);
    const attempts = run.result!.attempts as { connected: boolean; peerId: string; peerNat: string }[];
    expect(attempts).toHaveLength(3);
    // The node prefers surer strategies: direct (Public/FullC) and simultaneous peers, never a spray.
    for (const a of attempts) expect(a).toMatchObject({ connected: true });
  }, 20_000);

  test("mapping change behind a NAT: the app restarts on a new port and its peer reconnects without asking", async () => {
    resetRestrictedConeSeen();
    const moving = await startWaiter("prc", { server: node.server, name: "moving-prc", port: 40_101 });
    extra.push(moving);
    const keeper = startKeeper("rc", { server: node.server, targetId: moving.id });
    extra.push(keeper);
    const first = await keeper.next((o) => o.connected === true, 10_000);
    expect(first.peerId).toBe(moving.id);
    await moving.stop("SIGKILL");
    const seen = keeper.lines.length;
    const again = await startWaiter("prc", { server: node.server, name: "moving-prc", port: 40_102 });
    extra.push(again);
    expect(again.id).toBe(moving.id);
    expect(again.hello.address).not.toBe(moving.hello.address);
    const second = await keeper.next((o) => o.connected === true, 10_000, seen);
    expect(second).toMatchObject({ peerId: moving.id, strategy: "simultaneous" });
    expect(second.peer).toMatch(/^203\.0\.113\.103:\d+$/);
    // The restarted app got the re-offer too and reports the same attempt.
    await again.next((o) => o.connected === true && o.attemptId === second.attemptId, 5_000);
  }, 40_000);
});
