// Reading the app-service requests off the wire and the Envelope status of each refusal (proto/punch.proto;
// DESIGN §4 "every decoder enforces a size limit and rejects what it cannot parse with a typed error";
// STYLE §6). Readers throw LimitError / DecodeError only; handlers turn them into BAD_REQUEST.
import { bytesToHex } from "@noble/hashes/utils.js";
import { isValidKind, MAX_KIND_CHARS } from "../wire/index.ts";
import { X25519_KEY_BYTES } from "../constants.ts";
import { DecodeError } from "../errors.ts";
import { nodeIdOf } from "../identity/index.ts";
import { natFromProto, type NatClassName } from "../nat/index.ts";
import { decodeMessage, Status } from "../wire/index.ts";
import { AppJoinSchema, PunchRequestSchema, ShareFetchSchema, ShareRegisterSchema } from "../wire/index.ts";
import type { JoinResult } from "./app-pool.ts";
import { MAX_PREDICT_DELTA, NODE_ID_HEX_CHARS, SHARE_FETCH_MAX, SPKI_BYTES } from "./constants.ts";
import type { PunchMatchError } from "./punch-match.ts";
import type { ShareRefusal } from "../share/index.ts";
import type { StakeAnswer } from "./stakes.ts";

/** Largest payload of any app-service request: a kind, an id, a key and framing, with room. */
export const MAX_PUNCH_REQUEST_BYTES = 1024;

export interface AppJoinRequest {
  kind: string;
  /** Lower-case hex. */
  nodeId: string;
  /** null: NAT_UNKNOWN or a value this build does not know. */
  nat: NatClassName | null;
  spki: Uint8Array;
  publicKey: Uint8Array | null;
  portDelta: number | null;
}

export interface PunchRequestIn {
  kind: string;
  /** null = random punch. */
  targetId: string | null;
  targetKind: string | undefined;
  /** Random punch: peers wanted, 0 = as many as the node gives (peers_punch). */
  max: number;
}

export interface ShareRegisterIn {
  kind: string;
  /** "" = the connection's source IP. */
  ip: string;
  port: number;
}

export interface ShareFetchIn {
  kind: string;
  /** 1..SHARE_FETCH_MAX. */
  max: number;
  /** Mesh hops to search (0 = own entries); not clamped here (the share search clamps it). */
  hops: number;
}

function checkKind(place: string, kind: string, field = "kind"): string {
  if (kind.length === 0 || kind.length > MAX_KIND_CHARS) throw new DecodeError(place, `${field} must be 1..${MAX_KIND_CHARS} characters, got ${kind.length}`);
  if (kind === "*" || !isValidKind(kind)) throw new DecodeError(place, `${field} ${JSON.stringify(kind)} is not an app kind like "blockchain:bitcoin"`);
  return kind;
}

function checkNodeId(place: string, id: string, field: string): string {
  if (id.length !== NODE_ID_HEX_CHARS || !/^[0-9a-fA-F]+$/.test(id)) throw new DecodeError(place, `${field} must be ${NODE_ID_HEX_CHARS} hex digits`);
  return id.toLowerCase();
}

export function readAppJoin(payload: Uint8Array): AppJoinRequest {
  const place = "AppJoin";
  const m = decodeMessage(AppJoinSchema, payload, place, MAX_PUNCH_REQUEST_BYTES);
  const kind = checkKind(place, m.kind);
  const nodeId = checkNodeId(place, m.nodeId, "node_id");
  if (m.spki.length !== SPKI_BYTES) throw new DecodeError(place, `spki must be ${SPKI_BYTES} bytes, got ${m.spki.length}`);
  let publicKey: Uint8Array | null = null;
  if (m.publicKey.length > 0) {
    if (m.publicKey.length !== X25519_KEY_BYTES) throw new DecodeError(place, `public_key must be ${X25519_KEY_BYTES} bytes, got ${m.publicKey.length}`);
    if (nodeIdOf(m.publicKey) !== nodeId) throw new DecodeError(place, "node_id is not the SHA-256 of public_key");
    publicKey = m.publicKey;
  }
  let portDelta: number | null = null;
  if (m.portDelta !== undefined) {
    if (m.portDelta === 0 || Math.abs(m.portDelta) > MAX_PREDICT_DELTA) throw new DecodeError(place, `port_delta must be ±1..${MAX_PREDICT_DELTA}, got ${m.portDelta}`);
    portDelta = m.portDelta;
  }
  return { kind, nodeId, nat: natFromProto(m.nat), spki: m.spki, publicKey, portDelta };
}

/** The joining node id must be the one the connection was bound with (app.bind, DESIGN §3): otherwise one
 *  connection could join under many ids, or under someone else's. Returns a refusal line, or null. */
export function checkJoinIdentity(join: Pick<AppJoinRequest, "nodeId">, boundKey: Uint8Array): string | null {
  const bound = nodeIdOf(boundKey);
  return bound === join.nodeId ? null : `node_id ${join.nodeId.slice(0, 16)}… is not the id of this connection's key (${bound.slice(0, 16)}…)`;
}

export function readPunchRequest(payload: Uint8Array): PunchRequestIn {
  const place = "PunchRequest";
  const m = decodeMessage(PunchRequestSchema, payload, place, MAX_PUNCH_REQUEST_BYTES);
  const kind = checkKind(place, m.kind);
  const targetId = m.targetId === "" ? null : checkNodeId(place, m.targetId, "target_id");
  if (targetId === null && m.targetKind !== "") throw new DecodeError(place, "target_kind needs a target_id");
  const targetKind = m.targetKind === "" ? undefined : checkKind(place, m.targetKind, "target_kind");
  return { kind, targetId, targetKind, max: m.max };
}

export function readShareRegister(payload: Uint8Array): ShareRegisterIn {
  const place = "ShareRegister";
  const m = decodeMessage(ShareRegisterSchema, payload, place, MAX_PUNCH_REQUEST_BYTES);
  const kind = checkKind(place, m.kind);
  if (m.ip.length > 64) throw new DecodeError(place, `ip must be at most 64 characters, got ${m.ip.length}`);
  if (m.port < 1 || m.port > 65535) throw new DecodeError(place, `port ${m.port} is not 1..65535`);
  return { kind, ip: m.ip, port: m.port };
}

export function readShareFetch(payload: Uint8Array): ShareFetchIn {
  const place = "ShareFetch";
  const m = decodeMessage(ShareFetchSchema, payload, place, MAX_PUNCH_REQUEST_BYTES);
  const kind = checkKind(place, m.kind);
  return { kind, max: m.max === 0 ? SHARE_FETCH_MAX : Math.min(m.max, SHARE_FETCH_MAX), hops: m.hops };
}

/** AppJoinAnswer fields (encodeMessage(AppJoinAnswerSchema, …)) for a join that succeeded. */
export function appJoinAnswerInit(stake: StakeAnswer, result: Extract<JoinResult, { status: "joined" | "rejoined" }>) {
  return {
    kind: stake.kind,
    stakeAddress: stake.stakeAddress,
    stakeSource: stake.source,
    identityId: stake.identityId,
    ip: result.member.address.ip,
    port: result.member.address.port,
    rejoined: result.status === "rejoined",
    addressChanged: result.status === "rejoined" && result.addressChanged,
  };
}

/** Envelope status for a failed match (punch-match.ts). */
export function statusOfMatchError(error: PunchMatchError): Status {
  switch (error) {
    case "target-not-in-pool":
    case "no-peers":
      return Status.NOT_FOUND;
    case "same-node":
    case "same-endpoint":
      return Status.BAD_REQUEST;
    case "kind-not-served":
    case "requester-not-joined":
    case "incompatible":
      return Status.REFUSED;
  }
}

/** Envelope status for a refused registration (share-pool.ts). */
export function statusOfShareRefusal(reason: ShareRefusal): Status {
  switch (reason) {
    case "full":
      return Status.FULL;
    case "too-many-pending":
    case "in-progress":
      return Status.RATE_LIMITED;
    case "bad-address":
      return Status.BAD_REQUEST;
    case "kind-not-served":
    case "not-your-address":
    case "too-many-per-ip":
      return Status.REFUSED;
  }
}

/** Short hex of bytes for log lines (tokens, attempt ids). */
export function shortHex(bytes: Uint8Array, n = 8): string {
  return bytesToHex(bytes.subarray(0, n));
}
