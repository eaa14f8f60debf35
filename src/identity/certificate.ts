// The per-run self-signed certificate (seed 001 §连接安全: "一次性", in memory only) and its SPKI pin.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

export interface RunCertificate {
  /** PEM of the certificate, for TLS servers and for sealing to peers. */
  readonly certPem: string;
  /** PEM (PKCS#8) of the private key; never leaves the process. */
  readonly keyPem: string;
  /** Hex SHA-256 of the SubjectPublicKeyInfo DER: what links are pinned to. */
  readonly spki: string;
  readonly der: Uint8Array;
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** ECDSA P-256: small, fast, and accepted by quiche (BoringSSL), Bun's TLS and curl alike. */
export async function createRunCertificate(commonName = "findings"): Promise<RunCertificate> {
  x509.cryptoProvider.set(crypto);
  const keys = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: bytesToHex(crypto.getRandomValues(new Uint8Array(8))).replace(/^[89a-f]/, "1"),
    name: `CN=${commonName}`,
    // Backdated an hour so peers with a slightly slow clock accept it.
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 365 * 24 * 3600_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const der = new Uint8Array(cert.rawData);
  return {
    certPem: cert.toString("pem"),
    keyPem: toPem(pkcs8, "PRIVATE KEY"),
    spki: spkiOfDer(der),
    der,
  };
}

/** SPKI fingerprint of a DER certificate. */
export function spkiOfDer(der: Uint8Array): string {
  const cert = new x509.X509Certificate(new Uint8Array(der));
  return bytesToHex(sha256(new Uint8Array(cert.publicKey.rawData)));
}

/** SPKI fingerprint of a PEM certificate; throws on anything that is not one. */
export function spkiOfPem(pem: string): string {
  return spkiOfDer(new Uint8Array(new x509.X509Certificate(pem).rawData));
}

export function pemToDer(pem: string): Uint8Array {
  return new Uint8Array(new x509.X509Certificate(pem).rawData);
}

function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
