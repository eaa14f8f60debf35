// Server groups: same stake address per kind, told apart by identity id (seed 001 §服务器群, DESIGN §8).
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { NodeRecordSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { recordNodeId } from "../../src/mesh/record.ts";
import { groupByStake, toProtoGroup } from "../../src/mesh/search-groups.ts";

function rec(keyByte: number, kinds: string[], stakes: Record<string, string>, identityId = ""): NodeRecord {
  return create(NodeRecordSchema, {
    publicKey: new Uint8Array(32).fill(keyByte),
    kinds,
    stakes: Object.entries(stakes).map(([kind, address]) => ({ kind, address })),
    identityId,
    seq: 1n,
  });
}

describe("groupByStake", () => {
  const a = rec(1, ["blockchain:bitcoin"], { "blockchain:bitcoin": "bc1group" }, "tokyo-2");
  const b = rec(2, ["blockchain:bitcoin"], { "blockchain:bitcoin": "bc1group" }, "tokyo-1");
  const c = rec(3, ["blockchain:bitcoin"], { "*": "bc1solo" }, "home");
  const d = rec(4, ["blockchain:bitcoin"], { "app:chat": "xyz" }); // no stake for bitcoin, no default
  const e = rec(5, ["app:chat"], { "blockchain:bitcoin": "bc1group" }); // does not serve bitcoin

  test("nodes with the same stake address for the kind form one group, largest first", () => {
    const groups = groupByStake([c, a, b, d, e], "blockchain:bitcoin");
    expect(groups.map((g) => [g.stakeAddress, g.members.length])).toEqual([
      ["bc1group", 2],
      ["bc1solo", 1],
    ]);
  });

  test("members carry node id and identity id, sorted by identity id", () => {
    const [group] = groupByStake([a, b], "blockchain:bitcoin");
    expect(group!.members).toEqual([
      { nodeId: recordNodeId(b), identityId: "tokyo-1" },
      { nodeId: recordNodeId(a), identityId: "tokyo-2" },
    ]);
    expect(group!.kind).toBe("blockchain:bitcoin");
  });

  test("the default '*' stake counts when the kind has no own entry, and a node listed twice counts once", () => {
    const groups = groupByStake([c, c], "blockchain:bitcoin");
    expect(groups).toEqual([{ kind: "blockchain:bitcoin", stakeAddress: "bc1solo", members: [{ nodeId: recordNodeId(c), identityId: "home" }] }]);
  });

  test("nodes without a stake address or not serving the kind are in no group", () => {
    expect(groupByStake([d, e], "blockchain:bitcoin")).toEqual([]);
  });

  test("the wire form lists node ids and identity ids in parallel", () => {
    const g = toProtoGroup(groupByStake([a, b], "blockchain:bitcoin")[0]!);
    expect(g.nodeIds).toEqual([recordNodeId(b), recordNodeId(a)]);
    expect(g.identityIds).toEqual(["tokyo-1", "tokyo-2"]);
    expect(g.stakeAddress).toBe("bc1group");
  });
});
