// The process families on their own registry: socket kinds told apart by the kernel's tables, and the event-loop
// lag sampler that runs only between start() and stop().
import { describe, expect, test } from "bun:test";
import { createServer } from "node:net";
import { join } from "node:path";
import { createMetricsRegistry } from "../../src/contracts/metrics.ts";
import { countSockets, openDescriptors, registerProcessMetrics } from "../../src/ops/process-metrics.ts";
import { tempDir } from "../helpers.ts";

describe("process metrics", () => {
  test("a Unix socket counts as other, a TCP listener as tcp", async () => {
    using dir = tempDir("findings-process-metrics-");
    const before = countSockets(openDescriptors());
    const unix = createServer();
    await new Promise<void>((resolve) => unix.listen(join(dir.path, "s.sock"), resolve));
    const tcp = createServer();
    await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
    try {
      expect(countSockets(openDescriptors())).toEqual({ tcp: before.tcp + 1, udp: before.udp, other: before.other + 1 });
    } finally {
      await Promise.all([unix, tcp].map((s) => new Promise((resolve) => s.close(resolve))));
    }
    expect(countSockets(openDescriptors())).toEqual(before);
  });

  test("descriptors that are not sockets are not counted as sockets", () => {
    expect(countSockets(["/dev/null", "pipe:[12]", "anon_inode:[eventpoll]"])).toEqual({ tcp: 0, udp: 0, other: 0 });
  });

  test("the event-loop lag is sampled every 500 ms between start() and stop(), and a blocked loop shows", async () => {
    const r = createMetricsRegistry();
    const sampler = registerProcessMetrics(r);
    const count = () => Number(/^findings_process_event_loop_lag_seconds_count (\S+)$/m.exec(r.render())![1]);
    expect(count()).toBe(0);
    sampler.start();
    // Block the loop for 700 ms at once: the sample due at 500 ms fires at least 200 ms late.
    const blockedUntil = performance.now() + 700;
    while (performance.now() < blockedUntil) {
      // busy
    }
    await Bun.sleep(50);
    sampler.stop();
    const body = r.render();
    const late = count();
    expect(late).toBeGreaterThanOrEqual(1);
    const underTenthSecond = Number(/^findings_process_event_loop_lag_seconds_bucket\{le="0\.1"\} (\S+)$/m.exec(body)![1]);
    expect(underTenthSecond).toBeLessThan(late);
    await Bun.sleep(600);
    expect(count()).toBe(late);
  });
});
