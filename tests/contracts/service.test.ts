// Service groups: start in order, stop in reverse, undo a partial start (the lifecycle contract).
import { describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import { asService, createServiceGroup, type Service } from "../../src/contracts/service.ts";
import { lineLogger } from "../../src/contracts/logger.ts";
import { rejection } from "../wait.ts";

/** A service that owns a real TCP listener on `port` (0 = any), and records what happened to it. */
function listener(name: string, port: number, events: string[]): Service & { port(): number } {
  let server: Server | undefined;
  return {
    name,
    async start() {
      const s = createServer();
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(port, "127.0.0.1", () => resolve());
      });
      server = s;
      events.push(`start ${name}`);
    },
    async stop() {
      const s = server;
      server = undefined;
      if (s) await new Promise((r) => s.close(r));
      events.push(`stop ${name}`);
    },
    port: () => (server?.address() as { port: number } | null)?.port ?? 0,
  };
}

describe("service group", () => {
  test("starts in list order and stops in reverse", async () => {
    const events: string[] = [];
    const group = createServiceGroup("node", [listener("a", 0, events), listener("b", 0, events), listener("c", 0, events)]);
    await group.start();
    expect(group.running()).toEqual(["a", "b", "c"]);
    await group.stop();
    expect(events).toEqual(["start a", "start b", "start c", "stop c", "stop b", "stop a"]);
    expect(group.running()).toEqual([]);
  });

  test("a start that fails on a taken port stops the started ones in reverse and rethrows", async () => {
    const events: string[] = [];
    const lines: string[] = [];
    const first = listener("first", 0, events);
    const holder = listener("holder", 0, []);
    await holder.start();
    const group = createServiceGroup(
      "node",
      [first, listener("second", 0, events), listener("clash", holder.port(), events), listener("never", 0, events)],
      { log: lineLogger((level, msg, f) => lines.push(`${level} ${msg} ${f.service}`)) },
    );
    expect(await rejection(group.start())).toContain("EADDRINUSE");
    expect(events).toEqual(["start first", "start second", "stop second", "stop first"]);
    expect(group.running()).toEqual([]);
    expect(lines).toContain("warn service failed to start; stopping the others clash");
    await group.stop(); // nothing left to stop
    expect(events).toHaveLength(4);
    await holder.stop();
  });

  test("stop() goes on past a failing stop and rejects with its error afterwards", async () => {
    const events: string[] = [];
    const broken: Service = {
      name: "broken",
      start: async () => void events.push("start broken"),
      stop: async () => {
        events.push("stop broken");
        throw new Error("socket would not close");
      },
    };
    const group = createServiceGroup("node", [listener("a", 0, events), broken, listener("c", 0, events)]);
    await group.start();
    expect(await rejection(group.stop())).toBe("Error: socket would not close");
    expect(events).toEqual(["start a", "start broken", "start c", "stop c", "stop broken", "stop a"]);
  });

  test("a stop() called during start() waits for the start, then stops everything", async () => {
    const events: string[] = [];
    const group = createServiceGroup("node", [listener("a", 0, events), listener("b", 0, events)]);
    const starting = group.start();
    const stopping = group.stop();
    await Promise.all([starting, stopping]);
    expect(events).toEqual(["start a", "start b", "stop b", "stop a"]);
  });

  test("asService wraps sync and async start/stop under a name", async () => {
    const events: string[] = [];
    const s = asService("sync", { start: () => events.push("up"), stop: () => events.push("down") });
    expect(s.name).toBe("sync");
    await s.start();
    await s.stop();
    expect(events).toEqual(["up", "down"]);
  });
});
