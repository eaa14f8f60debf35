// The UDP check of the probe plan (probe-plan.ts step udp-check): from a socket of its own (U), every server gets
// a Binding Request and a QUIC version probe (udp-check-packet.ts), resent on a short schedule until one answers.
// Any answer proves a UDP path and ends the check. No answer says nothing by itself; once the HTTPS whoami (the
// tcp step) answered in T ms, silence for UDP_BLOCKED_TCP_TIMES × T + a margin since the first request, with no
// QUIC link either, is udp-blocked: decided then, not at the run's timeout.
import { errorLine } from "../errors.ts";
import { decideNat } from "./decision.ts";
import { udpCheckGapMs, udpSilenceMs, type ProbeStep } from "./probe-plan.ts";
import type { UdpCheckAnswer, UdpCheckSocket } from "./probe-io.ts";
import type { ProbeRunState } from "./probe-run-state.ts";
import { formatEndpoint, sameIp, type Endpoint } from "./source-check.ts";

export function udpCheck(st: ProbeRunState, step: ProbeStep): void {
  if (!st.io.openUdpCheck || st.udpCheck || st.decided) return;
  const check: NonNullable<ProbeRunState["udpCheck"]> = { step, startedAt: null, answer: null };
  st.udpCheck = check;
  let socket: UdpCheckSocket | null = null;
  const close = () => {
    socket?.close();
    socket = null;
  };
  const onAnswer = (from: Endpoint, via: UdpCheckAnswer) => {
    if (check.answer || st.decided) return;
    // Only a server we asked can answer (the packets also carry this run's random ids).
    if (!st.servers.some((s) => sameIp(s.ip, from.ip) && s.port === from.port)) return;
    check.answer = { from, via };
    st.note({ test: "udp-check", server: formatEndpoint(from), answer: via });
    st.progress("pre-probe", `${formatEndpoint(from)} answered over UDP (${via === "stun" ? "STUN Binding" : "QUIC version negotiation"})`);
    st.clock.defer(close);
  };
  void st.io
    .openUdpCheck(onAnswer)
    .then((sock) => {
      socket = sock;
      st.closers.push(close);
      if (check.answer || st.decided) return close();
      check.startedAt = st.clock.now();
      let sent = 0;
      const tick = () => {
        if (!socket || check.answer || st.decided) return close();
        for (const s of st.servers) socket.send(s);
        sent++;
        st.timers.push(st.clock.setTimeout(tick, udpCheckGapMs(step.wait, sent)));
      };
      tick();
      armUdpSilence(st);
    })
    .catch((err) => {
      if (!st.decided) st.note({ test: "udp-check", error: errorLine(err) });
    });
}

/** Once both the TCP answer's time and the check's first request are known: decide udp-blocked at the end of the
 *  silence window unless a UDP answer or a QUIC link came by then. */
export function armUdpSilence(st: ProbeRunState): void {
  const check = st.udpCheck;
  if (!check || check.startedAt === null || st.tcpMs === null || check.answer || st.decided) return;
  const windowMs = udpSilenceMs(check.step.wait, st.tcpMs);
  const dueIn = Math.max(0, check.startedAt + windowMs - st.clock.now());
  st.after(dueIn, () => {
    if (check.answer || st.links.length > 0 || st.decided) return;
    st.note({ test: "udp-check", answer: null, windowMs: Math.round(windowMs), tcpMs: Math.round(st.tcpMs! * 10) / 10 });
    st.obs.udpPath = false;
    st.conclude(decideNat(st.obs));
  });
}
