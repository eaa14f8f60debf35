// An in-memory pair of mesh links with the request/answer semantics of link.ts: Envelopes (encoded
// and decoded, so the same size limits hold) with request ids, a handler table looked up per request,
// a request timeout on the given clock, a close that fails pending requests and tells both ends.
// Delivery is a microtask, so many mesh cores run in one process on a fake clock (memory-net.ts).
import { nodeIdOf } from "../identity/node-key.ts";
import { PeerError, TimeoutError } from "../errors.ts";
import type { HostPort } from "../contracts/address.ts";
import { WS_CLOSE } from "../transport/ws/constants.ts";
import { decodeEnvelope, encodeAnswer, encodeEnvelope, Status, type Envelope } from "../wire/codec.ts";
import type { Clock, TimerHandle } from "../contracts/clock.ts";
import type { CoreLink, CoreRequestHandler, LinkCloseInfo } from "./core-link.ts";
import { LINK_REQUEST_TIMEOUT_MS } from "./link-constants.ts";
import { answerOfError, type LinkAnswer, type LinkRequestOptions, type LinkTrust } from "./link.ts";

/** Finds the handler of `method` for a request that came in on `link`; "refused" = not on this link. */
export type MemoryLookup = (method: string, link: MemoryLink) => CoreRequestHandler | "refused" | undefined;

/** One end's view: its direction, what it knows of the peer, and its handlers. */
export interface MemoryEnd {
  direction: "in" | "out";
  trust: LinkTrust;
  /** The peer's proven key, or null (first contact). */
  peerKey: Uint8Array | null;
  remote: HostPort;
  socketRemote: HostPort;
  local: HostPort;
  lookup: MemoryLookup;
}

export interface MemoryLink extends CoreLink {
  readonly peerKey: Uint8Array | null;
  readonly closed: Promise<LinkCloseInfo>;
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
  shut(info: LinkCloseInfo & { byPeer: boolean }): void;
}

/** Two connected links: what `a` sends, `b` receives, and the other way. */
export function createMemoryLinkPair(a: MemoryEnd, b: MemoryEnd, opts: MemoryPairOptions): [MemoryLink, MemoryLink] {
  let open = true;
  const ends: End[] = [];
  const makeEnd = (me: MemoryEnd, other: () => End): End => {
    const pending = new Map<bigint, { resolve: (e: Envelope) => void; reject: (err: unknown) => void; timer: TimerHandle; off: () => void }>();
    const closeCallbacks = new Set<(info: LinkCloseInfo) => void>();
    let closedInfo: LinkCloseInfo | null = null;
    let resolveClosed!: (info: LinkCloseInfo) => void;
    const closed = new Promise<LinkCloseInfo>((r) => (resolveClosed = r));
    let nextId = 1n;
    const openedAt = opts.clock.now();

    async function dispatch(req: Envelope): Promise<void> {
      const found = me.lookup(req.method, link);
      if (found === undefined || found === "refused") {
        const status = found === "refused" ? Status.REFUSED : Status.BAD_REQUEST;
        const why = found === "refused" ? `${req.method} is not allowed on a ${me.trust} link` : `unknown method ${req.method}`;
        send(encodeAnswer(req, status, undefined, why));
        return;
      }
      let answer: LinkAnswer;
      try {
        const out = await found(req, link);
        answer = out instanceof Uint8Array ? { status: Status.OK, payload: out } : { status: Status.OK, ...(out ?? {}) };
      } catch (err) {
        answer = answerOfError(err);
      }
      send(encodeAnswer(req, answer.status ?? Status.OK, answer.payload, answer.error));
      if (answer.thenClose) link.close(answer.thenClose.code, answer.thenClose.reason);
    }

    function send(bytes: Uint8Array): boolean {
      if (!open) return false;
      queueMicrotask(() => other().deliver(bytes));
      return true;
    }

    const link: MemoryLink = {
      get peerNodeId() {
        return me.peerKey ? nodeIdOf(me.peerKey) : null;
      },
      peerKey: me.peerKey,
      trust: me.trust,
      direction: me.direction,
      rttMs: opts.rttMs ?? null,
      remote: me.remote,
      socketRemote: me.socketRemote,
      local: me.local,
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
      onClose(cb) {
        if (closedInfo) {
          const info = closedInfo;
          queueMicrotask(() => cb(info));
          return () => {};
        }
        closeCallbacks.add(cb);
        return () => closeCallbacks.delete(cb);
      },
    };

    return {
      link,
      deliver(bytes) {
        if (!open) return;
        const env = decodeEnvelope(bytes);
        if (env.status === Status.REQUEST) return void dispatch(env);
        const p = pending.get(env.id);
        if (!p) return;
        p.off();
        p.resolve(env);
      },
      shut(info) {
        closedInfo = { code: info.code, reason: info.reason };
        const err = new PeerError(`Cannot finish the request: the memory link closed (${info.code}${info.reason ? ` ${info.reason}` : ""})`);
        for (const p of [...pending.values()]) {
          p.off();
          p.reject(err);
        }
        const cbs = [...closeCallbacks];
        closeCallbacks.clear();
        const seen = closedInfo;
        queueMicrotask(() => {
          resolveClosed(seen);
          for (const cb of cbs) cb(seen);
        });
      },
    };
  };
  ends.push(
    makeEnd(a, () => ends[1]!),
    makeEnd(b, () => ends[0]!),
  );
  return [ends[0]!.link, ends[1]!.link];
}
