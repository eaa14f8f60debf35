// Binding codec and responder against RFC 5769 vectors, round trips, limits and random bytes (RFC 5389 §7, §15).
import { describe, expect, test } from "bun:test";
import {
  decodeBindingResponse,
  encodeBindingRequest,
  looksLikeStun,
  parseBindingRequest,
  writeBindingSuccess,
} from "../../src/stun/binding.ts";
import { crc32, isFingerprintValid } from "../../src/stun/fingerprint.ts";
import { createBindingResponder } from "../../src/stun/responder.ts";
import { parseIPv6 } from "../../src/contracts/ip.ts";
import { MAX_BINDING_SUCCESS_BYTES, MAX_STUN_MESSAGE_BYTES } from "../../src/stun/constants.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// RFC 5769 §2.1 "Sample Request": SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT.
const RFC5769_REQUEST = hex(`
  00010058 2112a442 b7e7a701bc34d686fa87dfae
  80220010 5354554e207465737420636c69656e74
  00240004 6e0001ff
  80290008 932ff9b151263b36
  00060009 6576746a3a68367659202020
  00080014 9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
  80280004 e57a3bcf`);

// RFC 5769 §2.2 "Sample IPv4 Response": XOR-MAPPED-ADDRESS 192.0.2.1:32853.
const RFC5769_RESPONSE_V4 = hex(`
  0101003c 2112a442 b7e7a701bc34d686fa87dfae
  8022000b 7465737420766563746f7220
  00200008 0001a147e112a643
  00080014 2b91f599fd9e90c38c7489f92af9ba53f06be7d7
  80280004 c07d4c96`);

// RFC 5769 §2.3 "Sample IPv6 Response": XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const RFC5769_RESPONSE_V6 = hex(`
  01010048 2112a442 b7e7a701bc34d686fa87dfae
  8022000b 7465737420766563746f7220
  00200014 0002a1470113a9faa5d3f179bc25f4b5bed2b9d9
  00080014 a382954e4be67bf11784c97c8292c275bfe3ed41
  80280004 c8fb0b4c`);

const RFC5769_TX_ID = hex("b7e7a701bc34d686fa87dfae");

// Captured from Debian's `stun` 0.97 (an RFC 3489 client): no cookie, CHANGE-REQUEST with no flag set.
const RFC3489_REQUEST = hex("00010008 01c841229bdf9d265ecaa66e8e9f732a 00030004 00000000");

function answer(request: Uint8Array, ip: string, port: number, family: 4 | 6): Uint8Array {
  const parsed = parseBindingRequest(request);
  if (!parsed.ok) throw new Error(`request rejected: ${parsed.fault}`);
  const out = new Uint8Array(MAX_BINDING_SUCCESS_BYTES);
  const n = writeBindingSuccess(out, parsed.txId, ip, port, family);
  expect(n).toBeGreaterThan(0);
  return out.slice(0, n);
}

describe("RFC 5769 vectors", () => {
  test("§2.1 sample request is accepted and its transaction id returned", () => {
    const parsed = parseBindingRequest(RFC5769_REQUEST);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(toHex(parsed.txId)).toBe(toHex(RFC5769_TX_ID));
      expect(parsed.legacy).toBe(false);
    }
    expect(looksLikeStun(RFC5769_REQUEST)).toBe(true);
    expect(isFingerprintValid(RFC5769_REQUEST)).toBe(true);
  });

  test("§2.2 IPv4 response has a valid FINGERPRINT and decodes to 192.0.2.1:32853", () => {
    expect(isFingerprintValid(RFC5769_RESPONSE_V4)).toBe(true);
    expect(decodeBindingResponse(RFC5769_RESPONSE_V4, RFC5769_TX_ID)).toEqual({
      ok: true, ip: "192.0.2.1", port: 32853, family: 4,
    });
  });

  test("§2.3 IPv6 response has a valid FINGERPRINT and decodes to 2001:db8:1234:5678:11:2233:4455:6677", () => {
    expect(isFingerprintValid(RFC5769_RESPONSE_V6)).toBe(true);
    expect(decodeBindingResponse(RFC5769_RESPONSE_V6, RFC5769_TX_ID)).toEqual({
      ok: true, ip: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853, family: 6,
    });
  });

  test("our XOR-MAPPED-ADDRESS bytes equal the RFC's for the same address and transaction", () => {
    const out = new Uint8Array(MAX_BINDING_SUCCESS_BYTES);
    writeBindingSuccess(out, RFC5769_TX_ID, "192.0.2.1", 32853, 4);
    expect(toHex(out.subarray(20, 32))).toBe("002000080001a147e112a643");
    writeBindingSuccess(out, RFC5769_TX_ID, "2001:db8:1234:5678:11:2233:4455:6677", 32853, 6);
    expect(toHex(out.subarray(20, 44))).toBe("002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9");
  });

  test("a flipped bit breaks the FINGERPRINT and the decode says so", () => {
    const damaged = RFC5769_RESPONSE_V4.slice();
    damaged[30] ^= 0x01; // inside XOR-MAPPED-ADDRESS
    expect(isFingerprintValid(damaged)).toBe(false);
    expect(decodeBindingResponse(damaged)).toEqual({ ok: false, fault: "bad-fingerprint" });
  });

  test("a response to another transaction is refused", () => {
    expect(decodeBindingResponse(RFC5769_RESPONSE_V4, new Uint8Array(12))).toEqual({
      ok: false, fault: "transaction-mismatch",
    });
  });
});

describe("round trip", () => {
  const txId = hex("0102030405060708090a0b0c");

  test("IPv4: request → success → decode gives the source address; no MAPPED-ADDRESS for an RFC 5389 client", () => {
    const response = answer(encodeBindingRequest(txId), "203.0.113.7", 40000, 4);
    // Header, XOR-MAPPED-ADDRESS, FINGERPRINT: MAPPED-ADDRESS is for RFC 3489 clients only (RFC 5389 §15.1).
    expect(response.length).toBe(40);
    expect(isFingerprintValid(response)).toBe(true);
    expect(decodeBindingResponse(response, txId)).toEqual({ ok: true, ip: "203.0.113.7", port: 40000, family: 4 });
    expect(toHex(response.subarray(20, 22))).toBe("0020");
    expect(toHex(response.subarray(32, 34))).toBe("8028");
  });

  test("IPv6: request → success → decode gives the source address", () => {
    for (const ip of ["::1", "2001:db8::1", "fe80::1:2:3:4", "2001:db8:0:0:1:0:0:1"]) {
      const response = answer(encodeBindingRequest(txId), ip, 7788, 6);
      expect(response.length).toBe(52);
      expect(isFingerprintValid(response)).toBe(true);
      const decoded = decodeBindingResponse(response, txId);
      expect(decoded.ok && toHex(parseIPv6(decoded.ip)!)).toBe(toHex(parseIPv6(ip)!));
      expect(decoded.ok && decoded.port).toBe(7788);
    }
  });

  test("IPv4-mapped IPv6 source is answered and reported as IPv4", () => {
    const response = answer(encodeBindingRequest(txId), "::ffff:198.51.100.9", 5000, 6);
    expect(response.length).toBe(40);
    expect(decodeBindingResponse(response, txId)).toEqual({ ok: true, ip: "198.51.100.9", port: 5000, family: 4 });
  });

  test("IPv6 text with a zone is accepted and answered without the zone", () => {
    const response = answer(encodeBindingRequest(txId), "fe80::1%eth0", 1, 6);
    expect(decodeBindingResponse(response)).toEqual({ ok: true, ip: "fe80::1", port: 1, family: 6 });
  });

  test("RFC 3489 request (no cookie) gets MAPPED-ADDRESS only and its 16-byte id echoed", () => {
    const parsed = parseBindingRequest(RFC3489_REQUEST);
    expect(parsed.ok && parsed.legacy).toBe(true);
    const response = answer(RFC3489_REQUEST, "127.0.0.1", 28443, 4);
    expect(response.length).toBe(32);
    expect(toHex(response.subarray(4, 20))).toBe(toHex(RFC3489_REQUEST.subarray(4, 20)));
    expect(toHex(response.subarray(20))).toBe("00010008" + "0001" + "6f1b" + "7f000001");
  });

  test("crc32 agrees with Bun's native CRC-32 on random input", () => {
    for (let i = 0; i < 200; i++) {
      const bytes = crypto.getRandomValues(new Uint8Array(i * 3));
      expect(crc32(bytes)).toBe(Bun.hash.crc32(bytes));
    }
  });
});

describe("limits and malformed input", () => {
  // A request padded with an attribute of unknown comprehension-optional type up to `size` bytes.
  function paddedRequest(size: number): Uint8Array {
    const buf = new Uint8Array(size);
    buf.set(encodeBindingRequest(hex("aabbccddeeff001122334455")));
    buf[2] = (size - 20) >> 8;
    buf[3] = (size - 20) & 0xff;
    buf[20] = 0x80;
    buf[21] = 0x55;
    buf[22] = (size - 24) >> 8;
    buf[23] = (size - 24) & 0xff;
    return buf;
  }

  test("a request of exactly MAX_STUN_MESSAGE_BYTES is accepted, limit + 1 is too large", () => {
    expect(parseBindingRequest(paddedRequest(MAX_STUN_MESSAGE_BYTES)).ok).toBe(true);
    const over = new Uint8Array(MAX_STUN_MESSAGE_BYTES + 1);
    over.set(paddedRequest(MAX_STUN_MESSAGE_BYTES));
    expect(parseBindingRequest(over)).toEqual({ ok: false, fault: "too-large" });
    // limit + 4 keeps the length a multiple of 4, so only the size rule can refuse it
    expect(parseBindingRequest(paddedRequest(MAX_STUN_MESSAGE_BYTES + 4))).toEqual({ ok: false, fault: "too-large" });
  });

  test("truncated input is refused: under the header, and shorter than the declared length", () => {
    expect(parseBindingRequest(new Uint8Array(0))).toEqual({ ok: false, fault: "truncated" });
    expect(parseBindingRequest(RFC5769_REQUEST.subarray(0, 19))).toEqual({ ok: false, fault: "truncated" });
    expect(parseBindingRequest(RFC5769_REQUEST.subarray(0, 104))).toEqual({ ok: false, fault: "truncated" });
    expect(decodeBindingResponse(RFC5769_RESPONSE_V4.subarray(0, 76))).toEqual({ ok: false, fault: "truncated" });
  });

  test("bytes after the declared end are refused", () => {
    const longer = new Uint8Array(24);
    longer.set(encodeBindingRequest(RFC5769_TX_ID));
    expect(parseBindingRequest(longer)).toEqual({ ok: false, fault: "bad-length" });
  });

  test("an attribute running past the end is refused", () => {
    const bad = paddedRequest(28);
    bad[23] = 8; // claims 8 value bytes, 4 are there
    expect(parseBindingRequest(bad)).toEqual({ ok: false, fault: "bad-attribute" });
  });

  test("a request whose FINGERPRINT is wrong is refused", () => {
    const bad = RFC5769_REQUEST.slice();
    bad[bad.length - 1] ^= 0xff;
    expect(parseBindingRequest(bad)).toEqual({ ok: false, fault: "bad-fingerprint" });
  });

  test("responses, indications and first byte with bits 7–6 set are not Binding Requests", () => {
    expect(parseBindingRequest(RFC5769_RESPONSE_V4)).toEqual({ ok: false, fault: "not-binding-request" });
    const indication = encodeBindingRequest(RFC5769_TX_ID);
    indication[1] = 0x11;
    expect(parseBindingRequest(indication)).toEqual({ ok: false, fault: "not-binding-request" });
    const quic = encodeBindingRequest(RFC5769_TX_ID);
    quic[0] = 0x40;
    expect(parseBindingRequest(quic)).toEqual({ ok: false, fault: "not-stun" });
  });

  test("CHANGE-REQUEST asking for another IP or port is refused, not answered from the same address", () => {
    for (const flags of [0x02, 0x04, 0x06]) {
      const request = RFC3489_REQUEST.slice();
      request[27] = flags;
      expect(parseBindingRequest(request)).toEqual({ ok: false, fault: "change-request" });
    }
  });

  test("writeBindingSuccess returns 0 for a bad address, port, transaction id or buffer", () => {
    const out = new Uint8Array(MAX_BINDING_SUCCESS_BYTES);
    expect(writeBindingSuccess(out, RFC5769_TX_ID, "not-an-ip", 1, 4)).toBe(0);
    expect(writeBindingSuccess(out, RFC5769_TX_ID, "1.2.3.4", 65536, 4)).toBe(0);
    expect(writeBindingSuccess(out, RFC5769_TX_ID, "1.2.3.4", -1, 4)).toBe(0);
    expect(writeBindingSuccess(out, new Uint8Array(5), "1.2.3.4", 1, 4)).toBe(0);
    expect(writeBindingSuccess(new Uint8Array(39), RFC5769_TX_ID, "1.2.3.4", 1, 4)).toBe(0);
    expect(writeBindingSuccess(new Uint8Array(40), RFC5769_TX_ID, "1.2.3.4", 1, 4)).toBe(40);
  });

  test("encodeBindingRequest refuses a transaction id that is not 12 bytes", () => {
    expect(() => encodeBindingRequest(new Uint8Array(11))).toThrow(RangeError);
  });
});

describe("random bytes", () => {
  const FAULTS = new Set([
    "truncated", "too-large", "not-stun", "bad-length", "not-binding-request", "bad-attribute",
    "bad-fingerprint", "change-request", "not-binding-success", "transaction-mismatch", "no-address", "bad-address",
  ]);

  test("10 000 random buffers never throw and come back as typed faults", () => {
    for (let i = 0; i < 10_000; i++) {
      const buf = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 700)));
      const request = parseBindingRequest(buf);
      const response = decodeBindingResponse(buf);
      expect(request.ok).toBe(false);
      expect(response.ok).toBe(false);
      if (!request.ok) expect(FAULTS.has(request.fault)).toBe(true);
      if (!response.ok) expect(FAULTS.has(response.fault)).toBe(true);
    }
  });

  test("10 000 STUN-shaped buffers with random bodies never throw and give a result or a typed fault", () => {
    for (let i = 0; i < 10_000; i++) {
      const size = 20 + 4 * Math.floor(Math.random() * 20);
      const buf = crypto.getRandomValues(new Uint8Array(size));
      buf.set([Math.random() < 0.5 ? 0x00 : 0x01, 0x01, (size - 20) >> 8, (size - 20) & 0xff, 0x21, 0x12, 0xa4, 0x42]);
      if (size >= 28 && Math.random() < 0.5) buf.set([0x00, 0x20, 0x00, 0x08, 0x00, Math.random() < 0.5 ? 1 : 2], 20);
      const request = parseBindingRequest(buf);
      const response = decodeBindingResponse(buf);
      if (!request.ok) expect(FAULTS.has(request.fault)).toBe(true);
      if (!response.ok) expect(FAULTS.has(response.fault)).toBe(true);
      else expect(typeof response.ip).toBe("string");
    }
  });

  test("writeBindingSuccess never throws on random address text", () => {
    const out = new Uint8Array(MAX_BINDING_SUCCESS_BYTES);
    const alphabet = "0123456789abcdef:.%";
    for (let i = 0; i < 5_000; i++) {
      let ip = "";
      for (let j = Math.floor(Math.random() * 46); j > 0; j--) ip += alphabet[Math.floor(Math.random() * alphabet.length)];
      const n = writeBindingSuccess(out, RFC5769_TX_ID, ip, 1234, Math.random() < 0.5 ? 4 : 6);
      expect(n === 0 || n === 52 || n === 76).toBe(true);
    }
  });
});

describe("responder", () => {
  const txId = hex("00112233445566778899aabb");

  test("answers a Binding Request through send and counts it", () => {
    const responder = createBindingResponder();
    const sent: { bytes: string; port: number; ip: string }[] = [];
    const ok = responder.handle(encodeBindingRequest(txId), "192.0.2.44", 6000, 4, (bytes, port, ip) => {
      sent.push({ bytes: toHex(bytes), port, ip });
    });
    expect(ok).toBe(true);
    expect(sent).toHaveLength(1);
    expect(sent[0].port).toBe(6000);
    expect(sent[0].ip).toBe("192.0.2.44");
    expect(decodeBindingResponse(hex(sent[0].bytes), txId)).toEqual({ ok: true, ip: "192.0.2.44", port: 6000, family: 4 });
    expect(responder.answered).toBe(1);
  });

  test("counts malformed and foreign STUN apart, sending nothing", () => {
    const responder = createBindingResponder();
    let sends = 0;
    const send = () => void sends++;
    expect(responder.handle(RFC5769_REQUEST.subarray(0, 30), "192.0.2.1", 1, 4, send)).toBe(false);
    expect(responder.handle(RFC5769_RESPONSE_V4, "192.0.2.1", 1, 4, send)).toBe(false);
    expect(sends).toBe(0);
    expect(responder.malformed).toBe(1);
    expect(responder.ignored).toBe(1);
  });

  test("a throwing send or an unusable source address is counted, never thrown", () => {
    const responder = createBindingResponder();
    const request = encodeBindingRequest(txId);
    expect(responder.handle(request, "192.0.2.1", 1, 4, () => {
      throw new Error("socket closed");
    })).toBe(false);
    expect(responder.handle(request, "bogus", 1, 4, () => {})).toBe(false);
    expect(responder.unanswered).toBe(2);
  });

  test("each answer has its own bytes by default, and one reused buffer with reuseOutput", () => {
    const request = encodeBindingRequest(txId);
    const seen: Uint8Array[] = [];
    const keep = (bytes: Uint8Array) => void seen.push(bytes);
    const fresh = createBindingResponder();
    fresh.handle(request, "192.0.2.1", 1, 4, keep);
    fresh.handle(request, "192.0.2.2", 2, 4, keep);
    expect(seen[0].buffer).not.toBe(seen[1].buffer);
    expect(decodeBindingResponse(seen[0])).toEqual({ ok: true, ip: "192.0.2.1", port: 1, family: 4 });
    const reused = createBindingResponder({ reuseOutput: true });
    reused.handle(request, "192.0.2.1", 1, 4, keep);
    reused.handle(request, "192.0.2.2", 2, 4, keep);
    expect(seen[2]).toBe(seen[3]);
  });

  test("a budget per source; past 65,536 sources the first remembered is forgotten first", () => {
    const request = encodeBindingRequest(txId);
    const responder = createBindingResponder({ budget: { ratePerS: 0, burst: 1 }, now: () => 0 });
    const ask = (ip: string) => responder.handle(request, ip, 1, 4, () => {});
    const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    expect([ask(ip(0)), ask(ip(0))]).toEqual([true, false]); // the burst is spent
    for (let i = 1; i < 65_536; i++) ask(ip(i)); // the table is now full, ip(0) first
    expect([ask(ip(0)), ask(ip(1))]).toEqual([false, false]); // both still remembered
    expect(ask(ip(65_536))).toBe(true); // a new source: ip(0), the oldest, is forgotten
    expect([ask(ip(0)), ask(ip(2))]).toEqual([true, false]); // ip(0) anew (ip(1) goes); ip(2) still spent
    expect(responder.limited).toBe(4);
  });

  test("random datagrams never make handle throw", () => {
    const responder = createBindingResponder();
    for (let i = 0; i < 5_000; i++) {
      const buf = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 100)));
      if (buf.length >= 8 && Math.random() < 0.5) buf.set([0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
      responder.handle(buf, "192.0.2.1", 1, 4, () => {});
    }
    expect(responder.answered + responder.malformed + responder.ignored + responder.unanswered).toBe(5_000);
  });
});
