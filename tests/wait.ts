// Waiting helpers for tests that drive real sockets and processes.

/** Polls `probe` every 50 ms until it returns something truthy; fails naming `what` after `timeoutMs`. */
export async function until<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = probe();
    if (v) return v;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
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
