// Source prefixes for per-source rate limits: an IPv4 address masked to /n, an IPv6 address to /m. One host
// of IPv4 is one address, one host of IPv6 usually holds a whole /64 (RFC 4291 §2.5.4 interface ids).
import { isIP } from "node:net";

/** "198.51.100.7" with 24 → "198.51.100.0/24"; "2001:db8::1" with 64 → "2001:db8:0:0::/64". Anything that is
 *  not an IP comes back as itself (a test transport may use names). */
export function prefixOf(ip: string, v4Bits: number, v6Bits: number): string {
  const memoKey = v4Bits * 256 + v6Bits;
  let memo = memos.get(memoKey);
  if (!memo) memos.set(memoKey, (memo = new Map()));
  const hit = memo.get(ip);
  if (hit !== undefined) return hit;
  // Bounded: a flood of new addresses empties the memo, never grows it.
  if (memo.size >= MAX_MEMO_ENTRIES) memo.clear();
  const prefix = computePrefix(ip, v4Bits, v6Bits);
  memo.set(ip, prefix);
  return prefix;
}

/** Prefixes already computed, per (v4Bits, v6Bits): a node masks the same few thousand peer addresses
 *  over and over (rate limits, diversity checks). */
const memos = new Map<number, Map<string, string>>();
const MAX_MEMO_ENTRIES = 8192;

function computePrefix(ip: string, v4Bits: number, v6Bits: number): string {
  const family = isIP(ip);
  if (family === 4) return `${maskV4(ip, v4Bits)}/${v4Bits}`;
  if (family === 6) return `${maskV6(ip, v6Bits)}/${v6Bits}`;
  return ip;
}

/** The network an address belongs to for diversity limits: its IPv4 /24 or IPv6 /48 (a site: RFC 6177). */
export function netPrefixOf(ip: string): string {
  const lower = ip.toLowerCase();
  const plain = lower.startsWith("::ffff:") && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
  return prefixOf(plain, 24, 48);
}

/** The wider network group of an address: its IPv4 /16 or IPv6 /32 (what one provider or one
 *  allocation usually spans), for a second diversity limit over the /24s and /48s of netPrefixOf. */
export function netGroupOf(ip: string): string {
  const lower = ip.toLowerCase();
  const plain = lower.startsWith("::ffff:") && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
  return prefixOf(plain, 16, 32);
}

function maskV4(ip: string, bits: number): string {
  const octets = ip.split(".").map(Number);
  return octets.map((o, i) => o & maskByte(bits - i * 8)).join(".");
}

function maskByte(bits: number): number {
  if (bits >= 8) return 0xff;
  if (bits <= 0) return 0;
  return (0xff << (8 - bits)) & 0xff;
}

function maskV6(ip: string, bits: number): string {
  const groups = expandV6(ip);
  const kept: string[] = [];
  for (let i = 0; i < 8; i++) {
    const left = bits - i * 16;
    if (left <= 0) break;
    const mask = left >= 16 ? 0xffff : (0xffff << (16 - left)) & 0xffff;
    kept.push((groups[i]! & mask).toString(16));
  }
  return `${kept.join(":")}${kept.length < 8 ? "::" : ""}`;
}

/** Eight 16-bit groups; a trailing dotted IPv4 part counts as two. */
function expandV6(ip: string): number[] {
  let text = ip.split("%")[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split(".").map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const parse = (s: string | undefined) => (s ? s.split(":").filter((g) => g.length > 0).map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const t = parse(tail);
  const zeros = tail === undefined ? [] : new Array<number>(8 - h.length - t.length).fill(0);
  return [...h, ...zeros, ...t];
}
