// A stranger's mesh.hello tries to use the node as a port scanner: the hello names a third party's host, or a
// port on the stranger's own host that is closed, open without TLS, or TLS with some other certificate. The
// node must dial back only the hello's source address, give the same answer whatever it found, refuse
// loopback / private / link-local targets unless allow_special_targets is on, and count hellos per /24.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "@noble/hashes/utils.js";
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { createRunCertificate, generateNodeKey, type RunCertificate } from "../../src/identity/index.ts";
import { sealMeshHello } from "../../src/mesh/mesh-bootstrap-messages.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { createTlsEndpoint, type TlsEndpoint } from "../../src/transport/index.ts";
import { Status } from "../../src/wire/index.ts";
import { freePort, freeUdpTcpPort, loopbackPrefix, tempDir } from "../helpers.ts";
import { hostileLink } from "./hostile-link.ts";

const PREFIX = loopbackPrefix();
const VICTIM = `${PREFIX}.1`;
const STRICT = `${PREFIX}.2`;
const ATTACKER = `${PREFIX}.9`;
const THIRD_PARTY = `${PREFIX}.50`;
const dir = tempDir("findings-adv-hello-");
const attackerKey = generateNodeKey();
let cert: RunCertificate;
let victim: FindingsNode;
let strict: FindingsNode;
/** Plain TCP listeners that count who connects: the third party, and the attacker's own non-TLS port. */
const seen = new Map<string, number>();
const servers: Server[] = [];
let otherTls: TlsEndpoint;

async function startNode(host: string, name: string, flags: Record<string, unknown>): Promise<FindingsNode> {
  const home = join(dir.path, name);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const port = await freeUdpTcpPort(host);
  const { config } = loadConfig({ home, flags: { host, server_uport: port, server_tport: port, admin: "", public: true, peers: [], ...flags } });
  const node = await createNode({ config, home, log: silentLogger });
  await node.start();
  return node;
}

async function countingListener(host: string): Promise<number> {
  const port = await freePort(host);
  const server = createServer((socket) => {
    seen.set(host + ":" + port, (seen.get(host + ":" + port) ?? 0) + 1);
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  servers.push(server);
  return port;
}

/** Sends one hello from `from` naming `host` and `tcpPort`; returns the node's answer. */
async function hello(to: FindingsNode, from: string, tcpPort: number, host = ""): Promise<{ status: Status; error: string }> {
  const link = await hostileLink(from, { ip: to.tls.host, port: to.tls.port });
  try {
    const payload = sealMeshHello(attackerKey, { to: to.key.publicKey, certPem: cert.certPem, tcpPort, host, nonce: randomBytes(32) });
    const answer = await link.request(METHOD.mesh.hello, payload, { timeoutMs: 15_000 });
    return { status: answer.status, error: answer.error };
  } finally {
    link.close();
  }
}

beforeAll(async () => {
  cert = await createRunCertificate();
  victim = await startNode(VICTIM, "victim", { allow_special_targets: true });
  strict = await startNode(STRICT, "strict", {});
  otherTls = createTlsEndpoint({ cert: await createRunCertificate() }, { host: ATTACKER, port: 0 });
  await otherTls.start();
});

afterAll(async () => {
  await Promise.all([victim?.stop(), strict?.stop(), otherTls?.stop()]);
  for (const s of servers) s.close();
  dir[Symbol.dispose]();
});

describe("mesh.hello from a stranger", () => {
  test("a hello naming a third party's host makes the node dial nobody but the hello's source", async () => {
    const port = await countingListener(THIRD_PARTY);
    const answer = await hello(victim, ATTACKER, port, THIRD_PARTY);
    expect(answer.status).toBe(Status.REFUSED);
    expect(seen.get(`${THIRD_PARTY}:${port}`) ?? 0).toBe(0);
  });

  test("closed, open non-TLS and TLS-with-another-certificate ports get one and the same answer", async () => {
    const closed = await freePort(ATTACKER);
    const plain = await countingListener(ATTACKER);
    const answers = [await hello(victim, ATTACKER, closed), await hello(victim, ATTACKER, plain), await hello(victim, ATTACKER, otherTls.port)];
    // The dial-back did happen (the node is allowed loopback here): the plain listener saw it.
    expect(seen.get(`${ATTACKER}:${plain}`) ?? 0).toBeGreaterThan(0);
    expect(answers[0]!.status).toBe(Status.REFUSED);
    expect(answers[1]).toEqual(answers[0]!);
    expect(answers[2]).toEqual(answers[0]!);
    expect(answers[0]!.error).not.toContain(String(closed));
  });

  test("with allow_special_targets off (the default) a loopback source is not dialled at all", async () => {
    const plain = await countingListener(ATTACKER);
    const answer = await hello(strict, ATTACKER, plain);
    expect(answer.status).toBe(Status.REFUSED);
    expect(seen.get(`${ATTACKER}:${plain}`) ?? 0).toBe(0);
  });

  test("hellos are counted per /24: many hosts of one /24 run out, another /24 is still served", async () => {
    const closed = await freePort(ATTACKER);
    const statuses: Status[] = [];
    // 20 hosts of one /24, 6 hellos each (each host stays within its own per-host burst).
    for (let h = 0; h < 20; h++) {
      const from = `${PREFIX}.${100 + h}`;
      const round = await Promise.all(Array.from({ length: 6 }, () => hello(victim, from, closed)));
      statuses.push(...round.map((a) => a.status));
    }
    expect(statuses.filter((s) => s === Status.RATE_LIMITED).length).toBeGreaterThan(0);
    const [a, b, c] = PREFIX.split(".");
    const otherNet = `${a}.${b}.${(Number(c) + 1) % 256}.9`;
    expect((await hello(victim, otherNet, closed)).status).toBe(Status.REFUSED);
  }, 60_000);
});
