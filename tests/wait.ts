// Waiting helpers for tests that drive real sockets and processes.

export interface UntilOptions {
  /** What is awaited, for the timeout message ("b linked to a"). */
  what: string;
  /** @default 10 000 */
  timeoutMs?: number;
  /** Pause between two probes. @default 50 */
  intervalMs?: number;
  /** A probe that throws counts as "not yet" (a node that does not answer yet) instead of failing
   *  the wait at once. @default false */
  retryErrors?: boolean;
}

/** Polls `probe` until it returns something truthy and returns that. After `timeoutMs` it fails naming
 *  `what` and the last value (or error) seen, so a failing test says what was missing. */
export async function until<T>(probe: () => T | null | undefined | false | Promise<T | null | undefined | false>, opts: UntilOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (err) {
      if (!opts.retryErrors) throw err;
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) break;
    await Bun.sleep(Math.min(opts.intervalMs ?? 50, Math.max(1, deadline - Date.now())));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what} (last: ${JSON.stringify(last)?.slice(0, 500)})`);
}

/** Resolves with `p`'s value, or rejects naming `what` after `timeoutMs` (the timer does not outlive it). */
export async function within<T>(p: Promise<T>, opts: { what: string; timeoutMs: number }): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`)), opts.timeoutMs);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The rejection of `p` as text, or "resolved" (Bun's `expect(p).rejects` does not let QUIC I/O progress
 *  while it waits). */
export async function rejection(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => "resolved",
    (e: unknown) => String(e),
  );
}

/** Collects a child's output lines into `into` as they arrive (the array grows while the child runs). */
export function collectLines(stream: ReadableStream<Uint8Array>, into: string[] = []): string[] {
  void (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        into.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  })();
  return into;
}
