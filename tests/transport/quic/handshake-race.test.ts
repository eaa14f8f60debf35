// Resent Initials and reconnect storms against the shared UDP endpoint (real loopback sockets): a client
// Initial that arrives twice while the server is still checking its retry token builds one connection, not
// two (the second one's timeout used to remove the first from the connection map and kill a live link),
// and the handshakes-in-progress cap drops Initials instead of starting them.
import { afterEach, expect, test } from "bun:test";
import { createSocket, type Socket } from "node:dgram";
import { METHOD } from "../../../src/rpc/methods.ts";
import { createRunCertificate } from "../../../src/identity/certificate.ts";
import { generateNodeKey } from "../../../src/identity/node-key.ts";
import { expectOk } from "../../../src/transport/quic/link.ts";
import { createUdpClient } from "../../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpoint, type UdpEndpointInit } from "../../../src/transport/udp/endpoint.ts";
import { loopbackPrefix } from "../../helpers.ts";
import { until } from "../../wait.ts";
import { runStorm } from "../../../scripts/bench/storm.ts";

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
});

async function endpoint(host: string, init: Partial<UdpEndpointInit> = {}): Promise<UdpEndpoint> {
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: generateNodeKey() }, { host, port: 0, ...init });
  await ep.start();
  cleanups.push(() => ep.stop());
  return ep;
}

/** A UDP relay in front of `target`: every client datagram is sent on `copies` times back to back (a
 *  client's resent Initial arriving while the server is busy), answers are relayed once. */
async function duplicatingRelay(host: string, target: { ip: string; port: number }, copies: number): Promise<{ port: number }> {
  const sock: Socket = createSocket("udp4");
  await new Promise<void>((resolve) => sock.bind(0, host, resolve));
  let clientAddr: { address: string; port: number } | undefined;
  sock.on("message", (msg, rinfo) => {
    if (rinfo.port === target.port && rinfo.address === target.ip) {
      if (clientAddr) sock.send(msg, clientAddr.port, clientAddr.address);
      return;
    }
    clientAddr = { address: rinfo.address, port: rinfo.port };
    for (let i = 0; i < copies; i++) sock.send(msg, target.port, target.ip);
  });
  cleanups.push(() => new Promise<void>((resolve) => sock.close(() => resolve())));
  return { port: sock.address().port };
}

test("an Initial that arrives several times during the accept makes one connection, and the link lives", async () => {
  const host = `${loopbackPrefix()}.1`;
  const ep = await endpoint(host);
  const relay = await duplicatingRelay(host, { ip: host, port: ep.port }, 3);
  const c = createUdpClient({}, { host });
  await c.start();
  cleanups.push(() => c.stop());
  const link = await c.dial({ ip: host, port: relay.port });
  expectOk(await link.request(METHOD.app.whoami));
  // The duplicates were seen and dropped, and no second handshake is left to time out.
  await until(() => ep.counters().duplicateInitials > 0 && ep.counters().handshakesInProgress === 0, { what: "duplicates dropped, no handshake left" });
  expect(ep.counters().activeConnections).toBe(1);
  expect(ep.links()).toHaveLength(1);
  expect(link.closed).toBe(false);
  expectOk(await link.request(METHOD.app.whoami));
});

test("beyond max_quic_handshakes, Initials are dropped, counted, and the clients get in when they resend", async () => {
  const host = `${loopbackPrefix()}.1`;
  const ep = await endpoint(host, { maxHandshakes: 2 });
  const c = createUdpClient({}, { host });
  await c.start();
  cleanups.push(() => c.stop());
  const links = await Promise.all(Array.from({ length: 30 }, () => c.dial({ ip: host, port: ep.port }, { timeoutMs: 20_000 })));
  expect(links.every((l) => !l.closed)).toBe(true);
  expect(ep.counters().handshakesDropped).toBeGreaterThan(0);
  // The server counts a connection once it has the client's Finished, a moment after the client.
  await until(() => ep.counters().activeConnections === 30, { what: "30 inbound connections" });
  for (const l of links) expectOk(await l.request(METHOD.app.whoami));
}, 30_000);

test("a storm of 300 app connections at one `findings serve` loses none", async () => {
  const r = await runStorm({ n: 300, calm: 10, workers: 1 });
  expect({ lost: r.lost, neverUp: r.neverUp, died: r.died }).toEqual({ lost: 0, neverUp: 0, died: 0 });
}, 120_000);
