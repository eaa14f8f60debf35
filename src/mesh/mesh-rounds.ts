// The I/O rounds the mesh driver starts for the state machine: online help (ask, cross-check, merge,
// punish liars) and the self-check (ask, punish checkers that lied). Each ends in one event.
import { parseAddress, formatAddress } from "../contracts/index.ts";
import type { HostPort } from "../contracts/index.ts";
import type { MeshNet } from "./core-link.ts";
import type { MeshEvent } from "./mesh-machine.ts";
import { askForHelp, type HelpAnswer, type HelpTarget } from "./online-help.ts";
import type { RecordMerger, Sharer } from "./record-merge.ts";
import type { SelfChecker } from "./self-check.ts";

export interface RoundDeps {
  links: Pick<MeshNet, "dialUntrusted">;
  merger: RecordMerger;
  punish(sharer: Sharer, why: string): void;
  /** Oldest record accepted, in ms (config record_max_age_s). */
  maxAgeMs?: number;
  bump(event: string, n?: number): void;
  log(level: "debug" | "info", msg: string, fields: Record<string, unknown>): void;
  now(): number;
  signal: AbortSignal;
  countOut(method: string): void;
}

/** Asks every target at once and merges what they shared (record-merge.ts checks each record).
 *  `onObserved`: each helper that told us the IP it saw us at. */
export async function helpRound(d: RoundDeps, targets: readonly HelpTarget[], onObserved?: (target: HelpTarget, ip: string) => void): Promise<Extract<MeshEvent, { type: "helpDone" }>> {
  const before = d.merger.counters.recordsAdded;
  if (targets.length) {
    const round = await askForHelp(d.links, targets, { now: d.now(), maxAgeMs: d.maxAgeMs, signal: d.signal, onRequest: d.countOut, clock: d.now });
    if (round.conflicts.length) {
      d.bump("helpConflicts", round.conflicts.length);
      d.log("info", "helpers disagree on keys; the key checks decide", { addresses: round.conflicts.slice(0, 5) });
    }
    const merges: Promise<void>[] = [];
    // A helper is known by the address we dialled (first contact proves no key).
    const sharerOf = (a: HelpAnswer): Sharer => ({ label: formatAddress(a.target.addr.ip, a.target.addr.port), ip: a.target.addr.ip });
    // First the helpers' own records their proofs settle (helper-proof.ts), so that another helper's copy
    // of them is not key-checked (helpers know each other: the configured peers are in each other's pools).
    for (const a of round.answers) if (!a.lie && a.proof) merges.push(d.merger.merge([a.proof.record], sharerOf(a), a.proof));
    for (const a of round.answers) {
      const sharer = sharerOf(a);
      if (a.lie) {
        d.punish(sharer, a.lie);
        continue;
      }
      if (a.error) d.log("debug", "online help failed", { helper: sharer.label, error: a.error });
      if (a.observedIp) onObserved?.(a.target, a.observedIp);
      const records = a.proof ? a.records.filter((r) => r !== a.proof!.record) : a.records;
      if (records.length) merges.push(d.merger.merge(records, sharer));
    }
    await Promise.all(merges);
    d.bump("helpRounds");
  }
  return { type: "helpDone", broughtNews: d.merger.counters.recordsAdded > before };
}

/** Runs the self-check against `targets`; checkers that claimed a dial-back that never came are punished. */
export async function selfCheckRound(
  d: Pick<RoundDeps, "punish" | "signal" | "countOut">,
  checker: SelfChecker,
  targets: readonly HostPort[],
  ports: { tcpPort: number; udpPort: number },
): Promise<{ report: Awaited<ReturnType<SelfChecker["run"]>>; event: Extract<MeshEvent, { type: "selfCheckDone" }> }> {
  const report = await checker.run(targets, ports, { signal: d.signal, onRequest: d.countOut });
  for (const r of report.results) {
    if (r.lied) d.punish({ label: r.checker, ip: parseAddress(r.checker).ip }, "claimed a self-check dial-back that never came");
  }
  const detail = report.reachable
    ? { checkers: report.results.filter((r) => r.sawTcp && r.sawUdp).length }
    : { results: report.results.map((r) => ({ checker: r.checker, tcp: r.sawTcp, udp: r.sawUdp, error: r.error })) };
  return { report, event: { type: "selfCheckDone", reachable: report.reachable, observedIp: report.observedIp, detail } };
}
