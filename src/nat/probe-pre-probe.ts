// DESIGN §6 step 1 and the TCP check of the probe plan (probe-plan.ts): whoami to every server from socket P,
// more servers when fewer than PRE_PROBE_MIN_SERVERS IPs are known, and HTTPS whoami when no QUIC path exists.
import { METHOD } from "../rpc/index.ts";
import { errorLine } from "../errors.ts";
import { MAX_SERVERS_ANSWER } from "./constants.ts";
import { decideNat } from "./decision.ts";
import type { ProbeStep } from "./probe-plan.ts";
import type { ProbeServer } from "./probe-io.ts";
import type { ProbeRunState } from "./probe-run-state.ts";
import { armUdpSilence } from "./probe-udp-check.ts";
import { formatEndpoint, normalizeIp, sameIp, type Endpoint } from "./source-check.ts";
import { isIP } from "node:net";

function distinctIps(list: readonly Endpoint[]): number {
  return new Set(list.map((s) => normalizeIp(s.ip))).size;
}

async function whoami(st: ProbeRunState, s: ProbeServer): Promise<void> {
  const link = await st.connect(s);
  if (!link || st.decided) return;
  const k = formatEndpoint(s);
  try {
    const t = st.clock.now();
    const me = await link.whoami(st.step);
    const mapped = { ip: normalizeIp(me.ip), port: me.port };
    st.obs.preProbe = [...st.obs.preProbe, { server: s, mapped }];
    st.publicAddress ??= formatEndpoint(mapped);
    st.note({ test: "pre-probe", server: k, mapped: formatEndpoint(mapped), rttMs: Math.round((st.clock.now() - t) * 10) / 10, pinned: link.pinned });
    st.progress("pre-probe", `${k} sees ${formatEndpoint(mapped)}`);
  } catch (err) {
    st.obs.preProbe = [...st.obs.preProbe, { server: s, mapped: null }];
    if (!st.decided) st.note({ test: "pre-probe", server: k, mapped: null, error: errorLine(err) });
  }
  st.evaluate();
}

export async function preProbe(st: ProbeRunState, onNoUdpPath: () => void): Promise<void> {
  await Promise.all(st.servers.map((s) => whoami(st, s)));
  const want = st.init.minServers;
  if (distinctIps(st.servers) < want && !st.decided) {
    st.learning = learnServers(st, want);
    await st.learning;
  }
  st.obs.preProbeFinished = true;
  if (st.links.length === 0) {
    // No QUIC path to any server: say whether TCP works before concluding.
    st.obs.udpPath = false;
    onNoUdpPath();
    await st.tcpCheck;
    st.conclude(decideNat(st.obs));
    return;
  }
  st.evaluate();
}

/** DESIGN §6: "with fewer than 3 known servers the client asks the given ones for more". */
async function learnServers(st: ProbeRunState, want: number): Promise<void> {
  const link = st.links[0];
  if (!link) return;
  const family = isIP(st.init.localIp);
  let learned: ProbeServer[] = [];
  const consider = (cand: Endpoint) => {
    if (isIP(cand.ip) !== family || cand.port < 1 || cand.port > 65535) return;
    const ip = normalizeIp(cand.ip);
    if ([...st.servers, ...learned].some((s) => sameIp(s.ip, ip)) || sameIp(ip, st.init.localIp)) return;
    learned.push({ ip, port: cand.port });
  };
  const step = st.step;
  let via = METHOD.mesh.peers;
  try {
    // The mesh service's peers API (records of the nodes it knows, with their UDP ports)…
    for (const c of await link.meshPeers(MAX_SERVERS_ANSWER, step)) consider(c);
  } catch {
    // …else the NAT service's own list.
    via = METHOD.nat.servers;
    try {
      for (const c of await link.natServers(step)) consider(c);
    } catch (err) {
      st.note({ test: "servers", asked: formatEndpoint(link.remote), learned: [], error: errorLine(err) });
      return;
    }
  }
  learned = learned.slice(0, Math.max(0, want - distinctIps(st.servers)));
  st.note({ test: "servers", asked: formatEndpoint(link.remote), via, learned: learned.map(formatEndpoint) });
  for (const s of learned) st.contacted.add(s.ip);
  st.servers.push(...learned);
  await Promise.all(learned.map((s) => whoami(st, s)));
}

export function checkTcp(st: ProbeRunState, step: ProbeStep): void {
  if (st.tcpCheck || st.decided) return;
  // A UDP check answer says UDP is not blocked: TCP is asked only if QUIC still fails by the pre-probe's end.
  if (step.onlyWithoutUdpPath && (st.links.length > 0 || (st.udpCheck?.answer && !st.obs.preProbeFinished))) return;
  const s = st.servers[0]!;
  const tcp = { ip: s.ip, port: st.init.tcpPortOf?.(s) ?? s.port };
  st.progress("tcp", `no UDP answer yet; trying HTTPS whoami at ${formatEndpoint(tcp)}`);
  const deadline = new AbortController();
  const t = st.clock.setTimeout(() => deadline.abort(), st.remainingMs);
  const t0 = st.clock.now();
  st.tcpCheck = st.io
    .httpsWhoami(tcp, AbortSignal.any([st.signal, deadline.signal]))
    .then((address) => {
      st.obs.tcpWorks = true;
      st.tcpMs = st.clock.now() - t0;
      st.note({ test: "tcp", server: formatEndpoint(tcp), mapped: address, ms: Math.round(st.tcpMs * 10) / 10 });
      armUdpSilence(st);
    })
    .catch((err) => {
      st.obs.tcpWorks = false;
      st.note({ test: "tcp", server: formatEndpoint(tcp), mapped: null, error: errorLine(err) });
    })
    .finally(() => st.clock.clearTimeout(t));
}
