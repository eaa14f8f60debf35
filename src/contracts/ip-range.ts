// Special-purpose address ranges (RFC 6890 and the IANA special-purpose registries): addresses a public
// node must not be made to send to on a stranger's word (loopback, private networks, link-local,
// shared CGNAT space, multicast, documentation and reserved blocks). Everything else is global unicast.
import { isV4Mapped, parseIPv4, parseIPv6 } from "./ip.ts";

/** [first address bytes, prefix length, name]. */
type Block = readonly [readonly number[], number, string];

const V4_BLOCKS: readonly Block[] = [
  [[0, 0, 0, 0], 8, "this-network"], // RFC 791
  [[10, 0, 0, 0], 8, "private"], // RFC 1918
  [[100, 64, 0, 0], 10, "shared"], // RFC 6598 (CGNAT)
  [[127, 0, 0, 0], 8, "loopback"], // RFC 1122
  [[169, 254, 0, 0], 16, "link-local"], // RFC 3927
  [[172, 16, 0, 0], 12, "private"], // RFC 1918
  [[192, 0, 0, 0], 24, "ietf-protocol"], // RFC 6890
  [[192, 0, 2, 0], 24, "documentation"], // RFC 5737
  [[192, 88, 99, 0], 24, "6to4-relay"], // RFC 7526
  [[192, 168, 0, 0], 16, "private"], // RFC 1918
  [[198, 18, 0, 0], 15, "benchmarking"], // RFC 2544
  [[198, 51, 100, 0], 24, "documentation"], // RFC 5737
  [[203, 0, 113, 0], 24, "documentation"], // RFC 5737
  [[224, 0, 0, 0], 4, "multicast"], // RFC 5771
  [[240, 0, 0, 0], 4, "reserved"], // RFC 1112 (and 255.255.255.255, broadcast)
];

const V6_BLOCKS: readonly Block[] = [
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified"], // RFC 4291
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"], // RFC 4291
  [[0, 0x64, 0xff, 0x9b, 0, 1], 48, "nat64-local"], // RFC 8215
  [[0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, "discard"], // RFC 6666
  [[0x20, 0x01, 0x00, 0x00], 23, "ietf-protocol"], // RFC 2928 (Teredo 2001::/32 inside)
  [[0x20, 0x01, 0x0d, 0xb8], 32, "documentation"], // RFC 3849
  [[0x20, 0x02], 16, "6to4"], // RFC 3056: embeds an IPv4 address of any range
  [[0x3f, 0xff, 0xf0, 0x00], 20, "documentation"], // RFC 9637
  [[0xfc, 0x00], 7, "unique-local"], // RFC 4193
  [[0xfe, 0x80], 10, "link-local"], // RFC 4291
  [[0xfe, 0xc0], 10, "site-local"], // RFC 3879 (deprecated)
  [[0xff, 0x00], 8, "multicast"], // RFC 4291
];

function inBlock(addr: Uint8Array, [first, bits]: Block): boolean {
  for (let i = 0; i < bits; i += 8) {
    const left = bits - i;
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if (((addr[i / 8] ?? 0) & mask) !== ((first[i / 8] ?? 0) & mask)) return false;
  }
  return true;
}

/** The name of the special-purpose range `ip` lies in ("loopback", "private", "link-local", …), null for a
 *  global unicast address, "invalid" for text that is not an IP address. IPv4-mapped IPv6 addresses are
 *  judged as the IPv4 address they carry. */
export function specialRangeOf(ip: string): string | null {
  const v4 = parseIPv4(ip);
  if (v4) return V4_BLOCKS.find((b) => inBlock(v4, b))?.[2] ?? null;
  const v6 = parseIPv6(ip);
  if (!v6) return "invalid";
  if (isV4Mapped(v6)) return specialRangeOf(`${v6[12]}.${v6[13]}.${v6[14]}.${v6[15]}`);
  // ::/96 other than :: and ::1: the deprecated IPv4-compatible form.
  if (v6.subarray(0, 12).every((b) => b === 0) && !inBlock(v6, V6_BLOCKS[0]!) && !inBlock(v6, V6_BLOCKS[1]!)) return "ipv4-compatible";
  return V6_BLOCKS.find((b) => inBlock(v6, b))?.[2] ?? null;
}
