// Special-purpose address ranges (RFC 6890 and the IANA special-purpose registries): addresses a public node
// must not send to on a stranger's word (loopback, private, link-local, shared CGNAT space, documentation,
// benchmarking, multicast, reserved). Labs and devnets live in these ranges, hence the config switch
// `allow_special_addresses` at the call sites.
import { isV4Mapped, parseIPv4, parseIPv6 } from "./ip.ts";

/** [first octets…, prefix length] of the IPv4 special ranges. */
const V4_SPECIAL: ReadonlyArray<readonly [number, number, number, number, number]> = [
  [0, 0, 0, 0, 8], // "this network" (RFC 791)
  [10, 0, 0, 0, 8], // private (RFC 1918)
  [100, 64, 0, 0, 10], // shared address space, CGNAT (RFC 6598)
  [127, 0, 0, 0, 8], // loopback (RFC 1122)
  [169, 254, 0, 0, 16], // link-local (RFC 3927)
  [172, 16, 0, 0, 12], // private (RFC 1918)
  [192, 0, 0, 0, 24], // IETF protocol assignments (RFC 6890)
  [192, 0, 2, 0, 24], // TEST-NET-1 (RFC 5737)
  [192, 88, 99, 0, 24], // deprecated 6to4 relay anycast (RFC 7526)
  [192, 168, 0, 0, 16], // private (RFC 1918)
  [198, 18, 0, 0, 15], // benchmarking (RFC 2544)
  [198, 51, 100, 0, 24], // TEST-NET-2 (RFC 5737)
  [203, 0, 113, 0, 24], // TEST-NET-3 (RFC 5737)
  [224, 0, 0, 0, 4], // multicast (RFC 5771)
  [240, 0, 0, 0, 4], // reserved, and the limited broadcast 255.255.255.255 (RFC 1112, RFC 919)
];

/** [first bytes…, prefix length] of the IPv6 special ranges (IPv4-mapped addresses are judged as IPv4). */
const V6_SPECIAL: ReadonlyArray<{ prefix: readonly number[]; bits: number }> = [
  { prefix: [], bits: 128 }, // :: unspecified (checked whole)
  { prefix: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], bits: 128 }, // ::1 loopback (RFC 4291)
  { prefix: [0x01, 0x00], bits: 64 }, // 100::/64 discard-only (RFC 6666)
  { prefix: [0x20, 0x01, 0x0d, 0xb8], bits: 32 }, // documentation (RFC 3849)
  { prefix: [0x20, 0x01, 0x00, 0x02, 0x00, 0x00], bits: 48 }, // benchmarking (RFC 5180)
  { prefix: [0xfc], bits: 7 }, // unique local (RFC 4193)
  { prefix: [0xfe, 0x80], bits: 10 }, // link-local (RFC 4291)
  { prefix: [0xfe, 0xc0], bits: 10 }, // site-local, deprecated (RFC 3879)
  { prefix: [0xff], bits: 8 }, // multicast (RFC 4291)
];

function matches(addr: Uint8Array, prefix: readonly number[], bits: number): boolean {
  for (let i = 0; i * 8 < bits; i++) {
    const left = bits - i * 8;
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if (((addr[i] ?? 0) & mask) !== ((prefix[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** True for an address in a special-purpose range, and for anything that is not an IP address. Never throws. */
export function isSpecialAddress(ip: string): boolean {
  const v4 = parseIPv4(ip);
  if (v4) return V4_SPECIAL.some(([a, b, c, d, bits]) => matches(v4, [a, b, c, d], bits));
  const v6 = parseIPv6(ip);
  if (!v6) return true;
  if (isV4Mapped(v6)) return isSpecialAddress(`${v6[12]}.${v6[13]}.${v6[14]}.${v6[15]}`);
  return V6_SPECIAL.some((r) => matches(v6, r.prefix, r.bits));
}
