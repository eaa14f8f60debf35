// FindingsClient with an address only (src/client/node-key.ts, findings-client.ts): the node's key learned once
// from its record and a key check, pinned for the client's life and remembered in the known-hosts file; the
// node's reward address and identity from the sealed bootstrap answer; the registry over WSS too.
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FindingsClient } from "../../src/client/findings-client.ts";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { encodePeersAnswer } from "../../src/mesh/mesh-messages.ts";
import { answerKeyCheck } from "../../src/mesh/record-check.ts";
import { buildRecord } from "../../src/mesh/record.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { Status } from "../../src/wire/gen/findings_pb.ts";
import { open } from "../rpc/open-policy.ts";
import { tempDir } from "../helpers.ts";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** A node's QUIC side: the app bootstrap (with a greeting), its record in mesh.peers, key checks. */
async function node(key: NodeKey = generateNodeKey()): Promise<{ ep: UdpEndpoint; key: NodeKey; keyChecks: () => number }> {
  let checks = 0;
  const greeting = (kind: string) => ({ stakeAddress: kind === "app:web" ? "stake-web" : "stake-general", stakeSource: kind === "app:web" ? "kind" : "default", identityId: "alice" });
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: key, greeting }, { host: "127.0.0.1", port: 0 });
  await ep.start();
  cleanups.push(() => ep.stop());
  const record = () => buildRecord(key, { addresses: [{ ip: "127.0.0.1", udpPort: ep.port, tcpPort: ep.port }], spki: "ab".repeat(32), kinds: ["app:web"], seq: 1, now: Date.now() });
  ep.router.add(METHOD.mesh.peers, open(() => ({ status: Status.OK, payload: encodePeersAnswer([record()]) })));
  ep.router.add(METHOD.mesh.keyCheck, open((payload) => (checks++, answerKeyCheck(key, payload, record()))));
  return { ep, key, keyChecks: () => checks };
}

describe("FindingsClient with an address only", () => {
  test("learns the key once, pins it for the session, remembers it; the bootstrap answer names reward address and identity", async () => {
    using home = tempDir();
    const n = await node();
    const server = `127.0.0.1:${n.ep.port}`;
    const client = new FindingsClient({ server, home: home.path });
    const info = await client.nodeInfo({ kind: "app:web" });
    expect(info).toEqual({ address: server, nodeId: n.key.nodeId, key: Buffer.from(n.key.publicKey).toString("hex"), keySource: "learned", recordFrom: server, kind: "app:web", stakeAddress: "stake-web", stakeSource: "kind", identityId: "alice" });
    const me = await client.whoami();
    expect(me.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(me.node).toMatchObject({ keySource: "learned", kind: "", stakeAddress: "stake-general", stakeSource: "default" });
    expect(n.keyChecks()).toBe(1);
    const file = JSON.parse(readFileSync(join(home.path, "known_hosts.json"), "utf8")) as { hosts: Record<string, { key: string }> };
    expect(file.hosts[server]?.key).toBe(info.key);
    // The next client of this home knows it: no key check.
    const again = new FindingsClient({ server, home: home.path });
    expect((await again.nodeKey()).keySource).toBe("known");
    expect((await again.nodeInfo()).keySource).toBe("known");
    expect(n.keyChecks()).toBe(1);
  });

  test("a different node at a known address is refused until the entry is forgotten", async () => {
    using home = tempDir();
    const n = await node();
    const server = `127.0.0.1:${n.ep.port}`;
    await new FindingsClient({ server, home: home.path }).nodeInfo();
    const port = n.ep.port;
    await n.ep.stop();
    // Another key at the same address (a re-keyed node, or someone in the way).
    const other = await nodeAt(port);
    const client = new FindingsClient({ server, home: home.path });
    expect(await client.nodeInfo().then(() => "accepted", (e: unknown) => String(e))).toMatch(/no longer proves the key known for it.*known-hosts --forget/);
    expect(client.knownHosts.forget(server)).toBe(true);
    const fresh = new FindingsClient({ server, home: home.path });
    expect(await fresh.nodeInfo()).toMatchObject({ keySource: "learned", nodeId: other.key.nodeId });
  });

  test("without learning and without a known key the client says what it needs; #key pins by hand", async () => {
    const n = await node();
    const server = `127.0.0.1:${n.ep.port}`;
    expect(await new FindingsClient({ server, learnKeys: false }).nodeInfo().then(() => "ok", (e: unknown) => String(e))).toMatch(/no key given and none known/);
    const pinned = new FindingsClient({ server: `${server}#${Buffer.from(n.key.publicKey).toString("hex")}` });
    expect(await pinned.nodeInfo()).toMatchObject({ keySource: "pinned", nodeId: n.key.nodeId });
    expect(n.keyChecks()).toBe(0);
  });
});

/** A node listening on a given UDP port (the port another node just left). */
async function nodeAt(port: number): Promise<{ key: NodeKey }> {
  const key = generateNodeKey();
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: key }, { host: "127.0.0.1", port });
  await ep.start();
  cleanups.push(() => ep.stop());
  const record = () => buildRecord(key, { addresses: [{ ip: "127.0.0.1", udpPort: port, tcpPort: port }], spki: "ab".repeat(32), seq: 1, now: Date.now() });
  ep.router.add(METHOD.mesh.peers, open(() => ({ status: Status.OK, payload: encodePeersAnswer([record()]) })));
  ep.router.add(METHOD.mesh.keyCheck, open((payload) => answerKeyCheck(key, payload, record())));
  return { key };
}
