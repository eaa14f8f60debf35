// Envelopes over a live WSS link (src/mesh/link.ts; DESIGN §4): request/answer matching by id in
// both directions, handler errors as statuses, timeouts, aborts, limits and bad envelopes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PeerError, TimeoutError } from "../../src/errors.ts";
import { createRunCertificate, type RunCertificate } from "../../src/identity/certificate.ts";
import { createTlsEndpoint, type TlsEndpoint } from "../../src/transport/tls/endpoint.ts";
import { dialWss } from "../../src/transport/ws/client.ts";
import { WS_CLOSE } from "../../src/transport/ws/constants.ts";
import type { WsCloseInfo } from "../../src/transport/ws/connection.ts";
import { Status } from "../../src/wire/codec.ts";
import { createMeshLink, okPayload, type MeshLink, type MeshLinkControl } from "../../src/mesh/link.ts";
import { AnswerError } from "../../src/rpc/errors.ts";
import { MESH_ONLY } from "../../src/rpc/policy.ts";
import { createRouter } from "../../src/rpc/router.ts";
import { open } from "../rpc/open-policy.ts";
import { until } from "../wait.ts";

let cert: RunCertificate;
let ep: TlsEndpoint;
/** Server-side links, newest last. */
const serverLinks: MeshLinkControl[] = [];
const serverRouter = createRouter();
serverRouter.addAll([
  ["echo", open((payload) => payload)],
  [
    "slow",
    open(async (payload) => {
      await Bun.sleep(payload[0]!); // a handler that takes as long as asked
      return payload;
    }),
  ],
  [
    "status",
    open((payload) => {
      throw new AnswerError(payload[0]! as Status, "as asked");
    }),
  ],
  [
    "boom",
    open(() => {
      throw new Error("secret internals");
    }),
  ],
  ["bye", open(() => ({ status: Status.OK, thenClose: { code: 4000, reason: "asked to go" } }))],
  ["guarded", open(() => undefined, { trust: MESH_ONLY })],
]);
const clientRouter = createRouter();
clientRouter.add("echo", open((payload) => payload));
let serverMaxInflight = 32;
const clientLinks: MeshLink[] = [];

const bytes = (...b: number[]) => new Uint8Array(b);

beforeAll(async () => {
  cert = await createRunCertificate();
  ep = createTlsEndpoint({ cert }, { host: "127.0.0.1", port: 0 });
  ep.onWebSocket("/mesh", (conn) => {
    const link = createMeshLink(conn, { direction: "in", trust: "untrusted", router: serverRouter, maxInflight: serverMaxInflight });
    serverLinks.push(link);
  });
  await ep.start();
});

afterAll(async () => {
  for (const l of clientLinks) l.close();
  await ep.stop();
});

async function connect(init: { requestTimeoutMs?: number } = {}): Promise<MeshLink> {
  const { conn, peerSpki } = await dialWss({ ip: "127.0.0.1", port: ep.port }, { pinSpki: cert.spki, clientCert: cert });
  const link = createMeshLink(conn, { direction: "out", trust: "pinned", peerSpki, router: clientRouter, ...init });
  clientLinks.push(link);
  // The server side exists once its handler ran; a request round trip makes sure of it.
  await link.request("echo");
  return link;
}

describe("mesh link requests", () => {
  test("requests and answers flow both ways over one socket", async () => {
    const link = await connect();
    const answer = await link.request("echo", bytes(1, 2, 3));
    expect(answer.status).toBe(Status.OK);
    expect(answer.payload).toEqual(bytes(1, 2, 3));
    const server = serverLinks.at(-1)!;
    expect((await server.request("echo", bytes(9))).payload).toEqual(bytes(9));
    expect(link.peerSpki).toBe(cert.spki);
    expect(link.remote).toEqual({ ip: "127.0.0.1", port: ep.port });
  });

  test("answers are matched to requests by id when they come back out of order", async () => {
    const link = await connect();
    const started = [80, 5, 40].map((ms) => link.request("slow", bytes(ms)));
    const answers = await Promise.all(started);
    expect(answers.map((a) => a.payload[0])).toEqual([80, 5, 40]);
    expect(new Set(answers.map((a) => a.id)).size).toBe(3);
  });

  test("an unknown method is answered BAD_REQUEST; a refused one REFUSED", async () => {
    const link = await connect();
    const unknown = await link.request("no.such.method");
    expect(unknown.status).toBe(Status.BAD_REQUEST);
    expect(unknown.error).toContain("unknown method");
    expect((await link.request("guarded")).status).toBe(Status.REFUSED);
    const refused = await link.request("guarded");
    expect(() => okPayload(link, refused)).toThrow("guarded to 127.0.0.1");
    expect(okPayload(link, await link.request("echo", bytes(1)))).toEqual(bytes(1));
  });

  test("handler errors become statuses without leaking internals", async () => {
    const link = await connect();
    expect((await link.request("status", bytes(Status.NOT_FOUND))).status).toBe(Status.NOT_FOUND);
    const boom = await link.request("boom");
    expect(boom.status).toBe(Status.INTERNAL);
    expect(boom.error).toBe("boom failed");
    expect(link.isOpen).toBe(true);
  });

  test("an answer can close the link after it is written", async () => {
    const link = await connect();
    const closed = new Promise<WsCloseInfo>((r) => link.onClose(r));
    expect((await link.request("bye")).status).toBe(Status.OK);
    expect((await closed).code).toBe(4000);
  });

  test("a request times out with TimeoutError, and an abort rejects with the signal's reason", async () => {
    const link = await connect();
    await expect(link.request("slow", bytes(200), { timeoutMs: 30 })).rejects.toBeInstanceOf(TimeoutError);
    const ac = new AbortController();
    const p = link.request("slow", bytes(200), { signal: ac.signal });
    ac.abort(new Error("caller gave up"));
    await expect(p).rejects.toThrow("caller gave up");
    // The late answers are ignored and the link still works.
    await Bun.sleep(220); // the late answers (200 ms) arrive in this time; the link must ignore them
    expect((await link.request("echo", bytes(7))).payload).toEqual(bytes(7));
  });

  test("closing the link fails the requests waiting on it", async () => {
    const link = await connect();
    const p = link.request("slow", bytes(200));
    link.close(WS_CLOSE.normal, "done");
    await expect(p).rejects.toBeInstanceOf(PeerError);
    await expect(link.request("echo")).rejects.toBeInstanceOf(PeerError);
  });

  test("requests over the in-flight limit are answered RATE_LIMITED", async () => {
    serverMaxInflight = 2;
    const link = await connect();
    const answers = await Promise.all([100, 100, 100].map((ms) => link.request("slow", bytes(ms))));
    serverMaxInflight = 32;
    expect(answers.map((a) => a.status).sort()).toEqual([Status.OK, Status.OK, Status.RATE_LIMITED].sort());
  });

  test("a frame that is not an Envelope closes the link with 1007", async () => {
    const { conn } = await dialWss({ ip: "127.0.0.1", port: ep.port }, { pinSpki: cert.spki });
    const closed = new Promise<WsCloseInfo>((resolve) => conn.start({ onMessage() {}, onClose: resolve }));
    conn.send(crypto.getRandomValues(new Uint8Array(64)).map((b, i) => (i === 0 ? 0xff : b)));
    const info = await closed;
    expect(info.code).toBe(WS_CLOSE.invalidPayload);
  });

  test("ping round trips give an RTT", async () => {
    const link = await connect();
    await until(() => link.rttMs !== null, { what: "a ping round trip", timeoutMs: 2000 });
    expect(link.rttMs!).toBeLessThan(1000);
    expect(link.openedAt).toBeLessThanOrEqual(Date.now());
  });
});
