// In-memory links (src/mesh/memory-link.ts, memory-net.ts): the request/answer semantics of link.ts
// on a fake clock, and the network's dial rules.
import { describe, expect, test } from "bun:test";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import type { CoreRequestHandler } from "../../src/mesh/core-link.ts";
import { createMemoryLinkPair, type MemoryEnd } from "../../src/mesh/memory-link.ts";
import { createMemoryNet } from "../../src/mesh/memory-net.ts";
import { AnswerError } from "../../src/mesh/link.ts";
import { Status } from "../../src/wire/codec.ts";
import { rejection } from "../wait.ts";
import { FakeClock, settle } from "../../src/contracts/fake-clock.ts";

const A = { ip: "10.0.0.1", port: 1 };
const B = { ip: "10.0.0.2", port: 2 };

function pair(clock: FakeClock, bHandlers: Record<string, CoreRequestHandler> = {}) {
  const end = (local: typeof A, remote: typeof A, direction: "in" | "out", lookup: MemoryEnd["lookup"]): MemoryEnd => ({ direction, trust: "mesh", peerKey: null, remote, socketRemote: remote, local, lookup });
  return createMemoryLinkPair(end(A, B, "out", () => undefined), end(B, A, "in", (m) => bHandlers[m]), { clock, requestTimeoutMs: 1_000 });
}

describe("a memory link pair", () => {
  test("answers a request with the handler's payload, status and error, by request id", async () => {
    const clock = new FakeClock();
    const [a] = pair(clock, {
      echo: (req) => req.payload,
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
    nb.links.handle("open", () => new Uint8Array([1]), { allowUntrusted: true });
    nb.links.handle("meshOnly", () => new Uint8Array([2]));
    const link = await na.links.dialUntrusted(B);
    expect(link.peerNodeId).toBeNull();
    expect((await link.request("open")).status).toBe(Status.OK);
    expect((await link.request("meshOnly")).status).toBe(Status.REFUSED);
  });
});
