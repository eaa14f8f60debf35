// In-memory links (src/mesh/memory-link.ts, memory-net.ts): the request/answer semantics of link.ts
// on a fake clock, and the network's dial rules.
import { describe, expect, test } from "bun:test";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { createMemoryLinkPair, type MemoryEnd } from "../../src/mesh/memory-link.ts";
import { createMemoryNet } from "../../src/mesh/memory-net.ts";
import { linkOf } from "../../src/mesh/link.ts";
import { AnswerError } from "../../src/rpc/errors.ts";
import { MESH_ONLY, perHost, type RpcContext, type RpcHandler } from "../../src/rpc/policy.ts";
import { createRouter } from "../../src/rpc/router.ts";
import { open } from "../rpc/open-policy.ts";
import { Status } from "../../src/wire/codec.ts";
import { rejection } from "../wait.ts";
import { FakeClock, settle } from "../../src/contracts/fake-clock.ts";

const A = { ip: "10.0.0.1", port: 1 };
const B = { ip: "10.0.0.2", port: 2 };

/** A pair whose `b` end serves `bHandlers` (open policy, WSS) through a router on the fake clock. */
function pair(clock: FakeClock, bHandlers: Record<string, RpcHandler> = {}) {
  const router = createRouter({ now: () => clock.now() });
  for (const [method, handler] of Object.entries(bHandlers)) router.add(method, open(handler, { transports: ["wss"] }));
  const end = (local: typeof A, remote: typeof A, direction: "in" | "out", r?: MemoryEnd["router"]): MemoryEnd => ({ direction, trust: "mesh", peerKey: null, remote, socketRemote: remote, local, router: r });
  return createMemoryLinkPair(end(A, B, "out"), end(B, A, "in", router), { clock, requestTimeoutMs: 1_000 });
}

describe("a memory link pair", () => {
  test("answers a request with the handler's payload, status and error, by request id", async () => {
    const clock = new FakeClock();
    const [a] = pair(clock, {
      echo: (payload) => payload,
      deny: () => {
        throw new AnswerError(Status.REFUSED, "no");
      },
    });
    const [x, y, z] = await Promise.all([a.request("echo", new Uint8Array([1, 2])), a.request("deny"), a.request("nothing")]);
    expect([...x.payload]).toEqual([1, 2]);
    expect(x.status).toBe(Status.OK);
    expect([y.status, y.error]).toEqual([Status.REFUSED, "no"]);
    expect(z.status).toBe(Status.BAD_REQUEST);
  });

  test("a request with no answer times out on the clock", async () => {
    const clock = new FakeClock();
    const [a] = pair(clock, { slow: () => new Promise<Uint8Array>(() => {}) });
    const p = rejection(a.request("slow"));
    await clock.advance(999);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(1);
    expect(await p).toContain("TimeoutError");
  });

  test("close fails pending requests and tells both ends the code", async () => {
    const clock = new FakeClock();
    const [a, b] = pair(clock, { slow: () => new Promise<Uint8Array>(() => {}) });
    const seen: string[] = [];
    a.onClose((i) => seen.push(`a ${i.code}`));
    b.onClose((i) => seen.push(`b ${i.code}`));
    const p = rejection(a.request("slow"));
    await settle();
    b.close(4003, "banned");
    expect(await p).toContain("closed (4003 banned)");
    await settle();
    expect(seen.sort()).toEqual(["a 4003", "b 4003"]);
    expect(a.isOpen).toBe(false);
    expect(await rejection(a.request("slow"))).toContain("closed");
  });
});

describe("a memory network", () => {
  test("a mesh dial needs the key of the node at the address and is announced at both ends", async () => {
    const clock = new FakeClock();
    const net = createMemoryNet({ clock });
    const [ka, kb] = [generateNodeKey(), generateNodeKey()];
    const na = net.node({ ...A, publicKey: ka.publicKey });
    const nb = net.node({ ...B, publicKey: kb.publicKey });
    const heard: string[] = [];
    nb.links.onMeshLink((l) => heard.push(`${l.direction} ${l.peerNodeId}`));
    expect(await rejection(na.links.dialMesh(B, generateNodeKey().publicKey))).toContain("does not hold the key");
    const link = await na.links.dialMesh(B, kb.publicKey);
    expect([link.trust, link.direction, link.peerNodeId]).toEqual(["mesh", "out", kb.nodeId]);
    expect(heard).toEqual([`in ${ka.nodeId}`]);
    nb.stop();
    await settle();
    expect(link.isOpen).toBe(false);
    expect(await rejection(na.links.dialUntrusted(B))).toContain("connection refused");
  });

  test("first-contact links serve only methods allowed on untrusted links", async () => {
    const clock = new FakeClock();
    const net = createMemoryNet({ clock });
    const na = net.node({ ...A, publicKey: generateNodeKey().publicKey });
    const nb = net.node({ ...B, publicKey: generateNodeKey().publicKey });
    nb.router.add("open", open(() => new Uint8Array([1]), { transports: ["wss"] }));
    nb.router.add("meshOnly", open(() => new Uint8Array([2]), { transports: ["wss"], trust: MESH_ONLY }));
    const link = await na.links.dialUntrusted(B);
    expect(link.peerNodeId).toBeNull();
    expect((await link.request("open")).status).toBe(Status.OK);
    expect((await link.request("meshOnly")).status).toBe(Status.REFUSED);
  });

  test("a node's router serves both transports with the ctx a real link gives", async () => {
    const clock = new FakeClock();
    const net = createMemoryNet({ clock });
    const [ka, kb] = [generateNodeKey(), generateNodeKey()];
    const na = net.node({ ...A, publicKey: ka.publicKey });
    const nb = net.node({ ...B, publicKey: kb.publicKey });
    expect(nb.links.router).toBe(nb.router);
    expect(nb.udp.router).toBe(nb.router);
    const seen: RpcContext[] = [];
    const who: RpcHandler = (_payload, ctx) => void seen.push(ctx);
    nb.router.add("who", open(who, { transports: ["wss"] }));
    nb.router.add("whoQuic", open(who, { transports: ["quic"] }));

    const link = await na.links.dialMesh(B, kb.publicKey);
    expect((await link.request("who")).status).toBe(Status.OK);
    const [served] = nb.links.links();
    const mesh = seen.shift()!;
    expect([mesh.transport, mesh.trust, mesh.peer.nodeId, mesh.remote.ip]).toEqual(["wss", "mesh", ka.nodeId, A.ip]);
    expect(linkOf(mesh)).toBe(served!);
    expect(mesh.remote).toEqual(served!.socketRemote);

    const first = await na.links.dialUntrusted(B);
    await first.request("who");
    const untrusted = seen.shift()!;
    expect([untrusted.trust, untrusted.peer.key, untrusted.remote.ip]).toEqual(["untrusted", null, A.ip]);

    const udp = await na.udp.dial(B);
    expect((await udp.request("who")).status).toBe(Status.BAD_REQUEST); // a WSS-only method is unknown over QUIC
    expect((await udp.request("whoQuic")).status).toBe(Status.OK);
    const quic = seen.shift()!;
    expect([quic.transport, quic.trust, quic.remote.ip, quic.link]).toEqual(["quic", "untrusted", A.ip, undefined]);
  });

  test("the route's policy holds on memory links: per-host rate on the fake clock, payload, in flight", async () => {
    const clock = new FakeClock();
    const net = createMemoryNet({ clock });
    const na = net.node({ ...A, publicKey: generateNodeKey().publicKey });
    const nb = net.node({ ...B, publicKey: generateNodeKey().publicKey });
    const held: Array<() => void> = [];
    nb.router.addAll([
      ["rated", { ...open(() => new Uint8Array([1])), transports: ["wss"], rate: perHost(1, 2), maxPayloadBytes: 4 }],
      ["held", { ...open(() => new Promise<void>((r) => held.push(r))), transports: ["wss"], maxInFlight: 1 }],
    ]);
    const link = await na.links.dialUntrusted(B);
    const statuses = async (n: number) => (await Promise.all(Array.from({ length: n }, () => link.request("rated")))).map((a) => a.status);
    expect(await statuses(3)).toEqual([Status.OK, Status.OK, Status.RATE_LIMITED]);
    await clock.advance(1_000);
    expect(await statuses(2)).toEqual([Status.OK, Status.RATE_LIMITED]);
    await clock.advance(1_000);
    expect((await link.request("rated", new Uint8Array(5))).status).toBe(Status.BAD_REQUEST);

    const slow = link.request("held");
    expect((await link.request("held")).status).toBe(Status.RATE_LIMITED);
    await settle();
    held.shift()!();
    expect((await slow).status).toBe(Status.OK);
    expect(nb.router.stats().refused).toEqual({ rated: { rate: 2, payload: 1 }, held: { "in-flight": 1 } });
  });
});
