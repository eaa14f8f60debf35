// classifyDatagram routes QUIC, RFC 5389/3489 STUN and SN probes apart, and never throws (DESIGN §2, §6).
import { describe, expect, test } from "bun:test";
import { encodeBindingRequest, parseBindingRequest } from "../../../src/stun/binding.ts";
import { classifyDatagram } from "../../../src/transport/udp/classify.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

/** An SN probe as DESIGN §6 lays it out: Rnd16 (byte 0 = r & 0x3C | source) ‖ HMAC (32, random here) ‖ TmpN. */
function snPacket(tmpNBytes: number, source: 0 | 1 | 2): Uint8Array {
  const buf = crypto.getRandomValues(new Uint8Array(16 + 32 + tmpNBytes));
  buf[0] = (buf[0] & 0x3c) | source;
  return buf;
}

describe("classifyDatagram", () => {
  test("QUIC long and short headers are quic (fixed bit 0x40 set)", () => {
    const long = crypto.getRandomValues(new Uint8Array(1200));
    long[0] = 0xc3;
    const short = crypto.getRandomValues(new Uint8Array(40));
    short[0] = 0x41;
    expect(classifyDatagram(long)).toBe("quic");
    expect(classifyDatagram(short)).toBe("quic");
  });

  test("RFC 5389 Binding Requests are stun, including RFC 5769 §2.1", () => {
    expect(classifyDatagram(encodeBindingRequest(new Uint8Array(12)))).toBe("stun");
    const rfc5769 = hex(`00010058 2112a442 b7e7a701bc34d686fa87dfae 80220010 5354554e207465737420636c69656e74
      00240004 6e0001ff 80290008 932ff9b151263b36 00060009 6576746a3a68367659202020
      00080014 9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2 80280004 e57a3bcf`);
    expect(classifyDatagram(rfc5769)).toBe("stun");
  });

  test("an RFC 3489 request (no cookie, shorter than any SN packet) is stun", () => {
    expect(classifyDatagram(hex("00010008 01c841229bdf9d265ecaa66e8e9f732a 00030004 00000000"))).toBe("stun");
    expect(classifyDatagram(hex("00010000 0123456789abcdef0123456789abcdef"))).toBe("stun");
  });

  test("SN probes of every source and the extreme TmpN sizes are sn", () => {
    for (const source of [0, 1, 2] as const) {
      for (const tmpN of [16, 17, 100, 1023, 1024]) expect(classifyDatagram(snPacket(tmpN, source))).toBe("sn");
    }
  });

  test("100 000 random SN probes are all sn", () => {
    let other = 0;
    for (let i = 0; i < 100_000; i++) {
      const packet = snPacket(16 + Math.floor(Math.random() * 1009), (i % 3) as 0 | 1 | 2);
      if (classifyDatagram(packet) !== "sn") other++;
    }
    expect(other).toBe(0);
  });

  test("an SN probe that carries the cookie by chance stays sn unless its length field also matches", () => {
    const packet = snPacket(64, 0);
    packet.set([0x21, 0x12, 0xa4, 0x42], 4);
    packet[2] = 0xff; // anything but the size − 20
    expect(classifyDatagram(packet)).toBe("sn");
  });

  test("the 2^-50 SN probe with cookie and matching length goes to stun, whose parser refuses it", () => {
    const packet = snPacket(64, 1); // 112 bytes
    packet.set([0x21, 0x12, 0xa4, 0x42], 4);
    packet[2] = 0;
    packet[3] = 112 - 20;
    expect(classifyDatagram(packet)).toBe("stun");
    expect(parseBindingRequest(packet).ok).toBe(false); // source 1 makes the type ≠ 0x0001
  });

  test("bits 7–6 clear but neither STUN nor SN size is unknown", () => {
    const small = crypto.getRandomValues(new Uint8Array(63));
    small[0] &= 0x3f;
    small[2] = 0xff; // declared length cannot match
    expect(classifyDatagram(small)).toBe("unknown");
    const big = snPacket(1025, 0);
    expect(classifyDatagram(big)).toBe("unknown");
  });

  test("empty datagrams and a first byte of 10xxxxxx (RTP/RTCP) are unknown", () => {
    expect(classifyDatagram(new Uint8Array(0))).toBe("unknown");
    const rtp = crypto.getRandomValues(new Uint8Array(100));
    rtp[0] = 0x80;
    expect(classifyDatagram(rtp)).toBe("unknown");
  });

  test("random bytes never throw, and any datagram with bit 6 set is quic", () => {
    const kinds = new Set(["quic", "stun", "sn", "unknown"]);
    for (let i = 0; i < 20_000; i++) {
      const buf = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 1500)));
      const kind = classifyDatagram(buf);
      expect(kinds.has(kind)).toBe(true);
      if (buf.length > 0 && (buf[0] & 0x40) !== 0) expect(kind).toBe("quic");
    }
  });
});
