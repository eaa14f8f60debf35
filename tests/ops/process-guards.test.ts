// The serving process's last-resort handlers: a stray rejection or exception is logged, counted, and the
// process keeps running.
import { expect, test } from "bun:test";
import { createMetricsRegistry, lineLogger } from "../../src/contracts/index.ts";
import { installProcessGuards } from "../../src/ops/process-guards.ts";

test("an unhandled rejection and an uncaught exception are logged and counted, and nothing else happens", () => {
  const before = [process.listenerCount("unhandledRejection"), process.listenerCount("uncaughtException")];
  const lines: string[] = [];
  const metrics = createMetricsRegistry();
  const guards = installProcessGuards(
    lineLogger((level, message) => lines.push(`${level} ${message}`)),
    metrics,
  );
  try {
    process.emit("unhandledRejection", new Error("a peer's answer"), Promise.resolve());
    process.emit("uncaughtException", new Error("a callback threw"));
    expect(guards.counts()).toEqual({ unhandledRejection: 1, uncaughtException: 1 });
    expect(lines).toEqual(["error unhandled promise rejection", "error uncaught exception"]);
    const text = metrics.render();
    expect(text).toContain('findings_process_unhandled_errors_total{kind="unhandledRejection"} 1');
  } finally {
    guards.uninstall();
  }
  expect([process.listenerCount("unhandledRejection"), process.listenerCount("uncaughtException")]).toEqual(before);
});
