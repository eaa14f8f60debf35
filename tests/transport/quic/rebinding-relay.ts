// A NAT stand-in on loopback for NAT-rebinding tests: the client sends to the relay's front socket and the relay
// forwards from an outbound socket, so the server sees the outbound socket's port as the client's address.
// `rebind()` switches to a fresh outbound socket (the NAT re-mapped the flow); `spoofFrom()` makes a third
// socket race each client datagram ahead of the real one (an on-path attacker replaying packets from its own
// address) and drops whatever the server sends to it.
import { createSocket, type Socket } from "node:dgram";

export interface RebindingRelay {
  /** Where the client dials. */
  readonly port: number;
  /** The client's address as the server sees it now. */
  readonly mappedPort: number;
  /** Moves the flow to a new outbound socket; resolves with its port. */
  rebind(): Promise<number>;
  /** Starts (true) or stops (false) the racing copies from an attacker socket; resolves with its port. */
  spoof(on: boolean): Promise<number>;
  /** Datagrams the server sent to the attacker socket (path probes, or data if it believed the spoof). */
  readonly toAttacker: number;
  close(): void;
}

async function bound(): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", () => resolve()));
  return s;
}

export async function startRebindingRelay(server: { ip: string; port: number }): Promise<RebindingRelay> {
  const front = await bound();
  const sockets: Socket[] = [front];
  let client: { address: string; port: number } | undefined;
  const outbound = async (): Promise<Socket> => {
    const s = await bound();
    sockets.push(s);
    s.on("message", (m) => {
      if (client && s === back) front.send(m, client.port, client.address);
    });
    return s;
  };
  let back = await outbound();
  let attacker: Socket | undefined;
  let toAttacker = 0;
  front.on("message", (m, r) => {
    client = { address: r.address, port: r.port };
    if (attacker) attacker.send(m, server.port, server.ip, () => back.send(m, server.port, server.ip));
    else back.send(m, server.port, server.ip);
  });
  return {
    port: front.address().port,
    get toAttacker() {
      return toAttacker;
    },
    get mappedPort() {
      return back.address().port;
    },
    async rebind() {
      back = await outbound();
      return back.address().port;
    },
    async spoof(on) {
      if (!on) {
        const port = attacker?.address().port ?? 0;
        attacker = undefined;
        return port;
      }
      if (!attacker) {
        attacker = await bound();
        sockets.push(attacker);
        attacker.on("message", () => void toAttacker++);
      }
      return attacker.address().port;
    },
    close() {
      for (const s of sockets) s.close();
    },
  };
}
