// Measurement, not a test: STUN Binding latency of a node (its own `findings serve` process) while a stranger
// floods mesh.key-check from hosts of one /24. Prints p50/p99/max of Binding round trips, idle and under the
// flood, and how many key checks the node answered OK.
//
//   bun tests/adversary/key-check-binding-bench.ts [--root DIR] [--seconds 5] [--hosts 8] [--links 4] [--inflight 8]
//
// --root runs the node from another checkout (e.g. `git archive main | tar -x -C /tmp/old` with a node_modules
// link) to compare before and after; the flood speaks the same protocol to both.
import { parseArgs } from "node:util";
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { generateNodeKey } from "../../src/identity/index.ts";
import { makeChallenge } from "../../src/mesh/key-challenge.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { Status } from "../../src/wire/index.ts";
import { freeUdpTcpPort, loopbackPrefix } from "../helpers.ts";
import { hostileLink } from "./hostile-link.ts";

const { values } = parseArgs({
  options: {
    root: { type: "string", default: join(import.meta.dir, "..", "..") },
    seconds: { type: "string", default: "5" },
    hosts: { type: "string", default: "8" },
    links: { type: "string", default: "4" },
    inflight: { type: "string", default: "8" },
    /** Internal: run only the flood against "ip:port#key" from hosts of "127.A.B" until killed. */
    flood: { type: "string" },
    net: { type: "string" },
  },
});

/** The flood (in its own process, so the Binding measurement does not share its CPU): hosts × links
 *  workers, each keeping `inflight` fresh key checks going, reconnecting when the link is closed. Prints
 *  its counts when killed. */
if (values.flood) {
  const m = /^(.+):(\d+)#([0-9a-f]{64})$/.exec(values.flood)!;
  const target = { ip: m[1]!, port: Number(m[2]) };
  const key = Uint8Array.from(Buffer.from(m[3]!, "hex"));
  // Challenges made ahead: the flooder's own key work must not slow its sending.
  const pool = Array.from({ length: 512 }, () => makeChallenge(generateNodeKey(), key).payload);
  let n = 0;
  const counts = { ok: 0, limited: 0, refused: 0, other: 0, links: 0, linksRefused: 0 };
  process.on("SIGTERM", () => {
    console.log(JSON.stringify(counts));
    process.exit(0);
  });
  const worker = async (from: string) => {
    for (;;) {
      let link;
      try {
        link = await hostileLink(from, target);
        counts.links++;
      } catch {
        counts.linksRefused++;
        await Bun.sleep(20);
        continue;
      }
      const lane = async () => {
        while (link.isOpen) {
          const a = await link.request(METHOD.mesh.keyCheck, pool[n++ % pool.length]!, { timeoutMs: 5_000 }).catch(() => null);
          if (!a) break;
          if (a.status === Status.OK) counts.ok++;
          else if (a.status === Status.RATE_LIMITED) counts.limited++;
          else if (a.status === Status.REFUSED) counts.refused++;
          else counts.other++;
        }
      };
      await Promise.all(Array.from({ length: Number(values.inflight) }, lane));
      link.close();
    }
  };
  for (let h = 0; h < Number(values.hosts); h++) for (let l = 0; l < Number(values.links); l++) void worker(`${values.net}.${10 + h}`);
  await new Promise(() => {});
}
const seconds = Number(values.seconds);
const prefix = loopbackPrefix();
const host = `${prefix}.1`;
const port = await freeUdpTcpPort(host);
const home = mkdtempSync(join(tmpdir(), "findings-bench-"));
const proc = Bun.spawn([process.execPath, join(values.root!, "src", "main.ts"), "serve", "--json", "--public", "--host", host, "--port", String(port), "--admin", "", "--home", home], {
  cwd: values.root,
  stdin: "ignore",
  stdout: "pipe",
  stderr: "ignore",
});
const reader = proc.stdout.getReader();
let out = "";
while (!out.includes("\n")) {
  const r = await reader.read();
  if (r.done) throw new Error("the node did not start");
  out += new TextDecoder().decode(r.value);
}
const ready = JSON.parse(out.slice(0, out.indexOf("\n"))) as { publicKey: string };
const nodeKey = Uint8Array.from(Buffer.from(ready.publicKey, "hex"));
await Bun.sleep(500); // the node's record is built right after ready

/** Binding round trips for `ms`, one request every 10 ms. */
async function bindingRtts(ms: number): Promise<number[]> {
  const sent = new Map<string, number>();
  const rtts: number[] = [];
  const sock = await Bun.udpSocket({
    hostname: `${prefix}.200`,
    socket: {
      data(_s, buf) {
        const id = Buffer.from(buf.subarray(8, 20)).toString("hex");
        const t = sent.get(id);
        if (t !== undefined) rtts.push(performance.now() - t);
        sent.delete(id);
      },
    },
  });
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const req = Buffer.alloc(20);
    req.writeUInt16BE(0x0001, 0);
    req.writeUInt32BE(0x2112a442, 4);
    const id = crypto.getRandomValues(new Uint8Array(12));
    req.set(id, 8);
    sent.set(Buffer.from(id).toString("hex"), performance.now());
    sock.send(req, port, host);
    await Bun.sleep(10);
  }
  await Bun.sleep(300);
  sock.close();
  return rtts.sort((a, b) => a - b);
}

/** CPU seconds the node process has used (Linux /proc; utime + stime at 100 ticks/s). */
const nodeCpuS = () => {
  const f = require("node:fs").readFileSync(`/proc/${proc.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
const q = (xs: number[], p: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : NaN);
const show = (label: string, xs: number[]) =>
  console.log(`${label.padEnd(22)} n=${String(xs.length).padStart(4)}  p50 ${q(xs, 0.5).toFixed(2)} ms  p99 ${q(xs, 0.99).toFixed(2)} ms  max ${xs.at(-1)?.toFixed(2)} ms`);

let cpu0 = nodeCpuS();
show("binding idle", await bindingRtts(seconds * 1000));
console.log(`node CPU while idle: ${(nodeCpuS() - cpu0).toFixed(2)} s`);

const flood = Bun.spawn(
  [process.execPath, import.meta.path, "--flood", `${host}:${port}#${ready.publicKey}`, "--net", prefix, "--hosts", values.hosts!, "--links", values.links!, "--inflight", values.inflight!],
  { stdin: "ignore", stdout: "pipe", stderr: "inherit" },
);
await Bun.sleep(1000);
cpu0 = nodeCpuS();
show("binding under flood", await bindingRtts(seconds * 1000));
console.log(`node CPU under flood: ${(nodeCpuS() - cpu0).toFixed(2)} s of ${seconds} s`);
flood.kill("SIGTERM");
const counts = (await new Response(flood.stdout).text()).trim();
console.log(`key checks during the run: ${counts}`);
proc.kill("SIGTERM");
await proc.exited;
rmSync(home, { recursive: true, force: true });
