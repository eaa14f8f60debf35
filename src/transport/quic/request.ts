// Stream credit of the requesting side: our own streams on one connection (request channels, raw streams)
// stay within the peer's MAX_STREAMS (DESIGN §4; requests themselves are in mux-client.ts).

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
