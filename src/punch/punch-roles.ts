// Punch tokens and the listen/dial role rule (seed 000 §基本规则, §消息包; DESIGN §7).
//
// Seed: each side gets a freshly generated number; the larger listens, the smaller dials; equal numbers
// (very unlikely) → compare the two IP addresses by the same rule. We add ports after IPs (two apps
// behind one NAT share an IP), so the rule is total for any two distinct endpoints. Both sides and the
// node apply the same rule, so they agree without another message.
import { isIP } from "node:net";
import { MAX_PUNCH_TOKEN_BYTES, MIN_PUNCH_TOKEN_BYTES } from "./constants.ts";

/** Token bytes per side per attempt. The seed asks for a "sequence number"; 16 random bytes make a tie
 *  practically impossible (2^-128) and the token unguessable, so it can also authenticate the peer. */
export const PUNCH_TOKEN_BYTES = 16;

export type RandomBytes = (n: number) => Uint8Array;
/** A uniform source of [0, 1), injectable so tests are deterministic. */
export type Rand = () => number;

export const cryptoRandomBytes: RandomBytes = (n) => crypto.getRandomValues(new Uint8Array(n));

/** A fresh token for one side of one attempt. */
export function newPunchToken(randomBytes: RandomBytes = cryptoRandomBytes, size = PUNCH_TOKEN_BYTES): Uint8Array {
  if (size < MIN_PUNCH_TOKEN_BYTES || size > MAX_PUNCH_TOKEN_BYTES) {
    throw new RangeError(`token size ${size} is out of range ${MIN_PUNCH_TOKEN_BYTES}..${MAX_PUNCH_TOKEN_BYTES}`);
  }
  const token = randomBytes(size);
  if (token.length !== size) throw new RangeError(`random source returned ${token.length} bytes, wanted ${size}`);
  return token;
}

/** Unsigned big-endian comparison: the byte strings as numbers, so a shorter string with the same value
 *  after leading zeros compares equal in value but is ordered before the longer one (total order). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    // Left-pad the shorter with zeros: compare as numbers.
    const x = i < n - a.length ? 0 : a[i - (n - a.length)]!;
    const y = i < n - b.length ? 0 : b[i - (n - b.length)]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** 16 bytes of an IP address; IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d) so both families order together.
 *  Throws RangeError for a string that is not an IP address. */
export function ipToBytes(ip: string): Uint8Array {
  const family = isIP(ip);
  if (family === 4) return Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.split(".").map(Number)]);
  if (family !== 6) throw new RangeError(`${JSON.stringify(ip)} is not an IP address`);
  let text = ip.split("%")[0]!; // zone ids do not order addresses
  const out = new Uint8Array(16);
  // A trailing dotted quad is the last 32 bits.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (quad) {
    const v4 = quad[1]!.split(".").map(Number);
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    text = text.slice(0, -quad[1]!.length) + "0:0";
  }
  const [head, rest] = text.includes("::") ? text.split("::") as [string, string] : [text, undefined];
  const left = head ? head.split(":").map((h) => parseInt(h, 16)) : [];
  const right = rest !== undefined && rest !== "" ? rest.split(":").map((h) => parseInt(h, 16)) : [];
  const groups = rest === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  if (tail.length) groups.splice(6, 2, ...tail);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

export interface RoleSide {
  token: Uint8Array;
  /** Public address as the node sees it. */
  ip: string;
  port: number;
}

export type SideName = "a" | "b";

export interface RoleDecision {
  listener: SideName;
  dialer: SideName;
  /** Which comparison decided. */
  by: "token" | "ip" | "port";
}

/** Seed 000 §基本规则: the larger token listens, the smaller dials; tie → larger IP listens; tie → larger
 *  port listens. Null when everything is equal (one endpoint twice: nothing to punch). */
export function decideRoles(a: RoleSide, b: RoleSide): RoleDecision | null {
  const steps: [RoleDecision["by"], number][] = [
    ["token", compareBytes(a.token, b.token)],
    ["ip", compareBytes(ipToBytes(a.ip), ipToBytes(b.ip))],
    ["port", Math.sign(a.port - b.port)],
  ];
  for (const [by, cmp] of steps) {
    if (cmp > 0) return { listener: "a", dialer: "b", by };
    if (cmp < 0) return { listener: "b", dialer: "a", by };
  }
  return null;
}

export function otherSide(side: SideName): SideName {
  return side === "a" ? "b" : "a";
}
