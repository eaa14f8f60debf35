// Live re-mapping in the NAT lab (seed 000 §信令协调; DESIGN §7): an app waits behind the port-restricted cone
// with a peer linked to it; the router then re-maps the app's live flows to another port (a table of its own
// moves the app's flows to conntrack zone 1, so they get fresh entries, SNATs them to a new port and drops what
// still comes to the old one, as a NAT whose mapping expired and was renewed elsewhere). The node sees QUIC
// validate the new path on the app's next packet, tells the app (its --wait output says so), re-offers the
// peer (which reconnects by itself) and a directed punch to the app made right after connects at the new port.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { labDown, labUnavailableReason } from "./lab.ts";
import { labUpUnshared, punchOnce, removeAppHomes, resetRestrictedConeSeen, startKeeper, startPunchNode, startWaiter, type LineProc, type PunchNode } from "../../scripts/bench/punch-lab.ts";
import { holdLabLock } from "./lab-lock.ts";

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`SKIPPED: the NAT lab cannot run here: ${unavailable}`);
const releaseLab = unavailable === null ? await holdLabLock() : async () => {};
afterAll(releaseLab);

const ROUTER = "fl-r-prc";
const APP_LAN = "10.99.3.2";
const WAN = "203.0.113.103";
/** The app's local port (the router keeps it as the public port at first) and the port it re-maps to. */
const APP_PORT = 40_201;
const NEW_PORT = 41_201;
const TABLE = "fl_remap";
/** QUIC keep-alives go every third of the 30 s idle timeout: the app's next packet is at most ~10 s away. */
const NOTICE_MS = 25_000;

function nft(args: string[]): void {
  const r = Bun.spawnSync(["ip", "netns", "exec", ROUTER, "nft", ...args], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`nft ${args.join(" ")} in ${ROUTER}: ${r.stderr.toString().trim()}`);
}

function remap(): void {
  nft([
    `table ip ${TABLE} {
      chain raw_pre { type filter hook prerouting priority -300; policy accept;
        ip daddr ${WAN} udp dport ${APP_PORT} drop;
        ip saddr ${APP_LAN} udp sport ${APP_PORT} ct zone set 1;
        ip daddr ${WAN} udp dport ${NEW_PORT} ct zone set 1; }
      chain post { type nat hook postrouting priority 90; policy accept;
        ip saddr ${APP_LAN} udp sport ${APP_PORT} snat to ${WAN}:${NEW_PORT}; }
    }`,
  ]);
}

function unmap(): void {
  Bun.spawnSync(["ip", "netns", "exec", ROUTER, "nft", "delete", "table", "ip", TABLE], { stdout: "ignore", stderr: "ignore" });
}

describe.skipIf(unavailable !== null)("live re-mapping in the NAT lab", () => {
  let wasUp = false;
  let node: PunchNode;
  const procs: LineProc[] = [];

  beforeAll(async () => {
    wasUp = labUpUnshared();
    node = await startPunchNode({ port: 7792 });
  }, 60_000);

  afterAll(async () => {
    unmap();
    await Promise.all(procs.map((p) => p.stop()));
    await node?.stop();
    removeAppHomes();
    if (!wasUp) labDown();
  }, 30_000);

  test("the router re-maps a connected app: the node tells it, its peer reconnects, a directed punch connects at the new port", async () => {
    resetRestrictedConeSeen();
    const app = await startWaiter("prc", { server: node.server, name: "remap-prc", port: APP_PORT });
    procs.push(app);
    expect(app.hello.address).toBe(`${WAN}:${APP_PORT}`);
    const keeper = startKeeper("rc", { server: node.server, targetId: app.id, name: "remap-keep-rc" });
    procs.push(keeper);
    const first = await keeper.next((o) => o.connected === true, 10_000);
    // (Which port the peer meets is the router's business: a Linux NAT re-maps a flow whose tuple it saw inbound
    // first; what counts is the node's view, below.)
    expect(first.peer).toMatch(/^203\.0\.113\.103:\d+$/);
    const seenKeeper = keeper.lines.length;
    const seenApp = app.lines.length;

    remap();
    const changed = await app.next((o) => o.addressChanged === true, NOTICE_MS, seenApp);
    expect(changed).toMatchObject({ id: app.id, address: `${WAN}:${NEW_PORT}`, previousAddress: `${WAN}:${APP_PORT}` });
    // The node re-offered the pair: the peer is linked again, at the new mapping, without asking.
    const again = await keeper.next((o) => o.connected === true, 10_000, seenKeeper);
    expect(again).toMatchObject({ peerId: app.id });
    expect(again.peer).toMatch(/^203\.0\.113\.103:\d+$/);
    // A directed punch made now meets the new mapping (the old port is dead). From behind the UDP firewall, whose
    // filter admits only the exact ip:port it sent to, both sides must aim at each other's current mapping
    // (a restricted cone would let the app in from any port, whatever address the node gave).
    const run = await punchOnce("udpfw", { server: node.server, targetId: app.id, name: "remap-punch-udpfw" });
    expect(run.result).toMatchObject({ connected: true, peerId: app.id, peer: `${WAN}:${NEW_PORT}` });
    expect(run.code).toBe(0);
  }, 60_000);
});
