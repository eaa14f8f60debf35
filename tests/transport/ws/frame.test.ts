// WebSocket framing and handshake text of the TLS port (src/transport/ws/frame.ts, handshake.ts; RFC 6455).
import { describe, expect, test } from "bun:test";
import { MAX_WS_FRAME_BYTES } from "../../../src/constants.ts";
import { WS_CLOSE, WS_OPCODE } from "../../../src/transport/ws/constants.ts";
import { createWsReader, encodeClosePayload, encodeFrame, type WsEvent } from "../../../src/transport/ws/frame.ts";
import { acceptKeyOf, checkUpgradeRequest, checkUpgradeResponse, findHeadEnd, upgradeResponse } from "../../../src/transport/ws/handshake.ts";

const serverReader = () => createWsReader({ maxFrameBytes: MAX_WS_FRAME_BYTES, expectMasked: true });
const clientReader = () => createWsReader({ maxFrameBytes: MAX_WS_FRAME_BYTES, expectMasked: false });

/** A frame header by hand: for frames the encoder refuses to make. */
function rawFrame(b0: number, payload: Uint8Array, opts: { mask?: boolean; len7?: number; ext?: Uint8Array } = {}): Uint8Array {
  const mask = opts.mask ?? true;
  const len7 = opts.len7 ?? payload.length;
  const ext = opts.ext ?? new Uint8Array(0);
  const out = new Uint8Array(2 + ext.length + (mask ? 4 : 0) + payload.length);
  out[0] = b0;
  out[1] = (mask ? 0x80 : 0) | len7;
  out.set(ext, 2);
  out.set(payload, 2 + ext.length + (mask ? 4 : 0)); // mask key 0000: payload unchanged
  return out;
}

function only(events: WsEvent[]): WsEvent {
  expect(events.length).toBe(1);
  return events[0]!;
}

describe("ws frame reader", () => {
  test("reads masked client frames of every length encoding", () => {
    for (const size of [0, 1, 125, 126, 65535, 65536]) {
      const payload = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
      const ev = only(serverReader().push(encodeFrame(WS_OPCODE.binary, payload, true)));
      expect(ev).toEqual({ type: "message", data: payload });
    }
  });

  test("reads unmasked server frames on the client side", () => {
    const ev = only(clientReader().push(encodeFrame(WS_OPCODE.binary, new Uint8Array([1, 2, 3]), false)));
    expect(ev).toEqual({ type: "message", data: new Uint8Array([1, 2, 3]) });
  });

  test("joins frames fed one byte at a time", () => {
    const r = serverReader();
    const a = encodeFrame(WS_OPCODE.binary, new Uint8Array(300).fill(7), true);
    const b = encodeFrame(WS_OPCODE.ping, new Uint8Array([9]), true);
    const all = new Uint8Array([...a, ...b]);
    const events: WsEvent[] = [];
    for (const byte of all) events.push(...r.push(new Uint8Array([byte])));
    expect(events).toEqual([
      { type: "message", data: new Uint8Array(300).fill(7) },
      { type: "ping", data: new Uint8Array([9]) },
    ]);
  });

  test("joins fragments into one message, with control frames in between", () => {
    const r = serverReader();
    const events = [
      ...r.push(rawFrame(0x02, new Uint8Array([1, 2]))), // binary, FIN clear
      ...r.push(rawFrame(0x89, new Uint8Array([0xaa]))), // ping between fragments
      ...r.push(rawFrame(0x80, new Uint8Array([3]))), // continuation, FIN
    ];
    expect(events).toEqual([
      { type: "ping", data: new Uint8Array([0xaa]) },
      { type: "message", data: new Uint8Array([1, 2, 3]) },
    ]);
  });

  test("a frame declaring limit+1 bytes is refused with 1009 from its header alone", () => {
    const ext = new Uint8Array(8);
    new DataView(ext.buffer).setBigUint64(0, BigInt(MAX_WS_FRAME_BYTES + 1));
    const r = serverReader();
    const ev = only(r.push(rawFrame(0x82, new Uint8Array(0), { len7: 127, ext })));
    expect(ev.type).toBe("error");
    expect((ev as { code: number }).code).toBe(WS_CLOSE.messageTooBig);
    expect(r.buffered).toBe(0);
  });

  test("a frame of exactly the limit is accepted", () => {
    const ev = only(serverReader().push(encodeFrame(WS_OPCODE.binary, new Uint8Array(MAX_WS_FRAME_BYTES), true)));
    expect(ev.type).toBe("message");
  });

  test("fragments adding up to limit+1 close with 1009", () => {
    const r = serverReader();
    expect(r.push(encodeFrame(WS_OPCODE.binary, new Uint8Array(0), true).map((b, i) => (i === 0 ? 0x02 : b)))).toEqual([]);
    const half = encodeFrame(WS_OPCODE.continuation, new Uint8Array(MAX_WS_FRAME_BYTES / 2), true);
    half[0] = 0x00; // continuation, FIN clear
    expect(r.push(half)).toEqual([]);
    const rest = encodeFrame(WS_OPCODE.continuation, new Uint8Array(MAX_WS_FRAME_BYTES / 2 + 1), true);
    const ev = only(r.push(rest));
    expect(ev).toMatchObject({ type: "error", code: WS_CLOSE.messageTooBig });
  });

  const protocolErrors: [string, () => Uint8Array, boolean][] = [
    ["an unmasked client frame", () => encodeFrame(WS_OPCODE.binary, new Uint8Array([1]), false), true],
    ["a masked server frame", () => encodeFrame(WS_OPCODE.binary, new Uint8Array([1]), true), false],
    ["reserved bits", () => rawFrame(0xc2, new Uint8Array([1])), true],
    ["an unknown opcode", () => rawFrame(0x83, new Uint8Array([1])), true],
    ["a control frame over 125 bytes", () => rawFrame(0x89, new Uint8Array(126), { len7: 126, ext: new Uint8Array([0, 126]) }), true],
    ["a fragmented control frame", () => rawFrame(0x09, new Uint8Array([1])), true],
    ["a continuation without a message", () => rawFrame(0x80, new Uint8Array([1])), true],
    ["a 16-bit length under 126", () => rawFrame(0x82, new Uint8Array(5), { len7: 126, ext: new Uint8Array([0, 5]) }), true],
    ["a 1-byte close body", () => rawFrame(0x88, new Uint8Array([3])), true],
    ["close code 1005 on the wire", () => rawFrame(0x88, new Uint8Array([0x03, 0xed])), true],
    ["a close reason that is not UTF-8", () => rawFrame(0x88, new Uint8Array([0x03, 0xe8, 0xff, 0xfe])), true],
  ];
  for (const [name, make, server] of protocolErrors) {
    test(`${name} closes with 1002`, () => {
      const ev = only((server ? serverReader() : clientReader()).push(make()));
      expect(ev).toMatchObject({ type: "error", code: WS_CLOSE.protocolError });
    });
  }

  test("a text message closes with 1003: envelopes are binary", () => {
    const ev = only(serverReader().push(encodeFrame(WS_OPCODE.text, new TextEncoder().encode("hi"), true)));
    expect(ev).toMatchObject({ type: "error", code: WS_CLOSE.unsupportedData });
  });

  test("a close frame reports its code and reason and ends reading", () => {
    const r = serverReader();
    const events = r.push(
      new Uint8Array([...encodeFrame(WS_OPCODE.close, encodeClosePayload(4001, "bye"), true), ...encodeFrame(WS_OPCODE.binary, new Uint8Array([1]), true)]),
    );
    expect(events).toEqual([{ type: "close", code: 4001, reason: "bye" }]);
    expect(r.push(encodeFrame(WS_OPCODE.binary, new Uint8Array([1]), true))).toEqual([]);
  });

  test("close reasons are cut to fit a control frame", () => {
    expect(encodeClosePayload(1000, "é".repeat(200)).length).toBeLessThanOrEqual(125);
  });

  test("random bytes give at most one typed error, never a throw", () => {
    for (let i = 0; i < 2000; i++) {
      const r = i % 2 ? serverReader() : clientReader();
      const bytes = crypto.getRandomValues(new Uint8Array(1 + (i % 200)));
      const events = r.push(bytes);
      const errors = events.filter((e) => e.type === "error");
      expect(errors.length).toBeLessThanOrEqual(1);
      for (const e of errors) expect([1002, 1003, 1009]).toContain((e as { code: number }).code);
    }
  });
});

describe("ws handshake", () => {
  test("Sec-WebSocket-Accept matches RFC 6455 §1.3's example", () => {
    expect(acceptKeyOf("dGhlIHNhbXBsZSBub25jZQ==")).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });

  const good = { upgrade: "websocket", connection: "keep-alive, Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" };

  test("accepts a well-formed upgrade request", () => {
    expect(checkUpgradeRequest("GET", good)).toEqual({ ok: true, key: "dGhlIHNhbXBsZSBub25jZQ==" });
  });

  test("refuses broken upgrade requests with the matching HTTP status", () => {
    expect(checkUpgradeRequest("POST", good)).toMatchObject({ ok: false, status: 405 });
    expect(checkUpgradeRequest("GET", { ...good, upgrade: "h2c" })).toMatchObject({ ok: false, status: 400 });
    expect(checkUpgradeRequest("GET", { ...good, connection: "close" })).toMatchObject({ ok: false, status: 400 });
    expect(checkUpgradeRequest("GET", { ...good, "sec-websocket-version": "8" })).toMatchObject({ ok: false, status: 426 });
    expect(checkUpgradeRequest("GET", { ...good, "sec-websocket-key": "short" })).toMatchObject({ ok: false, status: 400 });
  });

  test("the client accepts our own 101 answer and refuses a wrong accept key", () => {
    const head = upgradeResponse("dGhlIHNhbXBsZSBub25jZQ==");
    const end = findHeadEnd(new TextEncoder().encode(head));
    expect(end).toBe(head.length);
    expect(checkUpgradeResponse(head.slice(0, end - 4), "dGhlIHNhbXBsZSBub25jZQ==")).toEqual({ ok: true });
    expect(checkUpgradeResponse(head.slice(0, end - 4), "AAAAAAAAAAAAAAAAAAAAAA==")).toMatchObject({ ok: false });
    expect(checkUpgradeResponse("HTTP/1.1 503 Service Unavailable", "x")).toMatchObject({ ok: false, status: 503 });
  });
});
