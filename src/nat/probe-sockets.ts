// Client-side sockets of the NAT tests (DESIGN §6): which local IP the host sends from, and fresh unconnected
// UDP sockets for the formal step and the lifetime test (one mapping each).
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { errorLine } from "../errors.ts";
import { normalizeIp, type Endpoint } from "./source-check.ts";

/** The local IP the kernel picks to reach `target` (a connected UDP socket sends nothing; it only routes).
 *  NAT tests need the interface address, never 0.0.0.0: "mapped = local" is decided against it. */
export function routeSourceIp(target: Endpoint): Promise<string> {
  const sock = createSocket(isIP(target.ip) === 6 ? "udp6" : "udp4");
  return new Promise((resolve, reject) => {
    sock.once("error", (err) => {
      sock.close();
      reject(new Error(`Cannot find a route to ${target.ip}: ${errorLine(err)}`));
    });
    sock.connect(target.port, target.ip, () => {
      const local = normalizeIp(sock.address().address);
      sock.close();
      resolve(local);
    });
  });
}

/** A fresh UDP socket on `localIp`:ephemeral. Datagrams go to `onMessage`; send errors are returned, never thrown
 *  out of a listener. */
export interface ProbeSocket {
  readonly local: Endpoint;
  send(bytes: Uint8Array, to: Endpoint): Promise<void>;
  close(): void;
}

export async function openProbeSocket(localIp: string, onMessage: (buf: Uint8Array, from: Endpoint) => void): Promise<ProbeSocket> {
  const sock: Socket = createSocket(isIP(localIp) === 6 ? "udp6" : "udp4");
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(0, localIp, () => {
      sock.off("error", reject);
      resolve();
    });
  });
  // ICMP errors of earlier sends (e.g. port unreachable) surface here; the tests treat them as silence.
  sock.on("error", () => {});
  sock.on("message", (msg, rinfo) => {
    try {
      onMessage(msg, { ip: normalizeIp(rinfo.address), port: rinfo.port });
    } catch {
      // A bug in a handler must not take the socket down; the datagram is simply not counted.
    }
  });
  let closed = false;
  return {
    local: { ip: localIp, port: sock.address().port },
    send(bytes, to) {
      if (closed) return Promise.reject(new Error("Cannot send: the probe socket is closed"));
      return new Promise((resolve, reject) => sock.send(bytes, to.port, to.ip, (err) => (err ? reject(err) : resolve())));
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        sock.close();
      } catch {
        // already closed
      }
    },
  };
}
