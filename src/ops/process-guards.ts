// Last-resort handlers for a serving process: an error nobody caught (a rejected promise without a
// handler, an exception thrown from a callback) is logged and counted, and the node keeps serving. Every
// path that handles a peer's input catches its own errors; these handlers are for the one that was missed,
// so that a stranger who finds it can at worst make a log line, not stop the node.
import { errorLine } from "../errors.ts";
import type { Logger, MetricsRegistry } from "../contracts/index.ts";

export interface ProcessGuards {
  /** Errors seen so far, by kind. */
  counts(): { unhandledRejection: number; uncaughtException: number };
  /** Removes the handlers. */
  uninstall(): void;
}

/** Installs process-level `unhandledRejection` and `uncaughtException` handlers that log, count (metric
 *  findings_process_unhandled_errors_total{kind}) and keep the process running. */
export function installProcessGuards(log: Logger, metrics?: MetricsRegistry): ProcessGuards {
  const counter = metrics?.counter({
    name: "findings_process_unhandled_errors_total",
    help: "Errors no code path handled (logged, counted, the node kept serving), by kind.",
    labelNames: ["kind"],
  });
  const counts = { unhandledRejection: 0, uncaughtException: 0 };
  const seen = (kind: keyof typeof counts, err: unknown) => {
    counts[kind] += 1;
    counter?.inc({ kind });
    try {
      log.error(kind === "unhandledRejection" ? "unhandled promise rejection" : "uncaught exception", {
        error: errorLine(err),
        stack: err instanceof Error ? err.stack?.split("\n").slice(0, 8).join("\n") : undefined,
        count: counts[kind],
      });
    } catch {
      // A logger that throws must not turn one stray error into a crash.
    }
  };
  const onRejection = (reason: unknown) => seen("unhandledRejection", reason);
  const onException = (err: unknown) => seen("uncaughtException", err);
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  return {
    counts: () => ({ ...counts }),
    uninstall() {
      process.off("unhandledRejection", onRejection);
      process.off("uncaughtException", onException);
    },
  };
}
