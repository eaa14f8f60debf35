// Brokered-pair memory for signalling coordination (seed 000 §信令协调).
import { describe, expect, test } from "bun:test";
import { createPunchPairs } from "../../src/punch/punch-pairs.ts";
import { T0 } from "./punch-helpers.ts";

const m = (nodeId: string, kind = "app:chat") => ({ nodeId, kind });

describe("punch pairs", () => {
  test("a brokered pair is remembered on both sides, newest partner first", () => {
    const pairs = createPunchPairs();
    pairs.note(m("a"), m("b"), T0);
    pairs.note(m("a"), m("c", "app:game"), T0 + 1);
    expect(pairs.partnersOf("a", T0 + 2).map((p) => p.nodeId)).toEqual(["c", "b"]);
    expect(pairs.partnersOf("c", T0 + 2)).toEqual([{ nodeId: "a", kind: "app:chat", at: T0 + 1 }]);
  });

  test("partners older than the TTL are not re-brokered and expire", () => {
    const pairs = createPunchPairs({ ttlMs: 1000 });
    pairs.note(m("a"), m("b"), T0);
    expect(pairs.partnersOf("a", T0 + 1000)).toHaveLength(1);
    expect(pairs.partnersOf("a", T0 + 1001)).toHaveLength(0);
    pairs.expire(T0 + 1001);
    expect(pairs.size).toBe(0);
  });

  test("at most maxPartners per node, the oldest forgotten first", () => {
    const pairs = createPunchPairs({ maxPartners: 2 });
    pairs.note(m("a"), m("b"), T0);
    pairs.note(m("a"), m("c"), T0 + 1);
    pairs.note(m("a"), m("d"), T0 + 2);
    expect(pairs.partnersOf("a", T0 + 3).map((p) => p.nodeId)).toEqual(["d", "c"]);
  });

  test("forget removes a node on both sides; a self pair is ignored", () => {
    const pairs = createPunchPairs();
    pairs.note(m("a"), m("b"), T0);
    pairs.note(m("a"), m("a"), T0);
    pairs.forget("b");
    expect(pairs.partnersOf("a", T0)).toEqual([]);
    expect(pairs.size).toBe(0);
  });
});
