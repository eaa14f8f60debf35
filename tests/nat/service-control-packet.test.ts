// Control datagrams of the NAT tests (src/nat/control-packet.ts; DESIGN §2 demux, §6): round trips, the demux class,
// separation from SN probes, and decoding of hostile bytes.
import { describe, expect, test } from "bun:test";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { buildControl, controlToken, decodeControl, looksLikeControl, type ControlMessage } from "../../src/nat/control-packet.ts";
import { buildProbe, verifyProbe } from "../../src/nat/probe-packet.ts";
import { classifyDatagram } from "../../src/transport/udp/classify.ts";

const key = crypto.getRandomValues(new Uint8Array(32));
const token = crypto.getRandomValues(new Uint8Array(16));
const cookie = crypto.getRandomValues(new Uint8Array(16));

const messages: ControlMessage[] = [
  { type: "hello-port", token },
  { type: "hello-formal", token },
  { type: "hello-live", token, index: 37 },
  { type: "ack-port", token, mapped: { ip: "203.0.113.103", port: 40000 } },
  { type: "ack-formal", token, mapped: { ip: "2001:db8::7", port: 1 }, cookie },
  { type: "ack-live", token, index: 65535, mapped: { ip: "198.51.100.2", port: 65535 }, cookie },
];

describe("control datagrams", () => {
  for (const m of messages) {
    test(`${m.type} round-trips, is routed as "sn" and carries its token at a fixed place`, () => {
      const bytes = buildControl(key, m);
      expect(decodeControl(bytes, key)).toEqual({ ok: true, msg: m });
      expect(classifyDatagram(bytes)).toBe("sn");
      expect(looksLikeControl(bytes)).toBe(true);
      expect(controlToken(bytes)).toEqual(token);
    });
  }

  test("hellos are padded so that answers to an address never outweigh what it sent", () => {
    expect(buildControl(key, messages[1]!).length).toBe(1072);
    expect(buildControl(key, messages[0]!).length).toBe(256);
    expect(buildControl(key, messages[2]!).length).toBe(256);
    for (const ack of messages.slice(3)) expect(buildControl(key, ack).length).toBeLessThan(160);
  });

  test("a hello cut below its padding is refused as short-hello, even with a valid MAC", () => {
    for (const m of messages.slice(0, 3)) {
      const full = buildControl(key, m);
      // Re-MAC the first 80 bytes as their own datagram: a well-keyed hello without its padding.
      const cut = Uint8Array.from(full.subarray(0, 80));
      cut.set(hmac.create(sha256, key).update(new TextEncoder().encode("STUN:Ctrl")).update(cut.subarray(0, 16)).update(cut.subarray(48)).digest(), 16);
      expect(decodeControl(cut, key)).toEqual({ ok: false, reason: "short-hello" });
    }
  });

  test("a control datagram is never a valid probe, nor a probe a control datagram", () => {
    const ctrl = buildControl(key, messages[1]!);
    expect(verifyProbe(ctrl, key)).toEqual({ ok: false, reason: "unknown-source" });
    for (const source of ["passage", "newPort", "newHost"] as const) {
      const probe = buildProbe(key, source);
      expect(looksLikeControl(probe)).toBe(false);
      expect(decodeControl(probe, key)).toEqual({ ok: false, reason: "not-control" });
    }
  });

  test("a datagram made with another key, or altered, does not verify", () => {
    const bytes = buildControl(key, messages[3]!);
    expect(decodeControl(bytes, crypto.getRandomValues(new Uint8Array(32)))).toEqual({ ok: false, reason: "bad-mac" });
    const altered = Uint8Array.from(bytes);
    altered[altered.length - 1]! ^= 1;
    expect(decodeControl(altered, key)).toEqual({ ok: false, reason: "bad-mac" });
  });

  test("random bytes of every size never throw and never decode", () => {
    for (let n = 0; n <= 1200; n += 7) {
      const b = crypto.getRandomValues(new Uint8Array(n));
      expect(() => controlToken(b)).not.toThrow();
      const d = decodeControl(b, key);
      expect(d.ok).toBe(false);
    }
  });

  test("one byte over the SN size limit is not a control datagram", () => {
    const b = new Uint8Array(1073);
    b[0] = 0x03;
    expect(looksLikeControl(b)).toBe(false);
  });
});
