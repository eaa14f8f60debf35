// Attack: DNS rebinding. A web page on evil.example re-points its own name at 127.0.0.1 and reads the node's
// admin endpoint from the operator's browser. The browser sends the page's name as Host; a real `findings
// serve` must refuse that, and keep answering its own loopback names (the CLI, a local Prometheus).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { request } from "node:http";
import { tempDir, startServe, type ServeProcess } from "../helpers.ts";

setDefaultTimeout(30_000);

let node: ServeProcess;
const home = tempDir();
beforeAll(async () => {
  node = await startServe(["--home", home.path, "--host", "127.0.0.1", "--port", "0", "--admin", "127.0.0.1:0", "--public"]);
});
afterAll(async () => {
  await node?.stop();
  home[Symbol.dispose]();
});

/** GET `path` on the admin endpoint with exactly this Host header (as a browser would send it). */
function get(path: string, host: string): Promise<number> {
  const url = new URL(node.ready.admin!);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: Number(url.port), path, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the admin endpoint resists DNS rebinding", () => {
  test("a foreign Host is refused on every path; loopback names are served", async () => {
    const port = new URL(node.ready.admin!).port;
    for (const path of ["/status", "/metrics", "/"]) {
      expect(await get(path, `evil.example:${port}`)).toBe(421);
      expect(await get(path, "evil.example")).toBe(421);
    }
    expect(await get("/status", `127.0.0.1:${port}`)).toBe(200);
    expect(await get("/status", `localhost:${port}`)).toBe(200);
    // Another port is another origin (a rebinding page on :80 aiming at us).
    expect(await get("/status", "127.0.0.1:1")).toBe(421);
  });
});
