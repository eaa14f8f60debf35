// Parsing and printing of "ip:port", "[v6]:port" and "…#<ecdh-public-key-hex>" (DESIGN §9).
import { isIP } from "node:net";
import { hexToBytes } from "@noble/hashes/utils.js";
import { ConfigError } from "../errors.ts";

export interface PeerAddress {
  ip: string;
  port: number;
  family: 4 | 6;
  /** The peer's X25519 public key, when the address carried "#hex". */
  publicKey?: Uint8Array;
}

/** Parses an address; `what` names the flag or key in the error. */
export function parseAddress(text: string, what = "address", opts: { allowPortZero?: boolean } = {}): PeerAddress {
  const [hostPort, keyHex, ...rest] = text.trim().split("#");
  const bad = (why: string) => new ConfigError(what, `${JSON.stringify(text)} is not allowed: ${why} (allowed: "ip:port", "[v6]:port", optionally "#<64 hex key>")`);
  if (rest.length || !hostPort) throw bad("malformed");
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(hostPort) ?? /^([^:]+):(\d+)$/.exec(hostPort);
  if (!m) throw bad("missing port");
  let ip = m[1]!;
  if (ip === "localhost") ip = "127.0.0.1";
  const family = isIP(ip);
  if (family === 0) throw bad(`${ip} is not an IP address`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < (opts.allowPortZero ? 0 : 1) || port > 65535) throw bad(`port ${m[2]} is out of range`);
  let publicKey: Uint8Array | undefined;
  if (keyHex !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(keyHex)) throw bad("the key must be 64 hex digits");
    publicKey = hexToBytes(keyHex.toLowerCase());
  }
  return { ip, port, family: family as 4 | 6, publicKey };
}

/** "ip:port" or "[v6]:port". */
export function formatAddress(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** "::ffff:1.2.3.4" → "1.2.3.4": dual-stack sockets report IPv4 peers that way. */
export function unmapIp(ip: string): string {
  return ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}
