// Stake answer per kind on join (seed 000 §经济激励, seed 001 §服务器群).
import { describe, expect, test } from "bun:test";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { buildRecord, stakeFor } from "../../src/mesh/record.ts";
import { bootstrapStake, identityIdOf, isBlockchainKind, servedKinds, stakeAnswer } from "../../src/punch/stakes.ts";

const NODE = "ab".repeat(32);
const STAKES = {
  "*": "bc1qdefault",
  "blockchain:ethereum": "0xEthAddress",
  "blockchain:monero": "",
  "app:chat": "",
  "app:paid": "app-own-address",
};

describe("stakeAnswer", () => {
  test("a blockchain kind gets that chain's own address", () => {
    const r = stakeAnswer("blockchain:ethereum", { stakes: STAKES, userId: "", nodeId: NODE });
    expect(r).toEqual({ ok: true, answer: { kind: "blockchain:ethereum", stakeAddress: "0xEthAddress", source: "kind", identityId: NODE, foreignChain: false } });
  });

  test("a non-blockchain kind without its own address gets the default \"*\" address", () => {
    const r = stakeAnswer("app:chat", { stakes: STAKES, userId: "", nodeId: NODE });
    expect(r.ok && r.answer).toMatchObject({ stakeAddress: "bc1qdefault", source: "default", foreignChain: false });
  });

  test("a non-blockchain kind with its own address gets it", () => {
    const r = stakeAnswer("app:paid", { stakes: STAKES, userId: "", nodeId: NODE });
    expect(r.ok && r.answer).toMatchObject({ stakeAddress: "app-own-address", source: "kind" });
  });

  test("a blockchain kind without its own address gets \"*\" flagged as possibly another chain's", () => {
    const r = stakeAnswer("blockchain:monero", { stakes: STAKES, userId: "", nodeId: NODE });
    expect(r.ok && r.answer).toMatchObject({ stakeAddress: "bc1qdefault", source: "default", foreignChain: true });
  });

  test("no address at all gives an empty address with source none", () => {
    const r = stakeAnswer("app:chat", { stakes: { "app:chat": "" }, userId: "", nodeId: NODE });
    expect(r.ok && r.answer).toMatchObject({ stakeAddress: "", source: "none" });
  });

  test("an unserved kind is refused with the served kinds named", () => {
    const r = stakeAnswer("blockchain:bitcoin", { stakes: STAKES, userId: "", nodeId: NODE });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toBe("kind-not-served");
    expect(r.message).toContain("app:chat, app:paid, blockchain:ethereum, blockchain:monero");
  });

  test("\"*\" supplies the default address but is not a kind served", () => {
    expect(servedKinds(STAKES)).not.toContain("*");
    expect(stakeAnswer("*", { stakes: STAKES, userId: "", nodeId: NODE }).ok).toBe(false);
    expect(stakeAnswer("app:other", { stakes: { "*": "x" }, userId: "", nodeId: NODE }).ok).toBe(false);
  });

  test("identity id is user_id when set, else the node id", () => {
    expect(identityIdOf({ userId: "bc1qmember7", nodeId: NODE })).toBe("bc1qmember7");
    expect(identityIdOf({ userId: "", nodeId: NODE })).toBe(NODE);
    const r = stakeAnswer("app:chat", { stakes: STAKES, userId: "bc1qmember7", nodeId: NODE });
    expect(r.ok && r.answer.identityId).toBe("bc1qmember7");
  });

  test("isBlockchainKind needs the prefix and a name", () => {
    expect(isBlockchainKind("blockchain:bitcoin")).toBe(true);
    expect(isBlockchainKind("blockchain:")).toBe(false);
    expect(isBlockchainKind("app:blockchain")).toBe(false);
  });

  test("the join answer equals what the node's own record advertises (stakeFor) for every served kind", () => {
    const key = generateNodeKey();
    const now = Date.now();
    const rec = buildRecord(key, {
      addresses: [{ ip: "203.0.113.1", udpPort: 7788, tcpPort: 7788 }],
      spki: new Uint8Array(32).fill(7),
      kinds: servedKinds(STAKES),
      stakes: STAKES,
      seq: 1,
      now,
    });
    for (const kind of servedKinds(STAKES)) {
      const r = stakeAnswer(kind, { stakes: STAKES, userId: "", nodeId: key.nodeId });
      expect(r.ok && r.answer.stakeAddress).toBe(stakeFor(rec, kind) ?? "");
    }
  });
});

describe("bootstrapStake (the reward address in every app bootstrap answer)", () => {
  const config = { stakes: STAKES, userId: "alice", nodeId: NODE };

  test("a served kind with its own address gets it; without one, the general address", () => {
    expect(bootstrapStake("app:paid", config)).toEqual({ stakeAddress: "app-own-address", stakeSource: "kind", identityId: "alice" });
    expect(bootstrapStake("blockchain:ethereum", config)).toMatchObject({ stakeAddress: "0xEthAddress", stakeSource: "kind" });
    expect(bootstrapStake("app:chat", config)).toMatchObject({ stakeAddress: "bc1qdefault", stakeSource: "default" });
  });

  test("no kind, or a kind the node does not serve, is not refused: the general address", () => {
    expect(bootstrapStake("", config)).toEqual({ stakeAddress: "bc1qdefault", stakeSource: "default", identityId: "alice" });
    expect(bootstrapStake("app:unknown", config)).toMatchObject({ stakeAddress: "bc1qdefault", stakeSource: "default" });
    expect(bootstrapStake("*", config)).toMatchObject({ stakeAddress: "bc1qdefault", stakeSource: "default" });
  });

  test("a node without any address says none, and its node id when user_id is empty", () => {
    expect(bootstrapStake("app:x", { stakes: { "app:x": "" }, userId: "", nodeId: NODE })).toEqual({ stakeAddress: "", stakeSource: "none", identityId: NODE });
  });
});
