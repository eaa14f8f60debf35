// The composition root as a whole: a started and stopped node leaves no handle open, and a start that
// fails on a taken port stops what had started, in reverse.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { BUN, ROOT, tempDir } from "../helpers.ts";

describe("a whole node", () => {
  test("start() then stop() leaves nothing open: the process exits by itself", async () => {
    using home = tempDir();
    const child = Bun.spawn([BUN, join(ROOT, "tests", "node", "stop-leaves-nothing.ts"), home.path], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    clearTimeout(timer);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(JSON.parse(out.trim())).toMatchObject({ stopped: true });
  }, 30_000);

  /** Runs tests/node/start-rollback.ts with the port of `clash` taken; it must exit by itself. */
  async function rollback(clash: "tls" | "admin") {
    using home = tempDir();
    const child = Bun.spawn([BUN, join(ROOT, "tests", "node", "start-rollback.ts"), home.path, clash], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    clearTimeout(timer);
    expect(err).toBe("");
    expect(code).toBe(0);
    return JSON.parse(out.trim()) as { error: string; events: string[]; udpFree: boolean; tcpFree: boolean };
  }

  test("a taken TLS port fails start(): the UDP endpoint that had started is stopped and the process exits", async () => {
    const r = await rollback("tls");
    expect(r.error).toMatch(/^Invalid config server_tport: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    expect(r.events).toEqual(["started udp", "stopped udp"]);
    expect(r.udpFree).toBe(true);
  }, 30_000);

  test("a taken admin port fails start() last: every service is stopped in reverse and the process exits", async () => {
    const r = await rollback("admin");
    expect(r.error).toMatch(/^Invalid config admin: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE$/);
    const order = ["udp", "tls", "mesh-links", "app-bootstrap-wss", "mesh", "nat", "punch", "share", "natd"];
    expect(r.events).toEqual([...order.map((s) => `started ${s}`), ...order.reverse().map((s) => `stopped ${s}`)]);
    expect(r.udpFree).toBe(true);
    expect(r.tcpFree).toBe(true);
  }, 30_000);
});
