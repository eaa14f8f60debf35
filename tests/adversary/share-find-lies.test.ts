// Attack: mesh peers lie in answers to a search of listed TCP servers (share.find, src/share/share-find.ts), or
// list servers that are not there. A forwarder cannot change, add to or replay another node's holding (it is
// signed by the holder for this search), and is banned when it relays what it could have checked; an oversized
// answer costs nobody a ban. What a hostile holder lists about itself is dialled by the asked node before an
// app is told (src/share/service.ts).
import { afterEach, describe, expect, test } from "bun:test";
import { clone, create } from "@bufbuild/protobuf";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import type { CoreLink } from "../../src/mesh/core-link.ts";
import { buildRecord } from "../../src/mesh/record.ts";
import { createRouter } from "../../src/rpc/router.ts";
import { shareFetch } from "../../src/share/client.ts";
import { signHolding } from "../../src/share/holding.ts";
import { createShareFind } from "../../src/share/share-find.ts";
import { createShareService } from "../../src/share/service.ts";
import { bootstrapApp } from "../../src/transport/app-bootstrap/bootstrap.ts";
import { createUdpClient } from "../../src/transport/udp/client.ts";
import { createUdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { decodeMessage, encodeMessage } from "../../src/wire/codec.ts";
import { EnvelopeSchema, Status, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { ShareFindAnswerSchema, ShareFindRequestSchema, ShareHoldingSchema, type ShareHolding } from "../../src/wire/gen/punch_pb.ts";

const KIND = "app:web";
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

function recordOf(key: NodeKey, i: number): NodeRecord {
  return buildRecord(key, { addresses: [{ ip: `198.51.100.${i}`, udpPort: 7788, tcpPort: 7788 }], spki: "ab".repeat(32), kinds: [KIND], seq: 1, now: Date.now() });
}

/** A mesh link to a peer that answers every share.find with `answer(requestId)` (bytes). */
function hostileLink(answer: (requestId: Uint8Array) => Uint8Array): CoreLink {
  const peer = generateNodeKey();
  return {
    peerNodeId: peer.nodeId,
    trust: "mesh",
    direction: "out",
    rttMs: 1,
    remote: { ip: "203.0.113.9", port: 7788 },
    socketRemote: { ip: "203.0.113.9", port: 7788 },
    local: { ip: "192.0.2.1", port: 7788 },
    openedAt: Date.now(),
    isOpen: true,
    request: async (_m, payload) => create(EnvelopeSchema, { status: Status.OK, payload: answer(decodeMessage(ShareFindRequestSchema, payload!, "req").requestId) }),
    close: () => {},
    onClose: () => () => {},
  };
}

const holdings = (hs: ShareHolding[]) => encodeMessage(ShareFindAnswerSchema, { holdings: hs });

/** The asking node: no entries of its own, one link. */
function asker(link: CoreLink) {
  const me = generateNodeKey();
  const lies: string[] = [];
  const find = createShareFind({ nodeKey: me, links: () => [link], ownRecord: () => recordOf(me, 1), local: () => [], onLie: (_l, why) => lies.push(why), now: Date.now });
  return { find, lies };
}

const honest = generateNodeKey();
const honestHolding = (requestId: Uint8Array) => signHolding(honest, { holder: recordOf(honest, 2), kind: KIND, requestId, entries: [{ ip: "203.0.113.20", port: 443, verifiedAtMs: Date.now() }], now: Date.now() });

describe("lies in share.find answers", () => {
  test("control: an honest holding relayed whole arrives, and nobody is blamed", async () => {
    const { find, lies } = asker(hostileLink((rid) => holdings([honestHolding(rid)])));
    expect((await find.search(KIND, 2)).map((f) => f.nodeId)).toEqual([honest.nodeId]);
    expect(lies).toEqual([]);
  });

  test("a forwarder that points an honest holder's entry at its own server is banned; the entry never arrives", async () => {
    const { find, lies } = asker(
      hostileLink((rid) => {
        const h = clone(ShareHoldingSchema, honestHolding(rid));
        h.entries[0]!.ip = "198.18.0.66";
        return holdings([h]);
      }),
    );
    expect(await find.search(KIND, 2)).toEqual([]);
    expect(lies).toEqual([expect.stringMatching(/bad holding: holding signature does not match/)]);
  });

  test("a forwarder that signs entries itself under an honest holder's record is banned", async () => {
    const forger = generateNodeKey();
    const { find, lies } = asker(hostileLink((rid) => holdings([signHolding(forger, { holder: recordOf(honest, 2), kind: KIND, requestId: rid, entries: [{ ip: "198.18.0.66", port: 80, verifiedAtMs: Date.now() }], now: Date.now() })])));
    expect(await find.search(KIND, 2)).toEqual([]);
    expect(lies).toHaveLength(1);
  });

  test("a holding replayed from an earlier search is dropped without blame (the holder may have delisted it)", async () => {
    const old = honestHolding(new Uint8Array(16).fill(1));
    const { find, lies } = asker(hostileLink(() => holdings([old])));
    expect(await find.search(KIND, 2)).toEqual([]);
    expect(lies).toEqual([]);
  });

  test("an oversized answer is dropped without blame; bytes that do not parse are a lie", async () => {
    const big = asker(hostileLink(() => new Uint8Array(70 * 1024)));
    expect(await big.find.search(KIND, 2)).toEqual([]);
    expect(big.lies).toEqual([]);
    const junk = asker(hostileLink(() => new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x0f])));
    expect(await junk.find.search(KIND, 2)).toEqual([]);
    expect(junk.lies).toEqual([expect.stringMatching(/undecodable share.find answer/)]);
  });

  test("an app asking a node: only found servers that accept the node's own TCP dial are answered, and another node's entries never make it dial its own loopback or private networks", async () => {
    const holder = generateNodeKey();
    const link = hostileLink((rid) =>
      holdings([
        signHolding(holder, {
          holder: recordOf(holder, 3),
          kind: KIND,
          requestId: rid,
          entries: [
            { ip: "8.8.4.30", port: 80, verifiedAtMs: Date.now() },
            { ip: "8.8.4.31", port: 80, verifiedAtMs: Date.now() },
            { ip: "127.0.0.1", port: 6379, verifiedAtMs: Date.now() },
            { ip: "10.0.0.1", port: 22, verifiedAtMs: Date.now() },
          ],
          now: Date.now(),
        }),
      ]),
    );
    const nodeKey = generateNodeKey();
    const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey }, { host: "127.0.0.1", port: 0 });
    const dialled: string[] = [];
    const share = createShareService(
      {
        udp: ep,
        dial: async ({ ip, port }) => (dialled.push(`${ip}:${port}`), ip !== "8.8.4.31"),
        mesh: { router: createRouter(), nodeKey, links: () => [link], ownRecord: () => recordOf(nodeKey, 4), onLie: () => {} },
      },
      { kinds: [KIND] },
    );
    await ep.start();
    share.start();
    cleanups.push(async () => {
      share.stop();
      await ep.stop();
    });
    const c = createUdpClient({}, { host: "127.0.0.1" });
    await c.start();
    cleanups.push(() => c.stop());
    const { link: app } = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port: ep.port }, nodePublicKey: nodeKey.publicKey }, { appKey: generateNodeKey() });
    const found = await shareFetch(app, KIND, { hops: 2 });
    expect(found.map((e) => [`${e.ip}:${e.port}`, e.nodeId])).toEqual([["8.8.4.30:80", holder.nodeId]]);
    expect(dialled.sort()).toEqual(["8.8.4.30:80", "8.8.4.31:80"]);
    // Without hops the node answers its own entries only: nothing, and no search.
    expect(await shareFetch(app, KIND)).toEqual([]);
    expect(share.counters().searches).toBe(1);
  });
});
