// Self-check at start: peers confirm we are publicly reachable before we serve (DESIGN §3, §9 --public; seed 001 §节点组网 公网节点).
//
// 1. The asker sends `mesh.self-check` {tcp_port, udp_port, nonce} over QUIC from its shared UDP
//    socket, so the source IP the checker sees is the address the node really sends from (a TCP
//    dial may leave from another local address on a multi-homed host).
// 2. The checker dials back that source IP — never an IP named in the request, so nobody can aim
//    it at a third party — once over TLS (`mesh.self-check-echo` on a first-contact WSS link) and
//    once over QUIC, each carrying the nonce, then answers {observed_ip, tcp_reachable, udp_reachable}.
// 3. The asker trusts only what it saw itself: an echo with its nonce on each transport. A checker
//    that claims a dial-back that never arrived is lying (the caller bans it).
import { bytesToHex, randomBytes } from "@noble/hashes/utils.js";
import { errorLine } from "../errors.ts";
import { formatAddress, type HostPort } from "../contracts/index.ts";
import { METHOD } from "../rpc/index.ts";
import type { MeshNet, MeshUdp } from "./core-link.ts";
import { decodeMessage, encodeMessage, Status } from "../wire/index.ts";
import { SelfCheckEchoRequestSchema } from "../wire/index.ts";
import { decodeSelfCheckAnswer, decodeSelfCheckRequest, encodeSelfCheckAnswer, encodeSelfCheckRequest } from "./mesh-messages.ts";
import { MAX_SMALL_MESSAGE_BYTES, SELF_CHECK_NONCE_BYTES } from "./mesh-service-constants.ts";

/** Self-check: the asker waits this long for all answers (the checker dials back twice). */
const SELF_CHECK_TIMEOUT_MS = 8_000;
/** Self-check: one dial-back (TCP or QUIC) on the checker's side, in ms. */
const SELF_CHECK_DIAL_BACK_TIMEOUT_MS = 3_000;
/** Checkers asked at once: one that reaches us is enough; a few, so that one busy or hostile checker
 *  does not keep us from serving. */
export const SELF_CHECKERS = 3;
/** Self-checks one source IP may ask of us: each makes us dial twice. 1 per 10 s, bursts of 3. */
export const SELF_CHECK_RATE_PER_S = 0.1;
export const SELF_CHECK_BURST = 3;

export interface SelfCheckTargetResult {
  /** The checker, "ip:port" (its UDP port). */
  checker: string;
  /** Our IP as the checker saw it; null when it did not answer. */
  observedIp: string | null;
  /** What the checker claimed. */
  claimedTcp: boolean;
  claimedUdp: boolean;
  /** What we saw: an echo with this check's nonce. */
  sawTcp: boolean;
  sawUdp: boolean;
  /** Claimed a dial-back we never saw. */
  lied: boolean;
  error: string | null;
}

export interface SelfCheckReport {
  /** At least one checker reached us over both TLS and QUIC. */
  reachable: boolean;
  /** The IP most checkers saw, or null. */
  observedIp: string | null;
  results: SelfCheckTargetResult[];
  elapsedMs: number;
}

/** The asker's side. One instance per node: echo() is wired to both transports' handlers. */
export interface SelfChecker {
  /** Handles `mesh.self-check-echo`: OK when the nonce belongs to a check in progress. */
  echo(payload: Uint8Array, via: "tcp" | "udp"): { status: Status; error?: string };
  /** Steps 1 and 3 against each target at once. Never throws. */
  run(targets: readonly HostPort[], ports: { tcpPort: number; udpPort: number }, opts?: { signal?: AbortSignal; onRequest?: (method: string) => void }): Promise<SelfCheckReport>;
}

export function createSelfChecker(components: { udp: Pick<MeshUdp, "dial"> }): SelfChecker {
  const pending = new Map<string, { tcp: boolean; udp: boolean }>();

  async function ask(target: HostPort, ports: { tcpPort: number; udpPort: number }, signal: AbortSignal | undefined, onRequest?: (m: string) => void): Promise<SelfCheckTargetResult> {
    const nonce = randomBytes(SELF_CHECK_NONCE_BYTES);
    const key = bytesToHex(nonce);
    const seen = { tcp: false, udp: false };
    pending.set(key, seen);
    const result: SelfCheckTargetResult = {
      checker: formatAddress(target.ip, target.port),
      observedIp: null,
      claimedTcp: false,
      claimedUdp: false,
      sawTcp: false,
      sawUdp: false,
      lied: false,
      error: null,
    };
    try {
      const link = await components.udp.dial(target, { signal, timeoutMs: SELF_CHECK_DIAL_BACK_TIMEOUT_MS });
      try {
        onRequest?.(METHOD.mesh.selfCheck);
        const answer = await link.request(METHOD.mesh.selfCheck, encodeSelfCheckRequest({ ...ports, nonce }), { signal, timeoutMs: SELF_CHECK_TIMEOUT_MS });
        if (answer.status !== Status.OK) throw new Error(`${METHOD.mesh.selfCheck} answered ${Status[answer.status] ?? answer.status}: ${answer.error}`);
        const body = decodeSelfCheckAnswer(answer.payload);
        result.observedIp = body.observedIp || null;
        result.claimedTcp = body.tcpReachable;
        result.claimedUdp = body.udpReachable;
      } finally {
        await link.close().catch(() => {});
      }
    } catch (err) {
      result.error = errorLine(err);
    } finally {
      pending.delete(key);
    }
    result.sawTcp = seen.tcp;
    result.sawUdp = seen.udp;
    result.lied = (result.claimedTcp && !seen.tcp) || (result.claimedUdp && !seen.udp);
    return result;
  }

  return {
    echo(payload, via) {
      const nonce = decodeMessage(SelfCheckEchoRequestSchema, payload, "self-check echo", MAX_SMALL_MESSAGE_BYTES).nonce;
      const entry = pending.get(bytesToHex(nonce));
      if (nonce.length !== SELF_CHECK_NONCE_BYTES || !entry) return { status: Status.NOT_FOUND, error: "no self-check waits for this nonce" };
      entry[via] = true;
      return { status: Status.OK };
    },
    async run(targets, ports, opts = {}) {
      const t0 = performance.now();
      const results = await Promise.all(targets.map((t) => ask(t, ports, opts.signal, opts.onRequest)));
      const votes = new Map<string, number>();
      for (const r of results) if (r.observedIp && !r.lied) votes.set(r.observedIp, (votes.get(r.observedIp) ?? 0) + 1);
      let observedIp: string | null = null;
      let best = 0;
      for (const [ip, n] of votes) if (n > best) [observedIp, best] = [ip, n];
      return { reachable: results.some((r) => r.sawTcp && r.sawUdp), observedIp, results, elapsedMs: performance.now() - t0 };
    },
  };
}

/** Step 2 on the checker: dial back the asker's source IP on both transports. Never throws. */
export async function answerSelfCheck(
  deps: { udp: Pick<MeshUdp, "dial">; links: Pick<MeshNet, "dialUntrusted"> },
  payload: Uint8Array,
  sourceIp: string,
  opts: { signal?: AbortSignal; onRequest?: (method: string) => void } = {},
): Promise<{ status: Status; payload?: Uint8Array; error?: string }> {
  let req;
  try {
    req = decodeSelfCheckRequest(payload);
  } catch (err) {
    return { status: Status.BAD_REQUEST, error: errorLine(err) };
  }
  const timeoutMs = SELF_CHECK_DIAL_BACK_TIMEOUT_MS;
  const viaTcp = async (): Promise<boolean> => {
    try {
      const link = await deps.links.dialUntrusted({ ip: sourceIp, port: req.tcpPort }, { signal: opts.signal, timeoutMs });
      try {
        opts.onRequest?.(METHOD.mesh.selfCheckEcho);
        const answer = await link.request(METHOD.mesh.selfCheckEcho, encodeMessage(SelfCheckEchoRequestSchema, { nonce: req.nonce }), { signal: opts.signal, timeoutMs });
        return answer.status === Status.OK;
      } finally {
        link.close();
      }
    } catch {
      return false;
    }
  };
  const viaUdp = async (): Promise<boolean> => {
    try {
      const link = await deps.udp.dial({ ip: sourceIp, port: req.udpPort }, { signal: opts.signal, timeoutMs });
      try {
        opts.onRequest?.(METHOD.mesh.selfCheckEcho);
        const answer = await link.request(METHOD.mesh.selfCheckEcho, encodeMessage(SelfCheckEchoRequestSchema, { nonce: req.nonce }), { signal: opts.signal, timeoutMs });
        return answer.status === Status.OK;
      } finally {
        await link.close().catch(() => {});
      }
    } catch {
      return false;
    }
  };
  const [tcpReachable, udpReachable] = await Promise.all([viaTcp(), viaUdp()]);
  return { status: Status.OK, payload: encodeSelfCheckAnswer({ observedIp: sourceIp, tcpReachable, udpReachable }) };
}
