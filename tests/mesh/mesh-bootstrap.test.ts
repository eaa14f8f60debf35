// The mesh bootstrap with role swap between real nodes on loopback (seed 001 §组网节点之间 steps 0–6,
// DESIGN §3): success on IPv4 and IPv6, wrong keys, unreachable clients, men in the middle,
// first-contact links, and stop() leaving nothing open.
import { MESH_ONLY } from "../../src/rpc/policy.ts";
import { open } from "../rpc/open-policy.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lineLogger } from "../../src/contracts/logger.ts";
import { createRunCertificate, type RunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { createTlsEndpoint, type TlsEndpoint } from "../../src/transport/tls/endpoint.ts";
import { PinMismatchError } from "../../src/transport/ws/client.ts";
import { WS_CLOSE } from "../../src/transport/ws/constants.ts";
import type { WsCloseInfo } from "../../src/transport/ws/connection.ts";
import { Status } from "../../src/wire/codec.ts";
import { createMeshLinks, type MeshLinks, type MeshLinksInit } from "../../src/mesh/link-service.ts";
import type { MeshLink } from "../../src/mesh/link.ts";
import { BootstrapRefusedError, DIAL_BACK_FAILED } from "../../src/mesh/mesh-bootstrap.ts";
import { sealMeshAccept } from "../../src/mesh/mesh-bootstrap-messages.ts";
import { buildRecord } from "../../src/mesh/record.ts";
import type { NodeRecord } from "../../src/wire/index.ts";
import { until } from "../wait.ts";

interface TestNode {
  cert: RunCertificate;
  key: NodeKey;
  tls: TlsEndpoint;
  mesh: MeshLinks;
  warnings: string[];
  addr: { ip: string; port: number };
  stop(): Promise<void>;
}

const running: TestNode[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((n) => n.stop()));
});

async function startNode(
  host = "127.0.0.1",
  opts: { port?: number; cert?: RunCertificate; helloCert?: RunCertificate; key?: NodeKey; init?: MeshLinksInit; ownRecord?: (key: NodeKey, port: number) => NodeRecord } = {},
): Promise<TestNode> {
  const cert = opts.cert ?? (await createRunCertificate());
  const key = opts.key ?? generateNodeKey();
  const warnings: string[] = [];
  const log = lineLogger((level, message) => {
    if (level === "warn") warnings.push(message);
  });
  const tls = createTlsEndpoint({ cert, log }, { host, port: opts.port ?? 0 });
  // helloCert lets a test node claim a certificate its listener does not serve.
  const ownRecord = opts.ownRecord && (() => opts.ownRecord!(key, tls.port));
  const mesh = createMeshLinks({ tls, cert: opts.helloCert ?? cert, nodeKey: key, log, ownRecord }, { allowSpecialTargets: true, ...opts.init });
  mesh.router.add("echo", open((payload) => payload, { trust: MESH_ONLY }));
  await tls.start();
  await mesh.start();
  let stopped: Promise<void> | null = null;
  const node: TestNode = {
    cert,
    key,
    tls,
    mesh,
    warnings,
    addr: { ip: host, port: tls.port },
    stop: () => (stopped ??= mesh.stop().then(() => tls.stop())),
  };
  running.push(node);
  return node;
}

function nextLink(node: TestNode): Promise<MeshLink> {
  return new Promise((resolve) => {
    const off = node.mesh.onMeshLink((l) => {
      off();
      resolve(l);
    });
  });
}

async function refusal(p: Promise<unknown>): Promise<BootstrapRefusedError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BootstrapRefusedError);
    return err as BootstrapRefusedError;
  }
  throw new Error("expected the bootstrap to be refused");
}

describe("mesh bootstrap with role swap", () => {
  for (const host of ["127.0.0.1", "::1"]) {
    test(`two nodes on ${host} bootstrap and exchange envelopes both ways over the pinned link`, async () => {
      const a = await startNode(host);
      const b = await startNode(host);
      const atB = nextLink(b);
      const atA = nextLink(a);
      const link = await a.mesh.dialMesh(b.addr, b.key.publicKey);
      const back = await atB;
      expect(await atA).toBe(link);

      // A asked for the link, so it is A's "out" link even though B opened the TCP connection.
      expect(link).toMatchObject({ trust: "mesh", direction: "out", peerSpki: b.cert.spki, remote: b.addr });
      expect(link.peerKey).toEqual(b.key.publicKey);
      expect(link.socketRemote.port).not.toBe(b.addr.port);
      expect(back).toMatchObject({ trust: "mesh", direction: "in", peerSpki: a.cert.spki, remote: a.addr });
      expect(back.peerNodeId).toBe(a.key.nodeId);

      expect((await link.request("echo", new Uint8Array([1, 2]))).payload).toEqual(new Uint8Array([1, 2]));
      expect((await back.request("echo", new Uint8Array([3]))).payload).toEqual(new Uint8Array([3]));
      expect(a.mesh.links()).toEqual([link]);
      expect(b.mesh.links()).toEqual([back]);
      // The first, untrusted link is gone: B holds no inbound WebSocket, A holds only the dial-back.
      await until(() => b.tls.counts().links === 0 && a.tls.counts().links === 1, { what: "the untrusted first link gone", timeoutMs: 2000 });
    });
  }

  test("the dialler's record rides its hello: the server's end of the link carries it, the dialler's end none", async () => {
    const ownRecord = (key: NodeKey, port: number) => buildRecord(key, { addresses: [{ ip: "127.0.0.1", udpPort: port, tcpPort: port }], spki: "ab".repeat(32), seq: 1, now: Date.now() });
    const a = await startNode("127.0.0.1", { ownRecord });
    const b = await startNode();
    const atB = nextLink(b);
    const link = await a.mesh.dialMesh(b.addr, b.key.publicKey);
    const back = await atB;
    expect(back.helloRecord?.publicKey).toEqual(a.key.publicKey);
    expect(back.helloRecord?.addresses[0]).toMatchObject({ ip: "127.0.0.1", tcpPort: a.addr.port });
    expect(link.helloRecord).toBeUndefined();
  });

  test("a node that does not hold the key it was dialled with answers UNAUTHENTICATED", async () => {
    const a = await startNode();
    const b = await startNode();
    const someoneElse = generateNodeKey();
    const err = await refusal(a.mesh.dialMesh(b.addr, someoneElse.publicKey));
    expect(err.status).toBe(Status.UNAUTHENTICATED);
    expect(a.mesh.links()).toEqual([]);
    expect(b.mesh.links()).toEqual([]);
  });

  test("a client whose listener is not reachable gets a clear refusal: the role swap failed", async () => {
    const a = await startNode();
    const b = await startNode();
    await a.tls.stop(); // A can still dial out, but nobody can dial A back
    const err = await refusal(a.mesh.dialMesh(b.addr, b.key.publicKey));
    expect(err.status).toBe(Status.REFUSED);
    expect(err.message).toContain("cannot dial back");
    expect(err.message).toContain("reachable");
    expect(b.mesh.links()).toEqual([]);
  });

  test("a hello naming a certificate its listener does not serve is refused: the dial-back pin fails (with the one generic answer)", async () => {
    const b = await startNode();
    const claimed = await createRunCertificate();
    const m = await startNode("127.0.0.1", { helloCert: claimed });
    const err = await refusal(m.mesh.dialMesh(b.addr, b.key.publicKey));
    expect(err.status).toBe(Status.REFUSED);
    expect(err.message).toContain(DIAL_BACK_FAILED);
    expect(b.warnings.some((w) => w.includes("pinned link refused"))).toBe(true);
  });

  test("after a bootstrap, another endpoint on the peer's address is refused by the pin (man in the middle)", async () => {
    const a = await startNode();
    const b = await startNode();
    const link = await a.mesh.dialMesh(b.addr, b.key.publicKey);
    const pinned = link.peerSpki!;
    const addr = b.addr;
    await b.stop();
    // The impostor takes B's port with its own certificate and key.
    const mitm = await startNode("127.0.0.1", { port: addr.port });
    expect(mitm.addr).toEqual(addr);
    await expect(a.mesh.dialPinned(addr, pinned)).rejects.toBeInstanceOf(PinMismatchError);
    expect(a.warnings.some((w) => w.includes("pinned link refused"))).toBe(true);
    // It cannot pass the bootstrap either: the hello is sealed to B's key.
    expect((await refusal(a.mesh.dialMesh(addr, b.key.publicKey))).status).toBe(Status.UNAUTHENTICATED);
    // The pin is the certificate, not the address: pinned to the impostor's own SPKI, the dial passes.
    const ok = await a.mesh.dialPinned(addr, mitm.cert.spki);
    expect(ok.trust).toBe("pinned");
    ok.close();
  });

  test("a mesh.accept for no bootstrap of ours is answered UNAUTHENTICATED and the link closed", async () => {
    const a = await startNode();
    const m = await startNode();
    const link = await m.mesh.dialUntrusted(a.addr);
    const closed = new Promise<WsCloseInfo>((r) => link.onClose(r));
    const answer = await link.request(METHOD.mesh.accept, sealMeshAccept(m.key, { to: a.key.publicKey, nonce: crypto.getRandomValues(new Uint8Array(16)) }));
    expect(answer.status).toBe(Status.UNAUTHENTICATED);
    expect((await closed).code).toBe(WS_CLOSE.policyViolation);
    expect(a.mesh.links()).toEqual([]);
  });

  test("a hello that does not decode is answered BAD_REQUEST and the link closed", async () => {
    const b = await startNode();
    const m = await startNode();
    const link = await m.mesh.dialUntrusted(b.addr);
    const answer = await link.request(METHOD.mesh.hello, new Uint8Array(200).fill(0xff));
    expect(answer.status).toBe(Status.BAD_REQUEST);
    await until(() => !link.isOpen, { what: "the link closed", timeoutMs: 2000 });
  });
});

describe("first-contact links", () => {
  test("an untrusted link serves only methods allowed on untrusted links", async () => {
    const b = await startNode();
    b.mesh.router.add("help.peers", open(() => new Uint8Array([42])));
    const a = await startNode();
    const link = await a.mesh.dialUntrusted(b.addr);
    expect(link).toMatchObject({ trust: "untrusted", direction: "out", peerKey: null, peerSpki: b.cert.spki });
    expect((await link.request("help.peers")).payload).toEqual(new Uint8Array([42]));
    const refused = await link.request("echo");
    expect(refused.status).toBe(Status.REFUSED);
    link.close();
  });

  test("an inbound link still untrusted after its lifetime is closed with 1008", async () => {
    const b = await startNode("127.0.0.1", { init: { untrustedLifetimeMs: 200 } });
    const a = await startNode();
    const link = await a.mesh.dialUntrusted(b.addr);
    const closed = new Promise<WsCloseInfo>((r) => link.onClose(r));
    expect((await closed).code).toBe(WS_CLOSE.policyViolation);
  });
});

describe("mesh link service stop()", () => {
  test("two bootstrapped nodes stop without leaving a handle open: the process exits by itself", async () => {
    const dir = mkdtempSync(join(tmpdir(), "findings-mesh-stop-"));
    const root = join(import.meta.dir, "..", "..");
    const imp = (p: string) => JSON.stringify(join(root, p));
    const script = join(dir, "run.ts");
    writeFileSync(
      script,
      `
import { createRunCertificate } from ${imp("src/identity/certificate.ts")};
import { generateNodeKey } from ${imp("src/identity/node-key.ts")};
import { createTlsEndpoint } from ${imp("src/transport/tls/endpoint.ts")};
import { createMeshLinks } from ${imp("src/mesh/link-service.ts")};
import { MESH_ONLY } from ${imp("src/rpc/policy.ts")};
import { open } from ${imp("tests/rpc/open-policy.ts")};
import { createServer } from "node:net";
async function node() {
  const cert = await createRunCertificate();
  const nodeKey = generateNodeKey();
  const tls = createTlsEndpoint({ cert }, { host: "127.0.0.1", port: 0 });
  const mesh = createMeshLinks({ tls, cert, nodeKey }, { allowSpecialTargets: true });
  mesh.router.add("echo", open((payload) => payload, { trust: MESH_ONLY }));
  await tls.start();
  await mesh.start();
  return { nodeKey, tls, mesh };
}
const a = await node();
const b = await node();
const link = await a.mesh.dialMesh({ ip: "127.0.0.1", port: b.tls.port }, b.nodeKey.publicKey);
await link.request("echo", new Uint8Array([1]));
// A bootstrap waiting on a peer that accepts TCP and then says nothing is cut by stop(), long
// before its own 10 s timeout.
// It reads (and drops) what comes, so it sees our FIN and can close.
const silent = createServer((s) => {
  s.on("error", () => {});
  s.resume();
});
await new Promise((r) => silent.listen(0, "127.0.0.1", r));
const reached = new Promise((r) => silent.once("connection", r));
const started = Date.now();
const hanging = a.mesh.dialMesh({ ip: "127.0.0.1", port: silent.address().port }, b.nodeKey.publicKey).catch((e) => e.constructor.name);
await reached;
await Promise.all([a.mesh.stop(), b.mesh.stop(), a.mesh.stop()]);
await Promise.all([a.tls.stop(), b.tls.stop()]);
const why = await hanging;
await new Promise((r) => silent.close(r));
console.log("stopped", why, Date.now() - started < 3000, a.tls.counts().connections + b.tls.counts().connections);
`,
    );
    try {
      const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => proc.kill(), 10_000);
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(timer);
      expect(err).toBe("");
      expect(out.trim()).toBe("stopped PeerError true 0");
      expect(code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
