// The one Logger contract: lineLogger hands lines to a callback with child fields merged; silentLogger drops all.
import { describe, expect, test } from "bun:test";
import { lineLogger, silentLogger, type LogFields, type LogLevel } from "../../src/contracts/logger.ts";

describe("Logger contract", () => {
  test("lineLogger passes level, message and fields, children adding theirs (the line's own win)", () => {
    const lines: [LogLevel, string, LogFields][] = [];
    const log = lineLogger((level, msg, fields) => lines.push([level, msg, fields]));
    const udp = log.child({ room: "udp" }).child({ port: 7788 });
    log.info("node started");
    udp.warn("socket error", { code: "ECONNREFUSED" });
    udp.debug("override", { room: "quic" });
    udp.error("bug");
    expect(lines).toEqual([
      ["info", "node started", {}],
      ["warn", "socket error", { room: "udp", port: 7788, code: "ECONNREFUSED" }],
      ["debug", "override", { room: "quic", port: 7788 }],
      ["error", "bug", { room: "udp", port: 7788 }],
    ]);
  });

  test("silentLogger and its children accept every call and keep nothing", () => {
    const child = silentLogger.child({ room: "mesh" });
    expect(child).toBe(silentLogger);
    expect(() => child.error("ignored", { x: 1 })).not.toThrow();
  });
});
