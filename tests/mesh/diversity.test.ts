// Diversity of the pools: at most candidates_per_prefix candidates and mesh_per_prefix links per direction
// from one IPv4 /24 or IPv6 /48, whatever the number of keys behind it.
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { NodeAddressSchema, NodeRecordSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { createCandidatePool } from "../../src/mesh/candidate-pool.ts";
import { createMeshPool } from "../../src/mesh/mesh-pool.ts";
import { recordNodeId } from "../../src/mesh/record.ts";
import { netPrefixOf } from "../../src/rpc/ip-prefix.ts";

const T0 = 1_700_000_000_000;
let counter = 0;
function rec(ip: string): NodeRecord {
  counter++;
  return create(NodeRecordSchema, {
    publicKey: Uint8Array.from({ length: 32 }, (_, i) => (i < 4 ? (counter >>> (i * 8)) & 0xff : 0x55)),
    addresses: [create(NodeAddressSchema, { ip, udpPort: 7788, tcpPort: 7788 })],
    seq: 1n,
    signature: Uint8Array.from({ length: 64 }, (_, i) => (counter + i) & 0xff),
  });
}

describe("netPrefixOf", () => {
  test("an IPv4 address is its /24, an IPv6 address its /48, a mapped IPv4 address its /24", () => {
    expect(netPrefixOf("203.0.113.77")).toBe("203.0.113.0/24");
    expect(netPrefixOf("2001:db8:aa:bb::1")).toBe("2001:db8:aa::/48");
    expect(netPrefixOf("2001:db8:aa:ffff:1:2:3:4")).toBe("2001:db8:aa::/48");
    expect(netPrefixOf("::ffff:203.0.113.9")).toBe("203.0.113.0/24");
  });
});

describe("candidate pool", () => {
  test("a /24 gets perPrefix candidates; more keys from it are crowded out, other networks still get in", () => {
    const pool = createCandidatePool({ selfId: "f".repeat(64), perPrefix: 3 });
    const crowd = Array.from({ length: 10 }, (_, i) => rec(`198.51.100.${i + 1}`));
    const plan = pool.planMerge(crowd, T0);
    expect(plan.check.length).toBe(3);
    expect(plan.skipped.filter((s) => s.reason === "crowded").length).toBe(7);
    for (const r of crowd) pool.add(r, T0);
    expect(pool.size).toBe(3);
    expect(pool.add(rec("198.51.100.200"), T0).outcome).toBe("crowded");
    expect(pool.add(rec("192.0.2.1"), T0).outcome).toBe("added");
  });

  test("IPv6 keys from one /48 count together, even from different /64s", () => {
    const pool = createCandidatePool({ selfId: "f".repeat(64), perPrefix: 2 });
    const outcomes = ["2001:db8:1:1::1", "2001:db8:1:2::1", "2001:db8:1:3::1", "2001:db8:2::1"].map((ip) => pool.add(rec(ip), T0).outcome);
    expect(outcomes).toEqual(["added", "added", "crowded", "added"]);
  });

  test("a node that moves within its /24 (new key at the same address) is not crowded out", () => {
    const pool = createCandidatePool({ selfId: "f".repeat(64), perPrefix: 2 });
    pool.add(rec("198.51.100.1"), T0);
    pool.add(rec("198.51.100.2"), T0);
    const restarted = rec("198.51.100.2");
    expect(pool.add(restarted, T0).outcome).toBe("added");
    expect(pool.has(recordNodeId(restarted))).toBe(true);
    expect(pool.size).toBe(2);
  });
});

describe("mesh pool", () => {
  test("each direction holds perPrefix links of one network; the slot frees when one closes", () => {
    const pool = createMeshPool({ maxIn: 8, maxOut: 8, perPrefix: 2 });
    const net = netPrefixOf("198.51.100.1");
    expect(pool.add({ id: "a", direction: "in", openedAt: 0, prefix: net })).toBe("added");
    expect(pool.add({ id: "b", direction: "in", openedAt: 0, prefix: net })).toBe("added");
    expect(pool.add({ id: "c", direction: "in", openedAt: 0, prefix: net })).toBe("crowded");
    expect(pool.hasRoomFor("in", net)).toBe(false);
    expect(pool.add({ id: "c", direction: "out", openedAt: 0, prefix: net })).toBe("added");
    expect(pool.add({ id: "d", direction: "in", openedAt: 0, prefix: netPrefixOf("192.0.2.1") })).toBe("added");
    pool.remove("a");
    expect(pool.add({ id: "e", direction: "in", openedAt: 0, prefix: net })).toBe("added");
  });
});
