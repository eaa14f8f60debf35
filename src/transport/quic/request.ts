// The requesting side of Findings request/response over QUIC with one stream per request (rpc.ts), for peers
// that negotiated ALPN findings/1 (older versions; findings/2 peers get request channels, mux-client.ts),
// and the stream credit our own streams share (DESIGN §4).
import type { QUICConnection, QUICStream } from "@matrixai/quic";
import { MAX_QUIC_REQUEST_BYTES, REQUEST_TIMEOUT_MS } from "../../constants.ts";
import { FindingsError, PeerError, errorLine } from "../../errors.ts";
import { decodeEnvelope, encodeEnvelope, Status, type Envelope } from "../../wire/index.ts";
import { QUIC_STREAM_CODE } from "./constants.ts";
import { describeQuicError } from "./errors.ts";
import { cancelStream, deadline, readBounded, StreamAbort, writeAndClose } from "./stream-io.ts";

/** Options of one request. */
export interface RequestOptions {
  signal?: AbortSignal;
  /** @default REQUEST_TIMEOUT_MS */
  timeoutMs?: number;
}

/** Opens a stream on `conn` when stream credit allows, sends one request, returns the answer Envelope.
 *  Throws TimeoutError, the caller's abort reason, or PeerError (reset stream, undecodable answer). */
export async function requestOverStream(
  conn: QUICConnection,
  gate: StreamGate,
  req: { id: bigint; method: string; payload?: Uint8Array },
  opts: RequestOptions & { peer: string },
): Promise<Envelope> {
  const ms = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const wait = deadline(ms, `${req.method} request to ${opts.peer}`, opts.signal);
  let stream: QUICStream | undefined;
  let acquired = false;
  try {
    const bytes = encodeEnvelope({ id: req.id, method: req.method, payload: req.payload });
    await gate.acquire(wait.signal);
    acquired = true;
    stream = conn.newStream("bidi");
    // Read while writing: a peer that resets the stream (e.g. request too large) must fail the request at
    // once. (@matrixai/quic does not reject a write that is blocked on flow control when STOP_SENDING
    // arrives; the reset shows up on the read side, and the deadline bounds the rest.)
    const writing = writeAndClose(stream, bytes, wait.signal).finally(() => gate.opened());
    writing.catch(() => {});
    const answer = await readBounded(stream.readable, MAX_QUIC_REQUEST_BYTES, wait.signal);
    if (answer === null) {
      cancelStream(stream, new StreamAbort(QUIC_STREAM_CODE.tooLarge, "answer too large"));
      throw new PeerError(`Cannot read answer to ${req.method} from ${opts.peer}: over ${MAX_QUIC_REQUEST_BYTES} bytes`);
    }
    let env: Envelope;
    try {
      env = decodeEnvelope(answer, MAX_QUIC_REQUEST_BYTES);
    } catch (err) {
      throw new PeerError(`Cannot read answer to ${req.method} from ${opts.peer}: ${errorLine(err)}`, { cause: err });
    }
    if (env.status === Status.REQUEST) throw new PeerError(`Cannot read answer to ${req.method} from ${opts.peer}: it is a request`);
    return env;
  } catch (err) {
    if (stream) cancelStream(stream, err);
    if (err instanceof FindingsError || (opts.signal?.aborted && err === opts.signal.reason)) throw err;
    // A @matrixai/quic error (connection gone, stream reset without our codes) or its null reason.
    throw new PeerError(`Cannot finish ${req.method} with ${opts.peer}: ${describeQuicError(err)}`, { cause: err });
  } finally {
    if (acquired) gate.release();
    wait.done();
  }
}

/**
 * Bounds our own streams on one connection: at most `max` in flight, and never more new streams than the
 * peer's stream credit (quiche fails a stream beyond the peer's MAX_STREAMS with an internal error that
 * @matrixai/quic rethrows from an event listener, so it must not happen).
 */
export class StreamGate {
  private inFlight = 0;
  private opening = 0;
  private waiters: Array<() => void> = [];
  constructor(
    private readonly max: number,
    private readonly credit: () => number,
  ) {}

  async acquire(signal: AbortSignal): Promise<void> {
    while (this.inFlight >= this.max || this.credit() - this.opening <= 0) {
      await this.waitTurn(signal);
    }
    this.inFlight++;
    this.opening++;
  }

  /** The stream's first bytes went out: quiche now counts it against the credit itself. */
  opened(): void {
    this.opening = Math.max(0, this.opening - 1);
  }

  release(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    const w = this.waiters;
    this.waiters = [];
    for (const wake of w) wake();
  }

  /** Wakes on a release, or after a few ms (credit also returns when the peer's MAX_STREAMS arrives). */
  private waitTurn(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(done, CREDIT_POLL_MS);
      this.waiters.push(done);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** How often a request waiting for stream credit looks again, in ms (MAX_STREAMS frames arrive with the
 *  peer's next packet, within about one RTT). */
const CREDIT_POLL_MS = 5;
