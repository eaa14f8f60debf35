// Hole punching through real kernel NATs (DESIGN §7, §10): one `findings serve` node in fl-s1, a `findings punch
// --wait` app behind every client of the lab — bare Linux NATs and firewalled home routers of each cone class,
// symmetric, udp-firewall and QUIC-only — and `findings punch <id>` from every other one. Every pair without a
// symmetric side connects, same class included; symmetric connects with public, full-cone, restricted-cone
// (sym-to-restricted), udp-firewall and a port-restricted cone behind a firewalled home router (birthday spray);
// the spray against a port-restricted cone behind a bare Linux NAT runs out its budget with the reason (that
// router re-maps the tuples the spray leaves); symmetric ↔ symmetric and symmetric ↔ QUIC-only are refused by the
// node at once; udp-blocked fails fast. Pairs that share no namespace run at once (scripts/bench/punch-lab.ts
// pairPhases). Plus a random punch and a mapping change behind a NAT. Skips with the reason when namespaces
// cannot be built here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { strategyFor } from "../../src/punch/punch-strategy.ts";
import { labDown, labUnavailableReason, type LabClass } from "./lab.ts";
import { withQuicOnlyRouter } from "./lab-servers.ts";
import {
  expectedOutcome,
  labUpUnshared,
  NAT_OF,
  pairPhases,
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

const CLASSES: LabClass[] = ["public", "fullc", "rc", "prc", "sym", "udpfw", "fullc-fw", "rc-fw", "prc-fw", "sym-fw", "quic-fw", "prc-fw2"];
/** Pairs punched at once (each phase's pairs share no namespace). */
const PHASE_WIDTH = 4;
/** Connected punches of one pair take well under a second in the lab, the spray's budget is ≈ 8.3 s; these leave
 *  room for pairs running at once on a shared machine (command start → link includes bootstrap and join). */
const DIRECT_BUDGET_MS = 6_000;
const SPRAY_BUDGET_MS = 12_000;

describe.skipIf(unavailable !== null)("findings punch in the NAT lab", () => {
  let wasUp = false;
  let node: PunchNode;
  const waiters = new Map<LabClass, Waiter>();
  const extra: LineProc[] = [];

  beforeAll(async () => {
    wasUp = labUpUnshared();
    node = await startPunchNode();
    for (let i = 0; i < CLASSES.length; i += PHASE_WIDTH) {
      const started = await Promise.all(CLASSES.slice(i, i + PHASE_WIDTH).map((c) => startWaiter(c, { server: node.server })));
      for (const w of started) waiters.set(w.cls, w);
    }
  }, 90_000);

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
    expect(waiters.get("prc-fw")!.hello.address).toMatch(/^203\.0\.113\.109:\d+$/);
  });

  /** One punch and what it must show; a label in each compared object names the pair when it fails. */
  async function checkPair(from: LabClass, to: LabClass): Promise<void> {
    const pair = `${from} → ${to}`;
    const waiter = waiters.get(to)!;
    const outcome = expectedOutcome(from, to);
    const strategy = strategyFor(NAT_OF[from], NAT_OF[to]).strategy;
    resetRestrictedConeSeen([from, to]);
    const seen = waiter.lines.length;
    const run = await punchOnce(from, { server: node.server, targetId: waiter.id });
    const r = run.result;
    expect({ pair, result: r !== null }).toEqual({ pair, result: true });
    if (outcome === "refused") {
      expect({ pair, code: run.code, connected: r!.connected, strategy: r!.strategy }).toEqual({ pair, code: 1, connected: false, strategy: "impossible" });
      const why = NAT_OF[from] === "symmetric" && NAT_OF[to] === "symmetric" ? /refused.*both sides are symmetric/ : /refused.*a QUIC-Only box drops the birthday spray's openers/;
      expect({ pair, reason: r!.reason }).toEqual({ pair, reason: expect.stringMatching(why) });
      expect({ pair, fast: (r!.elapsedMs as number) < 1_500 }).toEqual({ pair, fast: true });
      return;
    }
    if (outcome === "fails") {
      expect({ pair, code: run.code, connected: r!.connected, strategy: r!.strategy }).toEqual({ pair, code: 1, connected: false, strategy });
      const why = strategy === "sym-to-cone-spray" ? /none of the cone side's probes met one of the symmetric side's \d+ mappings/ : /no packet from .* reached us/;
      expect({ pair, reason: r!.reason }).toEqual({ pair, reason: expect.stringMatching(why) });
      return;
    }
    expect({ pair, code: run.code, connected: r!.connected, strategy: r!.strategy, reason: r!.reason }).toEqual({ pair, code: 0, connected: true, strategy, reason: undefined });
    expect({ pair, inBudget: (r!.elapsedMs as number) < (strategy === "sym-to-cone-spray" ? SPRAY_BUDGET_MS : DIRECT_BUDGET_MS) }).toEqual({ pair, inBudget: true });
    expect(r!.rttMs as number).toBeGreaterThan(0);
    // The waiting side reports the same attempt as connected; exactly one side dialled.
    const theirs = await waiter.next((o) => o.attemptId === r!.attemptId, 5_000, seen);
    expect({ pair, ...theirs }).toMatchObject({ pair, connected: true, strategy });
    expect(new Set([r!.role, theirs.role])).toEqual(new Set(["dial", "listen"]));
  }

  for (const [i, phase] of pairPhases(CLASSES, PHASE_WIDTH).entries()) {
    const label = phase.map(([a, b]) => `${a} → ${b}: ${expectedOutcome(a, b)}`).join("; ");
    test(`phase ${i + 1}: ${label}`, async () => {
      const results = await Promise.allSettled(phase.map(([from, to]) => checkPair(from, to)));
      const failed = results.flatMap((x, k) => (x.status === "rejected" ? [`${phase[k]!.join(" → ")}: ${String(x.reason instanceof Error ? x.reason.message : x.reason)}`] : []));
      expect(failed).toEqual([]);
    }, 40_000);
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
