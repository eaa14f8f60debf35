// Framing of request channels: lengths across varint boundaries, frames split anywhere, limits.
import { describe, expect, test } from "bun:test";
import { concatBytes, encodeFrame, FrameReader, FrameTooLargeError } from "../../../src/transport/quic/mux-frame.ts";

const body = (n: number) => Uint8Array.from({ length: n }, (_, i) => i & 0xff);

describe("request channel frames", () => {
  test("bodies of every varint width come back whole, from one chunk or byte by byte", () => {
    const sizes = [0, 1, 127, 128, 300, 16_383, 16_384, 65_536];
    const stream = concatBytes(sizes.map((n) => encodeFrame(body(n))));
    for (const step of [stream.length, 1, 7]) {
      const r = new FrameReader(65_536);
      const got: number[] = [];
      for (let at = 0; at < stream.length; at += step) {
        r.push(stream.subarray(at, at + step));
        for (let f = r.next(); f !== undefined; f = r.next()) {
          expect(f).toEqual(body(f.length));
          got.push(f.length);
        }
      }
      expect(got).toEqual(sizes);
      expect(r.buffered).toBe(0);
    }
  });

  test("a length over the limit is refused as soon as its prefix is read", () => {
    const r = new FrameReader(100);
    r.push(encodeFrame(body(101)).subarray(0, 1));
    expect(() => r.next()).toThrow(FrameTooLargeError);
  });

  test("a length prefix longer than four bytes is refused", () => {
    const r = new FrameReader(1 << 30);
    r.push(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x01));
    expect(() => r.next()).toThrow(FrameTooLargeError);
  });

  test("a partial frame waits for the rest", () => {
    const r = new FrameReader(1000);
    const f = encodeFrame(body(200));
    r.push(f.subarray(0, 100));
    expect(r.next()).toBeUndefined();
    expect(r.buffered).toBe(100);
    r.push(f.subarray(100));
    expect(r.next()?.length).toBe(200);
  });
});
