// GET /whoami on the TLS port over HTTP/2 and HTTP/1.1, checked with real curl (DESIGN §2).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRunCertificate, type RunCertificate } from "../../../src/identity/certificate.ts";
import { jsonAnswer } from "../../../src/transport/tls/https-routes.ts";
import { createTlsEndpoint, type TlsEndpoint } from "../../../src/transport/tls/endpoint.ts";

const hasCurl = Bun.which("curl") !== null;

/** Runs curl without blocking the event loop (the server lives in this process). */
async function curl(args: string[]): Promise<{ body: string; version: string; code: string }> {
  const proc = Bun.spawn(["curl", "-sk", "--max-time", "5", "-w", "\n%{http_version} %{http_code}", ...args], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  const nl = out.lastIndexOf("\n");
  const [version, code] = out.slice(nl + 1).split(" ");
  return { body: out.slice(0, nl), version: version!, code: code! };
}

let cert: RunCertificate;
const endpoints: TlsEndpoint[] = [];

async function endpoint(host: string): Promise<TlsEndpoint> {
  const ep = createTlsEndpoint({ cert }, { host, port: 0 });
  await ep.start();
  endpoints.push(ep);
  return ep;
}

beforeAll(async () => {
  cert = await createRunCertificate();
});

afterAll(async () => {
  await Promise.all(endpoints.map((e) => e.stop()));
});

describe.skipIf(!hasCurl)("GET /whoami", () => {
  test("answers over HTTP/2 on IPv4 with the client's address", async () => {
    const ep = await endpoint("127.0.0.1");
    const r = await curl(["--http2", `https://127.0.0.1:${ep.port}/whoami`]);
    expect(r.version).toBe("2");
    expect(r.code).toBe("200");
    const body = JSON.parse(r.body);
    expect(body).toMatchObject({ ip: "127.0.0.1", via: "https" });
    expect(body.port).toBeGreaterThan(0);
    expect(body.address).toBe(`127.0.0.1:${body.port}`);
  });

  test("answers over HTTP/1.1 on IPv6 with a bracketed address", async () => {
    const ep = await endpoint("::1");
    const r = await curl(["--http1.1", `https://[::1]:${ep.port}/whoami`]);
    expect(r.version).toBe("1.1");
    const body = JSON.parse(r.body);
    expect(body).toMatchObject({ ip: "::1", via: "https" });
    expect(body.address).toBe(`[::1]:${body.port}`);
  });

  test("answers over HTTP/2 on IPv6", async () => {
    const ep = await endpoint("::1");
    const r = await curl(["--http2", `https://[::1]:${ep.port}/whoami`]);
    expect(r.version).toBe("2");
    expect(JSON.parse(r.body).ip).toBe("::1");
  });

  test("a dual-stack listener reports an IPv4 client as IPv4, not IPv4-mapped IPv6", async () => {
    const ep = await endpoint("::");
    for (const v of ["--http2", "--http1.1"]) {
      const r = await curl([v, `https://127.0.0.1:${ep.port}/whoami`]);
      expect(JSON.parse(r.body).ip).toBe("127.0.0.1");
    }
  });

  test("unknown paths get 404 and wrong methods 405, on both versions", async () => {
    const ep = await endpoint("127.0.0.1");
    expect((await curl(["--http2", `https://127.0.0.1:${ep.port}/nope`])).code).toBe("404");
    expect((await curl(["--http1.1", "-X", "POST", `https://127.0.0.1:${ep.port}/whoami`])).code).toBe("405");
  });

  test("routes added later are served, with a size-checked body", async () => {
    const ep = await endpoint("127.0.0.1");
    ep.routes.add("POST", "/echo-length", (req) => jsonAnswer(200, { length: req.body.length, version: req.httpVersion }));
    const r = await curl(["--http2", "--data-binary", "hello", `https://127.0.0.1:${ep.port}/echo-length`]);
    expect(JSON.parse(r.body)).toEqual({ length: 5, version: "2.0" });
    const big = await curl(["--http1.1", "-H", "content-type: application/octet-stream", "--data-binary", "x".repeat(70_000), `https://127.0.0.1:${ep.port}/echo-length`]);
    expect(big.code).toBe("413");
  });
});
