// Punch tokens and the listen/dial rule: larger token listens, tie → IP, then port (seed 000 §基本规则).
import { describe, expect, test } from "bun:test";
import { compareBytes, decideRoles, ipToBytes, newPunchToken, PUNCH_TOKEN_BYTES } from "../../src/punch/punch-roles.ts";
import { countingBytes } from "./punch-helpers.ts";

const tok = (...b: number[]) => Uint8Array.from(b);

describe("tokens", () => {
  test("a fresh token has PUNCH_TOKEN_BYTES (≥ 8) random bytes and differs per call", () => {
    expect(PUNCH_TOKEN_BYTES).toBeGreaterThanOrEqual(8);
    const a = newPunchToken();
    const b = newPunchToken();
    expect(a.length).toBe(PUNCH_TOKEN_BYTES);
    expect(compareBytes(a, b)).not.toBe(0);
  });

  test("the random source is injectable", () => {
    expect([...newPunchToken(countingBytes(5), 8)]).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
  });

  test("sizes under 8 bytes or a short random source are refused", () => {
    expect(() => newPunchToken(undefined, 7)).toThrow(RangeError);
    expect(() => newPunchToken(() => new Uint8Array(3), 8)).toThrow(RangeError);
  });
});

describe("compareBytes and ipToBytes", () => {
  test("compares as unsigned big-endian numbers", () => {
    expect(compareBytes(tok(1, 0), tok(0, 255))).toBe(1);
    expect(compareBytes(tok(0x80), tok(0x7f))).toBe(1);
    expect(compareBytes(tok(2), tok(2))).toBe(0);
    expect(compareBytes(tok(0, 5), tok(6))).toBe(-1);
  });

  test("IPv4 and its IPv4-mapped IPv6 form give the same 16 bytes", () => {
    expect([...ipToBytes("192.0.2.7")]).toEqual([...ipToBytes("::ffff:192.0.2.7")]);
    expect([...ipToBytes("192.0.2.7")].slice(10)).toEqual([0xff, 0xff, 192, 0, 2, 7]);
  });

  test("IPv6 text forms expand to their bytes", () => {
    expect([...ipToBytes("2001:db8::1")]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect([...ipToBytes("::")]).toEqual(new Array(16).fill(0));
    expect([...ipToBytes("1:2:3:4:5:6:7:8")].filter((_, i) => i % 2 === 1)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test("a non-IP is refused", () => {
    expect(() => ipToBytes("example.com")).toThrow(RangeError);
  });
});

describe("decideRoles", () => {
  const A = { ip: "198.51.100.1", port: 4000 };
  const B = { ip: "198.51.100.2", port: 4000 };

  test("the larger token listens and the smaller dials", () => {
    expect(decideRoles({ ...A, token: tok(9, 0) }, { ...B, token: tok(1, 255) })).toEqual({ listener: "a", dialer: "b", by: "token" });
    expect(decideRoles({ ...A, token: tok(1, 255) }, { ...B, token: tok(9, 0) })).toEqual({ listener: "b", dialer: "a", by: "token" });
  });

  test("equal tokens: the larger IP listens", () => {
    expect(decideRoles({ ...A, token: tok(3, 3) }, { ...B, token: tok(3, 3) })).toEqual({ listener: "b", dialer: "a", by: "ip" });
    // Bytes, not text: 198.51.100.10 > 198.51.100.9 although "10" < "9" as strings.
    expect(decideRoles({ ip: "198.51.100.10", port: 1, token: tok(1) }, { ip: "198.51.100.9", port: 1, token: tok(1) })!.listener).toBe("a");
  });

  test("equal tokens and IPs (one NAT): the larger port listens", () => {
    expect(decideRoles({ ...A, port: 5000, token: tok(1) }, { ...A, port: 4000, token: tok(1) })).toEqual({ listener: "a", dialer: "b", by: "port" });
  });

  test("one endpoint twice cannot be ordered", () => {
    expect(decideRoles({ ...A, token: tok(1) }, { ...A, token: tok(1) })).toBeNull();
  });

  test("both orders of the same pair agree on who listens", () => {
    const a = { ...A, token: newPunchToken() };
    const b = { ...B, token: newPunchToken() };
    const ab = decideRoles(a, b)!;
    const ba = decideRoles(b, a)!;
    expect(ab.listener === "a").toBe(ba.listener === "b");
  });
});
