// Tiny UDP/TCP agent run inside a lab namespace, driven by JSON lines on stdin (NAT lab, DESIGN §10).
//
// Requests (one JSON object per line, each with an `id`); one JSON answer line per request, same `id`:
//   {op:"bind", port?, host?, echo?, v6?} → {sock, address, port}   echo: answer every datagram with "seen ip:port"
//                                            (IPv6 when v6 or an IPv6 host; IPv6 addresses are written [ip]:port)
//   {op:"send", sock, to:"ip:port", data} → {}
//   {op:"recv", sock, waitMs, min?}       → {datagrams:[{from, data}]}  waits until ≥ min (default 1) are buffered
//                                            or waitMs passed, then returns and clears the buffer
//   {op:"tcp-listen", port, host?}        → {port}                  accepts and closes connections
//   {op:"tcp-connect", to, waitMs}        → {connected}
//   {op:"quit"}                           → exits after answering
// Errors answer {id, error}. The agent exits when stdin closes, so a killed test never leaves it behind.

import { createSocket, type Socket } from "node:dgram";
import { createConnection, createServer, type Server } from "node:net";
import { createInterface } from "node:readline";

interface Datagram {
  from: string;
  data: string;
}

interface Request {
  id: number;
  op: string;
  [key: string]: unknown;
}

const sockets = new Map<number, { sock: Socket; inbox: Datagram[]; wake?: () => void }>();
const servers: Server[] = [];
let nextSock = 1;

/** Sends tried per request: each ECONNREFUSED consumes one queued ICMP error, and a few may be queued. */
const SEND_ATTEMPTS = 5;

function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port: Number(addr.slice(i + 1)) };
}

function joinAddr(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function reply(obj: object): void {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function handle(req: Request): Promise<object> {
  switch (req.op) {
    case "bind": {
      const host = req.host as string | undefined;
      const v6 = req.v6 === true || (host?.includes(":") ?? false);
      const sock = createSocket({ type: v6 ? "udp6" : "udp4", ipv6Only: v6 });
      const entry: { sock: Socket; inbox: Datagram[]; wake?: () => void } = { sock, inbox: [] };
      const echo = req.echo === true;
      sock.on("error", () => {}); // ICMP errors of earlier datagrams; the send path handles them
      sock.on("message", (msg, rinfo) => {
        const from = joinAddr(rinfo.address, rinfo.port);
        entry.inbox.push({ from, data: msg.toString() });
        if (echo) sock.send(`seen ${from}`, rinfo.port, rinfo.address);
        entry.wake?.();
      });
      await new Promise<void>((resolve, reject) => {
        sock.once("error", reject);
        sock.bind((req.port as number | undefined) ?? 0, host ?? (v6 ? "::" : "0.0.0.0"), () => resolve());
      });
      const id = nextSock++;
      sockets.set(id, entry);
      const a = sock.address();
      return { sock: id, address: a.address, port: a.port };
    }
    case "send": {
      const entry = sockets.get(req.sock as number);
      if (!entry) throw new Error(`no socket ${req.sock}`);
      const { host, port } = splitAddr(req.to as string);
      const sendOnce = () =>
        new Promise<void>((resolve, reject) =>
          entry.sock.send(String(req.data ?? ""), port, host, (err) => (err ? reject(err) : resolve())),
        );
      // An ICMP port-unreachable caused by an EARLIER datagram (e.g. a probe a router dropped to its own stack)
      // is reported on the next send as ECONNREFUSED; that datagram was not sent, so send it again.
      for (let attempt = 1; ; attempt++) {
        try {
          await sendOnce();
          return {};
        } catch (err) {
          if ((err as { code?: string }).code !== "ECONNREFUSED" || attempt >= SEND_ATTEMPTS) throw err;
        }
      }
    }
    case "recv": {
      const entry = sockets.get(req.sock as number);
      if (!entry) throw new Error(`no socket ${req.sock}`);
      const min = (req.min as number | undefined) ?? 1;
      const deadline = Date.now() + ((req.waitMs as number | undefined) ?? 500);
      while (entry.inbox.length < min && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, deadline - Date.now());
          entry.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        entry.wake = undefined;
      }
      const datagrams = entry.inbox.splice(0);
      return { datagrams };
    }
    case "tcp-listen": {
      const server = createServer((c) => c.end());
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen((req.port as number | undefined) ?? 0, (req.host as string | undefined) ?? "0.0.0.0", () => resolve());
      });
      servers.push(server);
      const a = server.address();
      return { port: typeof a === "object" && a ? a.port : 0 };
    }
    case "tcp-connect": {
      const { host, port } = splitAddr(req.to as string);
      const connected = await new Promise<boolean>((resolve) => {
        const c = createConnection({ host, port });
        const t = setTimeout(() => {
          c.destroy();
          resolve(false);
        }, (req.waitMs as number | undefined) ?? 1000);
        c.once("connect", () => {
          clearTimeout(t);
          c.destroy();
          resolve(true);
        });
        c.once("error", () => {
          clearTimeout(t);
          resolve(false);
        });
      });
      return { connected };
    }
    case "quit":
      setTimeout(shutdown, 0);
      return {};
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

function shutdown(): void {
  for (const { sock } of sockets.values()) sock.close();
  for (const s of servers) s.close();
  process.exit(0);
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  let req: Request;
  try {
    req = JSON.parse(line) as Request;
  } catch {
    return;
  }
  handle(req).then(
    (out) => reply({ id: req.id, ...out }),
    (err: unknown) => reply({ id: req.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
lines.on("close", shutdown);
reply({ ready: true });
