// The admin status page in a real browser (headless Chromium): it renders the node's /status.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startServe, tempDir, type ServeProcess } from "../helpers.ts";

const chromium = Bun.which("chromium") ?? Bun.which("chromium-browser");
const dir = tempDir("findings-page-");
let node: ServeProcess;

beforeAll(async () => {
  if (!chromium) return;
  const config = join(dir.path, "node.toml");
  writeFileSync(config, '[stakes]\n"app:chat" = "chat-reward-address"\n');
  node = await startServe(["--home", join(dir.path, "home"), "--config", config, "--host", "127.0.0.1", "--port", "0", "--admin", "127.0.0.1:0", "--public"]);
});
afterAll(async () => {
  await node?.stop();
  dir[Symbol.dispose]();
});

/** The DOM after the page's scripts ran (virtual time lets the /status fetch finish). */
async function renderedDom(url: string): Promise<string> {
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", `--user-data-dir=${join(dir.path, "chromium")}`,
    "--virtual-time-budget=5000", "--dump-dom", url,
  ];
  const p = Bun.spawn([chromium!, ...args], { stdout: "pipe", stderr: "ignore" });
  const timer = setTimeout(() => p.kill(), 30_000);
  const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  clearTimeout(timer);
  return out;
}

describe("status page", () => {
  test.skipIf(!chromium)("headless Chromium renders the node's identity, role, mesh and counters", async () => {
    const dom = await renderedDom(`${node.ready.admin}/`);
    expect(dom).toContain(node.ready.id.slice(0, 16));
    expect(dom).toContain(node.ready.id); // full id in the summary
    expect(dom).toContain("public (mesh: service)");
    expect(dom).toMatch(/0 out \/ \d+, 0 in \/ \d+/);
    expect(dom).toContain("<td>app:chat</td><td>0</td><td>500</td>"); // the app pool of the served kind
    expect(dom).toContain("<td>udp_connections</td>");
    expect(dom).toContain('<p id="error" class="err" hidden="">'); // /status was read

  }, 60_000);
});

if (!chromium) console.warn("\n*** status-page test SKIPPED: chromium is not installed (apt-get install chromium) ***\n");
