// The mesh bootstrap with role swap (seed 001 §组网节点之间 steps 0–6, DESIGN §3), both sides:
//
// 0. Client A runs its own TLS listener. It knows B's address and X25519 key (records or --peer).
// 1. A dials wss://B/mesh without checking B's certificate: link L1, untrusted.
// 2–3. A sends `mesh.hello` on L1: MeshHello{A.pub, Seal(A→B, meshBootstrap, MeshHelloBody{A's cert,
//    A's TCP port, host, nonce})}.
// 4. B opens it (failure → UNAUTHENTICATED, L1 closed).
// 5. B swaps roles: dials wss://A_ip:A_port/mesh pinned to the SPKI of A's certificate (link L2,
//    B shows its own certificate as TLS client certificate), and sends `mesh.accept` on L2:
//    MeshAccept{B.pub, Seal(B→A, mesh-accept, nonce)}.
// 6. A opens the accept with the key B is known by and matches the nonce of a bootstrap it started:
//    L2 is the mesh link (B pinned A's certificate; A proved B's key). A answers OK; B then answers
//    the hello on L1 with OK — or with the reason its dial-back failed (A not reachable: the point of
//    the role swap) — and L1 is closed.
import { METHOD } from "../rpc/index.ts";
import { bytesToHex, randomBytes } from "@noble/hashes/utils.js";
import { errorLine, PeerError, TimeoutError } from "../errors.ts";
import type { RunCertificate } from "../identity/index.ts";
import type { NodeKey } from "../identity/index.ts";
import { formatAddress, type HostPort } from "../contracts/index.ts";
import { PinMismatchError } from "../transport/index.ts";
import { WS_CLOSE } from "../transport/index.ts";
import { Status, statusName, type Envelope } from "../wire/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import { MESH_NONCE_BYTES, MESH_PATH } from "./link-constants.ts";
import { AnswerError } from "../rpc/index.ts";
import type { RpcReply } from "../rpc/index.ts";
import type { LinkTrust, MeshLink, MeshLinkControl } from "./link.ts";
import { openMeshAccept, openMeshHello, sameBytes, sealMeshAccept, sealMeshHello } from "./mesh-bootstrap-messages.ts";
import type { Logger } from "../contracts/index.ts";

const REFUSE_CLOSE = { code: WS_CLOSE.policyViolation, reason: "bootstrap refused" };
const DONE_CLOSE = { code: WS_CLOSE.normal, reason: "bootstrap done" };
/** The one answer to a hello whose dial-back failed, whatever the reason. */
export const DIAL_BACK_FAILED = "cannot dial back the hello's source address at its tcp_port (mesh nodes must be reachable from the internet)";

/** A bootstrap A started and whose dial-back it waits for, keyed by hex nonce. */
export interface PendingAccept {
  readonly peerKey: Uint8Array;
  /** The address A dialled: B's service address, recorded on the link. */
  readonly remote: HostPort;
  resolve(link: MeshLinkControl): void;
}

export interface DialLinkOptions {
  pinSpki: string | null;
  trust: LinkTrust;
  direction: "in" | "out";
  peerKey?: Uint8Array;
  /** A dial-back: the record the dialler sent in its hello, handed to the mesh core with the link. */
  helloRecord?: NodeRecord;
  signal?: AbortSignal;
  timeoutMs: number;
}

/** What the bootstrap needs from the mesh link service. */
export interface BootstrapContext {
  readonly nodeKey: NodeKey;
  readonly cert: RunCertificate;
  readonly log: Logger;
  /** Our TLS port, sent in the hello. */
  tcpPort(): number;
  /** Our listening IP for the hello, "" to let the server use our source IP. */
  readonly advertiseHost: string;
  readonly record?: () => NodeRecord | undefined;
  readonly dialBackTimeoutMs: number;
  readonly maxConcurrentDialBacks: number;
  dialLink(addr: HostPort, opts: DialLinkOptions): Promise<MeshLinkControl>;
  /** Registers a bootstrapped link and tells onMeshLink listeners. */
  established(link: MeshLinkControl): void;
  readonly pending: Map<string, PendingAccept>;
  /** Dial-backs running now (mutable counter). */
  readonly dialBacks: { active: number };
  /** Links that already sent a hello: one per link, so one link cannot start many dial-backs. */
  readonly helloSeen: WeakSet<MeshLink>;
}

/** The server refused the bootstrap; `status` is its answer (UNAUTHENTICATED, REFUSED, FULL …). */
export class BootstrapRefusedError extends PeerError {
  readonly status: Status;
  constructor(addr: HostPort, answer: Envelope) {
    super(`Mesh bootstrap with ${formatAddress(addr)} refused: ${statusName(answer.status)}${answer.error ? `: ${answer.error}` : ""}`);
    this.name = "BootstrapRefusedError";
    this.status = answer.status;
  }
}

/** Steps 1–3 and 6 from A's side: resolves with the established link L2. */
export async function runMeshDial(
  ctx: BootstrapContext,
  addr: HostPort,
  opts: { peerKey: Uint8Array; signal?: AbortSignal; timeoutMs: number },
): Promise<MeshLinkControl> {
  const { peerKey } = opts;
  const url = `wss://${formatAddress(addr)}${MESH_PATH}`;
  if (peerKey.length !== 32) throw new PeerError(`Cannot bootstrap with ${url}: its public key must be 32 bytes, got ${peerKey.length}`);
  if (sameBytes(peerKey, ctx.nodeKey.publicKey)) throw new PeerError(`Cannot bootstrap with ${url}: that is this node's own key`);

  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new TimeoutError(`mesh bootstrap with ${url}`, opts.timeoutMs)), opts.timeoutMs);
  const onOuterAbort = () => ac.abort(opts.signal!.reason);
  if (opts.signal?.aborted) onOuterAbort();
  else opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const signal = ac.signal;

  const nonce = randomBytes(MESH_NONCE_BYTES);
  const key = bytesToHex(nonce);
  let first: MeshLinkControl | null = null;
  const accepted = new Promise<MeshLinkControl>((resolve, reject) => {
    ctx.pending.set(key, { peerKey, remote: addr, resolve });
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  accepted.catch(() => {});
  try {
    // Steps 1–3.
    first = await ctx.dialLink(addr, { pinSpki: null, trust: "untrusted", direction: "out", signal, timeoutMs: opts.timeoutMs });
    const hello = sealMeshHello(ctx.nodeKey, {
      to: peerKey,
      certPem: ctx.cert.certPem,
      tcpPort: ctx.tcpPort(),
      host: ctx.advertiseHost,
      nonce,
      record: ctx.record?.(),
    });
    const answered = first.request(METHOD.mesh.hello, hello, { signal, timeoutMs: opts.timeoutMs }).then((answer) => {
      if (answer.status !== Status.OK) throw new BootstrapRefusedError(addr, answer);
      return answer;
    });
    answered.catch(() => {});
    // Step 6 happens on another link (B's dial-back). B answers the hello only after our answer to
    // its accept, so an OK hello answer always comes after `accepted`; an error answer or a dead L1
    // ends the wait early.
    return await Promise.race([accepted, answered.then(() => accepted)]);
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onOuterAbort);
    ctx.pending.delete(key);
    first?.close(DONE_CLOSE.code, DONE_CLOSE.reason);
  }
}

/** Step 6 on A: the handler of `mesh.accept`, taken as the first request of a fresh inbound link. */
export function meshAcceptHandler(ctx: BootstrapContext): (payload: Uint8Array, link: MeshLinkControl) => RpcReply {
  return (payload, link) => answerMeshAccept(ctx, payload, link);
}

/** Steps 4–5 on B: the handler of `mesh.hello`, taken on an inbound first-contact link. */
export function meshHelloHandler(ctx: BootstrapContext): (payload: Uint8Array, link: MeshLink) => Promise<RpcReply> {
  return (payload, link) => answerMeshHello(ctx, payload, link);
}

function answerMeshAccept(ctx: BootstrapContext, payload: Uint8Array, link: MeshLinkControl): RpcReply {
  if (link.direction !== "in" || link.trust !== "untrusted") {
    throw new AnswerError(Status.REFUSED, `${METHOD.mesh.accept} is taken only as the first request of an inbound link`, REFUSE_CLOSE);
  }
  const { peerKey, nonce } = openMeshAccept(ctx.nodeKey, payload);
  const waiting = ctx.pending.get(bytesToHex(nonce));
  if (!waiting || !sameBytes(waiting.peerKey, peerKey)) {
    ctx.log.warn("mesh accept for no bootstrap of ours", { from: formatAddress(link.socketRemote) });
    throw new AnswerError(Status.UNAUTHENTICATED, "no mesh bootstrap waits for this accept", REFUSE_CLOSE);
  }
  ctx.pending.delete(bytesToHex(nonce));
  link.promote({ trust: "mesh", peerKey, remote: waiting.remote, direction: "out" });
  ctx.established(link);
  waiting.resolve(link);
  return { status: Status.OK };
}

async function answerMeshHello(ctx: BootstrapContext, payload: Uint8Array, link: MeshLink): Promise<RpcReply> {
  if (link.direction !== "in" || link.trust !== "untrusted") {
    throw new AnswerError(Status.REFUSED, `${METHOD.mesh.hello} is taken only on an inbound first-contact link`, REFUSE_CLOSE);
  }
  if (ctx.helloSeen.has(link)) throw new AnswerError(Status.REFUSED, `one ${METHOD.mesh.hello} per link`, REFUSE_CLOSE);
  ctx.helloSeen.add(link);
  const hello = openMeshHello(ctx.nodeKey, payload);
  if (ctx.dialBacks.active >= ctx.maxConcurrentDialBacks) {
    throw new AnswerError(Status.FULL, "too many mesh bootstraps in progress; try again later", REFUSE_CLOSE);
  }
  // The client's listener is at the address its hello came from: the hello's `host` is not trusted, so a
  // stranger cannot make us dial a third party. Every failure of the dial-back gets the same answer, so
  // the asker cannot tell a closed port from a non-TLS one or a TLS one with another certificate.
  const target: HostPort = { ip: link.socketRemote.ip, port: hello.tcpPort };
  const url = `wss://${formatAddress(target)}${MESH_PATH}`;
  if (!Number.isInteger(hello.tcpPort) || hello.tcpPort < 1 || hello.tcpPort > 65535) {
    throw new AnswerError(Status.BAD_REQUEST, "tcp_port must be 1..65535", REFUSE_CLOSE);
  }
  ctx.dialBacks.active += 1;
  try {
    let back: MeshLinkControl;
    try {
      back = await ctx.dialLink(target, {
        pinSpki: hello.spki,
        trust: "mesh",
        direction: "in",
        peerKey: hello.peerKey,
        helloRecord: hello.record,
        timeoutMs: ctx.dialBackTimeoutMs,
      });
    } catch (err) {
      ctx.log.info("mesh dial-back failed", { url, pinMismatch: err instanceof PinMismatchError, error: errorLine(err) });
      throw new AnswerError(Status.REFUSED, DIAL_BACK_FAILED, REFUSE_CLOSE);
    }
    let answer: Envelope;
    try {
      answer = await back.request(METHOD.mesh.accept, sealMeshAccept(ctx.nodeKey, { to: hello.peerKey, nonce: hello.nonce }), {
        timeoutMs: ctx.dialBackTimeoutMs,
      });
    } catch (err) {
      back.close(WS_CLOSE.policyViolation, "accept failed");
      ctx.log.info("mesh dial-back link failed", { url, error: errorLine(err) });
      throw new AnswerError(Status.REFUSED, DIAL_BACK_FAILED, REFUSE_CLOSE);
    }
    if (answer.status !== Status.OK) {
      back.close(WS_CLOSE.policyViolation, "accept refused");
      ctx.log.info("mesh dial-back accept refused", { url, status: statusName(answer.status), error: answer.error.slice(0, 200) });
      throw new AnswerError(Status.REFUSED, DIAL_BACK_FAILED, REFUSE_CLOSE);
    }
    ctx.established(back);
    return { status: Status.OK, thenClose: DONE_CLOSE };
  } finally {
    ctx.dialBacks.active -= 1;
  }
}
