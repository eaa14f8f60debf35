// The pure parts of a punch attempt: the opener datagram (authenticated, demultiplexed as raw, never QUIC), who
// sends first, when a fresh socket is used, and the checks on what the node and peers send (punch-packet.ts,
// punch-order.ts, punch-info.ts; DESIGN §2, §4, §7).
import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { PUNCH_PACKET_BYTES } from "../../src/punch/constants.ts";
import { readPunchHello, readPunchOffer } from "../../src/punch/punch-info.ts";
import { sendOrder, useFreshSocket } from "../../src/punch/punch-order.ts";
import { encodePunchPacket, isPunchPacketFrom, peekPunchPacket, PUNCH_PACKET_TYPE } from "../../src/punch/punch-packet.ts";
import { classifyDatagram } from "../../src/transport/udp/classify.ts";
import { DecodeError, LimitError } from "../../src/errors.ts";
import { PunchInfoSchema, PunchRole } from "../../src/wire/gen/punch_pb.ts";
import { NatClass } from "../../src/wire/gen/findings_pb.ts";

const token = new Uint8Array(16).fill(7);
const other = new Uint8Array(16).fill(8);
const attemptId = new Uint8Array(16).fill(1);

describe("opener datagram", () => {
  test("verifies with the sender's token and this attempt only", () => {
    const p = encodePunchPacket(token, { type: PUNCH_PACKET_TYPE.open, attemptId, seq: 3 });
    expect(p.length).toBe(PUNCH_PACKET_BYTES);
    expect(peekPunchPacket(p)).toEqual({ type: PUNCH_PACKET_TYPE.open, attemptId, seq: 3 });
    expect(isPunchPacketFrom(p, { token, attemptId })).toBe(true);
    expect(isPunchPacketFrom(p, { token: other, attemptId })).toBe(false);
    expect(isPunchPacketFrom(p, { token, attemptId: new Uint8Array(16).fill(2) })).toBe(false);
    const tampered = p.slice();
    tampered[63]! ^= 1; // the seq is under the MAC
    expect(isPunchPacketFrom(tampered, { token, attemptId })).toBe(false);
  });

  test("goes to the raw path of the shared socket, never to QUIC or the STUN responder", () => {
    for (let seq = 0; seq < 200; seq++) {
      expect(classifyDatagram(encodePunchPacket(crypto.getRandomValues(new Uint8Array(16)), { type: PUNCH_PACKET_TYPE.probe, attemptId, seq }))).toBe("sn");
    }
  });

  test("random bytes are never taken for an opener and never throw", () => {
    for (let i = 0; i < 2000; i++) {
      const junk = crypto.getRandomValues(new Uint8Array(i % 3 === 0 ? PUNCH_PACKET_BYTES : i % 200));
      if (i % 5 === 0 && junk.length > 0) junk[0] = 0x24;
      expect(isPunchPacketFrom(junk, { token, attemptId })).toBe(false);
    }
  });
});

describe("who sends first (Linux conntrack re-maps a tuple it saw inbound first)", () => {
  test("a restricted cone goes before a port-restricted cone, which goes before a UDP firewall", () => {
    expect(sendOrder({ strategy: "simultaneous", role: "dial", myNat: "restricted-cone", peerNat: "port-restricted-cone" })).toBe("first");
    expect(sendOrder({ strategy: "simultaneous", role: "listen", myNat: "port-restricted-cone", peerNat: "restricted-cone" })).toBe("second");
    expect(sendOrder({ strategy: "simultaneous", role: "dial", myNat: "port-restricted-cone", peerNat: "udp-firewall" })).toBe("first");
    expect(sendOrder({ strategy: "simultaneous", role: "listen", myNat: "udp-firewall", peerNat: "restricted-cone" })).toBe("second");
    expect(sendOrder({ strategy: "simultaneous", role: "dial", myNat: "port-restricted-cone", peerNat: "port-restricted-cone" })).toBe("together");
  });

  test("an open listener stays silent; the symmetric side waits for the restricted cone", () => {
    expect(sendOrder({ strategy: "direct", role: "listen", myNat: "public", peerNat: "port-restricted-cone" })).toBe("silent");
    expect(sendOrder({ strategy: "direct", role: "dial", myNat: "symmetric", peerNat: "full-cone" })).toBe("first");
    expect(sendOrder({ strategy: "sym-to-restricted", role: "dial", myNat: "symmetric", peerNat: "restricted-cone" })).toBe("second");
    expect(sendOrder({ strategy: "sym-to-restricted", role: "listen", myNat: "restricted-cone", peerNat: "symmetric" })).toBe("first");
  });

  test("only a NATed second sender towards a restricted cone punches from a fresh socket", () => {
    expect(useFreshSocket({ strategy: "simultaneous", role: "dial", myNat: "port-restricted-cone", peerNat: "restricted-cone" }, "second")).toBe(true);
    expect(useFreshSocket({ strategy: "simultaneous", role: "dial", myNat: "udp-firewall", peerNat: "restricted-cone" }, "second")).toBe(false);
    expect(useFreshSocket({ strategy: "simultaneous", role: "dial", myNat: "restricted-cone", peerNat: "port-restricted-cone" }, "first")).toBe(false);
    expect(useFreshSocket({ strategy: "simultaneous", role: "dial", myNat: "port-restricted-cone", peerNat: "udp-firewall" }, "second")).toBe(false);
  });
});

describe("reading offers and hellos", () => {
  const good = {
    attemptId,
    peerId: "ab".repeat(32),
    peerKind: "app:chat",
    ip: "203.0.113.7",
    port: 4000,
    token: other,
    ownToken: token,
    natt: NatClass.NAT_PORT_RESTRICTED_CONE,
    spki: new Uint8Array(32).fill(3),
    strategy: "simultaneous",
    role: PunchRole.DIAL,
    listenerOpens: true,
    expectSuccess: true,
    reason: "x",
  };

  test("a well-formed offer becomes plain fields", () => {
    const o = readPunchOffer(toBinary(PunchInfoSchema, create(PunchInfoSchema, good)));
    expect(o).toMatchObject({ peerId: "ab".repeat(32), ip: "203.0.113.7", port: 4000, role: "dial", strategy: "simultaneous", peerNat: "port-restricted-cone", spray: null });
    expect(o.peerSpki).toBe("03".repeat(32));
  });

  test("each bad field is a DecodeError naming it; oversize is a LimitError; junk never crashes", () => {
    const bad = (patch: object) => () => readPunchOffer(toBinary(PunchInfoSchema, create(PunchInfoSchema, { ...good, ...patch })));
    expect(bad({ ip: "not-an-ip" })).toThrow(/ip "not-an-ip" is not an IP address/);
    expect(bad({ port: 0 })).toThrow(/port 0/);
    expect(bad({ spki: new Uint8Array(5) })).toThrow(/spki must be 32 bytes/);
    expect(bad({ strategy: "impossible" })).toThrow(/strategy "impossible" is not one of/);
    expect(bad({ role: PunchRole.UNSPECIFIED })).toThrow(/role/);
    expect(bad({ strategy: "sym-to-cone-spray" })).toThrow(/needs a spray plan/);
    expect(bad({ strategy: "sym-to-cone-spray", spray: { sockets: 100_000, probes: 10, portMin: 1024, portMax: 65535, probeIntervalMs: 5 } })).toThrow(/spray.sockets must be 1..512/);
    expect(() => readPunchOffer(new Uint8Array(4097))).toThrow(LimitError);
    for (let i = 0; i < 500; i++) {
      try {
        readPunchOffer(crypto.getRandomValues(new Uint8Array(i % 300)));
      } catch (err) {
        expect(err instanceof DecodeError || err instanceof LimitError).toBe(true);
      }
    }
    expect(() => readPunchHello(new Uint8Array([10, 1, 0]))).toThrow(DecodeError);
  });
});
