// The pure parts of the NAT'd-node service: the network's pool kind, the stakes a node serves it with, and which
// public node a NAT'd node joins.
import { describe, expect, test } from "bun:test";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { buildRecord, nextRecordSeq, recordNodeId } from "../../src/mesh/record.ts";
import { natdKind, pickPoolNode, withNetworkKind } from "../../src/natd/natd-parts.ts";
import { seeded } from "../seeded.ts";

const NOW = 1_700_000_000_000;
const rec = (ip: string, udpPort = 7788) =>
  buildRecord(generateNodeKey(), { addresses: [{ ip, udpPort, tcpPort: 7788 }], spki: new Uint8Array(32), kinds: [], stakes: {}, identityId: "", seq: nextRecordSeq(undefined, NOW), now: NOW });

describe("the network's own kind", () => {
  test("is findings:<network>, served with the configured or the default address", () => {
    expect(natdKind("main")).toBe("findings:main");
    expect(withNetworkKind({ "*": "0xD", "app:chat": "" }, "main")).toEqual({ "*": "0xD", "app:chat": "", "findings:main": "" });
    expect(withNetworkKind({ "findings:main": "0xF" }, "main")).toEqual({ "findings:main": "0xF" });
  });
});

describe("the pool node a NAT'd node joins", () => {
  const a = rec("203.0.113.1");
  const b = rec("203.0.113.2");
  const noUdp = rec("203.0.113.3", 0);
  const none = () => false;

  test("none while no candidate with a UDP port is known", () => {
    expect(pickPoolNode([], { banned: none })).toBeNull();
    expect(pickPoolNode([noUdp], { banned: none })).toBeNull();
  });

  test("one at a configured peer's IP first, else any; never a banned or avoided one", () => {
    const rand = seeded(7);
    for (let i = 0; i < 20; i++) expect(pickPoolNode([a, b], { banned: none, preferIps: ["203.0.113.2"], rand })!.ip).toBe("203.0.113.2");
    const seen = new Set(Array.from({ length: 40 }, () => pickPoolNode([a, b], { banned: none, rand })!.ip));
    expect(seen).toEqual(new Set(["203.0.113.1", "203.0.113.2"]));
    expect(pickPoolNode([a, b], { banned: (id) => id === recordNodeId(b), preferIps: ["203.0.113.2"], rand })!.ip).toBe("203.0.113.1");
    expect(pickPoolNode([a, b], { banned: none, avoid: new Set([recordNodeId(a)]), rand })).toMatchObject({ ip: "203.0.113.2", port: 7788, id: recordNodeId(b) });
  });
});
