// The node's app services against real QUIC on loopback: app pool joins and stake answers, pool limit,
// prompt leave, directed and random punch between two punch clients, NOT_FOUND, incompatible pairs, and
// signalling coordination after a mapping change (seed 000 §应用池, §经济激励, §打洞协助, §信令协调; DESIGN §7).
import { open } from "../rpc/open-policy.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";

// Real sockets on a shared machine: room for a busy scheduler.
setDefaultTimeout(20_000);
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { createPunchClient, PunchRefusedError, type PunchClient, type PunchClientInit } from "../../src/punch/punch-client.ts";
import type { PunchResult } from "../../src/punch/punch-result.ts";
import { createPunchService, type PunchService, type PunchServiceInit } from "../../src/punch/punch-service.ts";
import { natToProto, type NatClassName } from "../../src/nat/class.ts";
import { fromBinary } from "@bufbuild/protobuf";
import { bootstrapApp } from "../../src/transport/app-bootstrap/bootstrap.ts";
import { createUdpClient } from "../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { decodeMessage, encodeMessage, Status } from "../../src/wire/codec.ts";
import { PunchHelloSchema } from "../../src/wire/gen/punch-link_pb.ts";
import { AppJoinAnswerSchema, AppJoinSchema, PunchAnswerSchema, PunchInfoSchema, PunchRequestSchema, type PunchInfo } from "../../src/wire/gen/punch_pb.ts";
import { until } from "../wait.ts";
import { SPRAY_PROBES, SPRAY_SOCKETS } from "../../src/punch/constants.ts";

const STAKES = { "*": "0xDEFAULT", "app:chat": "", "blockchain:bitcoin": "bc1qnode", "blockchain:ethereum": "" };

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function startNode(init: Partial<PunchServiceInit> = {}, host = "127.0.0.1"): Promise<{ ep: UdpEndpoint; key: NodeKey; service: PunchService; host: string }> {
  const key = generateNodeKey();
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: key }, { host, port: 0 });
  const service = createPunchService({ udp: ep, nodeKey: key }, { stakes: STAKES, userId: "", ...init });
  await ep.start();
  service.start();
  cleanups.push(async () => {
    service.stop();
    await ep.stop();
  });
  return { ep, key, service, host };
}

interface App {
  client: PunchClient;
  key: NodeKey;
  results: PunchResult[];
}

async function startApp(node: { ep: UdpEndpoint; key: NodeKey; host?: string }, init: Partial<PunchClientInit> = {}, key = generateNodeKey()): Promise<App> {
  const results: PunchResult[] = [];
  const host = node.host ?? "127.0.0.1";
  const client = createPunchClient(
    { key },
    { server: { ip: host, port: node.ep.port, publicKey: node.key.publicKey }, kind: "app:chat", nat: "public", host, onResult: (r) => results.push(r), ...init },
  );
  await client.start();
  cleanups.push(() => client.stop());
  return { client, key, results };
}

/** The rejection of `p` (awaiting inside expect().rejects stalls QUIC I/O in Bun). */
async function refusal(p: Promise<unknown>): Promise<PunchRefusedError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PunchRefusedError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

/** A bound raw link to the node, for protocol-level checks. */
async function rawLink(node: { ep: UdpEndpoint; key: NodeKey }, appKey = generateNodeKey()) {
  const c = createUdpClient({}, { host: "127.0.0.1" });
  await c.start();
  cleanups.push(() => c.stop());
  const { link } = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port: node.ep.port }, nodePublicKey: node.key.publicKey }, { appKey });
  return { c, link, appKey };
}

function joinPayload(appKey: NodeKey, kind: string, nodeId = appKey.nodeId, nat: NatClassName = "public") {
  return encodeMessage(AppJoinSchema, { kind, nodeId, nat: natToProto(nat), spki: new Uint8Array(32).fill(7), publicKey: nodeId === appKey.nodeId ? appKey.publicKey : new Uint8Array() });
}

/** A raw member that acknowledges pushed offers without punching (protocol-level checks, no sockets sprayed). */
async function rawMember(node: { ep: UdpEndpoint; key: NodeKey }, nat: NatClassName) {
  const m = await rawLink(node);
  const offers: PunchInfo[] = [];
  m.c.router.add(METHOD.punch.offer, open((payload) => void offers.push(fromBinary(PunchInfoSchema, payload))));
  const ans = await m.link.request(METHOD.app.join, joinPayload(m.appKey, "app:chat", m.appKey.nodeId, nat));
  expect(ans.status).toBe(Status.OK);
  return { ...m, offers };
}

describe("app pool", () => {
  test("a join answers the stake address for the kind: a blockchain's own address, else the default, plus the identity id", async () => {
    const node = await startNode({ userId: "bc1qidentity" });
    const { link, appKey } = await rawLink(node);
    const ask = async (kind: string) => decodeMessage(AppJoinAnswerSchema, (await link.request(METHOD.app.join, joinPayload(appKey, kind))).payload, "AppJoinAnswer");
    const btc = await ask("blockchain:bitcoin");
    expect(btc).toMatchObject({ kind: "blockchain:bitcoin", stakeAddress: "bc1qnode", stakeSource: "kind", identityId: "bc1qidentity", ip: "127.0.0.1" });
    expect(btc.port).toBeGreaterThan(0); // the app's own port as the node sees it
    const chat = await ask("app:chat");
    expect(chat).toMatchObject({ stakeAddress: "0xDEFAULT", stakeSource: "default" });
    // A blockchain kind without its own address gets the default one, marked as such.
    expect(await ask("blockchain:ethereum")).toMatchObject({ stakeAddress: "0xDEFAULT", stakeSource: "default" });
    expect(node.service.pool.counts()).toEqual({ "app:chat": 1, "blockchain:bitcoin": 1, "blockchain:ethereum": 1 });
  });

  test("the identity id defaults to the node id", async () => {
    const node = await startNode();
    const app = await startApp(node);
    expect(app.client.joined).toMatchObject({ identityId: node.key.nodeId, stakeAddress: "0xDEFAULT", address: `127.0.0.1:${app.client.port}` });
  });

  test("refuses kinds not served, ids that are not the bound key's, and unbound links", async () => {
    const node = await startNode();
    const { link, appKey } = await rawLink(node);
    const other = await link.request(METHOD.app.join, joinPayload(appKey, "app:other"));
    expect(other.status).toBe(Status.REFUSED);
    expect(other.error).toMatch(/not served.*served: app:chat, blockchain:bitcoin, blockchain:ethereum/);
    const stranger = generateNodeKey();
    const wrong = await link.request(METHOD.app.join, joinPayload(appKey, "app:chat", stranger.nodeId));
    expect(wrong.status).toBe(Status.REFUSED);
    expect(wrong.error).toMatch(/not the id of this connection's key/);
    const c = createUdpClient({}, { host: "127.0.0.1" });
    await c.start();
    cleanups.push(() => c.stop());
    const firstContact = await c.dial({ ip: "127.0.0.1", port: node.ep.port });
    expect((await firstContact.request(METHOD.app.join, joinPayload(appKey, "app:chat"))).status).toBe(Status.UNAUTHENTICATED);
    const junk = await link.request(METHOD.app.join, crypto.getRandomValues(new Uint8Array(300)));
    expect(junk.status).toBe(Status.BAD_REQUEST);
    expect(node.service.pool.size).toBe(0);
  });

  test("a full pool refuses with FULL and a clear message; a member that leaves frees its place at once", async () => {
    const node = await startNode({ punchXpool: 2 });
    const a = await startApp(node);
    await startApp(node);
    const err = await refusal(startApp(node));
    expect(err.status).toBe(Status.FULL);
    expect(err.message).toMatch(/app pool for kind "app:chat" is full \(2 members\); try another node/);
    // A closed connection leaves the pool as soon as QUIC reports it, not at an expiry sweep.
    await a.client.stop();
    await until(() => node.service.pool.size === 1, { what: "the member to leave", timeoutMs: 2000 });
    await startApp(node);
    expect(node.service.counters()).toMatchObject({ joinsFull: 1, leaves: 1 });
  });
});

describe("punch brokering on loopback", () => {
  test("directed punch: both sides get a pinned, checked link and report the same attempt", async () => {
    const node = await startNode();
    const a = await startApp(node);
    const b = await startApp(node);
    const [r] = await b.client.punch(a.client.nodeId);
    expect(r).toMatchObject({ connected: true, peer: `127.0.0.1:${a.client.port}`, strategy: "direct", peerId: a.client.nodeId, nat: "public", peerNat: "public" });
    expect(r!.rttMs).toBeGreaterThan(0);
    await until(() => a.results.length === 1, { what: "the waiting side's result" });
    expect(a.results[0]).toMatchObject({ connected: true, peer: `127.0.0.1:${b.client.port}`, attemptId: r!.attemptId, peerId: b.client.nodeId });
    // Exactly one side dialled (the token rule), the other listened.
    expect(new Set([r!.role, a.results[0]!.role])).toEqual(new Set(["dial", "listen"]));
    expect(a.client.peers().map((p) => p.peerId)).toEqual([b.client.nodeId]);
    expect(b.client.peers().map((p) => p.peerId)).toEqual([a.client.nodeId]);
    // The punched link carries the app's own requests.
    a.client.handle("chat.say", (payload) => ({ status: Status.OK, payload }));
    const echoed = await b.client.peers()[0]!.link.request("chat.say", new TextEncoder().encode("hi"));
    expect(new TextDecoder().decode(echoed.payload)).toBe("hi");
  });

  test("directed punch over IPv6", async () => {
    const node = await startNode({}, "::1");
    const a = await startApp(node);
    const b = await startApp(node);
    const [r] = await b.client.punch(a.client.nodeId);
    expect(r).toMatchObject({ connected: true, peer: `[::1]:${a.client.port}` });
  });

  test("random punch reaches compatible members, at most peers_punch of them", async () => {
    const node = await startNode({ peersPunch: 2 });
    const members = [await startApp(node), await startApp(node), await startApp(node)];
    const me = await startApp(node);
    const results = await me.client.punch(null);
    expect(results).toHaveLength(2);
    for (const r of results) expect(r.connected).toBe(true);
    const ids = new Set(members.map((m) => m.client.nodeId));
    for (const r of results) expect(ids.has(r.peerId!)).toBe(true);
    expect(node.service.counters().offersPushed).toBe(2);
  });

  test("directed punch to an absent node is NOT_FOUND with a clear error", async () => {
    const node = await startNode();
    const b = await startApp(node);
    const err = await refusal(b.client.punch("ab".repeat(32)));
    expect(err.status).toBe(Status.NOT_FOUND);
    expect(err.message).toMatch(/node abababababababab is not in any pool of this node; it must be connected to this node/);
  });

  test("an impossible pair (symmetric ↔ symmetric) is refused at once with the reason", async () => {
    const node = await startNode();
    const a = await startApp(node, { nat: "symmetric" });
    const b = await startApp(node, { nat: "symmetric" });
    const t0 = performance.now();
    const err = await refusal(b.client.punch(a.client.nodeId));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err.status).toBe(Status.REFUSED);
    expect(err.message).toMatch(/symmetric ↔ symmetric: both sides are symmetric/);
  });

  test("only the node may push offers; a peer with a wrong token is not let in", async () => {
    const node = await startNode();
    const a = await startApp(node);
    const b = await startApp(node);
    await b.client.punch(a.client.nodeId);
    const link = b.client.peers()[0]!.link;
    const offer = encodeMessage(PunchInfoSchema, { attemptId: new Uint8Array(16) });
    const pushed = await link.request(METHOD.punch.offer, offer);
    // Which side listens is random (the larger token). When b dialled, a sees an unpinned inbound link and
    // the router's policy refuses before the handler; when a dialled, the link is pinned on a's side and
    // the handler refuses because the offer does not come from the node.
    if (pushed.status === Status.UNAUTHENTICATED) {
      expect(pushed.error).toMatch(/needs a pinned link/);
      expect(a.client.counters().offersRefused).toBe(0);
    } else {
      expect(pushed.status).toBe(Status.REFUSED);
      expect(pushed.error).toMatch(/only from the node/);
      expect(a.client.counters().offersRefused).toBe(1);
    }
    const hello = encodeMessage(PunchHelloSchema, { attemptId: new Uint8Array(16), token: new Uint8Array(16), nodeId: b.key.nodeId });
    expect((await link.request(METHOD.punchLink.hello, hello)).status).toBe(Status.REFUSED);
  });
});

describe("spray policy", () => {
  const ask = (link: { request: (m: string, p: Uint8Array) => Promise<{ status: Status; error: string; payload: Uint8Array }> }, targetId: string) =>
    link.request(METHOD.punch.request, encodeMessage(PunchRequestSchema, { kind: "app:chat", targetId }));

  test("symmetric ↔ UDP-Firewall gets a spray plan: many sockets on the symmetric side, probes from the firewall side", async () => {
    const node = await startNode();
    const fw = await rawMember(node, "udp-firewall");
    const sym = await rawMember(node, "symmetric");
    const ans = await ask(sym.link, fw.appKey.nodeId);
    expect(ans.status).toBe(Status.OK);
    const [mine] = decodeMessage(PunchAnswerSchema, ans.payload, "PunchAnswer").offers;
    expect(mine).toMatchObject({ strategy: "sym-to-cone-spray", role: 1 });
    expect(mine!.spray).toMatchObject({ sockets: SPRAY_SOCKETS, probes: SPRAY_PROBES });
    expect(fw.offers[0]).toMatchObject({ strategy: "sym-to-cone-spray", role: 2, attemptId: mine!.attemptId });
  });

  test("symmetric ↔ a NATed port-restricted cone is sprayed by default, refused with sprayNatCones false", async () => {
    const node = await startNode();
    const prc = await rawMember(node, "port-restricted-cone");
    const sym = await rawMember(node, "symmetric");
    expect((await ask(sym.link, prc.appKey.nodeId)).status).toBe(Status.OK);
    expect(prc.offers[0]!.strategy).toBe("sym-to-cone-spray");
    const careful = await startNode({ sprayNatCones: false });
    const prc2 = await rawMember(careful, "port-restricted-cone");
    const sym2 = await rawMember(careful, "symmetric");
    const refused = await ask(sym2.link, prc2.appKey.nodeId);
    expect(refused.status).toBe(Status.REFUSED);
    expect(refused.error).toMatch(/symmetric ↔ port-restricted-cone: this node sprays no port-restricted cone behind a NAT/);
    expect(prc2.offers).toHaveLength(0);
    // A random punch leaves such members out instead of failing.
    const random = await sym2.link.request(METHOD.punch.request, encodeMessage(PunchRequestSchema, { kind: "app:chat" }));
    expect(random.status).toBe(Status.NOT_FOUND);
  });

  test("symmetric ↔ QUIC-Only is refused: its box drops the spray's openers", async () => {
    const node = await startNode();
    const quic = await rawMember(node, "quic-only");
    const sym = await rawMember(node, "symmetric");
    const refused = await ask(sym.link, quic.appKey.nodeId);
    expect(refused.status).toBe(Status.REFUSED);
    expect(refused.error).toMatch(/symmetric ↔ quic-only: a QUIC-Only box drops the birthday spray's openers/);
    expect(quic.offers).toHaveLength(0);
  });
});

describe("same NAT", () => {
  test("a random punch skips members behind the same NAT (no hairpin); a directed punch still tries", async () => {
    const node = await startNode();
    const a = await rawMember(node, "restricted-cone");
    const b = await rawMember(node, "restricted-cone");
    const random = await b.link.request(METHOD.punch.request, encodeMessage(PunchRequestSchema, { kind: "app:chat" }));
    expect(random.status).toBe(Status.NOT_FOUND);
    const directed = await b.link.request(METHOD.punch.request, encodeMessage(PunchRequestSchema, { kind: "app:chat", targetId: a.appKey.nodeId }));
    expect(directed.status).toBe(Status.OK);
    expect(a.offers).toHaveLength(1);
  });
});

describe("signalling coordination", () => {
  test("when an app comes back from a new port, the node re-offers its partner and both reconnect by themselves", async () => {
    const node = await startNode();
    const keyA = generateNodeKey();
    const a1 = await startApp(node, {}, keyA);
    const b = await startApp(node);
    const [first] = await b.client.punch(a1.client.nodeId);
    expect(first!.connected).toBe(true);
    const firstPort = a1.client.port;
    const before = b.results.length; // B's own punch is reported to onResult too
    // A loses its socket without a goodbye (a crash, a new NAT mapping) and comes back from a new port with
    // the same identity.
    await a1.client.stop({ leave: false });
    const a2 = await startApp(node, {}, keyA);
    expect(a2.client.port).not.toBe(firstPort);
    await until(() => b.results.slice(before).some((r) => r.connected && r.peerId === keyA.nodeId), { what: "B's re-punch" });
    await until(() => a2.results.some((r) => r.connected), { what: "A's result" });
    const again = b.results.slice(before).find((r) => r.connected)!;
    expect(again.peer).toBe(`127.0.0.1:${a2.client.port}`);
    expect(a2.results.find((r) => r.connected)!.attemptId).toBe(again.attemptId);
    expect(node.service.counters().rebrokered).toBe(1);
    expect(b.client.peers().map((p) => p.link.remote.port)).toEqual([a2.client.port]);
  });

  test("an app that left on purpose (app.leave) is not re-offered to its old partners", async () => {
    const node = await startNode();
    const keyA = generateNodeKey();
    const a1 = await startApp(node, {}, keyA);
    const b = await startApp(node);
    await b.client.punch(a1.client.nodeId);
    await a1.client.stop();
    expect(node.service.pool.get("app:chat", keyA.nodeId)).toBeUndefined();
    const before = b.results.length;
    await startApp(node, {}, keyA);
    await Bun.sleep(300); // asserts silence: B gets no new offer for A within 300 ms
    expect(b.results.length).toBe(before);
    expect(node.service.counters().rebrokered).toBe(0);
  });

  test("when the node restarts, the app bootstraps and joins again by itself", async () => {
    const key = generateNodeKey();
    const first = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: key }, { host: "127.0.0.1", port: 0 });
    const s1 = createPunchService({ udp: first, nodeKey: key }, { stakes: STAKES, userId: "" });
    await first.start();
    s1.start();
    const port = first.port;
    const joins: string[] = [];
    const app = await startApp({ ep: first, key }, { onJoin: (j) => joins.push(j.address) });
    s1.stop();
    await first.stop();
    // Same key and port, new run certificate: the app's pinned link is gone and must be rebuilt.
    const second = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: key }, { host: "127.0.0.1", port });
    const s2 = createPunchService({ udp: second, nodeKey: key }, { stakes: STAKES, userId: "" });
    await second.start();
    s2.start();
    cleanups.push(async () => {
      s2.stop();
      await second.stop();
    });
    await until(() => joins.length === 2, { what: "the rejoin", timeoutMs: 8000 });
    expect(s2.pool.size).toBe(1);
    expect(app.client.counters().rejoins).toBeGreaterThanOrEqual(1);
  });

  test("a rejoin from the same address does not re-broker", async () => {
    const node = await startNode();
    const { link, appKey } = await rawLink(node);
    await link.request(METHOD.app.join, joinPayload(appKey, "app:chat"));
    const again = decodeMessage(AppJoinAnswerSchema, (await link.request(METHOD.app.join, joinPayload(appKey, "app:chat"))).payload, "AppJoinAnswer");
    expect(again).toMatchObject({ rejoined: true, addressChanged: false });
    expect(node.service.counters().rebrokered).toBe(0);
  });
});
