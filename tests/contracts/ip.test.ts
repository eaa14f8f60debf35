// IP text ↔ bytes (contracts/ip.ts): the forms RFC 4291 §2.2 allows parse, everything else is null.
import { describe, expect, test } from "bun:test";
import { formatIPv4, formatIPv6, isV4Mapped, parseIPv4, parseIPv6 } from "../../src/contracts/ip.ts";

const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("IP addresses", () => {
  test("address text: valid forms parse, invalid ones are null", () => {
    expect(toHex(parseIPv4("192.0.2.1")!)).toBe("c0000201");
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "1.2.3.4 ", "a.b.c.d"]) {
      expect(parseIPv4(bad)).toBeNull();
    }
    expect(toHex(parseIPv6("::")!)).toBe("0".repeat(32));
    expect(toHex(parseIPv6("::ffff:1.2.3.4")!)).toBe("00000000000000000000ffff01020304");
    expect(toHex(parseIPv6("1:2:3:4:5:6:7:8")!)).toBe("00010002000300040005000600070008");
    expect(toHex(parseIPv6("1::8")!)).toBe("00010000000000000000000000000008");
    for (const bad of [":", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "1:", ":1", "g::", "1.2.3.4::", "1:2:3:4:5:6:7::8"]) {
      expect(parseIPv6(bad)).toBeNull();
    }
  });

  test("formatIPv6 writes RFC 5952 text: lower case, no leading zeros, the longest zero run as ::", () => {
    for (const [text, want] of [
      ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
      ["2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"],
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["::", "::"],
      ["fe80::1%eth0", "fe80::1"],
    ] as const) {
      expect(formatIPv6(parseIPv6(text)!)).toBe(want);
    }
  });

  test("formatIPv4 reads four bytes from an offset; isV4Mapped spots ::ffff:a.b.c.d", () => {
    const mapped = parseIPv6("::ffff:192.0.2.7")!;
    expect(isV4Mapped(mapped)).toBe(true);
    expect(formatIPv4(mapped, 12)).toBe("192.0.2.7");
    expect(isV4Mapped(parseIPv6("::1")!)).toBe(false);
  });

  test("random strings never throw: each is null or round-trips", () => {
    const chars = "0123456789abcdefABCDEF:.%x ";
    for (let i = 0; i < 5000; i++) {
      let s = "";
      for (let n = Math.floor(Math.random() * 20); n > 0; n--) s += chars[Math.floor(Math.random() * chars.length)];
      const v4 = parseIPv4(s);
      if (v4) expect(formatIPv4(v4, 0)).toBe(s);
      const v6 = parseIPv6(s);
      if (v6) expect(toHex(parseIPv6(formatIPv6(v6))!)).toBe(toHex(v6));
    }
  });
});
