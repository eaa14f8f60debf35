// The app-side punch client's surface: its options, what it returns, and the node's refusal as an error
// (the protocol and the implementation are in punch-client.ts).
import { FindingsError, PeerError } from "../errors.ts";
import type { RunCertificate } from "../identity/index.ts";
import type { NodeKey } from "../identity/index.ts";
import type { NatClassName } from "../nat/index.ts";
import type { QuicLink, RawStream, UdpEndpoint } from "../transport/index.ts";
import { ANY_TRUST, perHost, type MethodPolicy, type RpcHandler } from "../rpc/index.ts";
import { Status, statusName } from "../wire/index.ts";
import type { PunchResult } from "./punch-result.ts";
import type { Logger } from "../contracts/index.ts";

export interface PunchClientComponents {
  /** The app's X25519 identity: node id = SHA-256 of its public key (peers punch us by it). */
  key: NodeKey;
  /** The certificate punched peers pin; a fresh one per run when absent (DESIGN §3). */
  cert?: RunCertificate;
  log?: Logger;
}

export interface PunchClientInit {
  /** The Findings node: address and X25519 key (from its record or "ip:port#key"). */
  server: { ip: string; port: number; publicKey: Uint8Array };
  /** App kind whose pool to join, e.g. "app:chat". */
  kind: string;
  /** Our NAT class (findings probe); null = unknown: only Public/FullC peers can then be punched. */
  nat: NatClassName | null;
  /** Symmetric NATs: constant port allocation step, if the probe saw one. */
  portDelta?: number | null;
  /** Local address to bind. @default "0.0.0.0" for an IPv4 node, "::" for IPv6 */
  host?: string;
  /** Local UDP port. @default 0 (any) */
  port?: number;
  /** Per attempt. @default PUNCH_ATTEMPT_TIMEOUT_MS (SPRAY_ATTEMPT_TIMEOUT_MS for sprays) */
  attemptTimeoutMs?: number;
  /** Bootstrap and join again when the node link drops. @default true */
  rejoin?: boolean;
  /** Every finished attempt: ours and the ones the node offered (re-offers included). */
  onResult?: (result: PunchResult, link: QuicLink | null) => void;
  /** Every successful join (the first and each rejoin). */
  onJoin?: (info: JoinInfo) => void;
  /** The node saw our NAT re-map the live link to it: our public address changed (`joined.address` follows). */
  onAddress?: (change: AddressChange) => void;
  /** Raw streams a punched peer opens (only peers that proved their token or our pin); without it they are
   *  reset. The handler owns the stream. */
  onStream?: (stream: RawStream, peerId: string, link: QuicLink) => void;
  /** A punched peer's link closed (the peer left, idled out, or was replaced by a newer link). */
  onPeerClose?: (peerId: string, link: QuicLink) => void;
}

export interface JoinInfo {
  nodeId: string;
  kind: string;
  /** The node's reward address for this kind (seed 000 §经济激励); "" when it has none. */
  stakeAddress: string;
  stakeSource: string;
  identityId: string;
  /** Our public address as the node sees it. */
  address: string;
  rejoined: boolean;
  addressChanged: boolean;
}

export interface AddressChange {
  /** Our public address as the node sees it now, "ip:port". */
  address: string;
  previous: string;
}

export interface PunchClient {
  readonly nodeId: string;
  readonly joined: JoinInfo | undefined;
  /** Local port of the socket (after start). */
  readonly port: number;
  readonly endpoint: UdpEndpoint;
  /** Bootstraps to the node and joins its pool; throws PunchRefusedError (e.g. FULL) or PeerError. */
  start(opts?: { signal?: AbortSignal }): Promise<JoinInfo>;
  /** Idempotent: says app.leave to the node (unless `leave: false`), closes peer links, the node link and
   *  the socket. Without the goodbye the node treats our next join from another address as a mapping change
   *  and re-offers our recent peers (signalling coordination). */
  stop(opts?: { leave?: boolean }): Promise<void>;
  /** Directed punch (targetId) or random punch (null): one result per peer the node offered. Throws
   *  PunchRefusedError when the node refuses (NOT_FOUND target, incompatible NATs, …). */
  punch(targetId?: string | null, opts?: { max?: number; targetKind?: string; signal?: AbortSignal }): Promise<PunchResult[]>;
  /** Live punched links by peer id. */
  peers(): Array<{ peerId: string; link: QuicLink; result: PunchResult }>;
  /** Handler for the app's own requests on punched links. @default policy APP_METHOD_POLICY */
  handle(method: string, handler: RpcHandler, policy?: MethodPolicy): void;
  counters(): Record<string, number>;
}

/** What an app's own method allows on punched links unless it says otherwise. */
export const APP_METHOD_POLICY: MethodPolicy = { transports: ["quic"], trust: ANY_TRUST, rate: perHost(50, 200), maxInFlight: 64, maxPayloadBytes: 16 * 1024 };

/** The node answered a join or punch request with a refusal. */
export class PunchRefusedError extends PeerError {
  readonly status: Status;
  constructor(method: string, status: Status, error: string) {
    super(`${method} refused (${statusName(status)}): ${error || "no reason given"}`);
    this.name = "PunchRefusedError";
    this.status = status;
  }
}

/** Whether an error is the node's refusal (as opposed to a network failure). */
export function isPunchRefused(err: unknown): err is PunchRefusedError {
  return err instanceof PunchRefusedError || (err instanceof FindingsError && err.name === "PunchRefusedError");
}
