// The source-server side of STUN:Cone and STUN:Live (src/nat/cone-server.ts, lifetime-server.ts; DESIGN §6 "Probes go
// only to an address the requester proved it owns"): a probe request for someone else's address is refused and
// nothing is sent there. The server's main socket and the clients are real UDP sockets on 127.0.0.1 / 127.0.0.2
// (another "host"); the QUIC connection is represented by its request context.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createSocket, type Socket } from "node:dgram";
import { buildControl, decodeControl, type ControlMessage } from "../../src/nat/control-packet.ts";
import { createConeServer, type ConeServer, type NewHostRequest } from "../../src/nat/cone-server.ts";
import { createLifetimeServer } from "../../src/nat/lifetime-server.ts";
import { PROBE_MAX_BYTES } from "../../src/nat/probe-sizes.ts";
import { makeNewHostProof } from "../../src/nat/newhost-proof.ts";
import { newHostKey, verifyProbe } from "../../src/nat/probe-packet.ts";
import type { Endpoint } from "../../src/nat/source-check.ts";
import { decodeMessage, encodeMessage, Status } from "../../src/wire/codec.ts";
import { until } from "../wait.ts";
import {
  LiveBeginAnswerSchema,
  LiveBeginRequestSchema,
  LiveEndAnswerSchema,
  LiveEndRequestSchema,
  LiveScheduleAnswerSchema,
  LiveScheduleRequestSchema,
  NatBeginAnswerSchema,
  NatBeginRequestSchema,
  NatFormalAnswerSchema,
  NatFormalRequestSchema,
  NatPassageRequestSchema,
} from "../../src/wire/gen/nat_pb.ts";

interface Peer {
  sock: Socket;
  local: Endpoint;
  got: { buf: Buffer; from: Endpoint }[];
}

async function peer(ip: string): Promise<Peer> {
  const sock = createSocket("udp4");
  const got: Peer["got"] = [];
  sock.on("message", (buf, r) => got.push({ buf, from: { ip: r.address, port: r.port } }));
  await new Promise<void>((r) => sock.bind(0, ip, () => r()));
  return { sock, local: { ip, port: sock.address().port }, got };
}

const send = (p: Peer, bytes: Uint8Array, to: Endpoint) => new Promise<void>((r) => p.sock.send(bytes, to.port, to.ip, () => r()));

let main: Peer; // the server's shared socket
let quic: Peer; // the client's QUIC socket (its 4-tuple is ctx.remoteIp:remotePort)
let formal: Peer; // the client's fresh formal socket, same host
let foreign: Peer; // another host: 127.0.0.2
const peers: Peer[] = [];
const key = crypto.getRandomValues(new Uint8Array(32));
const delegated: NewHostRequest[] = [];
let cone: ConeServer;

beforeAll(async () => {
  [main, quic, formal, foreign] = await Promise.all([peer("127.0.0.1"), peer("127.0.0.1"), peer("127.0.0.1"), peer("127.0.0.2")]);
  peers.push(main, quic, formal, foreign);
});

afterAll(() => {
  for (const p of peers) p.sock.close();
});

function newCone(): ConeServer {
  cone = createConeServer(
    {
      sendMain: (bytes, to) => send(main, bytes, to),
      delegate: async (req) => {
        delegated.push(req);
        return [];
      },
    },
    { bindHost: "127.0.0.1", spacingMs: 1, powBits: 4 },
  );
  return cone;
}

afterEach(() => {
  cone?.stop();
  delegated.length = 0;
  for (const p of peers) p.got.length = 0;
});

const ctx = () => ({ remoteIp: quic.local.ip, remotePort: quic.local.port, connectionId: "conn-1" });

/** Feeds the server's main socket datagrams to cone.hello, as nat-service.ts does. */
function pumpMain(): void {
  main.sock.removeAllListeners("message");
  main.sock.on("message", (buf, r) => {
    const d = decodeControl(buf, key);
    if (d.ok && d.msg.type === "hello-formal") cone.hello(d.msg, { ip: r.address, port: r.port });
  });
}

async function begin(): Promise<{ token: Uint8Array; newPort: number }> {
  const a = await cone.begin(encodeMessage(NatBeginRequestSchema, { probeKey: key }), ctx());
  expect(a.status).toBe(Status.OK);
  return decodeMessage(NatBeginAnswerSchema, a.payload!, "NatBeginAnswer");
}

async function formalRequest(token: Uint8Array, cookie: Uint8Array, target = { ip: "127.0.0.1", port: 1 }) {
  const proof = await makeNewHostProof(target, newHostKey(key), { bits: 4 });
  return cone.formal(encodeMessage(NatFormalRequestSchema, { token, cookie, avoidIps: [], proof: { issuedAtMs: proof.issuedAtMs, nonce: proof.nonce } }), ctx());
}

function acksIn(p: Peer): ControlMessage[] {
  return p.got.flatMap((g) => {
    const d = decodeControl(g.buf, key);
    return d.ok ? [d.msg] : [];
  });
}

describe("a probe request for someone else's address is refused", () => {
  test("a formal hello from another IP than the QUIC connection's gets no ack and no probes", async () => {
    newCone();
    pumpMain();
    const { token } = await begin();
    await send(foreign, buildControl(key, { type: "hello-formal", token }), main.local);
    await until(() => cone.counters.foreignHellos === 1, { what: "the foreign hello counted" });
    expect(foreign.got).toHaveLength(0);
    expect(cone.counters.foreignHellos).toBe(1);
    // Without the cookie that only the hello's source received, nat.formal is refused: nothing is sent anywhere.
    const a = await formalRequest(token, crypto.getRandomValues(new Uint8Array(16)), { ip: "127.0.0.2", port: 1 });
    expect(a.status).toBe(Status.REFUSED);
    await Bun.sleep(50); // asserts silence: nothing reaches the foreign host within 50 ms
    expect(foreign.got).toHaveLength(0);
    expect(delegated).toHaveLength(0);
  });

  test("a session cannot be driven from another QUIC connection", async () => {
    newCone();
    const { token } = await begin();
    const a = await cone.passage(encodeMessage(NatPassageRequestSchema, { token }), { ...ctx(), connectionId: "conn-2", remotePort: foreign.local.port, remoteIp: foreign.local.ip });
    expect(a.status).toBe(Status.REFUSED);
    await Bun.sleep(30); // asserts silence: nothing reaches the foreign host within 30 ms
    expect(foreign.got).toHaveLength(0);
  });

  test("the new-port socket acks only hellos from the connection's IP", async () => {
    newCone();
    const { token, newPort } = await begin();
    await send(foreign, buildControl(key, { type: "hello-port", token }), { ip: "127.0.0.1", port: newPort });
    await send(quic, buildControl(key, { type: "hello-port", token }), { ip: "127.0.0.1", port: newPort });
    await until(() => acksIn(quic).length > 0, { what: "the ack-port to the connection's own socket" });
    expect(foreign.got).toHaveLength(0);
    expect(acksIn(quic)).toEqual([{ type: "ack-port", token, mapped: quic.local }]);
  });

  test("nat.formal without a valid proof of work is refused before anything is sent", async () => {
    newCone();
    pumpMain();
    const { token } = await begin();
    await send(formal, buildControl(key, { type: "hello-formal", token }), main.local);
    await until(() => acksIn(formal).length > 0, { what: "the ack-formal" });
    const ack = acksIn(formal)[0] as Extract<ControlMessage, { type: "ack-formal" }>;
    formal.got.length = 0;
    const a = await cone.formal(encodeMessage(NatFormalRequestSchema, { token, cookie: ack.cookie, avoidIps: [] }), ctx());
    expect(a.status).toBe(Status.REFUSED);
    await Bun.sleep(30); // asserts silence: no probe reaches the formal socket within 30 ms
    expect(formal.got).toHaveLength(0);
    expect(delegated).toHaveLength(0);
  });
});

describe("the proven address gets the test", () => {
  test("passage probes go to the connection's own 4-tuple; NewPort and NewHost to the formal socket that echoed its cookie", async () => {
    newCone();
    pumpMain();
    const { token, newPort } = await begin();
    expect((await cone.passage(encodeMessage(NatPassageRequestSchema, { token }), ctx())).status).toBe(Status.OK);
    await until(() => quic.got.length >= 2, { what: "2 passage probes" });
    expect(quic.got.map((g) => verifyProbe(g.buf, key))).toEqual([
      { ok: true, source: "passage" },
      { ok: true, source: "passage" },
    ]);
    // The formal hello is padded: what comes back to that address never exceeds it.
    const hello = buildControl(key, { type: "hello-formal", token });
    expect(hello.length).toBe(1072);
    await send(formal, hello, main.local);
    await until(() => acksIn(formal).length > 0, { what: "the ack-formal" });
    const ack = acksIn(formal)[0] as Extract<ControlMessage, { type: "ack-formal" }>;
    expect(ack).toMatchObject({ type: "ack-formal", mapped: formal.local });
    formal.got.length = 0;
    const a = await formalRequest(token, ack.cookie, ack.mapped);
    expect(a.status).toBe(Status.OK);
    const ans = decodeMessage(NatFormalAnswerSchema, a.payload!, "NatFormalAnswer");
    expect(ans).toMatchObject({ mappedIp: formal.local.ip, mappedPort: formal.local.port, newPortSent: 4 });
    await until(() => formal.got.length >= 4, { what: "4 NewPort probes" });
    expect(formal.got.map((g) => [g.from.port, verifyProbe(g.buf, key).ok])).toEqual(Array(4).fill([newPort, true]));
    // Probe traffic never exceeds what the request cost: the ack, 4 NewPort and the most 2 × 3 NewHost probes can
    // weigh stay under the hello alone.
    const toFormal = formal.got.reduce((n, g) => n + g.buf.length, 0) + buildControl(key, ack).length + 6 * PROBE_MAX_BYTES;
    expect(toFormal).toBeLessThanOrEqual(hello.length);
    expect(delegated.map((d) => d.target)).toEqual([formal.local]);
    // One formal step per session.
    expect((await formalRequest(token, ack.cookie, ack.mapped)).status).toBe(Status.NOT_FOUND);
  });
});

describe("the lifetime server", () => {
  test("ignores hellos from another IP and probes only sockets whose cookie came back, once each", async () => {
    const sent: Endpoint[] = [];
    const live = createLifetimeServer({ send: (bytes, to) => void send(main, bytes, to).then(() => sent.push(to)) });
    try {
      const b = live.begin(encodeMessage(LiveBeginRequestSchema, { probeKey: key, sockets: 2 }), ctx());
      const { token } = decodeMessage(LiveBeginAnswerSchema, b.payload!, "LiveBeginAnswer");
      const hello = (index: number) => decodeControl(buildControl(key, { type: "hello-live", token, index }), key);
      const h0 = hello(0);
      if (!h0.ok || h0.msg.type !== "hello-live") throw new Error("bad hello");
      live.hello(h0.msg, foreign.local);
      expect(live.counters.foreignHellos).toBe(1);
      live.hello(h0.msg, formal.local);
      await until(() => acksIn(formal).length > 0, { what: "the ack-live" });
      const ack = acksIn(formal)[0] as Extract<ControlMessage, { type: "ack-live" }>;
      expect(ack).toMatchObject({ type: "ack-live", index: 0, mapped: formal.local });
      formal.got.length = 0;
      // A wrong cookie is not scheduled; the right one is, once.
      const schedule = (cookie: Uint8Array) =>
        decodeMessage(LiveScheduleAnswerSchema, live.schedule(encodeMessage(LiveScheduleRequestSchema, { token, items: [{ index: 0, cookie, delayMs: 0 }] }), ctx()).payload!, "LiveScheduleAnswer").accepted;
      expect(schedule(crypto.getRandomValues(new Uint8Array(16)))).toBe(0);
      expect(schedule(ack.cookie)).toBe(1);
      expect(schedule(ack.cookie)).toBe(0);
      await until(() => formal.got.length > 0, { what: "the scheduled passage probe" });
      expect(formal.got.map((g) => verifyProbe(g.buf, key))).toEqual([{ ok: true, source: "passage" }]);
      expect(foreign.got).toHaveLength(0);
      const end = decodeMessage(LiveEndAnswerSchema, live.end(encodeMessage(LiveEndRequestSchema, { token }), ctx()).payload!, "LiveEndAnswer");
      expect(end.sent.map((s) => s.index)).toEqual([0]);
    } finally {
      live.stop();
    }
  });
});
