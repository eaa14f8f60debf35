// The UDP check's requests and the matching of their answers (src/nat/udp-check-packet.ts): a Binding Success for
// our transaction, a Version Negotiation echoing our connection id; anything else (other ids, junk) is no answer.
import { describe, expect, test } from "bun:test";
import { parseBindingRequest, writeBindingSuccess } from "../../src/stun/binding.ts";
import { classifyDatagram } from "../../src/transport/udp/classify.ts";
import { QUIC_GREASE_VERSION, QUIC_MIN_INITIAL_DATAGRAM_BYTES, udpCheckPackets } from "../../src/nat/udp-check-packet.ts";

/** A Version Negotiation as a server sends it (RFC 9000 §17.2.1): DCID = the client's SCID, SCID = its DCID. */
function versionNegotiation(probe: Uint8Array): Uint8Array {
  const dcidLen = probe[5]!;
  const dcid = probe.subarray(6, 6 + dcidLen);
  const scidLen = probe[6 + dcidLen]!;
  const scid = probe.subarray(7 + dcidLen, 7 + dcidLen + scidLen);
  return Uint8Array.from([0x80 | 0x2a, 0, 0, 0, 0, scid.length, ...scid, dcid.length, ...dcid, 0, 0, 0, 1]);
}

describe("the UDP check's packets", () => {
  test("the Binding Request is one a STUN responder answers; the QUIC probe is a padded long header of a reserved version", () => {
    const p = udpCheckPackets();
    expect(parseBindingRequest(p.binding).ok).toBe(true);
    expect(classifyDatagram(p.binding)).toBe("stun");
    const q = p.quicVersionProbe;
    expect(q.length).toBe(QUIC_MIN_INITIAL_DATAGRAM_BYTES);
    expect(q[0]! & 0xc0).toBe(0xc0);
    expect(new DataView(q.buffer).getUint32(1)).toBe(QUIC_GREASE_VERSION);
    expect((QUIC_GREASE_VERSION & 0x0f0f0f0f) >>> 0).toBe(0x0a0a0a0a);
    expect(classifyDatagram(q)).toBe("quic");
  });

  test("answers are matched to this run's ids", () => {
    const p = udpCheckPackets();
    const other = udpCheckPackets();
    const txId = p.binding.subarray(8, 20);
    const ok = new Uint8Array(64);
    const n = writeBindingSuccess(ok, txId, "203.0.113.103", 40000, 4);
    expect(p.match(ok.subarray(0, n))).toBe("stun");
    expect(other.match(ok.subarray(0, n))).toBeNull();
    expect(p.match(versionNegotiation(p.quicVersionProbe))).toBe("quic");
    expect(other.match(versionNegotiation(p.quicVersionProbe))).toBeNull();
  });

  test("junk, echoes of our own requests and oversized datagrams are no answer", () => {
    const p = udpCheckPackets();
    expect(p.match(new Uint8Array(0))).toBeNull();
    expect(p.match(p.binding)).toBeNull();
    expect(p.match(p.quicVersionProbe)).toBeNull();
    expect(p.match(crypto.getRandomValues(new Uint8Array(200)))).toBeNull();
    const vn = versionNegotiation(p.quicVersionProbe);
    const big = new Uint8Array(2000);
    big.set(vn);
    expect(p.match(big)).toBeNull();
    expect(p.match(vn.subarray(0, 10))).toBeNull();
  });
});
