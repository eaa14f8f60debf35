// The processes of scripts/bench/binding.ts: standalone Binding responders (Bun.udpSocket, Bun sendMany,
// node:dgram; each prints "ready PORT") and the closed-loop load generator (prints "measuring" when the
// counted window opens and one JSON line when it closes). Started by binding.ts as
//   bun scripts/bench/binding-roles.ts --role serve-bun|serve-bun-batched|serve-dgram|load [--port P --seconds S --sockets N --window W]
import dgram from "node:dgram";
import { decodeBindingResponse, encodeBindingRequest } from "../../src/stun/binding.ts";
import { createBindingResponder } from "../../src/stun/responder.ts";
import { classifyDatagram } from "../../src/transport/udp/classify.ts";

export const HOST = "127.0.0.1";
/** Answers before counting starts: lets JIT, socket buffers and coturn's first allocations settle. */
export const WARMUP_MS = 1_000;
/** A request unanswered this long is counted lost and resent: loopback answers take well under a millisecond
 *  even with queues full, and a lost slot idles this long, so keep it short. */
const LOST_AFTER_MS = 50;
/** Socket buffer asked for on node:dgram; Linux doubles it, so the socket holds 4 MiB like coturn's. */
const SOCKET_BUFFER_BYTES = 2 * 1024 * 1024;

const ignore = () => {};

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};

// ---------------------------------------------------------------------------------------------
// Servers: the path the node runs, socket → classifyDatagram → responder.

async function serveBun(): Promise<void> {
  const responder = createBindingResponder({ reuseOutput: true }); // Bun.udpSocket.send copies synchronously
  const socket = await Bun.udpSocket({
    hostname: HOST,
    socket: {
      data(sock, buf, port, address, flags) {
        if (classifyDatagram(buf) === "stun") responder.handle(buf, address, port, flags.ipv6 ? 6 : 4, send);
      },
      // ICMP port-unreachable from a client that left surfaces here as ECONNREFUSED; it is not ours to die of.
      error: ignore,
    },
  });
  const send = (bytes: Uint8Array, port: number, ip: string) => void socket.send(bytes, port, ip);
  console.log(`ready ${socket.port}`);
}

/** Like serveBun, but answers leave once per event-loop turn in one sendMany (sendmmsg): what a transport
 *  could do when it owns a Bun socket. Answers are kept until the flush, so no buffer reuse. */
async function serveBunBatched(): Promise<void> {
  const responder = createBindingResponder();
  const batch: (Uint8Array | number | string)[] = [];
  let flushScheduled = false;
  const flush = () => {
    flushScheduled = false;
    socket.sendMany(batch);
    batch.length = 0;
  };
  const send = (bytes: Uint8Array, port: number, ip: string) => {
    batch.push(bytes, port, ip);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };
  const socket = await Bun.udpSocket({
    hostname: HOST,
    socket: {
      data(sock, buf, port, address, flags) {
        if (classifyDatagram(buf) === "stun") responder.handle(buf, address, port, flags.ipv6 ? 6 : 4, send);
      },
      error: ignore,
    },
  });
  console.log(`ready ${socket.port}`);
}

function serveDgram(): void {
  const responder = createBindingResponder(); // node:dgram reads the bytes after send() returns
  // coturn asks for large socket buffers (ss shows rb 4 MiB); match it so a burst is not dropped here first.
  // Bun.udpSocket has no such option and keeps the kernel default (rmem_default, 208 KiB here).
  const socket = dgram.createSocket({ type: "udp4", recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
  // Without a listener, node:dgram throws ECONNREFUSED (ICMP from a client that left) and kills the process.
  socket.on("error", ignore);
  const send = (bytes: Uint8Array, port: number, ip: string) => socket.send(bytes, port, ip);
  socket.on("message", (buf, rinfo) => {
    if (classifyDatagram(buf) === "stun") responder.handle(buf, rinfo.address, rinfo.port, 4, send);
  });
  socket.bind(0, HOST, () => console.log(`ready ${socket.address().port}`));
}

// ---------------------------------------------------------------------------------------------
// Load generator: prints "measuring" when the counted window opens and one JSON line when it closes.

async function load(port: number, seconds: number, socketCount: number, window: number): Promise<void> {
  let counting = false;
  let answered = 0;
  let lost = 0;
  let wrong = 0;
  const sockets: Bun.udp.Socket<"buffer">[] = [];
  // One 20-byte request per slot; txId bytes 8–11 = slot, 12–15 = sequence (a resend bumps it, so a late
  // answer to the old one is not counted twice).
  const requests: Uint8Array[] = [];
  const sentAt = new Float64Array(socketCount * window);
  const views: DataView[] = [];
  for (let slot = 0; slot < socketCount * window; slot++) {
    const request = encodeBindingRequest(new Uint8Array(12));
    views.push(new DataView(request.buffer));
    views[slot].setUint32(8, slot);
    requests.push(request);
  }
  // Requests are queued and leave once per event-loop turn in one sendMany (sendmmsg) per socket: one
  // syscall for a whole batch keeps the generator ahead of the server it measures. A slot's buffer is not
  // touched again until its answer arrives, so queueing the buffer itself is safe.
  const pending: (Uint8Array | number | string)[][] = Array.from({ length: socketCount }, () => []);
  let flushScheduled = false;
  let now = performance.now();
  let stopped = false;
  const flush = () => {
    flushScheduled = false;
    if (stopped) return;
    now = performance.now();
    for (let s = 0; s < socketCount; s++) {
      if (pending[s].length === 0) continue;
      sockets[s].sendMany(pending[s]); // what the kernel refuses is resent by the sweep
      pending[s].length = 0;
    }
  };
  const send = (slot: number) => {
    const view = views[slot];
    view.setUint32(12, view.getUint32(12) + 1);
    sentAt[slot] = now;
    pending[Math.floor(slot / window)].push(requests[slot], port, HOST);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };
  const checked = new Set<number>();
  for (let s = 0; s < socketCount; s++) {
    sockets.push(await Bun.udpSocket({
      hostname: HOST,
      socket: {
        error: ignore, // ICMP from the server side while it starts or stops
        data(sock, buf) {
          if (stopped) return;
          if (buf.length < 20 || buf[0] !== 0x01 || buf[1] !== 0x01) return void wrong++;
          const slot = ((buf[8] << 24) | (buf[9] << 16) | (buf[10] << 8) | buf[11]) >>> 0;
          const request = requests[slot];
          if (request === undefined) return void wrong++;
          for (let i = 12; i < 16; i++) if (buf[i] !== request[i]) return; // answer to a resent request
          if (!checked.has(s)) {
            // Once per socket: the answer must name this socket's own address (both servers, same check).
            checked.add(s);
            const decoded = decodeBindingResponse(buf);
            if (!decoded.ok || decoded.ip !== HOST || decoded.port !== sock.port) {
              console.error(`wrong answer: ${JSON.stringify(decoded)} for port ${sock.port}`);
              process.exit(1);
            }
          }
          if (counting) answered++;
          send(slot);
        },
      },
    }));
  }
  for (let slot = 0; slot < socketCount * window; slot++) send(slot);
  const sweep = setInterval(() => {
    now = performance.now();
    for (let slot = 0; slot < sentAt.length; slot++) {
      if (now - sentAt[slot] > LOST_AFTER_MS) {
        if (counting) lost++;
        send(slot);
      }
    }
  }, LOST_AFTER_MS / 4);
  await Bun.sleep(WARMUP_MS);
  counting = true;
  console.log("measuring");
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  await Bun.sleep(seconds * 1000);
  counting = false;
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  clearInterval(sweep);
  stopped = true;
  console.log(JSON.stringify({ answered, lost, wrong, elapsedS, cpuS: (cpu.user + cpu.system) / 1e6 }));
  for (const socket of sockets) socket.close();
}

if (import.meta.main) {
  switch (flag("role", "")) {
    case "serve-bun":
      await serveBun();
      break;
    case "serve-bun-batched":
      await serveBunBatched();
      break;
    case "serve-dgram":
      serveDgram();
      break;
    case "load":
      await load(Number(flag("port", "0")), Number(flag("seconds", "5")), Number(flag("sockets", "4")), Number(flag("window", "64")));
      break;
    default:
      throw new Error("binding-roles.ts: --role serve-bun|serve-bun-batched|serve-dgram|load");
  }
}
