// Attack: one stranger fills a node's app pool so that honest apps are turned away (seed 000 §应用池).
// A hostile app talks the real bootstrap and join protocol to a real node endpoint on loopback:
//   1. one QUIC connection rebinds with fresh keys, each key joining as a new member;
//   2. many connections from one source prefix (127.0.1.0/24), one key each;
//   3. a bound connection kept up by QUIC keep-alives alone, answering nothing.
// Measured: honest joins accepted from another prefix while the attack runs (printed, and in docs/security.md).
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { createPunchClient } from "../../src/punch/punch-client.ts";
import { createPunchService, type PunchService, type PunchServiceInit } from "../../src/punch/punch-service.ts";
import { createUdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { Status } from "../../src/wire/codec.ts";
import { until } from "../wait.ts";
import { boundLink, join, rebind, type HostileLink, type NodeTarget } from "./hostile-app.ts";

setDefaultTimeout(30_000);

const STAKES = { "*": "0xDEFAULT", "app:chat": "" };
/** A small pool, so the attack needs few binds (the bootstrap's per-host rate allows bursts of 20). */
const CAPACITY = 12;
const HONEST = 5;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function startNode(init: Partial<PunchServiceInit> = {}): Promise<{ target: NodeTarget; service: PunchService }> {
  const key = generateNodeKey();
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: key }, { host: "127.0.0.1", port: 0 });
  const service = createPunchService({ udp: ep, nodeKey: key }, { stakes: STAKES, userId: "", punchXpool: CAPACITY, ...init });
  await ep.start();
  service.start();
  cleanups.push(async () => {
    service.stop();
    await ep.stop();
  });
  return { target: { ip: "127.0.0.1", port: ep.port, publicKey: key.publicKey }, service };
}

async function link(node: NodeTarget, host: string): Promise<HostileLink> {
  const l = await boundLink(node, host);
  cleanups.push(() => l.client.stop());
  return l;
}

/** Honest apps, each from its own /24 (127.0.10+i.1), one connection and one key each: how many joins are accepted. */
async function honestJoins(node: NodeTarget): Promise<number> {
  let ok = 0;
  for (let i = 0; i < HONEST; i++) {
    const h = await link(node, `127.0.${10 + i}.1`);
    if ((await join(h.link, h.key)) === Status.OK) ok++;
  }
  return ok;
}

describe("one stranger cannot fill an app pool", () => {
  test("one connection holds one identity: rebinding with fresh keys takes no more seats", async () => {
    const { target, service } = await startNode({ perPrefix: 1000 });
    const a = await link(target, "127.0.1.1");
    expect(await join(a.link, a.key)).toBe(Status.OK);
    let rebound = 0;
    for (let i = 0; i < CAPACITY + 2; i++) {
      const r = await rebind(a.link, target);
      if (r.status === Status.OK) rebound++;
      await join(a.link, r.key);
    }
    const seats = service.pool.members("app:chat").length;
    const honest = await honestJoins(target);
    console.log(`one connection, ${CAPACITY + 2} rebinds: ${rebound} accepted, ${seats}/${CAPACITY} seats taken; honest joins accepted ${honest}/${HONEST}`);
    expect(rebound).toBe(0);
    expect(seats).toBe(1);
    expect(honest).toBe(HONEST);
  });

  test("one source prefix holds at most its share of a kind's pool, whatever the number of connections", async () => {
    const PER_PREFIX = 4;
    const { target, service } = await startNode({ perPrefix: PER_PREFIX });
    let taken = 0;
    for (let i = 0; i < CAPACITY; i++) {
      const a = await link(target, `127.0.1.${i + 1}`);
      if ((await join(a.link, a.key)) === Status.OK) taken++;
    }
    const honest = await honestJoins(target);
    console.log(`${CAPACITY} connections from one /24: ${taken} seats; honest joins accepted ${honest}/${HONEST}`);
    expect(taken).toBe(PER_PREFIX);
    expect(service.counters().joinsOverShare).toBe(CAPACITY - PER_PREFIX);
    expect(honest).toBe(HONEST);
  });

  test("one connection holds at most its share of memberships over all kinds", async () => {
    const kinds = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`app:k${i}`, ""]));
    const { target, service } = await startNode({ stakes: { "*": "0x", ...kinds }, perConnection: 3, perPrefix: 1000 });
    const a = await link(target, "127.0.1.1");
    const statuses: Status[] = [];
    for (const kind of Object.keys(kinds)) statuses.push(await join(a.link, a.key, kind));
    expect(statuses.filter((s) => s === Status.OK).length).toBe(3);
    expect(service.pool.size).toBe(3);
  });

  test("a member that does not answer the node's liveness ping leaves; an honest client stays", async () => {
    const { target, service } = await startNode({ livenessMs: 300, sweepIntervalMs: 100 });
    // The hostile app serves nothing on its link: only QUIC keep-alives keep the connection up.
    const a = await link(target, "127.0.1.1");
    expect(await join(a.link, a.key)).toBe(Status.OK);
    const honestKey = generateNodeKey();
    const honest = createPunchClient(
      { key: honestKey },
      { server: { ip: target.ip, port: target.port, publicKey: target.publicKey }, kind: "app:chat", nat: "public", host: "127.0.2.1" },
    );
    await honest.start();
    cleanups.push(() => honest.stop());
    await until(() => service.pool.get("app:chat", honestKey.nodeId) !== undefined, { what: "the honest client joined" });
    await until(() => service.pool.get("app:chat", a.key.nodeId) === undefined, { what: "the silent member left" });
    expect(service.counters().livenessFailed).toBeGreaterThanOrEqual(1);
    // The honest client sends nothing after its join: its member is refreshed only by answered pings.
    const seen = service.pool.get("app:chat", honestKey.nodeId)!.lastSeen;
    await until(() => (service.pool.get("app:chat", honestKey.nodeId)?.lastSeen ?? 0) > seen, { what: "a ping answered by the honest client" });
    expect(service.pool.get("app:chat", honestKey.nodeId)).toBeDefined();
  });
});
