// The result of `findings probe` (DESIGN §6 JSON shape) and its human summary (STYLE "Reports": filled in as the run
// goes; null means "not tested", never false; the summary is built from the JSON object).
import type { FilteringBehavior, MappingBehavior, NatClassName, NatLabel } from "./class.ts";

/** The `lifetime` object (DESIGN §6), plus the traffic pattern the figure is valid for. */
export interface LifetimeReport {
  /** Midpoint of the bounds, or the lower bound when no probe failed ("at least"). */
  seconds: number;
  lowerBound: number;
  /** null when every probe arrived: the mapping outlived the longest delay tried. */
  upperBound: number | null;
  /** What the mapping saw before going silent (RFC 4787 §4.3: lifetimes may differ per pattern). */
  pattern: string;
}

/** One observation. `test` names the step; the other fields depend on it (see probe-pre-probe.ts and probe-source-steps.ts). */
export interface ProbeEvidence {
  test:
    | "servers"
    | "pre-probe"
    | "begin"
    | "new-port-mapping"
    | "passage"
    | "formal-mapping"
    | "new-port"
    | "new-host"
    | "probe-ignored"
    | "udp-check"
    | "tcp"
    | "decision"
    | "lifetime";
  [field: string]: unknown;
}

/** `findings probe --json` (DESIGN §6), field for field. */
export interface ProbeReport {
  nat: NatClassName | null;
  label: NatLabel | null;
  /** This host's address as the source server saw it ("ip:port"); null if no server answered over UDP. */
  publicAddress: string | null;
  /** The pre-probe socket's local address (the interface address). */
  localAddress: string | null;
  mapping: MappingBehavior | null;
  filtering: FilteringBehavior | null;
  portPreserved: boolean | null;
  /** null unless the lifetime test was asked for. */
  lifetime: LifetimeReport | null;
  /** Servers asked, "ip:port". */
  servers: string[];
  evidence: ProbeEvidence[];
  elapsedMs: number;
}

const NAT_WORDS: Record<NatClassName, string> = {
  public: "no NAT; unsolicited UDP gets in",
  "full-cone": "full cone: anyone can reach the mapping",
  "restricted-cone": "restricted cone: hosts you sent to can reach the mapping",
  "port-restricted-cone": "port-restricted cone: only the exact ip:port you sent to can answer",
  symmetric: "symmetric: a new mapping for every destination",
  "udp-firewall": "public address, but unsolicited UDP is dropped",
  "udp-blocked": "no UDP path",
  "quic-only": "QUIC passes, other UDP is dropped",
};

/** A few lines for a terminal, built only from the report. */
export function summarizeProbe(r: ProbeReport): string {
  const lines: string[] = [];
  const decision = r.evidence.find((e) => e.test === "decision");
  if (r.nat === null) {
    lines.push(`NAT class: unknown${decision ? ` (${String(decision.reason)})` : ""}`);
  } else {
    const unsure = decision && decision.certain === false ? " (not certain: the wait ran out first)" : "";
    lines.push(`NAT class: ${r.label} — ${NAT_WORDS[r.nat]}${unsure}`);
  }
  if (r.publicAddress) lines.push(`public address: ${r.publicAddress}${r.localAddress ? ` (local ${r.localAddress})` : ""}`);
  const axes = [
    r.mapping ? `mapping ${r.mapping}` : null,
    r.filtering ? `filtering ${r.filtering}` : null,
    r.portPreserved === null ? null : r.portPreserved ? "port preserved" : "port not preserved",
  ].filter(Boolean);
  if (axes.length) lines.push(axes.join(", "));
  if (r.nat === "udp-blocked") {
    const tcp = r.evidence.find((e) => e.test === "tcp");
    lines.push(tcp ? (tcp.mapped ? `TCP works (HTTPS whoami: ${String(tcp.mapped)})` : "TCP does not work either") : "TCP not tested");
  }
  if (r.lifetime) {
    const l = r.lifetime;
    const range = l.upperBound === null ? `at least ${l.lowerBound} s` : `${l.seconds} s (between ${l.lowerBound} and ${l.upperBound} s)`;
    lines.push(`mapping lifetime: ${range}, for ${l.pattern}`);
  }
  lines.push(`servers: ${r.servers.join(", ")}; ${(r.elapsedMs / 1000).toFixed(2)} s`);
  return lines.join("\n");
}
