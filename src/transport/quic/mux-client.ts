// The requesting side of a request channel (mux-frame.ts): a link's requests share one stream, opened on
// the first request (within the link's stream credit), matched to their answers by id, and written
// together when several are sent in the same turn of the event loop. A channel with no request for
// MUX_IDLE_CLOSE_MS is finished (FIN), so an idle connection holds no stream; the next request opens a new
// one. A channel that fails (reset, connection gone, a bad answer) fails only the requests it carries.
import type { QUICConnection, QUICStream } from "@matrixai/quic";
import { MAX_QUIC_REQUEST_BYTES, REQUEST_TIMEOUT_MS } from "../../constants.ts";
import { FindingsError, PeerError, TimeoutError, errorLine } from "../../errors.ts";
import { decodeEnvelope, encodeEnvelope, Status, type Envelope } from "../../wire/index.ts";
import { QUIC_STREAM_CODE } from "./constants.ts";
import { describeQuicError } from "./errors.ts";
import { concatBytes, encodeFrame, FrameReader, FrameTooLargeError, MUX_STREAM_MARK } from "./mux-frame.ts";
import type { RequestOptions, StreamGate } from "./request.ts";
import { cancelStream, StreamAbort } from "./stream-io.ts";

/** A channel with no request in flight for this long is finished, in ms: long enough for a bootstrap or a
 *  burst of requests, short enough that idle apps hold no stream (an open channel costs the node ~36 KiB). */
export const MUX_IDLE_CLOSE_MS = 2_000;

interface Pending {
  method: string;
  resolve(env: Envelope): void;
  reject(err: unknown): void;
}

/** One stream carrying many requests. */
class Channel {
  readonly pending = new Map<bigint, Pending>();
  dead = false;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private out: Uint8Array[] = [Uint8Array.of(MUX_STREAM_MARK)];
  private writing = false;
  private flushQueued = false;
  private lastUse = performance.now();
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Called once the first bytes went out (quiche then counts the stream against the peer's credit). */
  private firstWrite: (() => void) | undefined;

  constructor(
    private readonly stream: QUICStream,
    private readonly peer: string,
    onFirstWrite: () => void,
  ) {
    this.writer = (stream.writable as unknown as WritableStream<Uint8Array>).getWriter();
    this.firstWrite = onFirstWrite;
    void this.readLoop();
  }

  send(id: bigint, frame: Uint8Array, p: Pending): void {
    this.pending.set(id, p);
    this.lastUse = performance.now();
    this.out.push(frame);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** A request that gave up (timeout, abort): its answer, if it comes, is dropped. */
  forget(id: bigint): void {
    this.pending.delete(id);
    this.armIdle();
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.dead || this.writing || this.out.length === 0) return;
    const bytes = concatBytes(this.out);
    this.out = [];
    this.writing = true;
    this.writer.write(bytes).then(
      () => {
        this.writing = false;
        this.firstWrite?.();
        this.firstWrite = undefined;
        this.flush();
      },
      (err: unknown) => {
        this.writing = false;
        this.fail(err);
      },
    );
  }

  /** Finishes the channel when it has been idle for MUX_IDLE_CLOSE_MS; one timer per channel at most. */
  private armIdle(): void {
    if (this.idleTimer || this.dead || this.pending.size > 0) return;
    const wait = Math.max(0, this.lastUse + MUX_IDLE_CLOSE_MS - performance.now());
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.dead || this.pending.size > 0) return;
      if (performance.now() - this.lastUse < MUX_IDLE_CLOSE_MS) return this.armIdle();
      this.dead = true;
      void this.writer.close().catch(() => {});
    }, wait);
    (this.idleTimer as { unref?: () => void }).unref?.();
  }

  /** Rejects every request of this channel and resets its stream. */
  fail(err: unknown): void {
    const wasDead = this.dead;
    this.dead = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (!wasDead || this.pending.size > 0) cancelStream(this.stream, err);
    for (const [, p] of this.pending) {
      p.reject(err instanceof FindingsError ? err : new PeerError(`Cannot finish ${p.method} with ${this.peer}: ${describeQuicError(err)}`, { cause: err }));
    }
    this.pending.clear();
  }

  private async readLoop(): Promise<void> {
    const reader = (this.stream.readable as unknown as ReadableStream<Uint8Array>).getReader();
    const frames = new FrameReader(MAX_QUIC_REQUEST_BYTES);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        frames.push(value);
        for (let frame = frames.next(); frame !== undefined; frame = frames.next()) this.answer(frame);
      }
      if (this.pending.size > 0) this.fail(new PeerError(`Peer finished the request channel with ${this.pending.size} requests unanswered`));
      this.dead = true;
    } catch (err) {
      if (err instanceof FrameTooLargeError) {
        this.fail(new StreamAbort(QUIC_STREAM_CODE.tooLarge, "answer too large"));
        return;
      }
      this.fail(err);
    }
  }

  private answer(frame: Uint8Array): void {
    let env: Envelope;
    try {
      env = decodeEnvelope(frame, MAX_QUIC_REQUEST_BYTES);
    } catch (err) {
      throw new PeerError(`Cannot read an answer from ${this.peer}: ${errorLine(err)}`, { cause: err });
    }
    const p = this.pending.get(env.id);
    // Late answers (the request gave up) and answers to undecodable requests (id 0) have no taker.
    if (!p) return;
    this.pending.delete(env.id);
    if (env.status === Status.REQUEST) p.reject(new PeerError(`Cannot read answer to ${p.method} from ${this.peer}: it is a request`));
    else p.resolve(env);
    this.armIdle();
  }
}

/** A link's requests: one channel at a time, opened when needed. */
export class MuxClient {
  private channel: Channel | undefined;
  private opening: Promise<Channel> | undefined;

  constructor(
    private readonly conn: QUICConnection,
    private readonly gate: StreamGate,
    private readonly peer: string,
    /** Aborted when the link closes: a channel still waiting for stream credit gives up. */
    private readonly linkClosed: AbortSignal,
  ) {}

  /** Sends one request and returns its answer Envelope. Throws TimeoutError, the caller's abort reason, or
   *  PeerError (channel reset, connection gone, undecodable answer). */
  async request(req: { id: bigint; method: string; payload?: Uint8Array }, opts: RequestOptions = {}): Promise<Envelope> {
    const ms = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const signal = opts.signal;
    if (signal?.aborted) throw signal.reason;
    const frame = encodeFrame(encodeEnvelope({ id: req.id, method: req.method, payload: req.payload }));
    return new Promise<Envelope>((resolve, reject) => {
      let channel: Channel | undefined;
      let settled = false;
      const finish = () => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const giveUp = (err: unknown) => {
        if (settled) return;
        finish();
        channel?.forget(req.id);
        reject(err);
      };
      const onAbort = () => giveUp(signal!.reason);
      const timer = setTimeout(() => giveUp(new TimeoutError(`${req.method} request to ${this.peer}`, ms)), ms);
      signal?.addEventListener("abort", onAbort, { once: true });
      const pending: Pending = {
        method: req.method,
        resolve: (env) => {
          if (settled) return;
          finish();
          resolve(env);
        },
        reject: (err) => {
          if (settled) return;
          finish();
          reject(err);
        },
      };
      const live = this.channel && !this.channel.dead ? this.channel : undefined;
      if (live) {
        channel = live;
        live.send(req.id, frame, pending);
        return;
      }
      this.open().then(
        (ch) => {
          if (settled) return;
          channel = ch;
          ch.send(req.id, frame, pending);
        },
        (err: unknown) => pending.reject(err instanceof FindingsError || err === signal?.reason ? err : new PeerError(`Cannot send ${req.method} to ${this.peer}: ${describeQuicError(err)}`, { cause: err })),
      );
    });
  }

  /** Fails every request in flight (the link is closing). */
  close(err: unknown): void {
    this.channel?.fail(err);
  }

  /** The live channel, or a new one once the stream credit allows (requests sent meanwhile share it). */
  private open(): Promise<Channel> {
    if (this.channel && !this.channel.dead) return Promise.resolve(this.channel);
    this.opening ??= (async () => {
      try {
        await this.gate.acquire(this.linkClosed);
        let stream: QUICStream;
        try {
          stream = this.conn.newStream("bidi");
        } catch (err) {
          this.gate.opened();
          this.gate.release();
          throw err;
        }
        void stream.closedP.finally(() => this.gate.release());
        const ch = new Channel(stream, this.peer, () => this.gate.opened());
        this.channel = ch;
        return ch;
      } finally {
        this.opening = undefined;
      }
    })();
    return this.opening;
  }
}
