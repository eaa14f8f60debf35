// Attack: a mesh peer aims NewHost delegation at an address that never asked. The hostile node bootstraps a real
// mesh link to a real node and sends it nat.new-host orders, sealed with its own key and carrying a proof of
// work it mined itself, towards a victim UDP socket. The delegate must send nothing: the victim never fetched
// that delegate's consent token, and on a public node a special-range victim is refused outright. A client that
// did ask (it fetched the token over HTTPS from the delegate's address) is still served.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { hexToBytes } from "@noble/hashes/utils.js";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { createMeshLinks, type MeshLinks } from "../../src/mesh/link-service.ts";
import type { MeshLink } from "../../src/mesh/link.ts";
import { NEWHOST_CONSENT_PATH } from "../../src/nat/newhost-consent.ts";
import { makeNewHostProof, sealNewHostOrder } from "../../src/nat/newhost-proof.ts";
import { newHostKey, verifyProbe } from "../../src/nat/probe-packet.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { createTlsEndpoint, type TlsEndpoint } from "../../src/transport/tls/endpoint.ts";
import { httpsGetJson } from "../../src/transport/tls/https-whoami-client.ts";
import { Status } from "../../src/wire/codec.ts";
import { freeUdpTcpPort, loopbackPrefix, tempDir } from "../helpers.ts";
import { until } from "../wait.ts";

setDefaultTimeout(30_000);

const PREFIX = loopbackPrefix();
const dir = tempDir("findings-newhost-aim-");
/** Delegates: one as a lab would run it (special ranges allowed: loopback is one), one as a public node. */
let lab: FindingsNode;
let pub: FindingsNode;
const hostileKey = generateNodeKey();
let hostile: { tls: TlsEndpoint; mesh: MeshLinks };
let toLab: MeshLink;

async function startNode(host: string, allowSpecial: boolean): Promise<FindingsNode> {
  const home = join(dir.path, host);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const port = await freeUdpTcpPort(host);
  const { config } = loadConfig({ home, flags: { host, server_uport: port, server_tport: port, admin: "", public: true, peers: [], allow_special_targets: allowSpecial } });
  const node = await createNode({ config, home, log: silentLogger });
  await node.start();
  return node;
}

beforeAll(async () => {
  lab = await startNode(`${PREFIX}.1`, true);
  pub = await startNode(`${PREFIX}.2`, false);
  const cert = await createRunCertificate();
  const tls = createTlsEndpoint({ cert }, { host: `${PREFIX}.66`, port: 0 });
  // The hostile node dials loopback (its own choice); the public delegate dials nothing there.
  const mesh = createMeshLinks({ tls, cert, nodeKey: hostileKey }, { allowSpecialTargets: true });
  await tls.start();
  await mesh.start();
  hostile = { tls, mesh };
  toLab = await mesh.dialMesh({ ip: lab.tls.host, port: lab.tls.port }, lab.key.publicKey);
}, 30_000);

afterAll(async () => {
  await hostile?.mesh.stop();
  await hostile?.tls.stop();
  await Promise.all([lab, pub].map((n) => n?.stop()));
  dir[Symbol.dispose]();
});

/** A victim UDP socket that counts what reaches it. */
async function victim(host: string) {
  const got: Uint8Array[] = [];
  const socket = await Bun.udpSocket({ hostname: host, socket: { data: (_s, buf) => void got.push(new Uint8Array(buf)) } });
  return { socket, got, at: { ip: host, port: socket.port } };
}

/** The hostile node's order: sealed by itself to `delegate`, with a proof of work it mined for the victim. */
async function order(delegate: FindingsNode, at: { ip: string; port: number }, key: Uint8Array, consent?: Uint8Array) {
  const hostKey = newHostKey(key);
  const proof = await makeNewHostProof(at, hostKey);
  return sealNewHostOrder(hostileKey.privateKey, delegate.key.publicKey, {
    targetIp: at.ip,
    targetPort: at.port,
    hostKey,
    issuedAtMs: BigInt(Date.now()),
    orderId: crypto.getRandomValues(new Uint8Array(16)),
    avoidIps: [],
    proof: { issuedAtMs: proof.issuedAtMs, nonce: proof.nonce },
    consent,
  });
}

describe("NewHost delegation cannot be aimed at an address that did not ask", () => {
  test("a mesh peer's own order towards a victim is refused and nothing reaches the victim", async () => {
    const v = await victim(`${PREFIX}.200`);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      // A fresh probe key each time, so the delegate's per-target de-duplication is not what stops it.
      const a = await toLab.request(METHOD.nat.newHost, await order(lab, v.at, crypto.getRandomValues(new Uint8Array(32))));
      statuses.push(a.status);
    }
    // A control datagram from the same host arrives after anything the delegate would have sent first.
    const marker = await Bun.udpSocket({ hostname: lab.tls.host });
    marker.send(new Uint8Array([1]), v.at.port, v.at.ip);
    await until(() => v.got.length >= 1, { what: "the marker datagram" });
    console.log(`5 NewHost orders from a mesh peer towards a victim that never asked: statuses ${statuses.join(",")}; ${v.got.length - 1} probes reached it`);
    expect(statuses.every((s) => s === Status.REFUSED)).toBe(true);
    expect(v.got.length).toBe(1);
    marker.close();
    v.socket.close();
  });

  test("a client that fetched the delegate's consent over HTTPS gets its 3 probes", async () => {
    const v = await victim(`${PREFIX}.201`);
    const key = crypto.getRandomValues(new Uint8Array(32));
    const body = (await httpsGetJson({ ip: lab.tls.host, port: lab.tls.port }, `${NEWHOST_CONSENT_PATH}?port=${v.at.port}`, { localAddress: v.at.ip })) as { token: string; ip: string; port: number };
    expect(body).toMatchObject({ ip: v.at.ip, port: v.at.port });
    const a = await toLab.request(METHOD.nat.newHost, await order(lab, v.at, key, hexToBytes(body.token)));
    expect(a.status).toBe(Status.OK);
    await until(() => v.got.length >= 3, { what: "3 NewHost probes" });
    for (const p of v.got) expect(verifyProbe(p, key).ok).toBe(true);
    // The same token does not cover another port of that host.
    const other = await victim(`${PREFIX}.201`);
    const b = await toLab.request(METHOD.nat.newHost, await order(lab, other.at, key, hexToBytes(body.token)));
    expect(b.status).toBe(Status.REFUSED);
    v.socket.close();
    other.socket.close();
  });

  test("a public node refuses special-range targets even with a consent token", async () => {
    const v = await victim(`${PREFIX}.202`);
    const body = (await httpsGetJson({ ip: pub.tls.host, port: pub.tls.port }, `${NEWHOST_CONSENT_PATH}?port=${v.at.port}`, { localAddress: v.at.ip })) as { token: string };
    // A public node (allow_special_targets off) cannot bootstrap a mesh link on loopback (it dials back
    // nothing there), so the order goes to its router as its mesh link with the hostile node would hand it.
    const payload = await order(pub, v.at, crypto.getRandomValues(new Uint8Array(32)), hexToBytes(body.token));
    const a = await pub.mesh.router.dispatch(METHOD.nat.newHost, payload, {
      method: METHOD.nat.newHost,
      transport: "wss",
      remote: { ip: hostile.tls.host, port: 1 },
      connectionId: "wss-test",
      trust: "mesh",
      peer: { key: hostileKey.publicKey, nodeId: hostileKey.nodeId },
      signal: new AbortController().signal,
      promote: () => {},
    });
    expect(a.status).toBe(Status.REFUSED);
    expect(a.error).toContain("special-purpose");
    v.socket.close();
  });
});
