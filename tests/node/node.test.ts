// The composition root as a whole: a started and stopped node leaves no handle open.
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
});
