// The signed bytes of a record cut from its encoding (src/mesh/record-signed.ts) are the bytes of the
// record re-encoded with an empty signature, for any record, unknown fields included; what the walk
// does not take apart falls back to re-encoding, and verification gives the same answers.
import { describe, expect, test } from "bun:test";
import { clone, fromBinary, toBinary } from "@bufbuild/protobuf";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { buildRecord, decodeRecord, nextRecordSeq, signRecord, verifyRecord } from "../../src/mesh/record.ts";
import { labelled, signedBytesOf } from "../../src/mesh/record-signed.ts";
import { NodeRecordSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";

const NOW = 1_700_000_000_000;

function record(over: Partial<Parameters<typeof buildRecord>[1]> = {}, key = generateNodeKey()): NodeRecord {
  return buildRecord(key, {
    addresses: [{ ip: "203.0.113.1", udpPort: 7788, tcpPort: 7789 }],
    spki: new Uint8Array(32).fill(7),
    kinds: ["blockchain:bitcoin", "app:chat"],
    stakes: { "blockchain:bitcoin": "bc1qexampleaddress", "*": "0xdefault" },
    identityId: "box-1",
    seq: nextRecordSeq(undefined, NOW),
    now: NOW,
    ...over,
  });
}

/** The definition: label ‖ 0 ‖ a copy encoded with an empty signature. */
function reference(rec: NodeRecord): Uint8Array {
  const copy = clone(NodeRecordSchema, rec);
  copy.signature = new Uint8Array(0);
  return labelled(toBinary(NodeRecordSchema, copy));
}

/** `rec` encoded, then `extra` raw fields appended (fields this format does not know), decoded again. */
function withUnknown(rec: NodeRecord, extra: number[]): NodeRecord {
  return fromBinary(NodeRecordSchema, Uint8Array.from([...toBinary(NodeRecordSchema, rec), ...extra]));
}

describe("signed bytes from the encoding", () => {
  test("equal the re-encoded copy: plain, dual-stack, no kinds, unsigned, unknown fields", () => {
    const plain = record();
    const cases: NodeRecord[] = [
      plain,
      record({ addresses: [{ ip: "203.0.113.1", udpPort: 1, tcpPort: 2 }, { ip: "2001:db8::1", udpPort: 3, tcpPort: 4 }] }),
      record({ kinds: [], stakes: {}, identityId: "" }),
      { ...clone(NodeRecordSchema, plain), signature: new Uint8Array(0) },
      // Field 20 varint, field 21 bytes, field 22 fixed32, field 23 fixed64.
      withUnknown(plain, [0xa0, 0x01, 0x96, 0x01, 0xaa, 0x01, 0x02, 0x68, 0x69, 0xb5, 0x01, 1, 2, 3, 4, 0xb9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]),
    ];
    for (const rec of cases) expect(signedBytesOf(toBinary(NodeRecordSchema, rec))).toEqual(reference(rec));
  });

  test("a group or a truncated field is left to the re-encoding path, and verification still holds", () => {
    const rec = record();
    // Field 20 as a start-group / end-group pair.
    const grouped = withUnknown(rec, [0xa3, 0x01, 0xa4, 0x01]);
    expect(signedBytesOf(toBinary(NodeRecordSchema, grouped))).toBeNull();
    expect(signedBytesOf(Uint8Array.from([0x0a, 0x20, 1, 2]))).toBeNull();
    expect(signedBytesOf(Uint8Array.from([0x80]))).toBeNull();
    // The unknown group is covered by the signature: unsigned it fails, re-signed it verifies.
    expect(verifyRecord(grouped, NOW).ok).toBe(false);
    const key = generateNodeKey();
    const signed = signRecord(withUnknown(record({}, key), [0xa3, 0x01, 0xa4, 0x01]), key.privateKey);
    expect(verifyRecord(signed, NOW)).toEqual({ ok: true });
  });

  test("verification answers as before: good, a changed field, a changed signature", () => {
    const rec = record();
    expect(verifyRecord(rec, NOW)).toEqual({ ok: true });
    expect(verifyRecord(decodeRecord(toBinary(NodeRecordSchema, rec)), NOW)).toEqual({ ok: true });
    expect(verifyRecord({ ...clone(NodeRecordSchema, rec), identityId: "box-2" }, NOW)).toMatchObject({ ok: false, reason: "bad-signature" });
    const sig = rec.signature.slice();
    sig[0]! ^= 1;
    expect(verifyRecord({ ...clone(NodeRecordSchema, rec), signature: sig }, NOW)).toMatchObject({ ok: false, reason: "bad-signature" });
  });
});
