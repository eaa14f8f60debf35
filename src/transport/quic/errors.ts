// Turning @matrixai/quic errors (and the odd non-Error reason it rejects with) into one readable line.

/** One line for a @matrixai/quic error: its description plus the quiche error code when there is one.
 *  A stream destroyed because its connection stopped without an error rejects with `null` (the library
 *  passes its `errorLast`), which reads as "the connection closed". */
export function describeQuicError(err: unknown): string {
  if (err === null || err === undefined) return "the connection closed";
  if (!(err instanceof Error)) return String(err);
  const data = (err as { data?: { errorCode?: number; isApp?: boolean } }).data;
  const cause = (err as { cause?: unknown }).cause;
  const base = err.message || err.name;
  if (data?.errorCode !== undefined) return `${base} (${data.isApp ? "application" : "transport"} code ${data.errorCode})`;
  if (cause instanceof Error) return `${base}: ${describeQuicError(cause)}`;
  return base;
}
