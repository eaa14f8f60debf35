// Special-purpose address ranges (src/contracts/special-address.ts; RFC 6890 and the IANA registries).
import { describe, expect, test } from "bun:test";
import { isSpecialAddress } from "../../src/contracts/special-address.ts";

describe("isSpecialAddress", () => {
  test("loopback, private, link-local, CGNAT, documentation, benchmarking, multicast and reserved IPv4 are special", () => {
    for (const ip of ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.1.1", "100.64.0.1", "100.127.255.255", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "198.19.255.255", "224.0.0.1", "240.0.0.1", "255.255.255.255", "0.0.0.0"]) {
      expect(isSpecialAddress(ip)).toBe(true);
    }
  });

  test("public IPv4 next to those ranges is not", () => {
    for (const ip of ["1.1.1.1", "8.8.8.8", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0", "198.17.255.255", "198.20.0.0", "192.0.3.1", "223.255.255.255"]) {
      expect(isSpecialAddress(ip)).toBe(false);
    }
  });

  test("IPv6: loopback, unspecified, ULA, link-local, documentation, multicast are special; global unicast is not; IPv4-mapped follows IPv4", () => {
    for (const ip of ["::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "2001:db8::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"]) expect(isSpecialAddress(ip)).toBe(true);
    for (const ip of ["2001:4860:4860::8888", "2a00:1450::1", "::ffff:8.8.8.8"]) expect(isSpecialAddress(ip)).toBe(false);
  });

  test("anything that is not an IP address counts as special", () => {
    for (const ip of ["", "localhost", "1.2.3", "::g", "1.2.3.4.5"]) expect(isSpecialAddress(ip)).toBe(true);
  });
});
