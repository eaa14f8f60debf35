// Special-purpose address ranges (RFC 6890): what a public node refuses to dial on a stranger's word.
import { describe, expect, test } from "bun:test";
import { specialRangeOf } from "../../src/contracts/ip-range.ts";

describe("specialRangeOf", () => {
  test.each([
    ["127.0.0.1", "loopback"],
    ["127.45.3.9", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "shared"],
    ["169.254.10.10", "link-local"],
    ["0.0.0.0", "this-network"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "reserved"],
    ["192.0.2.1", "documentation"],
    ["198.18.0.1", "benchmarking"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fe80::1", "link-local"],
    ["fd00::1", "unique-local"],
    ["fc12::1", "unique-local"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["64:ff9b:1::1", "nat64-local"],
    ["2002:c000:0201::1", "6to4"],
    ["not an ip", "invalid"],
  ])("%s is %s", (ip, range) => {
    expect(specialRangeOf(ip)).toBe(range);
  });

  test.each(["8.8.8.8", "172.32.0.1", "100.128.0.1", "192.169.0.1", "203.0.114.1", "2606:4700::1111", "2a00:1450:4001::1", "::ffff:1.1.1.1"])("%s is global", (ip) => {
    expect(specialRangeOf(ip)).toBeNull();
  });
});
