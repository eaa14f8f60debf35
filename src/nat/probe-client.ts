// `findings probe` as a library call: public address, NAT class with its RFC 4787 axes, and (optionally) the mapping
// lifetime, from a few Findings servers (DESIGN §6; STUN2 seed 000 §提供的服务 1–2). Server side in cone-server.ts.
//
// The steps are data in probe-plan.ts and run in probe-runner.ts, which feeds each observation to decideNat as it
// arrives. This file gives the runner its sockets: one UDP client P whose QUIC links carry the nat.* requests and
// whose raw path gets the port-test acks and passage probes, and a fresh socket F per formal step. Every datagram
// is authenticated here with the run's key K (control MAC, probe MAC) before the runner sees it.
import { METHOD } from "../rpc/index.ts";
import { generateNodeKey } from "../identity/index.ts";
import { DEFAULTS } from "../config/index.ts";
import { ConfigError, PeerError } from "../errors.ts";
import { bootstrapApp } from "../transport/index.ts";
import { httpsGetJson, httpsWhoami } from "../transport/index.ts";
import { NEWHOST_CONSENT_PATH, NEWHOST_CONSENT_BYTES } from "./newhost-consent.ts";
import type { Logger } from "../contracts/index.ts";
import { expectOk, type QuicLink } from "../transport/index.ts";
import { createUdpClient, type UdpClient } from "../transport/index.ts";
import { decodeMessage, encodeMessage } from "../wire/index.ts";
import { WhoamiResponseSchema } from "../wire/index.ts";
import { PeersAnswerSchema, PeersRequestSchema } from "../wire/index.ts";
// The mesh service's QUIC method for the records a node knows (DESIGN §1 `findings peers`).
import { NatBeginAnswerSchema, NatBeginRequestSchema, NatFormalAnswerSchema, NatFormalRequestSchema, NatPassageAnswerSchema, NatPassageRequestSchema, NatServersAnswerSchema } from "../wire/index.ts";
import { buildControl, controlToken, decodeControl } from "./control-packet.ts";
import { measureLifetime } from "./lifetime-client.ts";
import { MAX_PRE_PROBE_SERVERS, NAT_TOKEN_BYTES, PRE_PROBE_MIN_SERVERS } from "./constants.ts";
import { makeNewHostProof } from "./newhost-proof.ts";
import { newHostKey, verifyProbe } from "./probe-packet.ts";
import type { ProbeReport } from "./probe-report.ts";
import { openProbeSocket, routeSourceIp } from "./probe-sockets.ts";
import { udpCheckPackets } from "./udp-check-packet.ts";
import { realProbeClock, type ProbeIo, type ProbeServer, type ServerLink } from "./probe-io.ts";
import { ProbeRunner, type ProbeProgress } from "./probe-runner.ts";
import { formatEndpoint, normalizeIp, sameIp, type Endpoint } from "./source-check.ts";
import { hexToBytes } from "@noble/hashes/utils.js";
import { isIP } from "node:net";

export type { ProbeProgress } from "./probe-runner.ts";
export type { ProbeServer } from "./probe-io.ts";

export interface ProbeOptions {
  servers: readonly ProbeServer[];
  /** Also measure the mapping lifetime (takes about the lifetime itself, up to lifetimeMaxS). @default false */
  lifetime?: boolean;
  /** Longest wait for answers that may never come, in ms (seed 000: 6 s). @default probe_timeout_s of defaults.toml */
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: ProbeProgress) => void;
  /** IPs this host sent UDP to lately from other sockets (a node's own links): NewHost probes from them are no
   *  evidence and the servers are asked to pick delegates elsewhere (source-check.ts R4). @default none */
  contactedIps?: Iterable<string>;
  /** Local IP to probe from. @default the one the kernel routes to the first server from */
  localIp?: string;
  /** Distinct server IPs wanted for the pre-probe; fewer → ask the servers for more. @default PRE_PROBE_MIN_SERVERS */
  minServers?: number;
  /** Longest lifetime delay tried, in seconds. @default 300 */
  lifetimeMaxS?: number;
  /** TCP port for the HTTPS whoami of a server. @default the server's UDP port (DESIGN §2: both 7788) */
  tcpPortOf?: (server: Endpoint) => number;
  log?: Logger;
}

/** Keeps the servers that share the local address family, without duplicates. */
function cleanServers(list: readonly ProbeServer[]): ProbeServer[] {
  const out: ProbeServer[] = [];
  for (const s of list) {
    const ip = normalizeIp(s.ip);
    if (!out.some((o) => o.ip === ip && o.port === s.port)) out.push({ ...s, ip });
  }
  return out;
}

/** Runs the probe. Throws ConfigError when no usable server is given; otherwise always returns a report (a class
 *  of null when no server answered at all). */
export async function runProbe(opts: ProbeOptions): Promise<ProbeReport> {
  const clock = realProbeClock;
  const startedAt = clock.now();
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.probe_timeout_s * 1000;
  let servers = cleanServers(opts.servers);
  if (servers.length === 0) throw new ConfigError("--server", "at least one server is needed (ip:port)");
  const localIp = normalizeIp(opts.localIp ?? (await routeSourceIp(servers[0]!)));
  const family = isIP(localIp);
  servers = servers.filter((s) => isIP(s.ip) === family).slice(0, MAX_PRE_PROBE_SERVERS);
  if (servers.length === 0) throw new ConfigError("--server", `no server of the local address family (IPv${family})`);

  const key = crypto.getRandomValues(new Uint8Array(32));
  let runner: ProbeRunner | undefined;
  // Datagrams on P, the socket holding the QUIC connections: port-test acks and passage probes.
  const onQuicSocket = (buf: Uint8Array, from: Endpoint) => {
    if (!runner) return;
    if (controlToken(buf)) {
      const d = decodeControl(buf, key);
      if (d.ok && d.msg.type === "ack-port") runner.onPortAck(from, d.msg.mapped);
      return;
    }
    const v = verifyProbe(buf, key);
    if (v.ok) runner.onProbe(v.source, from);
  };
  const client = createUdpClient({ log: opts.log }, { host: localIp, port: 0, onRawDatagram: (buf, rinfo, kind) => kind === "sn" && onQuicSocket(buf, { ip: normalizeIp(rinfo.address), port: rinfo.port }) });
  await client.start();
  const io = probeIo(client, key, localIp);
  runner = new ProbeRunner(io, clock, {
    servers,
    localIp,
    timeoutMs,
    minServers: opts.minServers ?? PRE_PROBE_MIN_SERVERS,
    lifetime: opts.lifetime ?? false,
    lifetimeMaxS: opts.lifetimeMaxS,
    tcpPortOf: opts.tcpPortOf,
    contactedIps: opts.contactedIps,
    signal: opts.signal,
    onProgress: opts.onProgress,
    log: opts.log,
    startedAt,
  });
  let out;
  try {
    out = await runner.run();
  } finally {
    await client.stop();
  }
  const d = out.decision;
  return {
    nat: d.nat,
    label: d.label,
    publicAddress: out.publicAddress,
    localAddress: formatEndpoint(io.localAddress),
    mapping: d.mapping,
    filtering: d.filtering,
    portPreserved: d.portPreserved,
    lifetime: out.lifetime,
    servers: out.servers.map(formatEndpoint),
    evidence: out.evidence,
    elapsedMs: out.elapsedMs,
  };
}

/** The probe's I/O over one UDP client (socket P) and fresh formal sockets, with this run's key K. */
function probeIo(client: UdpClient, key: Uint8Array, localIp: string): ProbeIo {
  const hostKey = newHostKey(key);
  return {
    localAddress: { ip: localIp, port: client.port },
    async connect(s, step) {
      const link = s.publicKey
        ? (await bootstrapApp(client, { addr: s, nodePublicKey: s.publicKey }, { appKey: generateNodeKey(), ...step })).link
        : await client.dial(s, step);
      return serverLink(link, s, key, localIp);
    },
    sendHelloPort: (token, to) => client.sendRaw(buildControl(key, { type: "hello-port", token }), to.port, to.ip),
    async openFormalSocket(events) {
      const socket = await openProbeSocket(localIp, (buf, from) => {
        if (controlToken(buf)) {
          const d = decodeControl(buf, key);
          if (d.ok && d.msg.type === "ack-formal") events.onAck(from, d.msg.mapped, d.msg.cookie);
          return;
        }
        const v = verifyProbe(buf, key);
        if (v.ok) events.onProbe(v.source, from);
      });
      return {
        local: socket.local,
        sendHello: (token, to) => socket.send(buildControl(key, { type: "hello-formal", token }), to),
        close: () => socket.close(),
      };
    },
    async proveNewHost(mapped, signal) {
      const proof = await makeNewHostProof(mapped, hostKey, { signal });
      return { issuedAtMs: proof.issuedAtMs, nonce: proof.nonce };
    },
    async newHostConsents(servers, mapped, signal) {
      const got = await Promise.all(
        servers.map(async (s) => {
          try {
            // From the probe's own IP: the token binds the address the delegate sees, which must be the mapped one.
            const body = await httpsGetJson(s, `${NEWHOST_CONSENT_PATH}?port=${mapped.port}`, { signal, maxBytes: 1024, localAddress: localIp });
            const c = readConsent(body);
            // A token for another IP (our TCP leaves from elsewhere than our UDP mapping) cannot serve this target.
            return c && sameIp(c.ip, mapped.ip) && c.port === mapped.port ? [{ serverIp: s.ip, token: c.token }] : [];
          } catch {
            return [];
          }
        }),
      );
      return got.flat();
    },
    async openUdpCheck(onAnswer) {
      const packets = udpCheckPackets();
      const socket = await openProbeSocket(localIp, (buf, from) => {
        const via = packets.match(buf);
        if (via) onAnswer(from, via);
      });
      return {
        send(to) {
          // A failed send is a lost datagram: the schedule sends again.
          void socket.send(packets.binding, to).catch(() => {});
          void socket.send(packets.quicVersionProbe, to).catch(() => {});
        },
        close: () => socket.close(),
      };
    },
    httpsWhoami: async (server, signal) => (await httpsWhoami(server, { signal })).address,
  };
}

/** Largest packet count a server may claim it sent in one step (a few probes each; far above any plan). */
const MAX_SENT_CLAIM = 1000;
/** Most delegate entries read from one formal answer (a source asks 2). */
const MAX_DELEGATES_CLAIMED = 16;
const isPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
const isCount = (n: number) => Number.isInteger(n) && n >= 0 && n <= MAX_SENT_CLAIM;

function serverLink(link: QuicLink, server: Endpoint, key: Uint8Array, localIp: string): ServerLink {
  const peer = formatEndpoint(server);
  const ask = async (method: string, payload: Uint8Array | undefined, step: { signal: AbortSignal; timeoutMs: number }) => expectOk(await link.request(method, payload, step));
  return {
    remote: link.remote,
    pinned: link.pinned,
    get rttMs() {
      return link.rttMs;
    },
    // Every field of every answer is checked before use: the server may lie, and a bad field must fail
    // this server's step with a clear error, not some later step (or a send to a port it chose).
    async whoami(step) {
      const me = decodeMessage(WhoamiResponseSchema, await ask(METHOD.app.whoami, undefined, step), "WhoamiResponse");
      if (isIP(me.ip) === 0 || !isPort(me.port)) throw new PeerError(`${METHOD.app.whoami} answer from ${peer}: not an ip:port`);
      return { ip: normalizeIp(me.ip), port: me.port };
    },
    async meshPeers(max, step) {
      const ans = decodeMessage(PeersAnswerSchema, await ask(METHOD.mesh.peers, encodeMessage(PeersRequestSchema, { max }), step), "PeersAnswer");
      return ans.records.flatMap((rec) => rec.addresses.filter((a) => isIP(a.ip) !== 0 && isPort(a.udpPort)).map((a) => ({ ip: normalizeIp(a.ip), port: a.udpPort })));
    },
    async natServers(step) {
      const ans = decodeMessage(NatServersAnswerSchema, await ask(METHOD.nat.servers, undefined, step), "NatServersAnswer");
      return ans.servers.flatMap((text) => {
        const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
        return m && isIP(m[1]!) !== 0 && isPort(Number(m[2])) ? [{ ip: normalizeIp(m[1]!), port: Number(m[2]) }] : [];
      });
    },
    async begin(step) {
      const ans = decodeMessage(NatBeginAnswerSchema, await ask(METHOD.nat.begin, encodeMessage(NatBeginRequestSchema, { probeKey: key }), step), "NatBeginAnswer");
      if (ans.token.length !== NAT_TOKEN_BYTES) throw new PeerError(`${METHOD.nat.begin} answer from ${peer}: token must be ${NAT_TOKEN_BYTES} bytes, got ${ans.token.length}`);
      if (!isPort(ans.newPort)) throw new PeerError(`${METHOD.nat.begin} answer from ${peer}: new_port must be 1..65535, got ${ans.newPort}`);
      return { token: ans.token, newPort: ans.newPort };
    },
    async passage(token, step) {
      const sent = decodeMessage(NatPassageAnswerSchema, await ask(METHOD.nat.passage, encodeMessage(NatPassageRequestSchema, { token }), step), "NatPassageAnswer").sent;
      if (!isCount(sent)) throw new PeerError(`${METHOD.nat.passage} answer from ${peer}: sent must be 0..${MAX_SENT_CLAIM}, got ${sent}`);
      return sent;
    },
    async formal(req, step) {
      const payload = encodeMessage(NatFormalRequestSchema, { token: req.token, cookie: req.cookie, avoidIps: req.avoidIps, proof: req.proof, consents: req.consents });
      const ans = decodeMessage(NatFormalAnswerSchema, await ask(METHOD.nat.formal, payload, step), "NatFormalAnswer");
      if (!isCount(ans.newPortSent)) throw new PeerError(`${METHOD.nat.formal} answer from ${peer}: new_port_sent must be 0..${MAX_SENT_CLAIM}`);
      // A delegate entry that does not parse is dropped (it cannot be told apart from a lie), the rest kept.
      const delegates = ans.delegates
        .slice(0, MAX_DELEGATES_CLAIMED)
        .filter((d) => isCount(d.sent) && (d.fromIp === "" || isIP(d.fromIp) !== 0) && d.nodeId.length <= 64 && d.error.length <= 512);
      return { newPortSent: ans.newPortSent, delegates };
    },
    lifetime: (opts) => measureLifetime({ link, server, localIp, ...opts }),
  };
}

/** A consent answer ({token: hex, ip, port}) checked field by field; null when anything is off. */
function readConsent(body: unknown): { token: Uint8Array; ip: string; port: number } | null {
  if (typeof body !== "object" || body === null) return null;
  const { token, ip, port } = body as Record<string, unknown>;
  if (typeof token !== "string" || token.length !== 2 * NEWHOST_CONSENT_BYTES || !/^[0-9a-f]+$/.test(token)) return null;
  if (typeof ip !== "string" || isIP(ip) === 0 || typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { token: hexToBytes(token), ip, port };
}
