// Sealing and opening MeshHello / MeshAccept (src/mesh/mesh-bootstrap-messages.ts; seed 001
// §组网节点之间 steps 2–5): round trips, wrong keys, bad fields and random bytes.
import { beforeAll, describe, expect, test } from "bun:test";
import { SEAL_PURPOSE } from "../../src/constants.ts";
import { createRunCertificate, type RunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { seal } from "../../src/identity/seal.ts";
import { encodeMessage, Status } from "../../src/wire/codec.ts";
import { MeshHelloBodySchema, MeshHelloSchema } from "../../src/wire/gen/findings_pb.ts";
import { AnswerError } from "../../src/rpc/errors.ts";
import { openMeshAccept, openMeshHello, sealMeshAccept, sealMeshHello } from "../../src/mesh/mesh-bootstrap-messages.ts";

const client = generateNodeKey();
const server = generateNodeKey();
const nonce = new Uint8Array(16).fill(5);
let cert: RunCertificate;

beforeAll(async () => {
  cert = await createRunCertificate();
});

function statusOf(fn: () => unknown): Status {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AnswerError);
    return (err as AnswerError).status;
  }
  throw new Error("expected an AnswerError");
}

/** A hello with a hand-made body, sealed correctly, to test the body checks. */
function helloWith(body: { certPem?: string; tcpPort?: number; host?: string; nonce?: Uint8Array }): Uint8Array {
  const plain = encodeMessage(MeshHelloBodySchema, { certPem: cert.certPem, tcpPort: 7788, host: "", nonce, ...body });
  return encodeMessage(MeshHelloSchema, { publicKey: client.publicKey, sealed: seal(client.privateKey, server.publicKey, SEAL_PURPOSE.meshBootstrap, plain) });
}

describe("mesh hello", () => {
  test("the server opens what the client sealed, and pins the certificate's SPKI", () => {
    const payload = sealMeshHello(client, { to: server.publicKey, certPem: cert.certPem, tcpPort: 7788, host: "203.0.113.5", nonce });
    const hello = openMeshHello(server, payload);
    expect(hello.peerKey).toEqual(client.publicKey);
    expect(hello).toMatchObject({ certPem: cert.certPem, spki: cert.spki, tcpPort: 7788, host: "203.0.113.5" });
    expect(hello.nonce).toEqual(nonce);
  });

  test("a hello sealed to another key is UNAUTHENTICATED", () => {
    const payload = sealMeshHello(client, { to: generateNodeKey().publicKey, certPem: cert.certPem, tcpPort: 7788, host: "", nonce });
    expect(statusOf(() => openMeshHello(server, payload))).toBe(Status.UNAUTHENTICATED);
  });

  test("a hello carrying the server's own key is REFUSED", () => {
    const payload = sealMeshHello(server, { to: server.publicKey, certPem: cert.certPem, tcpPort: 7788, host: "", nonce });
    expect(statusOf(() => openMeshHello(server, payload))).toBe(Status.REFUSED);
  });

  test("bad body fields are BAD_REQUEST", () => {
    expect(statusOf(() => openMeshHello(server, helloWith({ tcpPort: 0 })))).toBe(Status.BAD_REQUEST);
    expect(statusOf(() => openMeshHello(server, helloWith({ tcpPort: 70000 })))).toBe(Status.BAD_REQUEST);
    expect(statusOf(() => openMeshHello(server, helloWith({ host: "example.com" })))).toBe(Status.BAD_REQUEST);
    expect(statusOf(() => openMeshHello(server, helloWith({ nonce: new Uint8Array(15) })))).toBe(Status.BAD_REQUEST);
    expect(statusOf(() => openMeshHello(server, helloWith({ nonce: new Uint8Array(65) })))).toBe(Status.BAD_REQUEST);
    expect(statusOf(() => openMeshHello(server, helloWith({ certPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" })))).toBe(Status.BAD_REQUEST);
    expect(statusOf(() => openMeshHello(server, helloWith({ certPem: "x".repeat(5000) })))).toBe(Status.BAD_REQUEST);
  });

  test("random bytes give an AnswerError, never another throw", () => {
    for (let i = 0; i < 500; i++) {
      const bytes = crypto.getRandomValues(new Uint8Array(i % 300));
      try {
        openMeshHello(server, bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(AnswerError);
      }
      try {
        openMeshAccept(client, bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(AnswerError);
      }
    }
  });
});

describe("mesh accept", () => {
  test("the client opens the nonce the server sealed, learning the server's key", () => {
    const opened = openMeshAccept(client, sealMeshAccept(server, { to: client.publicKey, nonce }));
    expect(opened.peerKey).toEqual(server.publicKey);
    expect(opened.nonce).toEqual(nonce);
  });

  test("an accept sealed with a purpose or key other than the accept's is UNAUTHENTICATED", () => {
    // A hello-purpose box with the same keys must not pass as an accept.
    const forged = encodeMessage(MeshHelloSchema, { publicKey: server.publicKey, sealed: seal(server.privateKey, client.publicKey, SEAL_PURPOSE.meshBootstrap, nonce) });
    expect(statusOf(() => openMeshAccept(client, forged))).toBe(Status.UNAUTHENTICATED);
    expect(statusOf(() => openMeshAccept(generateNodeKey(), sealMeshAccept(server, { to: client.publicKey, nonce })))).toBe(Status.UNAUTHENTICATED);
  });
});
