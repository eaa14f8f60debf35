// The bytes a record signature covers, from the record's encoding (record.ts signedBytes): the purpose
// label, a zero byte, then the record encoded with an empty signature. protobuf-es encodes each field on
// its own (number order, unknown fields last) and omits an empty bytes field, so that encoding is the
// full encoding with the signature field's bytes cut out: one encode serves the size check, the memo
// and the signed bytes, without a clone and a second encode per verification.
import { SEAL_PURPOSE } from "../constants.ts";

/** NodeRecord.signature (proto/findings.proto). */
const SIGNATURE_FIELD = 13;
/** Protobuf wire types (protobuf encoding spec). */
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const LABEL = new TextEncoder().encode(SEAL_PURPOSE.record);

/** label ‖ 0 ‖ `body`: what the signature covers, given the record encoded with an empty signature. */
export function labelled(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(LABEL.length + 1 + body.length);
  out.set(LABEL, 0);
  out.set(body, LABEL.length + 1);
  return out;
}

/** label ‖ 0 ‖ `encoded` without its signature field, or null when `encoded` holds something this walk
 *  does not take apart (a group, a truncated field): the caller then re-encodes a copy. */
export function signedBytesOf(encoded: Uint8Array): Uint8Array | null {
  let pos = 0;
  let cut: [number, number] | null = null;
  while (pos < encoded.length) {
    const start = pos;
    const tag = readVarint(encoded, pos);
    if (!tag) return null;
    pos = tag.next;
    const wireType = tag.value % 8;
    const field = Math.floor(tag.value / 8);
    if (wireType === WIRE_VARINT) {
      const v = readVarint(encoded, pos);
      if (!v) return null;
      pos = v.next;
    } else if (wireType === WIRE_FIXED64) pos += 8;
    else if (wireType === WIRE_FIXED32) pos += 4;
    else if (wireType === WIRE_LEN) {
      const len = readVarint(encoded, pos);
      if (!len) return null;
      pos = len.next + len.value;
      if (field === SIGNATURE_FIELD) {
        if (cut) return null;
        cut = [start, pos];
      }
    } else return null;
    if (pos > encoded.length) return null;
  }
  const [from, to] = cut ?? [encoded.length, encoded.length];
  const out = new Uint8Array(LABEL.length + 1 + encoded.length - (to - from));
  out.set(LABEL, 0);
  let o = LABEL.length + 1;
  for (let i = 0; i < from; i++) out[o++] = encoded[i]!;
  for (let i = to; i < encoded.length; i++) out[o++] = encoded[i]!;
  return out;
}

/** A varint of up to 7 bytes (< 2^49: tags and lengths), or null. */
function readVarint(b: Uint8Array, pos: number): { value: number; next: number } | null {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 7 && pos + i < b.length; i++) {
    const byte = b[pos + i]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return { value, next: pos + i + 1 };
    scale *= 128;
  }
  return null;
}
