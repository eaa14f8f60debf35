// Encoded bytes of record objects a node encodes again and again: its own record and its pool's go into
// every peers answer and every peer-cache write. Each object's bytes are remembered beside a snapshot of
// every field, and reused only while the object still equals its snapshot: a record changed in place is
// encoded afresh, so the bytes are always what toBinary would give now.
import { toBinary, type UnknownField } from "@bufbuild/protobuf";
import { NodeRecordSchema, type NodeAddress, type NodeRecord } from "../wire/index.ts";

interface Remembered {
  snap: NodeRecord;
  bytes: Uint8Array;
}

const remembered = new WeakMap<NodeRecord, Remembered>();

/** toBinary(NodeRecordSchema, rec), shared: callers must not change the bytes. */
export function sharedRecordBytes(rec: NodeRecord): Uint8Array {
  const hit = remembered.get(rec);
  if (hit && sameRecord(hit.snap, rec)) return hit.bytes;
  const bytes = toBinary(NodeRecordSchema, rec);
  remembered.set(rec, { snap: snapshot(rec), bytes });
  return bytes;
}

/** PeersAnswer { repeated NodeRecord records = 1 } (proto/mesh.proto), encoded from each record's bytes:
 *  per record the field's tag, the length and the record, as protobuf-es writes it. */
export function encodeRecordList(records: readonly NodeRecord[]): Uint8Array {
  const parts = records.map(sharedRecordBytes);
  let size = 0;
  for (const p of parts) size += 1 + varintSize(p.length) + p.length;
  const out = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    out[o++] = RECORDS_TAG;
    for (let n = p.length; ; n >>>= 7) {
      if (n < 0x80) {
        out[o++] = n;
        break;
      }
      out[o++] = (n & 0x7f) | 0x80;
    }
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Field 1, wire type 2 (length-delimited). */
const RECORDS_TAG = (1 << 3) | 2;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) (n >>>= 7), size++;
  return size;
}

// ---- snapshot and comparison: every field of NodeRecord, NodeAddress and Stake (proto/findings.proto),
// unknown fields included (tests/mesh/record-bytes.test.ts changes each field and expects new bytes) ----

function snapshot(r: NodeRecord): NodeRecord {
  return {
    ...r,
    publicKey: r.publicKey.slice(),
    protocols: [...r.protocols],
    addresses: r.addresses.map((a) => ({ ...a, $unknown: copyUnknown(a.$unknown) })),
    spki: r.spki.slice(),
    kinds: [...r.kinds],
    stakes: r.stakes.map((s) => ({ ...s, $unknown: copyUnknown(s.$unknown) })),
    signature: r.signature.slice(),
    $unknown: copyUnknown(r.$unknown),
  };
}

function copyUnknown(u: UnknownField[] | undefined): UnknownField[] | undefined {
  return u?.map((f) => ({ no: f.no, wireType: f.wireType, data: f.data.slice() }));
}

function sameRecord(a: NodeRecord, b: NodeRecord): boolean {
  return (
    a.nameTag === b.nameTag &&
    a.nat === b.nat &&
    a.identityId === b.identityId &&
    a.seq === b.seq &&
    a.issuedAtMs === b.issuedAtMs &&
    a.version === b.version &&
    sameBytes(a.publicKey, b.publicKey) &&
    sameBytes(a.spki, b.spki) &&
    sameBytes(a.signature, b.signature) &&
    sameStrings(a.protocols, b.protocols) &&
    sameStrings(a.kinds, b.kinds) &&
    sameList(a.addresses, b.addresses, sameAddress) &&
    sameList(a.stakes, b.stakes, (x, y) => x.kind === y.kind && x.address === y.address && sameUnknown(x.$unknown, y.$unknown)) &&
    sameUnknown(a.$unknown, b.$unknown)
  );
}

function sameAddress(x: NodeAddress, y: NodeAddress): boolean {
  return x.ip === y.ip && x.udpPort === y.udpPort && x.tcpPort === y.tcpPort && sameUnknown(x.$unknown, y.$unknown);
}

function sameList<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!same(a[i]!, b[i]!)) return false;
  return true;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return sameList(a, b, (x, y) => x === y);
}

function sameUnknown(a: UnknownField[] | undefined, b: UnknownField[] | undefined): boolean {
  if (!a?.length || !b?.length) return !a?.length && !b?.length;
  return sameList(a, b, (x, y) => x.no === y.no && x.wireType === y.wireType && sameBytes(x.data, y.data));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
