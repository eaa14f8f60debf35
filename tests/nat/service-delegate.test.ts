// The NewHost delegate (src/nat/newhost-delegate.ts, newhost-proof.ts; DESIGN §6 "A delegated NewHost request carries
// a proof that a live client asked for it"): every order without a valid proof is refused and sends nothing; a valid
// one sends 3 NewHost probes keyed with SHA-256(K) to the target only. Real UDP sockets on loopback.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSocket, type Socket } from "node:dgram";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { seal } from "../../src/identity/seal.ts";
import { createNewHostDelegate, isProbeTarget, type NewHostDelegate } from "../../src/nat/newhost-delegate.ts";
import { createConsentIssuer } from "../../src/nat/newhost-consent.ts";
import { checkNewHostProof, makeNewHostProof, sealNewHostOrder, type NewHostOrderInit } from "../../src/nat/newhost-proof.ts";
import { newHostKey, verifyProbe } from "../../src/nat/probe-packet.ts";
import { decodeMessage, encodeMessage, Status } from "../../src/wire/codec.ts";
import { NewHostDelegationSchema, NewHostOrderSchema, NewHostReportSchema } from "../../src/wire/gen/nat_pb.ts";
import { until } from "../wait.ts";

const delegateKey = generateNodeKey();
const sourceKey = generateNodeKey();
const otherKey = generateNodeKey();
const clientKey = crypto.getRandomValues(new Uint8Array(32));
const hostKey = newHostKey(clientKey);

let target: Socket;
let targetPort = 0;
const received: { buf: Buffer; from: string }[] = [];
let proof: Awaited<ReturnType<typeof makeNewHostProof>>;

beforeAll(async () => {
  target = createSocket("udp4");
  target.on("message", (buf, r) => received.push({ buf, from: `${r.address}:${r.port}` }));
  await new Promise<void>((r) => target.bind(0, "127.0.0.1", () => r()));
  targetPort = target.address().port;
  proof = await makeNewHostProof({ ip: "127.0.0.1", port: targetPort }, hostKey);
});

/** The delegate's consent issuer: what a client would get from it over HTTPS (GET /nat/consent). */
const consent = createConsentIssuer();

afterAll(() => target.close());

function delegate(init: { allowSpecialTargets?: boolean } = {}): NewHostDelegate {
  return createNewHostDelegate(
    {
      nodeKey: delegateKey,
      sendFrom: (bytes, to) =>
        new Promise<void>((resolve, reject) => {
          const s = createSocket("udp4");
          s.send(bytes, to.port, to.ip, (err) => {
            s.close();
            if (err) reject(err);
            else resolve();
          });
        }),
      ownIps: () => ({ main: "127.0.0.1", others: [] }),
      consent,
    },
    // The target is on loopback, a special-purpose range: allowed here as in a lab.
    { spacingMs: 1, allowSpecialTargets: init.allowSpecialTargets ?? true },
  );
}

interface OrderFields {
  targetIp: string;
  targetPort: number;
  hostKey: Uint8Array;
  issuedAtMs: bigint;
  orderId: Uint8Array;
  avoidIps: string[];
  proof?: { issuedAtMs: bigint; nonce: Uint8Array };
  consent?: Uint8Array;
}

function order(over: Partial<OrderFields> = {}): NewHostOrderInit {
  const fields: OrderFields = {
    targetIp: "127.0.0.1",
    targetPort,
    hostKey,
    issuedAtMs: BigInt(Date.now()),
    orderId: crypto.getRandomValues(new Uint8Array(16)),
    avoidIps: [],
    proof: { issuedAtMs: proof.issuedAtMs, nonce: proof.nonce },
    consent: consent.issue({ ip: "127.0.0.1", port: targetPort })!,
    ...over,
  };
  return fields;
}

const mesh = { trust: "mesh", peerKey: sourceKey.publicKey };

/** Asserts silence: no more than `expected` datagrams reach the target within 60 ms. */
async function nothingArrives(expected = 0): Promise<void> {
  await Bun.sleep(60);
  expect(received).toHaveLength(expected);
}

describe("a delegate refuses NewHost orders without a valid proof", () => {
  test("from a link that is not a bootstrapped mesh link", async () => {
    const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order()), { trust: "pinned", peerKey: sourceKey.publicKey });
    expect(a.status).toBe(Status.REFUSED);
    await nothingArrives();
  });

  test("when the order is not sealed at all", async () => {
    const a = await delegate().handle(encodeMessage(NewHostDelegationSchema, { sealed: new Uint8Array(0) }), mesh);
    expect(a.status).toBe(Status.UNAUTHENTICATED);
    await nothingArrives();
  });

  test("when the order was sealed by another node than the asking peer", async () => {
    const a = await delegate().handle(sealNewHostOrder(otherKey.privateKey, delegateKey.publicKey, order()), mesh);
    expect(a.status).toBe(Status.UNAUTHENTICATED);
    await nothingArrives();
  });

  test("when the order was sealed for another delegate", async () => {
    const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, otherKey.publicKey, order()), mesh);
    expect(a.status).toBe(Status.UNAUTHENTICATED);
    await nothingArrives();
  });

  test("when the box was sealed under another purpose", async () => {
    const box = seal(sourceKey.privateKey, delegateKey.publicKey, "findings/v1/app-hello", encodeMessage(NewHostOrderSchema, order()));
    const a = await delegate().handle(encodeMessage(NewHostDelegationSchema, { sealed: box }), mesh);
    expect(a.status).toBe(Status.UNAUTHENTICATED);
    await nothingArrives();
  });

  test("when the order is stale", async () => {
    const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order({ issuedAtMs: BigInt(Date.now() - 120_000) })), mesh);
    expect(a.status).toBe(Status.REFUSED);
    expect(a.error).toContain("stale");
    await nothingArrives();
  });

  test("when the client's proof of work is missing", async () => {
    const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order({ proof: undefined })), mesh);
    expect(a.status).toBe(Status.REFUSED);
    expect(a.error).toContain("missing");
    await nothingArrives();
  });

  test("when the proof of work was made for another target IP (someone else's address)", async () => {
    const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order({ targetIp: "127.0.0.2" })), mesh);
    expect(a.status).toBe(Status.REFUSED);
    expect(a.error).toContain("weak");
    await nothingArrives();
  });

  test("when the proof of work was made for another probe key", async () => {
    const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order({ hostKey: newHostKey(crypto.getRandomValues(new Uint8Array(32))) })), mesh);
    expect(a.status).toBe(Status.REFUSED);
    await nothingArrives();
  });

  test("when the proof of work was made for another port of the same IP", async () => {
    const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order({ targetPort: targetPort + 1, consent: consent.issue({ ip: "127.0.0.1", port: targetPort + 1 })! })), mesh);
    expect(a.status).toBe(Status.REFUSED);
    expect(a.error).toContain("weak");
    await nothingArrives();
  });

  test("when the target never asked this delegate: no consent token, another node's, or one for another port", async () => {
    const foreign = createConsentIssuer().issue({ ip: "127.0.0.1", port: targetPort })!;
    for (const [token, reason] of [
      [undefined, "missing"],
      [foreign, "not-for-this-target"],
      [consent.issue({ ip: "127.0.0.1", port: targetPort + 1 })!, "not-for-this-target"],
      [new Uint8Array(5), "malformed"],
    ] as const) {
      const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order({ consent: token })), mesh);
      expect(a.status).toBe(Status.REFUSED);
      expect(a.error).toContain(`consent ${reason}`);
    }
    await nothingArrives();
  });

  test("when the target is in a special-purpose range on a public node (no lab switch)", async () => {
    const a = await delegate({ allowSpecialTargets: false }).handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order()), mesh);
    expect(a.status).toBe(Status.REFUSED);
    expect(a.error).toContain("special-purpose");
    await nothingArrives();
  });

  test("when the target is not a unicast address", async () => {
    expect(isProbeTarget("224.0.0.1")).toBe(false);
    expect(isProbeTarget("255.255.255.255")).toBe(false);
    expect(isProbeTarget("0.0.0.0")).toBe(false);
    expect(isProbeTarget("ff02::1")).toBe(false);
    const a = await delegate().handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order({ targetIp: "255.255.255.255" })), mesh);
    expect(a.status).toBe(Status.BAD_REQUEST);
    await nothingArrives();
  });
});

describe("a delegate with a valid order", () => {
  test("sends 3 NewHost probes the client verifies with its own key, and reports its source IP", async () => {
    received.length = 0;
    const d = delegate();
    const a = await d.handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order()), mesh);
    expect(a.status).toBe(Status.OK);
    expect(decodeMessage(NewHostReportSchema, a.payload!, "NewHostReport")).toMatchObject({ fromIp: "127.0.0.1", sent: 3 });
    await until(() => received.length >= 3, { what: "3 NewHost probes" });
    expect(received).toHaveLength(3);
    for (const r of received) expect(verifyProbe(r.buf, clientKey)).toEqual({ ok: true, source: "newHost" });
    expect(d.counters).toMatchObject({ accepted: 1, probesSent: 3 });
  });

  test("refuses the same order again (replay) and the same target within the de-duplication window", async () => {
    received.length = 0;
    const d = delegate();
    const o = order();
    expect((await d.handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, o), mesh)).status).toBe(Status.OK);
    const replay = await d.handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, o), mesh);
    expect(replay.status).toBe(Status.REFUSED);
    expect(replay.error).toContain("already used");
    const again = await d.handle(sealNewHostOrder(sourceKey.privateKey, delegateKey.publicKey, order()), mesh);
    expect(again.status).toBe(Status.REFUSED);
    expect(again.error).toContain("moments ago");
    await until(() => received.length >= 3, { what: "the first order's 3 probes" });
    await nothingArrives(3);
  });
});

describe("the client's proof of work", () => {
  test("verifies for its own target ip:port and key only, and not when stale", () => {
    const now = Number(proof.issuedAtMs);
    const at = { ip: "127.0.0.1", port: targetPort };
    expect(checkNewHostProof(proof, at, hostKey, now)).toEqual({ ok: true });
    expect(checkNewHostProof(proof, { ...at, ip: "127.0.0.9" }, hostKey, now).ok).toBe(false);
    expect(checkNewHostProof(proof, { ...at, port: targetPort + 1 }, hostKey, now).ok).toBe(false);
    expect(checkNewHostProof(proof, at, clientKey, now).ok).toBe(false);
    expect(checkNewHostProof(proof, at, hostKey, now + 120_000)).toEqual({ ok: false, reason: "stale" });
    expect(checkNewHostProof(undefined, at, hostKey, now)).toEqual({ ok: false, reason: "missing" });
  });

  test("costs about 2^16 hashes", async () => {
    let total = 0;
    for (let i = 0; i < 8; i++) total += (await makeNewHostProof({ ip: "203.0.113.7", port: 40000 }, hostKey)).hashes;
    // Mean of 8 geometric draws with p = 2^-16: well inside [2^12, 2^19] unless something is broken.
    expect(total / 8).toBeGreaterThan(2 ** 12);
    expect(total / 8).toBeLessThan(2 ** 19);
  });
});
