// Framing honest relays: a failed key check is evidence against the named node's record only, never against the honest node that relayed it (src/mesh/record-merge.ts).
//
// 1. A hostile node M passes the key check of one honest node H (it tells checkers apart: the
//    challenger's key is in clear), so H holds and relays M's record; M then fails the check of
//    every other node. T, which learns M's record from H, must not ban H.
// 2. No attacker: H relays the record of a node X that has since been replaced at its address by
//    another node (a restart with a new key). T's check of the stale record fails; H did nothing
//    wrong and T must not ban it.
import { afterEach, describe, expect, test } from "bun:test";
import { METHOD } from "../../src/rpc/methods.ts";
import { answerKeyCheck } from "../../src/mesh/record-check.ts";
import { Status } from "../../src/wire/codec.ts";
import { until } from "../wait.ts";
import { challengerOf, createAdversaryNet, sameKey } from "./hostile-node.ts";
import type { FindingsNode } from "../../src/node.ts";

const net = await createAdversaryNet("framing");
afterEach(() => net.stopAll());

const candidateIds = (n: FindingsNode) => n.meshService.status().candidates.map((c) => c.id);
const keyChecksFailed = (n: FindingsNode) => n.meshService.status().counters.events["checksKeyFailed"] ?? 0;

describe("a failed key check bans nobody who relayed the record", () => {
  test("a node that passes one checker and fails the others does not get its relay banned", async () => {
    const h = await net.honest(1, { public: true });
    const m = await net.hostile(2);
    // M answers H's checks honestly and refuses everyone else's.
    m.serve(METHOD.mesh.keyCheck, (payload) =>
      sameKey(challengerOf(payload), h.key.publicKey) ? answerKeyCheck(m.key, payload, m.record) : { status: Status.UNAUTHENTICATED, error: "cannot open" },
    );
    await m.dialMesh(h);
    await until(() => candidateIds(h).includes(m.key.nodeId), { what: "H checked and holds M's record" });

    // T joins through H and learns M's record from it.
    const t = await net.honest(3, { peers: [net.peerOf(h)] });
    await until(() => keyChecksFailed(t) >= 1, { what: "T's key check of M failed" });
    const st = t.meshService.status();
    expect(st.bans).toEqual([]);
    expect(candidateIds(t)).not.toContain(m.key.nodeId);
    // T keeps H: its candidate and a mesh link to it.
    await until(() => candidateIds(t).includes(h.key.nodeId) && t.meshService.status().mesh.links.some((l) => l.peer === h.key.nodeId), { what: "T keeps H" });
    expect(h.meshService.status().bans).toEqual([]);
  });

  test("a stale record (its node replaced at its address) does not get its relay banned", async () => {
    const h = await net.honest(1, { public: true });
    const x = await net.honest(2, { peers: [net.peerOf(h)] });
    await until(() => candidateIds(h).includes(x.key.nodeId), { what: "H holds X's record" });
    await x.stop();
    // Another node (a new key) now serves at X's address.
    const y = await net.honest(2, { public: true });
    expect(y.key.nodeId).not.toBe(x.key.nodeId);

    const t = await net.honest(3, { peers: [net.peerOf(h)] });
    await until(() => keyChecksFailed(t) >= 1, { what: "T's key check of X's stale record failed" });
    expect(t.meshService.status().bans).toEqual([]);
    expect(candidateIds(t)).not.toContain(x.key.nodeId);
    await until(() => candidateIds(t).includes(h.key.nodeId) && t.meshService.status().mesh.links.some((l) => l.peer === h.key.nodeId), { what: "T keeps H" });
  });
});
