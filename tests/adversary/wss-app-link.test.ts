// App links over WSS (for apps without UDP): once the app bound its link (app.bind) it is no longer a first
// contact, so the untrusted-link lifetime must not cut it; a link that never binds still goes. Real TLS
// endpoint, real mesh link service, the real app bootstrap over WSS.
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { createMeshLinks } from "../../src/mesh/link-service.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { bootstrapApp } from "../../src/transport/app-bootstrap/bootstrap.ts";
import { serveAppBootstrapOverWss, wssAppDialer } from "../../src/transport/app-bootstrap/wss.ts";
import { createTlsEndpoint } from "../../src/transport/tls/endpoint.ts";
import { Status } from "../../src/wire/codec.ts";
import { until } from "../wait.ts";

setDefaultTimeout(20_000);

const LIFETIME_MS = 300;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function startNode() {
  const cert = await createRunCertificate();
  const key = generateNodeKey();
  const tls = createTlsEndpoint({ cert }, { host: "127.0.0.1", port: 0 });
  const links = createMeshLinks({ tls, cert, nodeKey: key }, { untrustedLifetimeMs: LIFETIME_MS });
  await tls.start();
  await links.start();
  const off = serveAppBootstrapOverWss({ links, nodeKey: key, cert });
  cleanups.push(async () => {
    off();
    await links.stop();
    await tls.stop();
  });
  return { addr: { ip: "127.0.0.1", port: tls.port }, key };
}

describe("app links over WSS", () => {
  test("a bound app link outlives the untrusted-link lifetime; an unbound one is closed", async () => {
    const node = await startNode();
    const { link } = await bootstrapApp(wssAppDialer(), { addr: node.addr, nodePublicKey: node.key.publicKey }, { appKey: generateNodeKey(), timeoutMs: 5000 });
    cleanups.push(async () => link.close());
    const stranger = await wssAppDialer().dial(node.addr, { timeoutMs: 5000 });
    cleanups.push(async () => stranger.close());
    let strangerClosed = false;
    stranger.onClose(() => (strangerClosed = true));
    await until(() => strangerClosed, { what: "the unbound link closed after its lifetime" });
    // The bound link was opened before the stranger's: its lifetime is over too, and it still serves.
    expect(link.isOpen).toBe(true);
    expect((await link.request(METHOD.app.whoami)).status).toBe(Status.OK);
  });
});
