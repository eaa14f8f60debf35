// Sealing and opening the mesh bootstrap messages (seed 001 §组网节点之间 steps 2–5, DESIGN §3):
// MeshHello = the client's key in clear + Seal(MeshHelloBody{cert, port, host, nonce}); MeshAccept =
// the server's key in clear + Seal(nonce). Pure; every failure is an AnswerError with the status
// to answer and the link closed after it.
import { isIP } from "node:net";
import { SEAL_PURPOSE, X25519_KEY_BYTES } from "../constants.ts";
import { spkiOfPem } from "../identity/index.ts";
import type { NodeKey } from "../identity/index.ts";
import { open, seal } from "../identity/index.ts";
import { decodeMessage, encodeMessage, Status } from "../wire/index.ts";
import { MeshAcceptSchema, MeshHelloBodySchema, MeshHelloSchema, type NodeRecord } from "../wire/index.ts";
import { WS_CLOSE } from "../transport/index.ts";
import { MAX_CERT_PEM_CHARS, MAX_MESH_NONCE_BYTES, MESH_ACCEPT_SEAL_PURPOSE, MIN_MESH_NONCE_BYTES } from "./link-constants.ts";
import { AnswerError } from "../rpc/index.ts";

const CLOSE_AFTER = { code: WS_CLOSE.policyViolation, reason: "bootstrap refused" };

export interface MeshHelloInput {
  /** The server's X25519 public key (from its record or --peer), never from the live link. */
  to: Uint8Array;
  certPem: string;
  tcpPort: number;
  /** Our listening IP, or "" to let the server use the link's source IP. */
  host: string;
  nonce: Uint8Array;
  record?: NodeRecord;
}

export interface OpenedHello {
  readonly peerKey: Uint8Array;
  readonly certPem: string;
  /** SPKI of certPem: what the dial-back pins. */
  readonly spki: string;
  readonly tcpPort: number;
  readonly host: string;
  readonly nonce: Uint8Array;
  readonly record?: NodeRecord;
}

/** Step 2–3 (client): the payload of `mesh.hello`. */
export function sealMeshHello(myKey: NodeKey, body: MeshHelloInput): Uint8Array {
  const plain = encodeMessage(MeshHelloBodySchema, {
    certPem: body.certPem,
    tcpPort: body.tcpPort,
    host: body.host,
    nonce: body.nonce,
    record: body.record,
  });
  return encodeMessage(MeshHelloSchema, {
    publicKey: myKey.publicKey,
    sealed: seal(myKey.privateKey, body.to, SEAL_PURPOSE.meshBootstrap, plain),
  });
}

/** Step 4 (server): opens and checks a `mesh.hello` payload. */
export function openMeshHello(myKey: NodeKey, payload: Uint8Array): OpenedHello {
  const hello = decode(() => decodeMessage(MeshHelloSchema, payload, "mesh hello"));
  if (hello.publicKey.length !== X25519_KEY_BYTES) throw bad(`public key must be ${X25519_KEY_BYTES} bytes, got ${hello.publicKey.length}`);
  if (sameBytes(hello.publicKey, myKey.publicKey)) throw new AnswerError(Status.REFUSED, "mesh hello carries this node's own key", CLOSE_AFTER);
  let plain: Uint8Array;
  try {
    plain = open(myKey.privateKey, hello.publicKey, SEAL_PURPOSE.meshBootstrap, hello.sealed);
  } catch {
    throw new AnswerError(Status.UNAUTHENTICATED, "cannot open the mesh hello: it was not sealed to this node's key", CLOSE_AFTER);
  }
  const body = decode(() => decodeMessage(MeshHelloBodySchema, plain, "mesh hello body"));
  if (body.certPem.length === 0 || body.certPem.length > MAX_CERT_PEM_CHARS) throw bad(`certificate PEM must be 1..${MAX_CERT_PEM_CHARS} characters`);
  let spki: string;
  try {
    spki = spkiOfPem(body.certPem);
  } catch {
    throw bad("certificate does not parse");
  }
  if (body.tcpPort < 1 || body.tcpPort > 65535) throw bad(`tcp_port ${body.tcpPort} is not a port`);
  if (body.host !== "" && isIP(body.host) === 0) throw bad("host must be an IP address or empty");
  if (body.nonce.length < MIN_MESH_NONCE_BYTES || body.nonce.length > MAX_MESH_NONCE_BYTES) {
    throw bad(`nonce must be ${MIN_MESH_NONCE_BYTES}..${MAX_MESH_NONCE_BYTES} bytes`);
  }
  return { peerKey: hello.publicKey, certPem: body.certPem, spki, tcpPort: body.tcpPort, host: body.host, nonce: body.nonce, record: body.record };
}

/** Step 5 (server): the payload of `mesh.accept` on the dial-back link. */
export function sealMeshAccept(myKey: NodeKey, accept: { to: Uint8Array; nonce: Uint8Array }): Uint8Array {
  return encodeMessage(MeshAcceptSchema, {
    publicKey: myKey.publicKey,
    sealedNonce: seal(myKey.privateKey, accept.to, MESH_ACCEPT_SEAL_PURPOSE, accept.nonce),
  });
}

/** Step 6 (client): opens a `mesh.accept`; the caller matches the nonce and key to a bootstrap it
 *  started. */
export function openMeshAccept(myKey: NodeKey, payload: Uint8Array): { peerKey: Uint8Array; nonce: Uint8Array } {
  const accept = decode(() => decodeMessage(MeshAcceptSchema, payload, "mesh accept"));
  if (accept.publicKey.length !== X25519_KEY_BYTES) throw bad(`public key must be ${X25519_KEY_BYTES} bytes, got ${accept.publicKey.length}`);
  try {
    return { peerKey: accept.publicKey, nonce: open(myKey.privateKey, accept.publicKey, MESH_ACCEPT_SEAL_PURPOSE, accept.sealedNonce) };
  } catch {
    throw new AnswerError(Status.UNAUTHENTICATED, "cannot open the mesh accept: it was not sealed by the key it names", CLOSE_AFTER);
  }
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function bad(message: string): AnswerError {
  return new AnswerError(Status.BAD_REQUEST, `bad mesh bootstrap message: ${message}`, CLOSE_AFTER);
}

function decode<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw bad(err instanceof Error ? err.message : String(err));
  }
}
