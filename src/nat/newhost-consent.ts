// A delegate's own evidence that a NewHost target asked for its probes (DESIGN §6 NewHost; the delegate never
// trusts the source server's word for it). Before the formal step the client asks each would-be delegate over
// HTTPS (GET /nat/consent?port=P, the formal socket's mapped port): the TCP handshake proves the client's IP,
// and the delegate answers a token that binds that IP and P to a time:
//
//   token = issued_at_ms u64 ‖ HMAC-SHA256(run secret, LABEL ‖ ip ‖ 0 ‖ port u16 ‖ issued_at_ms)[0..16]
//
// The source server forwards the token inside the sealed order; the delegate recomputes it. Over TCP, because
// the NewHost test needs UDP silence towards the delegate: a UDP datagram to its IP would open a "seen
// destinations" NAT's filter for it (source-check.ts R4). The port is the client's claim: a host can consent
// for another port of its own public IP, never for another IP.
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { isIP } from "node:net";
import { timingSafeEqual } from "node:crypto";
import { NEWHOST_MAX_AGE_MS } from "./constants.ts";
import { RateBuckets } from "./rate-limit.ts";
import { normalizeIp, type Endpoint } from "./source-check.ts";

/** HTTPS path of the consent request on the node's TLS port. */
export const NEWHOST_CONSENT_PATH = "/nat/consent";
/** Token length: issued-at (8) and a truncated MAC (16). */
export const NEWHOST_CONSENT_BYTES = 24;
/** Consents a node hands out per client IP: a probe run asks each delegate once. */
const CONSENT_PER_IP_RATE_PER_S = 2;
const CONSENT_PER_IP_BURST = 20;

const LABEL = new TextEncoder().encode("findings/v1/newhost-consent");
const MAC_BYTES = 16;

export type ConsentRejectReason = "missing" | "malformed" | "stale" | "not-for-this-target";

export interface ConsentIssuer {
  /** A token for `target`, or null when that IP asked too often. */
  issue(target: Endpoint): Uint8Array | null;
  /** Whether `token` is one of ours for `target`, fresh within NEWHOST_MAX_AGE_MS. Never throws. */
  check(token: Uint8Array | undefined, target: Endpoint): { ok: true } | { ok: false; reason: ConsentRejectReason };
}

export function createConsentIssuer(init: { now?: () => number; secret?: Uint8Array } = {}): ConsentIssuer {
  const now = init.now ?? Date.now;
  const secret = init.secret ?? crypto.getRandomValues(new Uint8Array(32));
  const perIp = new RateBuckets(CONSENT_PER_IP_RATE_PER_S, CONSENT_PER_IP_BURST);

  function mac(target: Endpoint, issuedAt: Uint8Array): Uint8Array {
    const ip = new TextEncoder().encode(normalizeIp(target.ip));
    return hmac
      .create(sha256, secret)
      .update(LABEL)
      .update(ip)
      .update(Uint8Array.of(0, target.port >> 8, target.port & 0xff))
      .update(issuedAt)
      .digest()
      .subarray(0, MAC_BYTES);
  }

  return {
    issue(target) {
      const t = now();
      if (!perIp.take(normalizeIp(target.ip), t)) return null;
      const token = new Uint8Array(NEWHOST_CONSENT_BYTES);
      new DataView(token.buffer).setBigUint64(0, BigInt(Math.floor(t)));
      token.set(mac(target, token.subarray(0, 8)), 8);
      return token;
    },
    check(token, target) {
      if (!token || token.length === 0) return { ok: false, reason: "missing" };
      if (token.length !== NEWHOST_CONSENT_BYTES || isIP(target.ip) === 0) return { ok: false, reason: "malformed" };
      const issuedAt = Number(new DataView(token.buffer, token.byteOffset, 8).getBigUint64(0));
      if (Math.abs(now() - issuedAt) > NEWHOST_MAX_AGE_MS) return { ok: false, reason: "stale" };
      const want = mac(target, token.subarray(0, 8));
      return timingSafeEqual(want, token.subarray(8)) ? { ok: true } : { ok: false, reason: "not-for-this-target" };
    },
  };
}

/** GET /nat/consent?port=P on the TLS port: a token for the asking IP and port P (JSON), 429 when that IP asked
 *  too often, 400 for a bad port. What the HTTPS route table needs of a request. */
export function consentRoute(issuer: ConsentIssuer): (req: { query: URLSearchParams; remote: { ip: string } }) => { status: number; headers: Record<string, string>; body: string } {
  const json = (status: number, value: unknown) => ({ status, headers: { "content-type": "application/json" }, body: `${JSON.stringify(value)}\n` });
  return (req) => {
    const text = req.query.get("port") ?? "";
    const port = /^\d{1,5}$/.test(text) ? Number(text) : 0;
    if (port < 1 || port > 65535) return json(400, { error: "port must be 1-65535" });
    const target = { ip: normalizeIp(req.remote.ip), port };
    const token = issuer.issue(target);
    if (!token) return json(429, { error: "too many consent requests from this address" });
    return json(200, consentAnswer(token, target));
  };
}

/** The body of a consent answer: the token in hex and the ip:port it is for (the client checks it is its own). */
export function consentAnswer(token: Uint8Array, target: Endpoint): { token: string; ip: string; port: number } {
  return { token: bytesToHex(token), ip: normalizeIp(target.ip), port: target.port };
}
