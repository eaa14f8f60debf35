// An in-memory pair of mesh links with the request/answer semantics of link.ts: Envelopes (encoded
// and decoded, so the same size limits hold) with request ids, requests served by the end's router
// (src/rpc, the same policies as on a WSS link: trust, payload, per-prefix rate, in-flight), a
// request timeout on the given clock, a close that fails pending requests and tells both ends.
// Delivery is a microtask, so many mesh cores run in one process on a fake clock (memory-net.ts).
import { nodeIdOf } from "../identity/index.ts";
import { PeerError, TimeoutError } from "../errors.ts";
import type { HostPort } from "../contracts/index.ts";
import type { RpcContext } from "../rpc/index.ts";
import type { Router } from "../rpc/index.ts";
import { WS_CLOSE } from "../transport/index.ts";
import type { WsCloseInfo } from "../transport/index.ts";
import { decodeEnvelope, encodeAnswer, encodeEnvelope, Status, type Envelope, type NodeRecord } from "../wire/index.ts";
import type { Clock, TimerHandle } from "../contracts/index.ts";
import { LINK_REQUEST_TIMEOUT_MS, MAX_INFLIGHT_REQUESTS_PER_LINK } from "./link-constants.ts";
import type { LinkRequestOptions, LinkTrust, MeshLink } from "./link.ts";
import { createCloseNotifier } from "./close-notifier.ts";

const TRUST_RANK = { untrusted: 0, pinned: 1, mesh: 2 } as const;

/** One end's view: its direction, what it knows of the peer, and the router serving its requests. */
export interface MemoryEnd {
  direction: "in" | "out";
  trust: LinkTrust;
  /** The peer's proven key, or null (first contact). */
  peerKey: Uint8Array | null;
  remote: HostPort;
  /** The peer's socket address: the router's ctx.remote (its rate buckets count by it). */
  socketRemote: HostPort;
  local: HostPort;
  /** Serves the peer's requests on this end (the node's router); without one every method is unknown. */
  router?: Router;
  /** An inbound mesh link: the dialler's record, as its hello carries it. */
  helloRecord?: NodeRecord;
  /** One-way delay in ms of `bytes` sent from this end (latency, jitter, retransmits, bandwidth: the
   *  network simulator); absent = the next microtask. Sends stay in order, as on one TCP stream. */
  delayMs?: (bytes: number) => number;
}

/** A MeshLink, so the router hands it to handlers as ctx.link (linkOf) as it does a WSS link. */
export interface MemoryLink extends MeshLink {
  /** Raises trust (an app.bind over the router's ctx.promote); never lowers it. */
  promote(to: { trust: LinkTrust; peerKey?: Uint8Array }): void;
}

export interface MemoryPairOptions {
  clock: Clock;
  /** Round trip reported by both ends. @default null (not measured) */
  rttMs?: number | null;
  /** @default LINK_REQUEST_TIMEOUT_MS */
  requestTimeoutMs?: number;
}

interface End {
  link: MemoryLink;
  deliver(bytes: Uint8Array): void;
  shut(info: WsCloseInfo): void;
}

let nextSerial = 1;

/** The error of a closing link, without stack frames (its stack is just "PeerError: message"): links
 *  close thousands of times in a simulation, capturing a stack costs more than the rest of a close, and
 *  the message says which link and why. */
function closeError(message: string): PeerError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const err = new PeerError(message);
    err.stack = `${err.name}: ${message}`;
    return err;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Two connected links: what `a` sends, `b` receives, and the other way. */
export function createMemoryLinkPair(a: MemoryEnd, b: MemoryEnd, opts: MemoryPairOptions): [MemoryLink, MemoryLink] {
  let open = true;
  const ends: End[] = [];
  const makeEnd = (me: MemoryEnd, other: () => End): End => {
    const pending = new Map<bigint, { resolve: (e: Envelope) => void; reject: (err: unknown) => void; timer: TimerHandle; off: () => void }>();
    const closing = createCloseNotifier();
    let resolveClosed!: (info: WsCloseInfo) => void;
    const closed = new Promise<WsCloseInfo>((r) => (resolveClosed = r));
    let nextId = 1n;
    let inflight = 0;
    let lastArrival = 0;
    let trust = me.trust;
    let peerKey = me.peerKey;
    const serial = nextSerial++;
    const openedAt = opts.clock.now();
    // Handlers still running when the link goes are told through their ctx.signal.
    const gone = new AbortController();

    /** As link.ts: the per-link in-flight cap, then the router (policy and handler), then the answer. */
    async function dispatch(req: Envelope): Promise<void> {
      if (inflight >= MAX_INFLIGHT_REQUESTS_PER_LINK) {
        send(encodeAnswer(req, Status.RATE_LIMITED, undefined, `more than ${MAX_INFLIGHT_REQUESTS_PER_LINK} requests in flight`));
        return;
      }
      inflight += 1;
      let answer: Awaited<ReturnType<Router["dispatch"]>>;
      try {
        answer = me.router ? await me.router.dispatch(req.method, req.payload, contextOf(req.method)) : { status: Status.BAD_REQUEST, error: `unknown method ${req.method}` };
      } finally {
        inflight -= 1;
      }
      let bytes: Uint8Array;
      try {
        bytes = encodeAnswer(req, answer.status, answer.payload, answer.error);
      } catch {
        bytes = encodeAnswer(req, Status.INTERNAL, undefined, "answer too large");
      }
      send(bytes);
      if (answer.thenClose) link.close(answer.thenClose.code, answer.thenClose.reason);
    }

    function contextOf(method: string): RpcContext {
      return {
        method,
        transport: "wss",
        remote: { ip: me.socketRemote.ip, port: me.socketRemote.port },
        connectionId: `mem-${serial}`,
        trust,
        peer: { key: peerKey, nodeId: peerKey ? nodeIdOf(peerKey) : null },
        signal: gone.signal,
        promote: (to) => {
          if (TRUST_RANK[to.trust] > TRUST_RANK[trust]) link.promote(to);
        },
        link,
      };
    }

    function send(bytes: Uint8Array): boolean {
      if (!open) return false;
      if (!me.delayMs) {
        queueMicrotask(() => other().deliver(bytes));
        return true;
      }
      const at = Math.max(opts.clock.now() + me.delayMs(bytes.length), lastArrival);
      lastArrival = at;
      opts.clock.setTimeout(() => other().deliver(bytes), at - opts.clock.now());
      return true;
    }

    const link: MemoryLink = {
      serial,
      get peerNodeId() {
        return peerKey ? nodeIdOf(peerKey) : null;
      },
      get peerKey() {
        return peerKey;
      },
      get trust() {
        return trust;
      },
      peerSpki: null,
      direction: me.direction,
      rttMs: opts.rttMs ?? null,
      remote: me.remote,
      socketRemote: me.socketRemote,
      local: me.local,
      helloRecord: me.helloRecord,
      openedAt,
      get isOpen() {
        return open;
      },
      closed,
      request(method: string, payload?: Uint8Array, ro: LinkRequestOptions = {}) {
        if (!open) return Promise.reject(new PeerError(`Cannot send ${method}: the memory link is closed`));
        if (ro.signal?.aborted) return Promise.reject(ro.signal.reason);
        const id = nextId++;
        let bytes: Uint8Array;
        try {
          bytes = encodeEnvelope({ id, method, payload });
        } catch (err) {
          return Promise.reject(err);
        }
        const timeoutMs = ro.timeoutMs ?? opts.requestTimeoutMs ?? LINK_REQUEST_TIMEOUT_MS;
        return new Promise<Envelope>((resolve, reject) => {
          const done = () => {
            pending.delete(id);
            opts.clock.clearTimeout(timer);
            ro.signal?.removeEventListener("abort", onAbort);
          };
          const onAbort = () => {
            done();
            reject(ro.signal!.reason);
          };
          const timer = opts.clock.setTimeout(() => {
            done();
            reject(new TimeoutError(`${method} on a memory link`, timeoutMs));
          }, timeoutMs);
          ro.signal?.addEventListener("abort", onAbort, { once: true });
          pending.set(id, { resolve, reject, timer, off: done });
          send(bytes);
        });
      },
      close(code: number = WS_CLOSE.normal, reason = "") {
        if (!open) return;
        open = false;
        ends[0]!.shut({ code, reason, byPeer: ends[0]!.link !== link });
        ends[1]!.shut({ code, reason, byPeer: ends[1]!.link !== link });
      },
      promote(to) {
        if (TRUST_RANK[to.trust] < TRUST_RANK[trust]) throw new Error(`cannot lower memory link #${serial} from ${trust} to ${to.trust}`);
        trust = to.trust;
        if (to.peerKey) peerKey = to.peerKey;
      },
      onClose: closing.on,
    };

    return {
      link,
      deliver(bytes) {
        if (!open) return;
        const env = decodeEnvelope(bytes);
        if (env.status === Status.REQUEST) return void dispatch(env).catch(() => {}); // the router answers every outcome
        const p = pending.get(env.id);
        if (!p) return;
        p.off();
        p.resolve(env);
      },
      shut(info) {
        gone.abort(closeError(`memory link #${serial} closed`));
        if (pending.size) {
          const err = closeError(`Cannot finish the request: the memory link closed (${info.code}${info.reason ? ` ${info.reason}` : ""})`);
          for (const p of [...pending.values()]) {
            p.off();
            p.reject(err);
          }
        }
        queueMicrotask(() => resolveClosed(info));
        closing.fire(info, { deferred: true });
      },
    };
  };
  ends.push(
    makeEnd(a, () => ends[1]!),
    makeEnd(b, () => ends[0]!),
  );
  return [ends[0]!.link, ends[1]!.link];
}
