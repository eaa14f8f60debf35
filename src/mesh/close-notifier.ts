// The close notification of a link (real or in memory): callbacks registered before the close run once with
// its info; a callback registered after it runs on the next microtask. One thrown callback does not stop
// the others.
import type { WsCloseInfo } from "../transport/index.ts";

export interface CloseNotifier {
  /** The close info once closed, else null. */
  readonly info: WsCloseInfo | null;
  /** Registers `cb`; returns the function that unregisters it. */
  on(cb: (info: WsCloseInfo) => void): () => void;
  /** Marks the link closed and runs every callback (now, or on a microtask when `deferred`). */
  fire(info: WsCloseInfo, opts?: { deferred?: boolean; onError?: (err: unknown) => void }): void;
}

export function createCloseNotifier(): CloseNotifier {
  const callbacks = new Set<(info: WsCloseInfo) => void>();
  let closed: WsCloseInfo | null = null;
  return {
    get info() {
      return closed;
    },
    on(cb) {
      if (closed) {
        const info = closed;
        queueMicrotask(() => cb(info));
        return () => {};
      }
      callbacks.add(cb);
      return () => callbacks.delete(cb);
    },
    fire(info, opts = {}) {
      closed = info;
      const cbs = [...callbacks];
      callbacks.clear();
      const run = () => {
        for (const cb of cbs) {
          try {
            cb(info);
          } catch (err) {
            opts.onError?.(err);
          }
        }
      };
      if (opts.deferred) queueMicrotask(run);
      else run();
    },
  };
}
