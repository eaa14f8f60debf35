// Remembered record encodings (src/mesh/record-bytes.ts): the bytes are toBinary's, for lists of records as
// for one, and a record changed in place (any field, nested or unknown ones included) is encoded afresh.
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { buildRecord, nextRecordSeq } from "../../src/mesh/record.ts";
import { encodeRecordList, sharedRecordBytes } from "../../src/mesh/record-bytes.ts";
import { NatClass, NodeAddressSchema, NodeRecordSchema, StakeSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { PeersAnswerSchema } from "../../src/wire/index.ts";

const NOW = 1_700_000_000_000;

function record(kinds = ["app:chat"]): NodeRecord {
  return buildRecord(generateNodeKey(), {
    addresses: [{ ip: "203.0.113.1", udpPort: 7788, tcpPort: 7789 }, { ip: "2001:db8::1", udpPort: 1, tcpPort: 2 }],
    spki: new Uint8Array(32).fill(7),
    kinds,
    stakes: { "app:chat": "bc1qexample", "*": "0xdefault" },
    identityId: "box-1",
    seq: nextRecordSeq(undefined, NOW),
    now: NOW,
  });
}

/** `rec` with raw fields appended that this format does not know (field 20 varint, field 21 bytes). */
function withUnknown(rec: NodeRecord): NodeRecord {
  return fromBinary(NodeRecordSchema, Uint8Array.from([...toBinary(NodeRecordSchema, rec), 0xa0, 0x01, 0x05, 0xaa, 0x01, 0x01, 0x41]));
}

describe("record bytes", () => {
  test("a record list is encoded as toBinary encodes a PeersAnswer", () => {
    const big = (() => {
      const r = record();
      r.kinds = Array.from({ length: 3000 }, (_, i) => `app:k${i}`);
      return r;
    })();
    const lists = [[], [record()], Array.from({ length: 20 }, () => record()), [withUnknown(record()), big, record([])]];
    for (const records of lists) {
      expect(encodeRecordList(records)).toEqual(toBinary(PeersAnswerSchema, create(PeersAnswerSchema, { records })));
      // Twice: the second time from the remembered bytes.
      expect(encodeRecordList(records)).toEqual(toBinary(PeersAnswerSchema, create(PeersAnswerSchema, { records })));
    }
  });

  test("a change in place to any field gives fresh bytes", () => {
    const changes: Record<string, (r: NodeRecord) => void> = {
      publicKey: (r) => void (r.publicKey[0]! ^= 1),
      nameTag: (r) => void (r.nameTag = "other"),
      protocols: (r) => void r.protocols.push("x"),
      addresses: (r) => void (r.addresses[1]!.tcpPort += 1),
      spki: (r) => void (r.spki[31]! ^= 1),
      nat: (r) => void (r.nat = NatClass.NAT_FULL_CONE),
      kinds: (r) => void (r.kinds[0] = "app:other"),
      stakes: (r) => void (r.stakes[0]!.address = "bc1qother"),
      identityId: (r) => void (r.identityId = "box-2"),
      seq: (r) => void (r.seq += 1n),
      issuedAtMs: (r) => void (r.issuedAtMs += 1n),
      signature: (r) => void (r.signature[0]! ^= 1),
      version: (r) => void (r.version += 1),
    };
    // Every field of the record has a change here, so a field added to the format cannot be forgotten.
    expect(Object.keys(changes).sort()).toEqual(NodeRecordSchema.fields.map((f) => f.localName).sort());
    const nested: ((r: NodeRecord) => void)[] = [
      (r) => void (r.addresses[0]!.ip = "203.0.113.2"),
      (r) => void (r.addresses[0]!.udpPort += 1),
      (r) => void r.addresses.push(create(NodeAddressSchema, { ip: "198.51.100.1", udpPort: 1, tcpPort: 1 })),
      (r) => void (r.stakes[1]!.kind = "app:x"),
      (r) => void r.stakes.push(create(StakeSchema, { kind: "app:y", address: "y" })),
      (r) => void (r.$unknown![0]!.data[0]! ^= 1),
      (r) => void r.$unknown!.pop(),
      (r) => void (r.addresses[0]!.$unknown = [{ no: 9, wireType: 0, data: Uint8Array.of(1) }]),
    ];
    expect(NodeAddressSchema.fields.map((f) => f.localName).sort()).toEqual(["ip", "tcpPort", "udpPort"]);
    expect(StakeSchema.fields.map((f) => f.localName).sort()).toEqual(["address", "kind"]);
    for (const change of [...Object.values(changes), ...nested]) {
      const rec = withUnknown(record());
      const before = sharedRecordBytes(rec);
      expect(before).toEqual(toBinary(NodeRecordSchema, rec));
      change(rec);
      const after = sharedRecordBytes(rec);
      expect(after).toEqual(toBinary(NodeRecordSchema, rec));
      expect(after).not.toEqual(before);
    }
  });
});
