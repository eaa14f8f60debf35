import { describe, expect, test } from "bun:test";
import { X509Certificate, createHash } from "node:crypto";
import { createRunCertificate, spkiOfDer, spkiOfPem } from "../../src/identity/certificate.ts";

describe("run certificate", () => {
  test("SPKI fingerprint is stable for one certificate and matches its public key", async () => {
    const c = await createRunCertificate();
    expect(c.spki).toMatch(/^[0-9a-f]{64}$/);
    expect(spkiOfPem(c.certPem)).toBe(c.spki);
    expect(spkiOfDer(c.der)).toBe(c.spki);
    const spkiDer = new X509Certificate(c.certPem).publicKey.export({ type: "spki", format: "der" });
    expect(createHash("sha256").update(spkiDer).digest("hex")).toBe(c.spki);
  });

  test("each run gets a new key pair, so a new SPKI", async () => {
    const [a, b] = await Promise.all([createRunCertificate(), createRunCertificate()]);
    expect(a.spki).not.toBe(b.spki);
  });

  test("is a valid self-signed certificate for TLS", async () => {
    const c = await createRunCertificate();
    const x = new X509Certificate(c.certPem);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.checkPrivateKey(require("node:crypto").createPrivateKey(c.keyPem))).toBe(true);
  });
});

/** A certificate made elsewhere (openssl, P-384, two RDNs, subjectAltName): the SPKI is found all the same. */
const OPENSSL_CERT = `-----BEGIN CERTIFICATE-----
MIIB6jCCAXCgAwIBAgIUV3ZKFIv+D51mt3dCLiOLuFPEFf8wCgYIKoZIzj0EAwIw
IDEQMA4GA1UEAwwHZXhhbXBsZTEMMAoGA1UECgwDT3JnMB4XDTI2MTEzMDE1NDkx
MloXDTM2MTEyNzE1NDkxMlowIDEQMA4GA1UEAwwHZXhhbXBsZTEMMAoGA1UECgwD
T3JnMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEDcOl8pKFz4yP1S9oaRZ7nRUOsbWb
WWoJPFSxA7Oxi35BBir49vAMsRfqAs37l5+EWeWLx22H0aWDipeWMwKZE+BApHMp
CWNtcfswVLZTl+par08dJQpjuTHaFJDMvpvco2swaTAdBgNVHQ4EFgQUTMyoJbGV
pXiTSi423UhW5qhLJNcwHwYDVR0jBBgwFoAUTMyoJbGVpXiTSi423UhW5qhLJNcw
DwYDVR0TAQH/BAUwAwEB/zAWBgNVHREEDzANggtleGFtcGxlLm9yZzAKBggqhkjO
PQQDAgNoADBlAjBkUhef2Nt0i4DVALoaSmWNLeSS8eNVC7yjkI0JyMeTpTjeSelb
HJ/fhdzYBFgV40oCMQDP2tAqekD33rzXEgnDGIqXBD6PydksEStCMJRieQGSfVN1
2r8TmSb/PzNc7ctKPN8=
-----END CERTIFICATE-----
`;

describe("SPKI of any certificate", () => {
  test("matches node:crypto's public key for a certificate openssl made", () => {
    const spkiDer = new X509Certificate(OPENSSL_CERT).publicKey.export({ type: "spki", format: "der" });
    expect(spkiOfPem(OPENSSL_CERT)).toBe(createHash("sha256").update(spkiDer).digest("hex"));
  });

  test("garbage and truncated certificates are refused", async () => {
    const c = await createRunCertificate();
    expect(() => spkiOfDer(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]))).toThrow();
    expect(() => spkiOfDer(c.der.subarray(0, c.der.length - 1))).toThrow();
    expect(() => spkiOfDer(crypto.getRandomValues(new Uint8Array(300)))).toThrow();
    expect(() => spkiOfPem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")).toThrow();
    expect(() => spkiOfPem("not a pem")).toThrow();
  });
});
