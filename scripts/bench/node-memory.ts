// Benchmark: resident memory of an idle meshed `findings serve`, and of a node holding 500 apps in its app
// pool (DESIGN §7 app pool; the node's lean-ness). Two nodes on a loopback /24 of this run's own mesh with
// each other; after IDLE_SETTLE_MS the RSS of both is read (/proc/PID/status VmRSS) and the larger is
// nodeRssMiB. Then APPS apps (one UDP socket each, spread over source addresses of the /24) bootstrap to
// the first node and join its pool for a kind it serves; once every app is in, rss500AppsMiB is that
// node's RSS, once just after and once when they have idled. Bounded: about 30–50 s on a quiet machine.
//
// Run: ./node_modules/.bin/bun scripts/bench/node-memory.ts [--bin dist/findings] [--apps 500] [--json]
// As a library: `await benchNodeMemory({ bin? })` → { nodeRssMiB, rss500AppsMiB, … }.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hexToBytes } from "@noble/hashes/utils.js";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { bootstrapApp } from "../../src/transport/app-bootstrap/bootstrap.ts";
import { createUdpClient, type UdpClient } from "../../src/transport/udp/client.ts";
import { AppJoinSchema, encodeMessage, NatClass, Status } from "../../src/wire/index.ts";
import { argValue } from "./args.ts";

const ROOT = join(import.meta.dir, "..", "..");
const KIND = "app:bench";
/** How long the nodes sit idle (meshed, or holding the apps) before their RSS is read, in ms. */
const IDLE_SETTLE_MS = 5_000;
/** How long the apps then idle before the node's RSS is read again, in ms. */
const APPS_IDLE_MS = 10_000;
/** Apps that bootstrap and join at once. */
const JOIN_CONCURRENCY = 10;
/** /24 networks the apps come from: 500 apps make 20 per network, under app.hello's burst per /24. */
const APP_NETS = 25;

export interface NodeMemoryResult {
  /** RSS of an idle meshed node, MiB (the larger of the two). */
  nodeRssMiB: number;
  /** RSS of the node holding `apps` idle apps in its pool, MiB (APPS_IDLE_MS after the last joined). */
  rss500AppsMiB: number;
  /** The same, IDLE_SETTLE_MS after the last app joined. */
  rssJoinedMiB: number;
  apps: number;
  /** Apps that could not join (should be 0). */
  appsFailed: number;
  /** Why the first app that failed did. */
  firstError?: string;
  /** RSS of each node while idle and meshed, MiB. */
  idleRssMiB: [number, number];
  /** What ran: "bun src/main.ts" or the binary's path. */
  command: string;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Math.round((Number(m[1]) / 1024) * 10) / 10;
}

interface Node {
  proc: Bun.Subprocess<"ignore", "pipe", "ignore">;
  ready: { id: string; publicKey: string; admin: string | null };
  home: string;
}

async function startNode(cmd: string[], host: string, port: number, extra: string[]): Promise<Node> {
  const home = mkdtempSync(join(tmpdir(), "findings-mem-"));
  writeFileSync(
    join(home, "config.toml"),
    `allow_special_targets = true\nmesh_per_prefix = 64\ncandidates_per_prefix = 10000\nmax_conns_per_ip = 64\n[stakes]\n"*" = "0xBENCH"\n"${KIND}" = ""\n`,
  );
  const args = ["serve", "--json", "--host", host, "--port", String(port), "--admin", `${host}:0`, "--home", home, "--log-level", "warn", ...extra];
  const proc = Bun.spawn([...cmd, ...args], { cwd: ROOT, env: { ...process.env }, stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const reader = proc.stdout.getReader();
  let out = "";
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  while (!out.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`findings serve on ${host} did not start`);
    out += new TextDecoder().decode(value);
  }
  clearTimeout(timer);
  reader.releaseLock();
  void proc.stdout.pipeTo(new WritableStream()).catch(() => {});
  return { proc, ready: JSON.parse(out.slice(0, out.indexOf("\n"))), home };
}

async function meshLinks(node: Node): Promise<number> {
  try {
    const s = (await (await fetch(`${node.ready.admin}/status`)).json()) as { mesh: { mesh: { out: number; in: number } } };
    return s.mesh.mesh.out + s.mesh.mesh.in;
  } catch {
    return 0;
  }
}

async function freePort(host: string): Promise<number> {
  for (;;) {
    const udp = await Bun.udpSocket({ hostname: host });
    const port = udp.port;
    udp.close();
    try {
      Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true);
      return port;
    } catch {
      // Taken on TCP: try another.
    }
  }
}

/** One app: its own socket on `host`, bootstrapped to the node and joined to its pool for KIND. */
async function joinApp(host: string, node: { ip: string; port: number; key: Uint8Array }, spki: Uint8Array): Promise<UdpClient> {
  const client = createUdpClient({}, { host, port: 0 });
  await client.start();
  try {
    const appKey = generateNodeKey();
    const { link } = await bootstrapApp(client, { addr: node, nodePublicKey: node.key }, { appKey, timeoutMs: 20_000 });
    const join = encodeMessage(AppJoinSchema, { kind: KIND, nodeId: appKey.nodeId, nat: NatClass.NAT_UNKNOWN, spki, publicKey: appKey.publicKey });
    const answer = await link.request(METHOD.app.join, join, { timeoutMs: 20_000 });
    if (answer.status !== Status.OK) throw new Error(`app.join answered ${answer.status}: ${answer.error}`);
    return client;
  } catch (err) {
    await client.stop();
    throw err;
  }
}

export async function benchNodeMemory(opts: { bin?: string; apps?: number } = {}): Promise<NodeMemoryResult> {
  const cmd = opts.bin ? [opts.bin] : [process.execPath, join(ROOT, "src", "main.ts")];
  const apps = opts.apps ?? 500;
  const [a, b] = crypto.getRandomValues(new Uint8Array(2));
  const prefix = `127.${1 + (a! % 254)}.${b}`;
  const host1 = `${prefix}.1`;
  const port = await freePort(host1);
  const nodes: Node[] = [];
  const clients: UdpClient[] = [];
  try {
    const first = await startNode(cmd, host1, port, ["--public"]);
    nodes.push(first);
    const second = await startNode(cmd, `${prefix}.2`, port, ["--peer", `${host1}:${port}#${first.ready.publicKey}`]);
    nodes.push(second);
    const meshBy = performance.now() + 30_000;
    while ((await meshLinks(second)) === 0 || (await meshLinks(first)) === 0) {
      if (performance.now() > meshBy) throw new Error("the two nodes did not mesh within 30 s");
      await Bun.sleep(200);
    }
    await Bun.sleep(IDLE_SETTLE_MS);
    const idleRssMiB: [number, number] = [rssMiB(first.proc.pid), rssMiB(second.proc.pid)];

    const spki = hexToBytes((await createRunCertificate()).spki);
    const target = { ip: host1, port, key: hexToBytes(first.ready.publicKey) };
    let failed = 0;
    let firstError: string | undefined;
    let next = 0;
    // One source address per app, spread over APP_NETS /24s next to the nodes' own: app.hello is limited
    // per /24, as a defence against one network bootstrapping many apps at once.
    const worker = async () => {
      while (next < apps) {
        const i = next++;
        try {
          const host = `127.${1 + (a! % 254)}.${(b! + 1 + (i % APP_NETS)) % 256}.${10 + (Math.floor(i / APP_NETS) % 240)}`;
          clients.push(await joinApp(host, target, spki));
        } catch (err) {
          failed++;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    };
    await Promise.all(Array.from({ length: JOIN_CONCURRENCY }, worker));
    await Bun.sleep(IDLE_SETTLE_MS);
    const rssJoinedMiB = rssMiB(first.proc.pid);
    // The apps idle from here on (keep-alives only): their request channels close, the heap settles.
    await Bun.sleep(APPS_IDLE_MS);
    const rss500AppsMiB = rssMiB(first.proc.pid);
    return {
      nodeRssMiB: Math.max(...idleRssMiB),
      rss500AppsMiB,
      rssJoinedMiB,
      apps,
      appsFailed: failed,
      firstError,
      idleRssMiB,
      command: opts.bin ?? "bun src/main.ts",
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.stop()));
    for (const n of nodes) n.proc.kill("SIGTERM");
    await Promise.allSettled(nodes.map((n) => Promise.race([n.proc.exited, Bun.sleep(5000).then(() => n.proc.kill("SIGKILL"))])));
    for (const n of nodes) rmSync(n.home, { recursive: true, force: true });
  }
}


if (import.meta.main) {
  const r = await benchNodeMemory({ bin: argValue("--bin"), apps: argValue("--apps") ? Number(argValue("--apps")) : undefined });
  if (process.argv.includes("--json")) console.log(JSON.stringify(r));
  else {
    console.log(`node memory (${r.command}, Bun ${Bun.version}): idle meshed nodes ${r.idleRssMiB.join(" / ")} MiB RSS`);
    console.log(`node holding ${r.apps - r.appsFailed} apps (${r.appsFailed} failed to join${r.firstError ? `, first: ${r.firstError}` : ""}): ${r.rssJoinedMiB} MiB RSS just after, ${r.rss500AppsMiB} MiB idle`);
  }
}
