// Socket addresses as the TCP side reports them (DESIGN §2, §9 ADDR syntax): IPv4-mapped IPv6
// shown as IPv4, IPv6 in brackets when a port follows (printing rules from address.ts).
import { formatAddress, unmapIp } from "../../contracts/address.ts";

export interface HostPort {
  readonly ip: string;
  readonly port: number;
}

/** "1.2.3.4:80" or "[::1]:80". */
export function formatHostPort(addr: HostPort): string {
  return formatAddress(addr.ip, addr.port);
}

/** Remote end of a socket; a dual-stack listener's "::ffff:1.2.3.4" becomes "1.2.3.4". Port 0
 *  when unknown (socket already gone). */
export function remoteOf(socket: { remoteAddress?: string; remotePort?: number }): HostPort {
  return { ip: unmapIp(socket.remoteAddress ?? ""), port: socket.remotePort ?? 0 };
}

export function localOf(socket: { localAddress?: string; localPort?: number }): HostPort {
  return { ip: unmapIp(socket.localAddress ?? ""), port: socket.localPort ?? 0 };
}
