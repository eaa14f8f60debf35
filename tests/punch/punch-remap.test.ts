// Signalling coordination when an app's NAT re-maps its live link to the node (seed 000 §信令协调; DESIGN §7),
// over real QUIC on loopback with a relay standing in for the NAT: the node sees QUIC validate the new path,
// updates the app pool, tells the app its new address (punch.address) and re-offers its recent partners.
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { METHOD } from "../../src/rpc/methods.ts";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { createPunchClient, type AddressChange, type PunchClient } from "../../src/punch/punch-client.ts";
import { createPunchService } from "../../src/punch/punch-service.ts";
import { createUdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { startRebindingRelay } from "../transport/quic/rebinding-relay.ts";
import { until } from "../wait.ts";

setDefaultTimeout(20_000);
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
});

test("a re-mapped live app link: new address in the pool, the app is told, its partner gets a re-offer", async () => {
  const nodeKey = generateNodeKey();
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey }, { host: "127.0.0.1", port: 0 });
  const service = createPunchService({ udp: ep, nodeKey }, { stakes: { "app:chat": "" }, userId: "" });
  await ep.start();
  service.start();
  cleanups.push(() => ep.stop(), () => service.stop());
  const relay = await startRebindingRelay({ ip: "127.0.0.1", port: ep.port });
  cleanups.push(() => relay.close());

  const app = (port: number, onAddress?: (c: AddressChange) => void): PunchClient => {
    const c = createPunchClient({ key: generateNodeKey() }, { server: { ip: "127.0.0.1", port, publicKey: nodeKey.publicKey }, kind: "app:chat", nat: "full-cone", host: "127.0.0.1", attemptTimeoutMs: 1_000, onAddress });
    cleanups.push(() => c.stop());
    return c;
  };
  const changes: AddressChange[] = [];
  const moving = app(relay.port, (c) => changes.push(c));
  const partner = app(ep.port);
  const first = await moving.start();
  await partner.start();
  expect(first.address).toBe(`127.0.0.1:${relay.mappedPort}`);
  // The two were brokered a moment ago (what a punch leaves behind).
  service.pairs.note(service.pool.byId(moving.nodeId)!, service.pool.byId(partner.nodeId)!, Date.now());
  const offersBefore = partner.counters().offers!;

  const before = relay.mappedPort;
  const after = await relay.rebind();
  // QUIC keep-alives would carry the move within a third of the idle timeout; a request carries it at once.
  const nodeLink = moving.endpoint.links().find((l) => l.remote.port === relay.port && !l.closed)!;
  await nodeLink.request(METHOD.app.whoami);
  await until(() => changes.length > 0, { what: "the app to hear of its new address" });
  expect(changes[0]).toEqual({ previous: `127.0.0.1:${before}`, address: `127.0.0.1:${after}` });
  expect(moving.joined!.address).toBe(`127.0.0.1:${after}`);
  // A directed punch to the app made now meets its new mapping.
  expect(service.pool.byId(moving.nodeId)!.address).toEqual({ ip: "127.0.0.1", port: after });
  await until(() => partner.counters().offers! > offersBefore, { what: "a re-offer to the partner" });
  expect(service.counters()).toMatchObject({ remaps: 1, rebrokered: 1 });
});
