// App bootstrap over QUIC (seed 001 §从应用端的连接, DESIGN §3) against a real endpoint on loopback.
import { afterEach, describe, expect, test } from "bun:test";
import { SEAL_PURPOSE } from "../../../src/constants.ts";
import { createRunCertificate } from "../../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../../src/identity/node-key.ts";
import { seal } from "../../../src/identity/seal.ts";
import { encodeMessage, Status } from "../../../src/wire/codec.ts";
import { AppHelloSchema, AppSessionSchema } from "../../../src/wire/gen/findings_pb.ts";
import { bootstrapApp } from "../../../src/transport/app-bootstrap/bootstrap.ts";
import { AppSessionTable } from "../../../src/transport/app-bootstrap/sessions.ts";
import type { QuicLink } from "../../../src/transport/quic/link.ts";
import { PINNED_OR_MESH } from "../../../src/rpc/policy.ts";
import { METHOD } from "../../../src/rpc/methods.ts";
import { open } from "../../rpc/open-policy.ts";
import { quicWhoami } from "../../../src/transport/quic/whoami.ts";
import { createUdpClient, type UdpClient } from "../../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../../../src/transport/udp/endpoint.ts";
import { rejection, until } from "../../wait.ts";
import { lineLogger } from "../../../src/contracts/logger.ts";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});


async function node(port = 0, nodeKey = generateNodeKey()): Promise<{ ep: UdpEndpoint; nodeKey: NodeKey; spki: string }> {
  const cert = await createRunCertificate();
  const ep = createUdpEndpoint({ cert, nodeKey }, { host: "127.0.0.1", port });
  await ep.start();
  cleanups.push(() => ep.stop());
  return { ep, nodeKey, spki: cert.spki };
}

async function app(logs: string[] = []): Promise<UdpClient> {
  const c = createUdpClient({ log: lineLogger((level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`)) }, { host: "127.0.0.1" });
  await c.start();
  cleanups.push(() => c.stop());
  return c;
}

function helloPayload(appKey: NodeKey, sealTo: Uint8Array, purpose: string, sessionId = crypto.getRandomValues(new Uint8Array(16))): Uint8Array {
  const session = encodeMessage(AppSessionSchema, { sessionId });
  return encodeMessage(AppHelloSchema, { publicKey: appKey.publicKey, sealedSession: seal(appKey.privateKey, sealTo, purpose, session) });
}

describe("app bootstrap over QUIC", () => {
  test("the sealed answer names the node's reward address for the app's kind and its identity id", async () => {
    const nodeKey = generateNodeKey();
    const cert = await createRunCertificate();
    const kinds: string[] = [];
    const greeting = (kind: string) => (kinds.push(kind), { stakeAddress: kind === "app:web" ? "web-address" : "general", stakeSource: kind === "app:web" ? "kind" : "default", identityId: "alice" });
    const ep = createUdpEndpoint({ cert, nodeKey, greeting }, { host: "127.0.0.1", port: 0 });
    await ep.start();
    cleanups.push(() => ep.stop());
    const c = await app();
    const addr = { ip: "127.0.0.1", port: ep.port };
    const web = await bootstrapApp(c, { addr, nodePublicKey: nodeKey.publicKey }, { appKey: generateNodeKey(), kind: "app:web" });
    expect(web.node).toEqual({ nodeId: nodeKey.nodeId, kind: "app:web", stakeAddress: "web-address", stakeSource: "kind", identityId: "alice" });
    const plain = await bootstrapApp(c, { addr, nodePublicKey: nodeKey.publicKey }, { appKey: generateNodeKey() });
    expect(plain.node).toMatchObject({ kind: "", stakeAddress: "general", stakeSource: "default" });
    expect(kinds).toEqual(["app:web", ""]);
  });

  test("completes, pins the node's SPKI, and the pinned link serves requests", async () => {
    const { ep, nodeKey, spki } = await node();
    const appKey = generateNodeKey();
    const bound: QuicLink[] = [];
    ep.on("bind", (l) => bound.push(l));
    const c = await app();
    const { link, spki: pinned } = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port: ep.port }, nodePublicKey: nodeKey.publicKey }, { appKey });
    expect(pinned).toBe(spki);
    expect(link.pinned).toBe(true);
    expect(link.spki).toBe(spki);
    expect((await link.request(METHOD.app.whoami)).status).toBe(Status.OK);
    // The node knows this connection is pinned and whose it is.
    expect(bound).toHaveLength(1);
    expect(bound[0]!.connectionId).toBe(link.connectionId);
    expect(bound[0]!.peerKey).toEqual(appKey.publicKey);
    const inbound = ep.links().find((l) => l.connectionId === link.connectionId)!;
    expect(inbound.pinned).toBe(true);
    // Handlers see it too.
    let seen: { trust: string; peerKey: Uint8Array | null } | undefined;
    ep.router.add("who.am.i.to.you", open((_payload, ctx) => void (seen = { trust: ctx.trust, peerKey: ctx.peer.key })));
    await link.request("who.am.i.to.you");
    expect(seen).toEqual({ trust: "pinned", peerKey: appKey.publicKey });
    // The first-contact connection is closed (in the background, after QUIC's draining period): only the
    // pinned one stays.
    await until(() => ep.links().length === 1, { what: "the first-contact connection closed", timeoutMs: 3000 });
    expect(ep.links().map((l) => l.connectionId)).toEqual([link.connectionId]);
  });

  test("a method for pinned links answers a bound link and refuses a first-contact one", async () => {
    const { ep, nodeKey } = await node();
    ep.router.add("pool.join", open(() => undefined, { trust: PINNED_OR_MESH }));
    const c = await app();
    const firstContact = await c.dial({ ip: "127.0.0.1", port: ep.port });
    const refused = await firstContact.request("pool.join");
    expect(refused.status).toBe(Status.UNAUTHENTICATED);
    expect(refused.error).toMatch(/needs a pinned link/);
    const { link } = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port: ep.port }, nodePublicKey: nodeKey.publicKey }, { appKey: generateNodeKey() });
    expect((await link.request("pool.join")).status).toBe(Status.OK);
  });

  test("quicWhoami with the node key answers over a pinned link", async () => {
    const { ep, nodeKey } = await node();
    const r = await quicWhoami({ ip: "127.0.0.1", port: ep.port }, { nodePublicKey: nodeKey.publicKey });
    expect(r.pinned).toBe(true);
    expect(r.ip).toBe("127.0.0.1");
  });

  test("a node presenting another certificate on the same address is refused by the pinned client", async () => {
    const nodeKey = generateNodeKey();
    const first = await node(0, nodeKey);
    const port = first.ep.port;
    const logs: string[] = [];
    const c = await app(logs);
    const { link, spki } = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port }, nodePublicKey: nodeKey.publicKey }, { appKey: generateNodeKey() });
    await link.close();
    await first.ep.stop();
    // Same key, same port, new run certificate (as after a restart, or an impostor on the path).
    const second = await node(port, nodeKey);
    expect(second.spki).not.toBe(spki);
    expect(await rejection(c.dial({ ip: "127.0.0.1", port }, { pinSpki: spki, timeoutMs: 2000 }))).toMatch(/does not match the pinned one/);
    expect(c.counters().pinMismatches).toBe(1);
    expect(logs.some((l) => l.startsWith("warn refused QUIC peer") && l.includes(second.spki))).toBe(true);
    // Redoing the bootstrap pins the new certificate.
    const again = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port }, nodePublicKey: nodeKey.publicKey }, { appKey: generateNodeKey() });
    expect(again.spki).toBe(second.spki);
  });

  test("a second node (another key) cannot pass as the expected one", async () => {
    const expected = generateNodeKey();
    const impostor = await node(); // its own key
    const c = await app();
    const err = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port: impostor.ep.port }, nodePublicKey: expected.publicKey }, { appKey: generateNodeKey() }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(String(err)).toMatch(/could not open our hello/);
  });

  test("app.hello sealed to the wrong key gets UNAUTHENTICATED and the node keeps serving", async () => {
    const { ep, nodeKey } = await node();
    const link = await (await app()).dial({ ip: "127.0.0.1", port: ep.port });
    const appKey = generateNodeKey();
    const wrong = await link.request("app.hello", helloPayload(appKey, generateNodeKey().publicKey, SEAL_PURPOSE.appHello));
    expect(wrong.status).toBe(Status.UNAUTHENTICATED);
    // Right key, wrong purpose label: also refused.
    const purpose = await link.request("app.hello", helloPayload(appKey, nodeKey.publicKey, SEAL_PURPOSE.appCert));
    expect(purpose.status).toBe(Status.UNAUTHENTICATED);
    const garbage = await link.request("app.hello", new Uint8Array([1, 2, 3, 4, 5]));
    expect(garbage.status).toBe(Status.BAD_REQUEST);
    const right = await link.request("app.hello", helloPayload(appKey, nodeKey.publicKey, SEAL_PURPOSE.appHello));
    expect(right.status).toBe(Status.OK);
    expect((await link.request(METHOD.app.whoami)).status).toBe(Status.OK);
  });

  test("app.bind needs a session issued by app.hello to the same key, once", async () => {
    const { ep, nodeKey } = await node();
    const link = await (await app()).dial({ ip: "127.0.0.1", port: ep.port });
    const appKey = generateNodeKey();
    const sessionId = crypto.getRandomValues(new Uint8Array(16));
    // No hello yet.
    expect((await link.request("app.bind", helloPayload(appKey, nodeKey.publicKey, SEAL_PURPOSE.appBind, sessionId))).status).toBe(Status.UNAUTHENTICATED);
    expect((await link.request("app.hello", helloPayload(appKey, nodeKey.publicKey, SEAL_PURPOSE.appHello, sessionId))).status).toBe(Status.OK);
    // The hello box replayed as a bind (another purpose) is refused.
    expect((await link.request("app.bind", helloPayload(appKey, nodeKey.publicKey, SEAL_PURPOSE.appHello, sessionId))).status).toBe(Status.UNAUTHENTICATED);
    // Another app key cannot take this session.
    expect((await link.request("app.bind", helloPayload(generateNodeKey(), nodeKey.publicKey, SEAL_PURPOSE.appBind, sessionId))).status).toBe(Status.UNAUTHENTICATED);
    expect((await link.request("app.bind", helloPayload(appKey, nodeKey.publicKey, SEAL_PURPOSE.appBind, sessionId))).status).toBe(Status.OK);
    // One use only.
    expect((await link.request("app.bind", helloPayload(appKey, nodeKey.publicKey, SEAL_PURPOSE.appBind, sessionId))).status).toBe(Status.UNAUTHENTICATED);
  });
});

describe("AppSessionTable", () => {
  const id = (n: number) => new Uint8Array(16).fill(n);
  const key = (n: number) => new Uint8Array(32).fill(n);

  test("a session expires after its TTL", () => {
    const t = new AppSessionTable(1000, 10);
    t.issue(id(1), key(1), 0);
    expect(t.take(id(1), key(1), 1000)).toBe(false);
    t.issue(id(2), key(1), 0);
    expect(t.take(id(2), key(1), 999)).toBe(true);
  });

  test("the oldest session is forgotten when the table is full", () => {
    const t = new AppSessionTable(60_000, 3);
    for (let i = 1; i <= 4; i++) t.issue(id(i), key(i), i);
    expect(t.size).toBe(3);
    expect(t.take(id(1), key(1), 10)).toBe(false);
    expect(t.take(id(4), key(4), 10)).toBe(true);
  });
});
