// Addresses (DESIGN §9 ADDR syntax): one type, one parser for "ip:port", "[v6]:port" and
// "…#<ecdh-public-key-hex>", one printer. IPv4-mapped IPv6 from dual-stack sockets is shown as IPv4.
import { isIP } from "node:net";
import { hexToBytes } from "@noble/hashes/utils.js";
import { ConfigError } from "../errors.ts";

/** An IP (v4 dotted quad or v6 text, no brackets) and a port. */
export interface HostPort {
  readonly ip: string;
  readonly port: number;
}

/** An address as the user or a record gives it: with its family and, after "#", the peer's key. */
export interface PeerAddress extends HostPort {
  readonly family: 4 | 6;
  /** The peer's X25519 public key, when the address carried "#hex". */
  readonly publicKey?: Uint8Array;
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

/** "1.2.3.4:80" or "[::1]:80", from an address or from its ip and port. */
export function formatAddress(addr: HostPort): string;
export function formatAddress(ip: string, port: number): string;
export function formatAddress(addrOrIp: HostPort | string, port?: number): string {
  const [ip, p] = typeof addrOrIp === "string" ? [addrOrIp, port] : [addrOrIp.ip, addrOrIp.port];
  return ip.includes(":") ? `[${ip}]:${p}` : `${ip}:${p}`;
}

/** "::ffff:1.2.3.4" → "1.2.3.4": dual-stack sockets report IPv4 peers that way. */
export function unmapIp(ip: string): string {
  return ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** Remote end of a socket, unmapped; port 0 when unknown (socket already gone). */
export function remoteOf(socket: { remoteAddress?: string; remotePort?: number }): HostPort {
  return { ip: unmapIp(socket.remoteAddress ?? ""), port: socket.remotePort ?? 0 };
}

/** Local end of a socket, unmapped; port 0 when unknown. */
export function localOf(socket: { localAddress?: string; localPort?: number }): HostPort {
  return { ip: unmapIp(socket.localAddress ?? ""), port: socket.localPort ?? 0 };
}
