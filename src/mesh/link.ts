// A live mesh link: Envelopes over one WebSocket, one binary frame each (DESIGN §4), with request ids
// matching answers to requests, requests served by the router (src/rpc), and the link's trust level
// (DESIGN §3: untrusted first contact, pinned, or bootstrapped mesh link).
import { bytesToHex } from "@noble/hashes/utils.js";
import { LimitError, PeerError, TimeoutError } from "../errors.ts";
import { nodeIdOf } from "../identity/index.ts";
import { formatAddress, unmapIp, type HostPort } from "../contracts/index.ts";
import type { RpcContext, Trust } from "../rpc/index.ts";
import type { Router } from "../rpc/index.ts";
import { WS_CLOSE } from "../transport/index.ts";
import type { WsCloseInfo, WsConnection } from "../transport/index.ts";
import { decodeEnvelope, encodeAnswer, encodeEnvelope, Status, statusName, type Envelope, type NodeRecord } from "../wire/index.ts";
import { LINK_REQUEST_TIMEOUT_MS, MAX_INFLIGHT_REQUESTS_PER_LINK, MAX_PENDING_REQUESTS_PER_LINK, MAX_UNTRUSTED_LINK_REQUESTS } from "./link-constants.ts";
import { silentLogger, type Logger } from "../contracts/index.ts";
import { createCloseNotifier } from "./close-notifier.ts";

/** "untrusted": no pin (first contact, or an inbound link before bootstrap). "pinned": we dialled
 *  and the certificate matched a pin, but the peer has not authenticated us. "mesh": bootstrapped
 *  both ways (DESIGN §3), the peer's X25519 key is proven. */
export type LinkTrust = Trust;

const TRUST_RANK = { untrusted: 0, pinned: 1, mesh: 2 } as const;

export interface LinkRequestOptions {
  signal?: AbortSignal;
  /** @default LINK_REQUEST_TIMEOUT_MS */
  timeoutMs?: number;
}

export interface MeshLink {
  /** Local serial number, for logs. */
  readonly serial: number;
  /** The peer's service address when known (the address we dialled, or the one it bootstrapped
   *  from), otherwise the socket's remote end. IPv4-mapped IPv6 is shown as IPv4. */
  readonly remote: HostPort;
  /** The TCP peer of the socket (differs from `remote` for a dial-back, which comes from an
   *  ephemeral port). */
  readonly socketRemote: HostPort;
  /** Our end of the socket. */
  readonly local: HostPort;
  /** Who asked for the link: "out" when we did. After the role swap the TCP connection runs the
   *  other way (the server dials the client back), but the client's link is still "out". */
  readonly direction: "in" | "out";
  readonly trust: LinkTrust;
  /** The peer's X25519 key: proven on "mesh" links, null otherwise. */
  readonly peerKey: Uint8Array | null;
  readonly peerNodeId: string | null;
  /** The certificate SPKI the peer showed on this link (pinned, or seen), null if none. */
  readonly peerSpki: string | null;
  /** Date.now() when the link was set up. */
  readonly openedAt: number;
  /** An inbound mesh link: the record the dialler sent in its hello, as sent (not verified yet). */
  readonly helloRecord?: NodeRecord;
  /** Last measured WebSocket ping round trip, in ms. */
  readonly rttMs: number | null;
  readonly isOpen: boolean;
  /** Sends a request and waits for the answer with the same id, whatever its status. Rejects with
   *  TimeoutError, the signal's reason, or PeerError when the link closes first. */
  request(method: string, payload?: Uint8Array, opts?: LinkRequestOptions): Promise<Envelope>;
  close(code?: number, reason?: string): void;
  /** Called once when the link is gone; returns an unsubscribe function. */
  onClose(cb: (info: WsCloseInfo) => void): () => void;
  readonly closed: Promise<WsCloseInfo>;
}

/** What the mesh service can do to a link that users of MeshLink cannot. */
export interface MeshLinkControl extends MeshLink {
  /** Raises trust after a bootstrap step proved the peer (never lowers it). */
  promote(to: { trust: LinkTrust; peerKey?: Uint8Array; remote?: HostPort; direction?: "in" | "out" }): void;
}

/** A non-OK answer turned into an error, for callers that want one. */
export class LinkAnswerError extends PeerError {
  readonly status: Status;
  constructor(method: string, remote: HostPort, answer: Envelope) {
    super(`${method} to ${formatAddress(remote)} failed: ${statusName(answer.status)}${answer.error ? `: ${answer.error}` : ""}`);
    this.name = "LinkAnswerError";
    this.status = answer.status;
  }
}

/** Throws LinkAnswerError unless the answer is OK; returns its payload. */
export function okPayload(link: MeshLink, answer: Envelope): Uint8Array {
  if (answer.status !== Status.OK) throw new LinkAnswerError(answer.method, link.remote, answer);
  return answer.payload;
}

export interface MeshLinkInit {
  direction: "in" | "out";
  trust: LinkTrust;
  /** @default conn.remote */
  remote?: HostPort;
  peerKey?: Uint8Array | null;
  peerSpki?: string | null;
  /** An inbound mesh link (a dial-back): the record the dialler sent in its hello. */
  helloRecord?: NodeRecord;
  /** Serves the peer's requests; without one every request is an unknown method. */
  router?: Router;
  /** @default LINK_REQUEST_TIMEOUT_MS */
  requestTimeoutMs?: number;
  /** @default MAX_INFLIGHT_REQUESTS_PER_LINK */
  maxInflight?: number;
  log?: Logger;
}

let nextSerial = 1;

/** Wraps a WebSocket connection (not yet started) and starts it. */
export function createMeshLink(conn: WsConnection, init: MeshLinkInit): MeshLinkControl {
  const log = init.log ?? silentLogger;
  const serial = nextSerial++;
  const pending = new Map<bigint, { resolve: (e: Envelope) => void; reject: (err: unknown) => void; cleanup: () => void }>();
  const closing = createCloseNotifier();
  const maxInflight = init.maxInflight ?? MAX_INFLIGHT_REQUESTS_PER_LINK;
  let nextId = 1n;
  let inflight = 0;
  let trust = init.trust;
  /** Requests served while the link was a first-contact inbound one. */
  let untrustedRequests = 0;
  let direction = init.direction;
  let remote = init.remote ?? conn.remote;
  let peerKey = init.peerKey ?? null;
  const openedAt = Date.now();
  // Handlers still running when the link goes are told through their ctx.signal.
  const gone = new AbortController();

  const label = () => `link #${serial} ${direction} ${formatAddress(remote)}`;

  function onMessage(bytes: Uint8Array): void {
    let env: Envelope;
    try {
      env = decodeEnvelope(bytes);
    } catch (err) {
      // One bad envelope means the peer does not speak our protocol: the link goes (STYLE §7).
      const code = err instanceof LimitError ? WS_CLOSE.messageTooBig : WS_CLOSE.invalidPayload;
      log.debug("mesh link: bad envelope", { link: label(), error: err instanceof Error ? err.message : String(err) });
      conn.close(code, "bad envelope");
      return;
    }
    if (env.status === Status.REQUEST) {
      dispatch(env).catch((err: unknown) => log.warn("mesh link: request not answered", { link: label(), method: env.method, error: String(err) }));
    }
    else {
      const p = pending.get(env.id);
      if (!p) {
        log.debug("mesh link: answer for no request", { link: label(), id: env.id.toString(), method: env.method });
        return;
      }
      p.cleanup();
      p.resolve(env);
    }
  }

  async function dispatch(req: Envelope): Promise<void> {
    // A first-contact link that spends its few requests, or runs into a rate limit, goes: the stranger has
    // to pay a new TLS handshake (counted per source by the TLS endpoint) to ask again.
    const firstContact = trust === "untrusted" && direction === "in";
    if (firstContact && ++untrustedRequests > MAX_UNTRUSTED_LINK_REQUESTS) {
      conn.close(WS_CLOSE.policyViolation, "too many requests on a first-contact link");
      return;
    }
    if (inflight >= maxInflight) {
      conn.send(encodeAnswer(req, Status.RATE_LIMITED, undefined, `more than ${maxInflight} requests in flight`));
      return;
    }
    inflight += 1;
    let answer: Awaited<ReturnType<Router["dispatch"]>>;
    try {
      answer = init.router
        ? await init.router.dispatch(req.method, req.payload, contextOf(req.method))
        : { status: Status.BAD_REQUEST, error: `unknown method ${req.method}` };
    } finally {
      inflight -= 1;
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeAnswer(req, answer.status, answer.payload, answer.error);
    } catch (err) {
      log.warn("mesh link: answer too large", { link: label(), method: req.method, error: String(err) });
      bytes = encodeAnswer(req, Status.INTERNAL, undefined, "answer too large");
    }
    conn.send(bytes);
    if (answer.thenClose) conn.close(answer.thenClose.code, answer.thenClose.reason);
    else if (firstContact && answer.status === Status.RATE_LIMITED) conn.close(WS_CLOSE.policyViolation, "rate limited");
  }

  function contextOf(method: string): RpcContext {
    return {
      method,
      transport: "wss",
      remote: { ip: unmapIp(conn.remote.ip), port: conn.remote.port },
      connectionId: `wss-${serial}`,
      trust,
      peer: { key: peerKey, nodeId: peerKey ? nodeIdOf(peerKey) : null },
      signal: gone.signal,
      // Never lowers: an app.bind on a mesh link leaves it a mesh link.
      promote: (to) => {
        if (TRUST_RANK[to.trust] > TRUST_RANK[trust]) link.promote({ trust: to.trust, peerKey: to.peerKey });
      },
      link,
    };
  }

  function failPending(code: number, reason: string): void {
    const err = new PeerError(`Cannot finish the request: ${label()} closed (${code}${reason ? ` ${reason}` : ""})`);
    for (const p of [...pending.values()]) {
      p.cleanup();
      p.reject(err);
    }
    pending.clear();
  }

  function onClose(info: WsCloseInfo): void {
    gone.abort(new PeerError(`${label()} closed`));
    failPending(info.code, info.reason);
    closing.fire(info, { onError: (e) => log.warn("mesh link: close callback threw", { link: label(), error: String(e) }) });
  }

  const link: MeshLinkControl = {
    serial,
    get remote() {
      return remote;
    },
    socketRemote: conn.remote,
    local: conn.local,
    get direction() {
      return direction;
    },
    get trust() {
      return trust;
    },
    get peerKey() {
      return peerKey;
    },
    get peerNodeId() {
      return peerKey ? nodeIdOf(peerKey) : null;
    },
    peerSpki: init.peerSpki ?? null,
    openedAt,
    helloRecord: init.helloRecord,
    get rttMs() {
      return conn.rttMs;
    },
    get isOpen() {
      return conn.isOpen;
    },
    request(method, payload, opts = {}) {
      if (!conn.isOpen) return Promise.reject(new PeerError(`Cannot send ${method}: ${label()} is closed`));
      if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
      if (pending.size >= MAX_PENDING_REQUESTS_PER_LINK) {
        return Promise.reject(new PeerError(`Cannot send ${method}: ${MAX_PENDING_REQUESTS_PER_LINK} requests already wait on ${label()}`));
      }
      const id = nextId++;
      let bytes: Uint8Array;
      try {
        bytes = encodeEnvelope({ id, method, payload });
      } catch (err) {
        return Promise.reject(err);
      }
      if (!conn.send(bytes)) return Promise.reject(new PeerError(`Cannot send ${method}: ${label()} is congested`));
      const timeoutMs = opts.timeoutMs ?? init.requestTimeoutMs ?? LINK_REQUEST_TIMEOUT_MS;
      return new Promise<Envelope>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          cleanup();
          reject(new TimeoutError(`${method} on ${label()}`, timeoutMs));
        }, timeoutMs);
        const onAbort = () => {
          pending.delete(id);
          cleanup();
          reject(opts.signal!.reason);
        };
        function cleanup() {
          clearTimeout(timer);
          opts.signal?.removeEventListener("abort", onAbort);
          pending.delete(id);
        }
        opts.signal?.addEventListener("abort", onAbort, { once: true });
        pending.set(id, { resolve, reject, cleanup });
      });
    },
    close(code = WS_CLOSE.normal, reason = "") {
      conn.close(code, reason);
      // No answer can arrive once our close frame is out: fail the waits now, not after the handshake.
      failPending(code, reason);
    },
    onClose: closing.on,

    closed: conn.closed,
    promote(to) {
      if (TRUST_RANK[to.trust] < TRUST_RANK[trust]) throw new Error(`cannot lower ${label()} from ${trust} to ${to.trust}`);
      trust = to.trust;
      if (to.peerKey) peerKey = to.peerKey;
      if (to.remote) remote = to.remote;
      if (to.direction) direction = to.direction;
      log.debug("mesh link promoted", { link: label(), trust, peer: peerKey ? bytesToHex(peerKey).slice(0, 16) : null });
    },
  };

  conn.start({ onMessage, onClose });
  return link;
}

/** The mesh link a WSS request came on; mesh handlers registered for WSS only call this. */
export function linkOf(ctx: RpcContext): MeshLink {
  if (!ctx.link) throw new Error(`${ctx.method} reached a mesh handler over ${ctx.transport}`);
  return ctx.link;
}
