// App side of the app bootstrap over QUIC (seed 001 §从应用端的连接 steps 1–7, DESIGN §3): first contact,
// Seal(session id) to the node key, open Seal(cert + session id), pin the SPKI, reconnect, bind.
// The node side and the protocol table are in app-bootstrap-handlers.ts.
import { METHOD } from "../../rpc/index.ts";
import { bytesToHex, randomBytes } from "@noble/hashes/utils.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { timingSafeEqual } from "node:crypto";
import { SEAL_PURPOSE, X25519_KEY_BYTES } from "../../constants.ts";
import { FindingsError, PeerError, SealError, errorLine } from "../../errors.ts";
import { spkiOfPem } from "../../identity/index.ts";
import { open, seal } from "../../identity/index.ts";
import { decodeMessage, encodeMessage, Status } from "../../wire/index.ts";
import { AppCertSchema, AppHelloAnswerSchema, AppHelloSchema, AppSessionSchema } from "../../wire/index.ts";
import { formatAddress } from "../../contracts/index.ts";
import { APP_SESSION_ID_BYTES, MAX_HELLO_KIND_CHARS } from "./sessions.ts";
import { expectOk, type QuicLink } from "../quic/link.ts";
import type { Envelope } from "../../wire/index.ts";

export interface AppKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** What the bootstrap needs of a link: QUIC links (udp-endpoint) and WSS links (mesh/app-wss) both fit. */
export interface BootstrapLink {
  request(method: string, payload?: Uint8Array, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Envelope>;
  close(): Promise<void> | void;
}

/** Dials first-contact links (no pin) and pinned ones (`pinSpki`). */
export interface BootstrapDialer<L extends BootstrapLink> {
  dial(addr: { ip: string; port: number }, opts?: { pinSpki?: string; peerKey?: Uint8Array; signal?: AbortSignal; timeoutMs?: number }): Promise<L>;
}

export interface BootstrapTarget {
  addr: { ip: string; port: number };
  /** The node's X25519 key, from its record or the "#hex" part of an address (never from the live link). */
  nodePublicKey: Uint8Array;
}

export interface BootstrapOptions {
  /** The app's X25519 key pair (a NodeKey works). */
  appKey: AppKey;
  /** The app kind we mean to use: the node names its stake address for it. @default "" (the general one) */
  kind?: string;
  signal?: AbortSignal;
  /** Per step: handshake and each request. @default QUIC_HANDSHAKE_TIMEOUT_MS / REQUEST_TIMEOUT_MS */
  timeoutMs?: number;
}

/** What the node said about itself in the sealed bootstrap answer (only the owner of its key could). */
export interface NodeGreeting {
  /** The node id (hex SHA-256 of the key we bootstrapped with). */
  nodeId: string;
  /** The kind we named ("" = none). */
  kind: string;
  /** The node's reward address for that kind, else its general one; "" = none. */
  stakeAddress: string;
  /** "kind" | "default" | "none" ("" from a node that predates the field). */
  stakeSource: string;
  identityId: string;
}

/**
 * Runs the bootstrap and returns the pinned, bound link plus the node's SPKI (keep it: later reconnects can
 * dial with `pinSpki` directly while the node runs with this certificate).
 * Throws PeerError when the node cannot prove it owns `nodePublicKey`, and when the reconnect meets another
 * certificate (the dial logs "refused QUIC peer").
 */
export async function bootstrapApp<L extends BootstrapLink = QuicLink>(dialer: BootstrapDialer<L>, target: BootstrapTarget, opts: BootstrapOptions): Promise<{ link: L; spki: string; node: NodeGreeting }> {
  const { addr, nodePublicKey } = target;
  const peer = formatAddress(addr.ip, addr.port);
  if (nodePublicKey.length !== X25519_KEY_BYTES) throw new PeerError(`Cannot bootstrap with ${peer}: node key must be ${X25519_KEY_BYTES} bytes`);
  const step = { signal: opts.signal, timeoutMs: opts.timeoutMs };
  const sessionId = randomBytes(APP_SESSION_ID_BYTES);
  // The kind only picks the stake address the node names: a kind too long to send is left out.
  const kind = opts.kind !== undefined && opts.kind.length <= MAX_HELLO_KIND_CHARS ? opts.kind : "";
  const session = encodeMessage(AppSessionSchema, { sessionId, kind });

  // 1. First contact: any certificate; the link is untrusted.
  const first = await dialer.dial(addr, step);
  let certPem: string;
  let node: NodeGreeting;
  try {
    // 2–3. Seal(session id) with ECDH(app, node), our key in clear.
    const hello = encodeMessage(AppHelloSchema, {
      publicKey: opts.appKey.publicKey,
      sealedSession: seal(opts.appKey.privateKey, nodePublicKey, SEAL_PURPOSE.appHello, session),
    });
    const answer = await first.request(METHOD.app.hello, hello, step);
    if (answer.status === Status.UNAUTHENTICATED) {
      throw new PeerError(`Cannot bootstrap with ${peer}: it could not open our hello (is ${bytesToHex(nodePublicKey).slice(0, 16)}… its key?)`);
    }
    const sealedCert = decodeMessage(AppHelloAnswerSchema, expectOk(answer), "AppHelloAnswer").sealedCert;
    // 6. Open Seal(cert + session id): only the owner of nodePublicKey could have made it.
    let body: Uint8Array;
    try {
      body = open(opts.appKey.privateKey, nodePublicKey, SEAL_PURPOSE.appCert, sealedCert);
    } catch (err) {
      if (err instanceof SealError) throw new PeerError(`Cannot bootstrap with ${peer}: its answer is not sealed by the node key`, { cause: err });
      throw err;
    }
    const appCert = decodeMessage(AppCertSchema, body, "AppCert");
    if (appCert.sessionId.length !== sessionId.length || !timingSafeEqual(appCert.sessionId, sessionId)) throw new PeerError(`Cannot bootstrap with ${peer}: the answer is for another session`);
    certPem = appCert.certPem;
    node = {
      nodeId: bytesToHex(sha256(nodePublicKey)),
      kind: appCert.kind,
      stakeAddress: appCert.stakeAddress,
      stakeSource: appCert.stakeSource,
      identityId: appCert.identityId,
    };
  } catch (err) {
    if (err instanceof FindingsError || opts.signal?.aborted) throw err;
    throw new PeerError(`Cannot bootstrap with ${peer}: ${errorLine(err)}`, { cause: err });
  } finally {
    // In the background: closing waits out QUIC's draining period (3 PTO, RFC 9000 §10.2), which the
    // reconnect need not wait for.
    void Promise.resolve()
      .then(() => first.close())
      .catch(() => {});
  }

  let spki: string;
  try {
    spki = spkiOfPem(certPem);
  } catch (err) {
    throw new PeerError(`Cannot bootstrap with ${peer}: the sealed certificate does not parse`, { cause: err });
  }

  // 7. Reconnect trusting exactly that certificate.
  const link = await dialer.dial(addr, { ...step, pinSpki: spki, peerKey: nodePublicKey });
  try {
    // Bind: tell the node this connection is the pinned one, proving our key again under another purpose.
    const bind = encodeMessage(AppHelloSchema, {
      publicKey: opts.appKey.publicKey,
      sealedSession: seal(opts.appKey.privateKey, nodePublicKey, SEAL_PURPOSE.appBind, session),
    });
    expectOk(await link.request(METHOD.app.bind, bind, step));
  } catch (err) {
    await link.close();
    if (err instanceof FindingsError || opts.signal?.aborted) throw err;
    throw new PeerError(`Cannot bind the pinned link to ${peer}: ${errorLine(err)}`, { cause: err });
  }
  return { link, spki, node };
}
