// Reading what the node tells an app about one punch (PunchInfo, PunchAnswer) and what a peer says on a
// punched link (PunchHello), with every field checked before use (DESIGN §4 "every decoder enforces a size
// limit"; STYLE §6). App side of proto/punch.proto and proto/punch-link.proto.
import { bytesToHex } from "@noble/hashes/utils.js";
import { isIP } from "node:net";
import { MAX_QUIC_REQUEST_BYTES } from "../constants.ts";
import { DecodeError } from "../errors.ts";
import { natFromProto, type NatClassName } from "../nat/index.ts";
import { decodeMessage } from "../wire/index.ts";
import { PunchHelloAnswerSchema, PunchHelloSchema } from "../wire/index.ts";
import { AddressChangeSchema, PunchAnswerSchema, PunchInfoSchema, PunchRole, type PunchInfo } from "../wire/index.ts";
import {
  MAX_PUNCH_TOKEN_BYTES,
  MIN_PUNCH_TOKEN_BYTES,
  NODE_ID_HEX_CHARS,
  PUNCH_ATTEMPT_ID_BYTES,
  SPKI_BYTES,
  SPRAY_PORT_MIN,
} from "./constants.ts";
import type { PunchStrategyName, SprayParams } from "./punch-strategy.ts";

/** Largest PunchInfo accepted: addresses, tokens, a SPKI, a spray plan and a one-line reason, with room. */
export const MAX_PUNCH_INFO_BYTES = 4096;
/** Largest PunchHello / PunchHelloAnswer: an id, a token and a node id. */
export const MAX_PUNCH_HELLO_BYTES = 256;
/** An AddressChange holds two addresses: a few dozen bytes. */
export const MAX_ADDRESS_CHANGE_BYTES = 256;
/** Most sockets a spray plan may ask the symmetric side to open: a node cannot make an app exhaust its fds. */
export const MAX_SPRAY_SOCKETS = 512;
/** Most probes per round a spray plan may ask of the cone side. */
export const MAX_SPRAY_PROBES = 8192;
/** Slowest and fastest pacing accepted for spray probes, in ms. */
export const MIN_SPRAY_INTERVAL_MS = 1;
export const MAX_SPRAY_INTERVAL_MS = 1000;

const STRATEGIES: readonly PunchStrategyName[] = ["direct", "simultaneous", "sym-to-restricted", "sym-to-cone-spray"];

/** A checked PunchInfo: the plain fields an attempt needs. */
export interface PunchOffer {
  attemptId: Uint8Array;
  attemptHex: string;
  peerId: string;
  peerKind: string;
  ip: string;
  port: number;
  /** The peer's token: its openers and its hello are checked with it. */
  peerToken: Uint8Array;
  ownToken: Uint8Array;
  peerNat: NatClassName | null;
  /** Hex SHA-256 of the peer's SPKI (the pin when we dial). */
  peerSpki: string;
  strategy: Exclude<PunchStrategyName, "impossible">;
  role: "dial" | "listen";
  listenerOpens: boolean;
  expectSuccess: boolean;
  reason: string;
  spray: SprayParams | null;
}

function need(cond: boolean, place: string, msg: string): void {
  if (!cond) throw new DecodeError(place, msg);
}

/** Checks a decoded PunchInfo; throws DecodeError naming the bad field. */
export function checkPunchInfo(m: PunchInfo): PunchOffer {
  const place = "PunchInfo";
  need(m.attemptId.length === PUNCH_ATTEMPT_ID_BYTES, place, `attempt_id must be ${PUNCH_ATTEMPT_ID_BYTES} bytes, got ${m.attemptId.length}`);
  need(m.peerId.length === NODE_ID_HEX_CHARS && /^[0-9a-f]+$/i.test(m.peerId), place, `peer_id must be ${NODE_ID_HEX_CHARS} hex digits`);
  need(isIP(m.ip) !== 0, place, `ip ${JSON.stringify(m.ip.slice(0, 64))} is not an IP address`);
  need(m.port >= 1 && m.port <= 65535, place, `port ${m.port} is not 1..65535`);
  for (const [name, t] of [["token", m.token], ["own_token", m.ownToken]] as const) {
    need(t.length >= MIN_PUNCH_TOKEN_BYTES && t.length <= MAX_PUNCH_TOKEN_BYTES, place, `${name} must be ${MIN_PUNCH_TOKEN_BYTES}..${MAX_PUNCH_TOKEN_BYTES} bytes, got ${t.length}`);
  }
  need(m.spki.length === SPKI_BYTES, place, `spki must be ${SPKI_BYTES} bytes, got ${m.spki.length}`);
  need((STRATEGIES as readonly string[]).includes(m.strategy), place, `strategy ${JSON.stringify(m.strategy.slice(0, 32))} is not one of ${STRATEGIES.join(", ")}`);
  need(m.role === PunchRole.DIAL || m.role === PunchRole.LISTEN, place, "role must be DIAL or LISTEN");
  need(m.peerKind.length <= 64 && m.reason.length <= 512, place, "peer_kind or reason too long");
  let spray: PunchOffer["spray"] = null;
  if (m.strategy === "sym-to-cone-spray") {
    const s = m.spray;
    need(s !== undefined, place, "sym-to-cone-spray needs a spray plan");
    const p = s!;
    need(p.sockets >= 1 && p.sockets <= MAX_SPRAY_SOCKETS, place, `spray.sockets must be 1..${MAX_SPRAY_SOCKETS}, got ${p.sockets}`);
    need(p.probes >= 1 && p.probes <= MAX_SPRAY_PROBES, place, `spray.probes must be 1..${MAX_SPRAY_PROBES}, got ${p.probes}`);
    need(p.portMin >= SPRAY_PORT_MIN && p.portMin <= p.portMax && p.portMax <= 65535, place, `spray port range ${p.portMin}..${p.portMax} is not inside ${SPRAY_PORT_MIN}..65535`);
    need(p.probeIntervalMs >= MIN_SPRAY_INTERVAL_MS && p.probeIntervalMs <= MAX_SPRAY_INTERVAL_MS, place, `spray.probe_interval_ms must be ${MIN_SPRAY_INTERVAL_MS}..${MAX_SPRAY_INTERVAL_MS}`);
    const predicted =
      p.predictedBase > 0 && p.predictedDelta !== 0 && p.predictedCount > 0
        ? { base: Math.min(p.predictedBase, 65535), delta: p.predictedDelta, count: Math.min(p.predictedCount, p.probes) }
        : null;
    spray = { sockets: p.sockets, probes: p.probes, portMin: p.portMin, portMax: p.portMax, probeIntervalMs: p.probeIntervalMs, predicted, odds: p.odds };
  }
  return {
    attemptId: m.attemptId,
    attemptHex: bytesToHex(m.attemptId),
    peerId: m.peerId.toLowerCase(),
    peerKind: m.peerKind,
    ip: m.ip,
    port: m.port,
    peerToken: m.token,
    ownToken: m.ownToken,
    peerNat: natFromProto(m.natt),
    peerSpki: bytesToHex(m.spki),
    strategy: m.strategy as PunchOffer["strategy"],
    role: m.role === PunchRole.DIAL ? "dial" : "listen",
    listenerOpens: m.listenerOpens,
    expectSuccess: m.expectSuccess,
    reason: m.reason,
    spray,
  };
}

/** A pushed offer (node → app, "punch.offer"). */
export function readPunchOffer(payload: Uint8Array): PunchOffer {
  return checkPunchInfo(decodeMessage(PunchInfoSchema, payload, "PunchInfo", MAX_PUNCH_INFO_BYTES));
}

/** The node's answer to a punch request: one offer per matched peer. */
export function readPunchAnswer(payload: Uint8Array): PunchOffer[] {
  const m = decodeMessage(PunchAnswerSchema, payload, "PunchAnswer", MAX_QUIC_REQUEST_BYTES);
  return m.offers.map(checkPunchInfo);
}

export function readPunchHello(payload: Uint8Array): { attemptId: Uint8Array; token: Uint8Array; nodeId: string } {
  const m = decodeMessage(PunchHelloSchema, payload, "PunchHello", MAX_PUNCH_HELLO_BYTES);
  need(m.attemptId.length === PUNCH_ATTEMPT_ID_BYTES, "PunchHello", `attempt_id must be ${PUNCH_ATTEMPT_ID_BYTES} bytes`);
  need(m.token.length >= MIN_PUNCH_TOKEN_BYTES && m.token.length <= MAX_PUNCH_TOKEN_BYTES, "PunchHello", "token has a bad length");
  need(m.nodeId.length === NODE_ID_HEX_CHARS, "PunchHello", `node_id must be ${NODE_ID_HEX_CHARS} hex digits`);
  return { attemptId: m.attemptId, token: m.token, nodeId: m.nodeId.toLowerCase() };
}

export function readPunchHelloAnswer(payload: Uint8Array): { token: Uint8Array; nodeId: string } {
  const m = decodeMessage(PunchHelloAnswerSchema, payload, "PunchHelloAnswer", MAX_PUNCH_HELLO_BYTES);
  return { token: m.token, nodeId: m.nodeId.toLowerCase() };
}

/** The node's punch.address: our new public address and the one before; throws DecodeError when malformed. */
export function readAddressChange(payload: Uint8Array): { address: { ip: string; port: number }; previous: { ip: string; port: number } } {
  const m = decodeMessage(AddressChangeSchema, payload, "AddressChange", MAX_ADDRESS_CHANGE_BYTES);
  need(isIP(m.ip) !== 0 && m.port >= 1 && m.port <= 65_535, "AddressChange", "the new address is not an ip:port");
  return { address: { ip: m.ip, port: m.port }, previous: { ip: m.previousIp, port: m.previousPort } };
}
