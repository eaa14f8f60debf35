// IP address text ↔ bytes without allocation beyond the result: dotted quads, RFC 4291 §2.2 IPv6 text
// (with "::" and a trailing dotted quad), RFC 5952 §4 output. Used on hot paths (the STUN responder).

/** True for ::ffff:a.b.c.d, how a dual-stack socket shows an IPv4 peer (RFC 4291 §2.5.5.2). */
export function isV4Mapped(addr: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (addr[i] !== 0) return false;
  return addr[10] === 0xff && addr[11] === 0xff;
}

/** Dotted quad to 4 bytes; null unless exactly four decimal parts of 0–255 without leading zeros' ambiguity. */
export function parseIPv4(ip: string): Uint8Array | null {
  const out = new Uint8Array(4);
  return parseIPv4Into(ip, 0, ip.length, out, 0) ? out : null;
}

function parseIPv4Into(s: string, start: number, end: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? s.charCodeAt(i) : 0x2e; // a virtual final "."
    if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return false; // "01" is octal to some parsers: refuse it
      value = value * 10 + (c - 0x30);
      if (value > 255 || ++digits > 3) return false;
    } else if (c === 0x2e) {
      if (digits === 0 || part > 3) return false;
      out[at + part++] = value;
      value = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return part === 4;
}

/** RFC 4291 §2.2 text (with "::" and a trailing dotted quad; a "%zone" is dropped) to 16 bytes, else null. */
export function parseIPv6(ip: string): Uint8Array | null {
  const zone = ip.indexOf("%");
  const s = zone >= 0 ? ip.slice(0, zone) : ip;
  if (s.length < 2 || s.length > 45) return null;
  const out = new Uint8Array(16);
  const gap = s.indexOf("::");
  if (gap >= 0 && s.indexOf("::", gap + 1) >= 0) return null;
  const head = gap >= 0 ? s.slice(0, gap) : s;
  const tail = gap >= 0 ? s.slice(gap + 2) : "";
  const headBytes = parseGroups(head, out, 0, gap < 0);
  if (headBytes < 0) return null;
  if (gap < 0) return headBytes === 16 ? out : null;
  const tailOut = new Uint8Array(16);
  const tailBytes = parseGroups(tail, tailOut, 0, true);
  if (tailBytes < 0 || headBytes + tailBytes > 14) return null; // "::" stands for at least one group
  out.set(tailOut.subarray(0, tailBytes), 16 - tailBytes);
  return out;
}

// Parses colon-separated hex groups (the last may be a dotted quad when `last`) into out; returns bytes or -1.
function parseGroups(s: string, out: Uint8Array, at: number, last: boolean): number {
  if (s.length === 0) return 0;
  let written = 0;
  let start = 0;
  while (start <= s.length) {
    let end = s.indexOf(":", start);
    if (end < 0) end = s.length;
    if (end === start) return -1;
    if (end === s.length && last && s.lastIndexOf(".", end) > start) {
      if (written + 4 > 16 || !parseIPv4Into(s, start, end, out, at + written)) return -1;
      return written + 4;
    }
    if (end - start > 4 || written + 2 > 16) return -1;
    let value = 0;
    for (let i = start; i < end; i++) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) return -1;
      value = (value << 4) | h;
    }
    out[at + written++] = value >> 8;
    out[at + written++] = value & 0xff;
    start = end + 1;
  }
  return written;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** 4 bytes of `addr` from `at` as a dotted quad. */
export function formatIPv4(addr: Uint8Array, at: number): string {
  return `${addr[at]}.${addr[at + 1]}.${addr[at + 2]}.${addr[at + 3]}`;
}

/** RFC 5952 §4 text: lower-case hex, no leading zeros, the longest run (≥ 2) of zero groups as "::". */
export function formatIPv6(addr: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((addr[i] << 8) | addr[i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
