// Proves the NAT lab: each router behaves as its class, checked with raw UDP from inside the namespaces (DESIGN §10).
// Mapping: the same client socket asks two echo servers which source they saw. Filtering: unsolicited datagrams
// to that mapping from a third host, from the first server's other port and from its second IP.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  LAB_CLIENTS,
  labDown,
  labUnavailableReason,
  labUp,
  startAgent,
  type Agent,
  type AgentDatagram,
  type LabClass,
  type LabClient,
} from "./lab.ts";
import { holdLabLock } from "./lab-lock.ts";

const CLIENT_PORT = 40000; // fixed, so port preservation shows in the mapped address
const ECHO_PORT = 3478;
const NEW_PORT = 3479;
const TCP_PORT = 8443;
const S1 = "203.0.113.1";
const S1_SECOND_IP = "203.0.113.11";
const S2 = "203.0.113.2";
const S3 = "203.0.113.3";
const ANSWER_WAIT_MS = 1_500; // an echo on a veth takes well under 10 ms; this only bounds the blocked case
const SILENCE_WAIT_MS = 700; // how long "nothing arrived" is waited for
const LAB_UDP_TIMEOUT_S = 2; // conntrack UDP timeout set for the lifetime check
const LIFETIME_CLIENT_PORTS = [40001, 40002];
const REMAP_CLIENT_PORT = 40010; // where an unsolicited datagram lands before the client sends from that port
const S1_6 = "2001:db8:113::1";
const S3_6 = "2001:db8:113::3";

const unavailable = labUnavailableReason();
if (unavailable !== null) {
  const bar = "!".repeat(78);
  console.warn(`\n${bar}\n!!! NAT LAB SKIPPED: ${unavailable}\n!!! tests/lab needs root, iproute2 and nftables.\n${bar}\n`);
}
// The lab is machine-wide: hold it for this whole file, so another run's lab tests wait (tests/lab/lab-lock.ts).
const releaseLab = unavailable === null ? await holdLabLock() : async () => {};
afterAll(releaseLab);

interface Observed {
  /** mapped address as seen by s1 and s2 (null: no answer) */
  mapped1: string | null;
  mapped2: string | null;
  fromThirdHost: boolean;
  fromNewPort: boolean;
  fromSecondIp: boolean;
  tcpWorks: boolean;
}

describe.skipIf(unavailable !== null)("NAT lab (DESIGN §10)", () => {
  const agents: Agent[] = [];
  const observed = new Map<LabClass, Observed>();
  let s1Agent: Agent;
  let s1EchoSock: number;
  let prcAgent: Agent;
  let s3Agent: Agent;
  let s3Sock: number;
  const clientAgents = new Map<LabClass, Agent>();

  async function agent(ns: string): Promise<Agent> {
    const a = await startAgent(ns);
    agents.push(a);
    return a;
  }

  beforeAll(async () => {
    labUp();
    const [s1, s2, s3] = await Promise.all([agent("fl-s1"), agent("fl-s2"), agent("fl-s3")]);
    const bind = async (a: Agent, host: string, port: number, echo: boolean) =>
      (await a.call<{ sock: number }>("bind", { host, port, echo })).sock;
    s1Agent = s1;
    s1EchoSock = await bind(s1, S1, ECHO_PORT, true);
    const s1NewPort = await bind(s1, S1, NEW_PORT, false);
    const s1SecondIp = await bind(s1, S1_SECOND_IP, ECHO_PORT, false);
    await bind(s2, S2, ECHO_PORT, true);
    s3Agent = s3;
    s3Sock = await bind(s3, S3, ECHO_PORT, false);
    await s1.call("tcp-listen", { host: S1, port: TCP_PORT });

    const clients = await Promise.all(LAB_CLIENTS.map((c) => agent(c.ns)));
    prcAgent = clients[LAB_CLIENTS.findIndex((c) => c.cls === "prc")]!;
    LAB_CLIENTS.forEach((c, i) => clientAgents.set(c.cls, clients[i]!));

    async function observe(c: LabClient, a: Agent): Promise<Observed> {
      const sock = (await a.call<{ sock: number }>("bind", { port: CLIENT_PORT })).sock;
      await a.call("send", { sock, to: `${S1}:${ECHO_PORT}`, data: "who-am-i" });
      await a.call("send", { sock, to: `${S2}:${ECHO_PORT}`, data: "who-am-i" });
      const echoes = (await a.call<{ datagrams: AgentDatagram[] }>("recv", { sock, waitMs: ANSWER_WAIT_MS, min: 2 })).datagrams;
      const seenBy = (server: string) =>
        echoes.find((d) => d.from === `${server}:${ECHO_PORT}`)?.data.replace(/^seen /, "") ?? null;
      const mapped1 = seenBy(S1);
      const mapped2 = seenBy(S2);
      // Unsolicited senders aim at the mapping s1 saw; without one, at where it would be.
      const target = mapped1 ?? `${c.publicIp}:${CLIENT_PORT}`;
      const arrives = async (from: Agent, fromSock: number, tag: string) => {
        await from.call("send", { sock: fromSock, to: target, data: tag });
        const got = (await a.call<{ datagrams: AgentDatagram[] }>("recv", { sock, waitMs: SILENCE_WAIT_MS })).datagrams;
        return got.some((d) => d.data === tag);
      };
      const fromThirdHost = await arrives(s3, s3Sock, `third-host-${c.cls}`);
      const fromNewPort = await arrives(s1, s1NewPort, `new-port-${c.cls}`);
      const fromSecondIp = await arrives(s1, s1SecondIp, `second-ip-${c.cls}`);
      const tcpWorks = (await a.call<{ connected: boolean }>("tcp-connect", { to: `${S1}:${TCP_PORT}`, waitMs: 1_500 })).connected;
      return { mapped1, mapped2, fromThirdHost, fromNewPort, fromSecondIp, tcpWorks };
    }

    const results = await Promise.all(LAB_CLIENTS.map((c, i) => observe(c, clients[i]!)));
    LAB_CLIENTS.forEach((c, i) => observed.set(c.cls, results[i]!));
  }, 45_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close()));
    labDown();
  }, 20_000);

  const client = (cls: LabClass) => LAB_CLIENTS.find((c) => c.cls === cls)!;
  const local = (cls: LabClass) => `${client(cls).localIp}:${CLIENT_PORT}`;
  const preservedPublic = (cls: LabClass) => `${client(cls).publicIp}:${CLIENT_PORT}`;

  test("public client: servers see its own address, and unsolicited UDP from anyone gets in", () => {
    expect(observed.get("public")).toEqual({
      mapped1: local("public"),
      mapped2: local("public"),
      fromThirdHost: true,
      fromNewPort: true,
      fromSecondIp: true,
      tcpWorks: true,
    });
  });

  test("full-cone router: one port-preserving mapping for every destination, open to any host", () => {
    expect(observed.get("fullc")).toEqual({
      mapped1: preservedPublic("fullc"),
      mapped2: preservedPublic("fullc"),
      fromThirdHost: true,
      fromNewPort: true,
      fromSecondIp: true,
      tcpWorks: true,
    });
  });

  test("restricted-cone router: same mapping everywhere, open to other ports of contacted hosts only", () => {
    expect(observed.get("rc")).toEqual({
      mapped1: preservedPublic("rc"),
      mapped2: preservedPublic("rc"),
      fromThirdHost: false,
      fromNewPort: true,
      fromSecondIp: false,
      tcpWorks: true,
    });
  });

  test("port-restricted-cone router: same mapping everywhere, open only to the exact server endpoint", () => {
    expect(observed.get("prc")).toEqual({
      mapped1: preservedPublic("prc"),
      mapped2: preservedPublic("prc"),
      fromThirdHost: false,
      fromNewPort: false,
      fromSecondIp: false,
      tcpWorks: true,
    });
  });

  test("symmetric router: a different mapping per destination, closed to everyone else", () => {
    const o = observed.get("sym")!;
    expect(o.mapped1).toStartWith(`${client("sym").publicIp}:`);
    expect(o.mapped2).toStartWith(`${client("sym").publicIp}:`);
    expect(o.mapped1).not.toBe(o.mapped2);
    expect(o).toMatchObject({ fromThirdHost: false, fromNewPort: false, fromSecondIp: false, tcpWorks: true });
  });

  test("udp-firewall router: servers see the client's own routed address, but nothing unsolicited gets in", () => {
    expect(observed.get("udpfw")).toEqual({
      mapped1: local("udpfw"),
      mapped2: local("udpfw"),
      fromThirdHost: false,
      fromNewPort: false,
      fromSecondIp: false,
      tcpWorks: true,
    });
  });

  test("udp-blocked router: no UDP answer at all, while TCP still connects", () => {
    expect(observed.get("udpblk")).toEqual({
      mapped1: null,
      mapped2: null,
      fromThirdHost: false,
      fromNewPort: false,
      fromSecondIp: false,
      tcpWorks: true,
    });
  });

  test("firewalled home routers behave as their bare twins towards the servers", () => {
    for (const [fw, bare] of [["fullc-fw", "fullc"], ["rc-fw", "rc"], ["prc-fw", "prc"], ["prc-fw2", "prc"], ["quic-fw", "prc"]] as [LabClass, LabClass][]) {
      const o = observed.get(fw)!;
      const twin = observed.get(bare)!;
      expect({ cls: fw, ...o }).toEqual({ cls: fw, ...twin, mapped1: preservedPublic(fw), mapped2: preservedPublic(fw) });
    }
    const sym = observed.get("sym-fw")!;
    expect(sym.mapped1).toStartWith(`${client("sym-fw").publicIp}:`);
    expect(sym.mapped1).not.toBe(sym.mapped2);
    expect(sym).toMatchObject({ fromThirdHost: false, fromNewPort: false, fromSecondIp: false, tcpWorks: true });
  });

  test("an unsolicited datagram to a bare router re-maps the next flow to that peer; a firewalled router leaves nothing", async () => {
    const ports = new Map<LabClass, number | null>();
    for (const cls of ["prc", "prc-fw", "rc", "rc-fw"] as LabClass[]) {
      // The peer speaks first, at the port the client is about to send from; then the client sends to it.
      await s3Agent.call("send", { sock: s3Sock, to: `${client(cls).publicIp}:${REMAP_CLIENT_PORT}`, data: `early-${cls}` });
      await Bun.sleep(100); // the datagram crosses one veth; 100 ms is far more than it needs
      const a = clientAgents.get(cls)!;
      const sock = (await a.call<{ sock: number }>("bind", { port: REMAP_CLIENT_PORT })).sock;
      await a.call("send", { sock, to: `${S3}:${ECHO_PORT}`, data: `late-${cls}` });
      const got = (await s3Agent.call<{ datagrams: AgentDatagram[] }>("recv", { sock: s3Sock, waitMs: ANSWER_WAIT_MS })).datagrams;
      const from = got.find((d) => d.data === `late-${cls}`)?.from ?? null;
      ports.set(cls, from === null ? null : Number(from.split(":")[1]));
    }
    expect(ports.get("prc")).not.toBe(REMAP_CLIENT_PORT);
    expect(ports.get("rc")).not.toBe(REMAP_CLIENT_PORT);
    expect(ports.get("prc-fw")).toBe(REMAP_CLIENT_PORT);
    expect(ports.get("rc-fw")).toBe(REMAP_CLIENT_PORT);
  });

  test("QUIC-only router: a datagram without QUIC's fixed bit does not pass either way, one with it does", async () => {
    const a = clientAgents.get("quic-fw")!;
    const sock = (await a.call<{ sock: number }>("bind", { port: 40020 })).sock;
    await a.call("send", { sock, to: `${S1}:${ECHO_PORT}`, data: "!not-quic" }); // 0x21: bits 7-6 clear
    expect((await a.call<{ datagrams: AgentDatagram[] }>("recv", { sock, waitMs: SILENCE_WAIT_MS })).datagrams).toEqual([]);
    await a.call("send", { sock, to: `${S1}:${ECHO_PORT}`, data: "quic-like" }); // 0x71: fixed bit set; the echo "seen …" too
    const echo = (await a.call<{ datagrams: AgentDatagram[] }>("recv", { sock, waitMs: ANSWER_WAIT_MS })).datagrams;
    expect(echo.map((d) => d.data)).toEqual([`seen ${client("quic-fw").publicIp}:40020`]);
  });

  test("IPv6: the public client is open; the dual-stack home's IPv6 is routed and stateful (udp-firewall)", async () => {
    const s1 = s1Agent;
    await s1.call("bind", { host: S1_6, port: ECHO_PORT, echo: true });
    const s3v6 = (await s3Agent.call<{ sock: number }>("bind", { host: S3_6, port: ECHO_PORT })).sock;
    const seen = new Map<LabClass, { mapped: string | null; fromThirdHost: boolean }>();
    for (const c of LAB_CLIENTS.filter((x) => x.ip6 !== null)) {
      const a = clientAgents.get(c.cls)!;
      const sock = (await a.call<{ sock: number }>("bind", { v6: true, port: CLIENT_PORT })).sock;
      await a.call("send", { sock, to: `[${S1_6}]:${ECHO_PORT}`, data: "who-am-i" });
      const got = (await a.call<{ datagrams: AgentDatagram[] }>("recv", { sock, waitMs: ANSWER_WAIT_MS })).datagrams;
      await s3Agent.call("send", { sock: s3v6, to: `[${c.ip6}]:${CLIENT_PORT}`, data: `third-${c.cls}` });
      const third = (await a.call<{ datagrams: AgentDatagram[] }>("recv", { sock, waitMs: SILENCE_WAIT_MS })).datagrams;
      seen.set(c.cls, { mapped: got[0]?.data.replace(/^seen /, "") ?? null, fromThirdHost: third.some((d) => d.data === `third-${c.cls}`) });
    }
    expect(Object.fromEntries(seen)).toEqual({
      public: { mapped: `[2001:db8:113::100]:${CLIENT_PORT}`, fromThirdHost: true },
      "prc-fw": { mapped: `[2001:db8:109::2]:${CLIENT_PORT}`, fromThirdHost: false },
      "prc-fw2": { mapped: `[2001:db8:112::2]:${CLIENT_PORT}`, fromThirdHost: false },
    });
  });

  test(`--udp-timeout ${LAB_UDP_TIMEOUT_S} makes a mapping admit the server after 0.5 s but not after 3.5 s`, async () => {
    labUp({ udpTimeoutS: LAB_UDP_TIMEOUT_S }); // the lab is complete: this only sets the routers' conntrack timeouts
    // Two fresh sockets, one exchange each, one late packet each (an inbound packet would refresh the mapping).
    const socks: { sock: number; mapped: string }[] = [];
    for (const port of LIFETIME_CLIENT_PORTS) {
      const sock = (await prcAgent.call<{ sock: number }>("bind", { port })).sock;
      await prcAgent.call("send", { sock, to: `${S1}:${ECHO_PORT}`, data: "who-am-i" });
      const echo = (await prcAgent.call<{ datagrams: AgentDatagram[] }>("recv", { sock, waitMs: ANSWER_WAIT_MS })).datagrams;
      expect(echo.length).toBe(1);
      socks.push({ sock, mapped: echo[0]!.data.replace(/^seen /, "") });
    }
    const lateArrives = async (i: number, delayMs: number) => {
      await Bun.sleep(delayMs);
      const tag = `late-${i}`;
      await s1Agent.call("send", { sock: s1EchoSock, to: socks[i]!.mapped, data: tag });
      const got = (await prcAgent.call<{ datagrams: AgentDatagram[] }>("recv", { sock: socks[i]!.sock, waitMs: SILENCE_WAIT_MS })).datagrams;
      return got.some((d) => d.data === tag);
    };
    const [early, late] = await Promise.all([lateArrives(0, 500), lateArrives(1, 3_500)]);
    expect({ early, late }).toEqual({ early: true, late: false });
  }, 15_000);
});
