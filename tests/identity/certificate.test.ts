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
