// The per-run self-signed certificate (seed 001 §连接安全: "一次性", in memory only) and its SPKI pin.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { certificate, spkiBytesOf, tbsCertificate } from "./der.ts";

export interface RunCertificate {
  /** PEM of the certificate, for TLS servers and for sealing to peers. */
  readonly certPem: string;
  /** PEM (PKCS#8) of the private key; never leaves the process. */
  readonly keyPem: string;
  /** Hex SHA-256 of the SubjectPublicKeyInfo DER: what links are pinned to. */
  readonly spki: string;
  readonly der: Uint8Array;
}

const ALG = { name: "ECDSA", namedCurve: "P-256" } as const;

/** ECDSA P-256: small, fast, and accepted by quiche (BoringSSL), Bun's TLS and curl alike. Built with
 *  WebCrypto and der.ts: version 3, a random positive serial, CN=`commonName` as issuer and subject, a
 *  critical basicConstraints cA=false. */
export async function createRunCertificate(commonName = "findings"): Promise<RunCertificate> {
  const keys = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const serial = crypto.getRandomValues(new Uint8Array(8));
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and 8 bytes long
  const tbs = tbsCertificate({
    serial,
    name: commonName,
    // Backdated an hour so peers with a slightly slow clock accept it.
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 365 * 24 * 3600_000),
    spkiDer: new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey)),
  });
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, tbs));
  const der = certificate(tbs, signature);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return {
    certPem: toPem(der, "CERTIFICATE"),
    keyPem: toPem(pkcs8, "PRIVATE KEY"),
    spki: spkiOfDer(der),
    der,
  };
}

/** SPKI fingerprint of a DER certificate; throws on anything that is not one. */
export function spkiOfDer(der: Uint8Array): string {
  return bytesToHex(sha256(spkiBytesOf(der)));
}

/** SPKI fingerprint of a PEM certificate; throws on anything that is not one. */
export function spkiOfPem(pem: string): string {
  return spkiOfDer(pemToDer(pem));
}

/** The DER of the first CERTIFICATE block of `pem`; throws when there is none. */
export function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error("not a PEM certificate");
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64"));
}

function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
