// Node records: build, sign, verify, tamper rejection, limits, garbage decoding (DESIGN §4).
import { describe, expect, test } from "bun:test";
import { clone, create } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { ConfigError } from "../../src/errors.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { NatClass, NodeAddressSchema, NodeRecordSchema, StakeSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { MAX_IDENTITY_ID_CHARS, MAX_KIND_CHARS, MAX_RECORD_KINDS, MAX_STAKE_ADDRESS_CHARS } from "../../src/wire/limits.ts";
import {
  MAX_CLOCK_SKEW_MS,
  MAX_RECORD_ADDRESSES,
  MAX_RECORD_BYTES,
  MAX_RECORD_SEQ,
  buildRecord,
  decodeRecord,
  encodeRecord,
  formatNodeAddress,
  nextRecordSeq,
  parseRecord,
  recordAddress,
  recordNodeId,
  RECORD_FORMAT_VERSION,
  isRelayBlameless,
  signRecord,
  stakeFor,
  verifyRecord,
} from "../../src/mesh/record.ts";
import { toJson } from "../../src/mesh/record-json.ts";
import { DEFAULTS } from "../../src/config/index.ts";
import { xeddsaVerify } from "../../src/identity/xeddsa.ts";

const NOW = 1_700_000_000_000;
const SPKI = new Uint8Array(32).fill(7);

function build(key: NodeKey = generateNodeKey(), over: Partial<Parameters<typeof buildRecord>[1]> = {}): NodeRecord {
  return buildRecord(key, {
    addresses: [{ ip: "203.0.113.1", udpPort: 7788, tcpPort: 7789 }],
    spki: SPKI,
    kinds: ["blockchain:bitcoin", "app:chat"],
    stakes: { "blockchain:bitcoin": "bc1qexampleaddress", "*": "0xdefault" },
    identityId: "box-1",
    seq: nextRecordSeq(undefined, NOW),
    now: NOW,
    ...over,
  });
}

/** Applies `edit` to a copy and re-signs it with `key`, so only the edited check can fail. */
function resigned(key: NodeKey, rec: NodeRecord, edit: (r: NodeRecord) => void): NodeRecord {
  const copy = clone(NodeRecordSchema, rec);
  edit(copy);
  return signRecord(copy, key.privateKey);
}

describe("record signing", () => {
  test("a built record verifies and its node id is SHA-256 of the public key", () => {
    const key = generateNodeKey();
    const rec = build(key);
    expect(verifyRecord(rec, NOW)).toEqual({ ok: true });
    expect(recordNodeId(rec)).toBe(bytesToHex(sha256(key.publicKey)));
    expect(recordNodeId(rec)).toBe(key.nodeId);
    expect(verifyRecord(rec, NOW, { expectedNodeId: key.nodeId })).toEqual({ ok: true });
  });

  test("a record is signed (XEdDSA) by its node's X25519 key and carries the current format", () => {
    const a = generateNodeKey();
    const rec = build(a);
    expect(rec.version).toBe(RECORD_FORMAT_VERSION);
    const body = clone(NodeRecordSchema, rec);
    body.signature = new Uint8Array(0);
    // The signature is over the purpose label, a zero byte and the record without its signature.
    const label = new TextEncoder().encode("findings/v1/record");
    const bytes = new Uint8Array([...label, 0, ...encodeRecord(body)]);
    expect(xeddsaVerify(a.publicKey, bytes, rec.signature)).toBe(true);
    expect(xeddsaVerify(generateNodeKey().publicKey, bytes, rec.signature)).toBe(false);
  });

  test("a record re-signed by anyone but the owner of its public key fails (no second key to swap in)", () => {
    const owner = generateNodeKey();
    const relay = generateNodeKey();
    const rec = build(owner);
    const hijacked = resigned(relay, rec, (r) => (r.stakes = [create(StakeSchema, { kind: "*", address: "0xattacker" })]));
    expect(hijacked.publicKey).toEqual(owner.publicKey);
    expect(verifyRecord(hijacked, NOW)).toMatchObject({ ok: false, reason: "bad-signature" });
    // The owner re-signing its own edit is fine.
    expect(verifyRecord(resigned(owner, rec, (r) => (r.stakes = [])), NOW)).toEqual({ ok: true });
  });

  test("a record survives encode and decode and still verifies", () => {
    const rec = build();
    const back = decodeRecord(encodeRecord(rec));
    expect(verifyRecord(back, NOW)).toEqual({ ok: true });
    expect(recordNodeId(back)).toBe(recordNodeId(rec));
  });

  const tamper: [string, (r: NodeRecord) => void][] = [
    ["public_key", (r) => (r.publicKey = flip(r.publicKey))],
    ["protocols", (r) => r.protocols.push("h3")],
    ["address ip", (r) => (r.addresses[0]!.ip = "203.0.113.2")],
    ["udp port", (r) => (r.addresses[0]!.udpPort += 1)],
    ["tcp port", (r) => (r.addresses[0]!.tcpPort += 1)],
    ["extra address", (r) => r.addresses.push(create(NodeAddressSchema, { ip: "198.51.100.1", udpPort: 1, tcpPort: 1 }))],
    ["spki", (r) => (r.spki = flip(r.spki))],
    ["nat", (r) => (r.nat = NatClass.NAT_FULL_CONE)],
    ["kinds", (r) => (r.kinds = ["blockchain:ethereum"])],
    ["stake address", (r) => (r.stakes[0]!.address = "bc1qattacker")],
    ["stake kind", (r) => (r.stakes[0]!.kind = "blockchain:ethereum")],
    ["identity id", (r) => (r.identityId = "box-2")],
    ["seq", (r) => (r.seq += 1n)],
    ["issued_at_ms", (r) => (r.issuedAtMs -= 1n)],
    ["signature", (r) => (r.signature = flip(r.signature))],
  ];
  for (const [field, edit] of tamper) {
    test(`changing ${field} after signing makes verification fail with bad-signature`, () => {
      const rec = clone(NodeRecordSchema, build());
      edit(rec);
      const check = verifyRecord(rec, NOW);
      expect(check.ok).toBe(false);
      if (!check.ok) expect(check.reason).toBe("bad-signature");
    });
  }

  test("flipping any bit 0 or 7 of any byte of the encoded record makes it fail to parse", () => {
    const bytes = encodeRecord(build());
    const reasons = new Set<string>();
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const copy = bytes.slice();
        copy[i]! ^= mask;
        const res = parseRecord(copy, NOW);
        expect(res.ok).toBe(false);
        if (!res.ok) reasons.add(res.reason);
      }
    }
    // Content changes are caught by the signature, wire-type flips in tags by the canonical check.
    expect(reasons.has("bad-signature")).toBe(true);
    expect(reasons.has("non-canonical")).toBe(true);
  });

  test("a tag with a flipped wire type decodes to the same content, so the signature alone still holds", () => {
    const rec = build();
    const bytes = encodeRecord(rec);
    bytes[0]! ^= 0x01; // public_key: wire type 2 → 3
    expect(parseRecord(bytes, NOW)).toMatchObject({ ok: false, reason: "non-canonical" });
    expect(verifyRecord(decodeRecord(bytes), NOW)).toEqual({ ok: true });
    expect(recordNodeId(decodeRecord(bytes))).toBe(recordNodeId(rec));
  });

  test("records of another format are refused as old-format, which is no relay's fault", () => {
    const key = generateNodeKey();
    const v1 = clone(NodeRecordSchema, build(key));
    v1.version = 0;
    expect(verifyRecord(v1, NOW)).toMatchObject({ ok: false, reason: "old-format" });
    const v3 = clone(NodeRecordSchema, build(key));
    v3.version = RECORD_FORMAT_VERSION + 1;
    expect(verifyRecord(v3, NOW)).toMatchObject({ ok: false, reason: "old-format" });
    // A format 1 record on the wire: field 12 (its Ed25519 signing key) and no version.
    const bytes = encodeRecord(v1);
    const withKey = new Uint8Array([...bytes, 0x62, 32, ...new Uint8Array(32).fill(5)]);
    expect(parseRecord(withKey, NOW)).toMatchObject({ ok: false, reason: "old-format" });
    expect(isRelayBlameless("old-format")).toBe(true);
    expect(isRelayBlameless("bad-signature")).toBe(false);
  });

  test("records expire record_max_age_s after their issue time; the age is no relay's fault", () => {
    const rec = build();
    const maxAgeMs = DEFAULTS.record_max_age_s * 1000;
    expect(verifyRecord(rec, NOW + maxAgeMs)).toEqual({ ok: true });
    expect(verifyRecord(rec, NOW + maxAgeMs + 1)).toMatchObject({ ok: false, reason: "expired" });
    expect(verifyRecord(rec, NOW + 60_001, { maxAgeMs: 60_000 })).toMatchObject({ ok: false, reason: "expired" });
    expect(isRelayBlameless("expired")).toBe(true);
    expect(isRelayBlameless("from-future")).toBe(true);
  });

  test("a relay that swaps in its own public key and re-signs gets a valid signature but another node id", () => {
    const victim = generateNodeKey();
    const attacker = generateNodeKey();
    const rec = build(victim);
    const forged = resigned(attacker, rec, (r) => (r.publicKey = attacker.publicKey));
    // The signature alone cannot tell (see record.ts); the node id and the key challenge do.
    expect(verifyRecord(forged, NOW).ok).toBe(true);
    expect(recordNodeId(forged)).not.toBe(victim.nodeId);
    const check = verifyRecord(forged, NOW, { expectedNodeId: victim.nodeId });
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toBe("wrong-node-id");
  });
});

describe("record limits and sanity", () => {
  const key = generateNodeKey();
  const base = build(key);
  const cases: [string, (r: NodeRecord) => void, string][] = [
    ["public key of 31 bytes", (r) => (r.publicKey = r.publicKey.slice(1)), "bad-public-key"],
    ["wrong name tag", (r) => (r.nameTag = "other"), "bad-name-tag"],
    ["no address", (r) => (r.addresses = []), "bad-address"],
    [`${MAX_RECORD_ADDRESSES + 1} addresses`, (r) => (r.addresses = Array.from({ length: MAX_RECORD_ADDRESSES + 1 }, () => clone(NodeRecordSchema, base).addresses[0]!)), "bad-address"],
    ["an address that is not an IP", (r) => (r.addresses[0]!.ip = "example.org"), "bad-address"],
    ["a port over 65535", (r) => (r.addresses[0]!.tcpPort = 65536), "bad-address"],
    ["an address without ports", (r) => ((r.addresses[0]!.tcpPort = 0), (r.addresses[0]!.udpPort = 0)), "bad-address"],
    ["an SPKI pin of 31 bytes", (r) => (r.spki = r.spki.slice(1)), "bad-spki"],
    ["a symmetric NAT", (r) => (r.nat = NatClass.NAT_SYMMETRIC), "bad-nat"],
    ["an unknown NAT", (r) => (r.nat = NatClass.NAT_UNKNOWN), "bad-nat"],
    [`${MAX_RECORD_KINDS + 1} kinds`, (r) => (r.kinds = Array.from({ length: MAX_RECORD_KINDS + 1 }, (_, i) => `app:k${i}`)), "bad-kind"],
    [`a kind of ${MAX_KIND_CHARS + 1} characters`, (r) => (r.kinds = ["a".repeat(MAX_KIND_CHARS + 1)]), "bad-kind"],
    ["a kind with a space", (r) => (r.kinds = ["app: chat"]), "bad-kind"],
    ["an empty kind", (r) => (r.kinds = [""]), "bad-kind"],
    ["two stakes for one kind", (r) => (r.stakes = [r.stakes[0]!, r.stakes[0]!]), "bad-stake"],
    [`a stake address of ${MAX_STAKE_ADDRESS_CHARS + 1} characters`, (r) => (r.stakes[0]!.address = "x".repeat(MAX_STAKE_ADDRESS_CHARS + 1)), "bad-stake"],
    ["an empty stake address", (r) => (r.stakes[0]!.address = ""), "bad-stake"],
    [`an identity id of ${MAX_IDENTITY_ID_CHARS + 1} characters`, (r) => (r.identityId = "i".repeat(MAX_IDENTITY_ID_CHARS + 1)), "bad-identity-id"],
    ["an identity id with a newline", (r) => (r.identityId = "a\nb"), "bad-identity-id"],
    ["a protocol with capitals", (r) => (r.protocols = ["QUIC"]), "bad-protocol"],
    ["seq 0", (r) => (r.seq = 0n), "bad-seq"],
    ["seq past 2^53", (r) => (r.seq = BigInt(MAX_RECORD_SEQ) + 1n), "bad-seq"],
    ["no issue time", (r) => (r.issuedAtMs = 0n), "bad-seq"],
    ["an issue time beyond the clock skew", (r) => (r.issuedAtMs = BigInt(NOW + MAX_CLOCK_SKEW_MS + 1)), "from-future"],
  ];
  for (const [what, edit, reason] of cases) {
    test(`a record with ${what} is rejected as ${reason}`, () => {
      const check = verifyRecord(resigned(key, base, edit), NOW);
      expect(check.ok).toBe(false);
      if (!check.ok) expect(check.reason).toBe(reason as never);
    });
  }

  test("an issue time exactly at the allowed skew is accepted", () => {
    expect(verifyRecord(resigned(key, base, (r) => (r.issuedAtMs = BigInt(NOW + MAX_CLOCK_SKEW_MS))), NOW)).toEqual({ ok: true });
  });

  test("a full-cone node and an IPv6 address are accepted", () => {
    const rec = resigned(key, base, (r) => {
      r.nat = NatClass.NAT_FULL_CONE;
      r.addresses[0]!.ip = "2001:db8::1";
    });
    expect(verifyRecord(rec, NOW)).toEqual({ ok: true });
  });

  test("a signature of the wrong length, or a public key off the curve, is rejected without crashing", () => {
    const a = clone(NodeRecordSchema, base);
    a.signature = a.signature.slice(1);
    expect(verifyRecord(a, NOW)).toMatchObject({ ok: false, reason: "bad-signature" });
    const b = clone(NodeRecordSchema, base);
    b.publicKey = new Uint8Array(32).fill(0xff); // u ≥ p
    expect(verifyRecord(b, NOW)).toMatchObject({ ok: false, reason: "bad-signature" });
  });

  test(`bytes over ${MAX_RECORD_BYTES} are refused before parsing`, () => {
    const bytes = new Uint8Array(MAX_RECORD_BYTES + 1);
    bytes.set(encodeRecord(base));
    expect(parseRecord(bytes, NOW)).toMatchObject({ ok: false, reason: "too-large" });
  });

  test(`a record within every count limit but over ${MAX_RECORD_BYTES} bytes in total is rejected as too-large`, () => {
    const big = resigned(key, base, (r) => {
      r.kinds = Array.from({ length: MAX_RECORD_KINDS }, (_, i) => `app:${String(i).padStart(MAX_KIND_CHARS - 4, "k")}`);
      r.stakes = r.kinds.map((kind) => create(StakeSchema, { kind, address: "a".repeat(MAX_STAKE_ADDRESS_CHARS) }));
    });
    expect(verifyRecord(big, NOW)).toMatchObject({ ok: false, reason: "too-large" });
  });

  test("random bytes never crash the decoder and never verify", () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 300; i++) {
      const bytes = Uint8Array.from({ length: 1 + (i % 200) }, rnd);
      const res = parseRecord(bytes, NOW);
      expect(res.ok).toBe(false);
    }
  });

  test("a hand-made object with wrong field types fails verification instead of throwing", () => {
    const bogus = { ...base, publicKey: "nope" } as unknown as NodeRecord;
    expect(verifyRecord(bogus, NOW).ok).toBe(false);
  });
});

describe("buildRecord", () => {
  test("leaves out stakes with an empty address (served, paid to the default)", () => {
    const rec = build(undefined, { stakes: { "app:chat": "", "*": "0xdefault" } });
    expect(rec.stakes.map((s) => s.kind)).toEqual(["*"]);
    expect(stakeFor(rec, "app:chat")).toBe("0xdefault");
  });

  test("throws a ConfigError naming the field for a stake address peers would reject", () => {
    expect(() => build(undefined, { stakes: { "app:chat": "has space" } })).toThrow(ConfigError);
    expect(() => build(undefined, { stakes: { "app:chat": "has space" } })).toThrow(/record\.stake/);
  });

  test("accepts the SPKI pin as hex and rejects non-hex", () => {
    expect(build(undefined, { spki: "ab".repeat(32) }).spki).toEqual(new Uint8Array(32).fill(0xab));
    expect(() => build(undefined, { spki: "zz".repeat(32) })).toThrow(ConfigError);
  });

  test("nextRecordSeq follows the clock and still grows when the clock goes back", () => {
    expect(nextRecordSeq(undefined, NOW)).toBe(BigInt(NOW));
    expect(nextRecordSeq(BigInt(NOW), NOW + 5)).toBe(BigInt(NOW + 5));
    expect(nextRecordSeq(BigInt(NOW), NOW - 1000)).toBe(BigInt(NOW) + 1n);
  });
});

describe("record helpers", () => {
  test("recordAddress prints the first address as ip:udp/tcp, brackets for IPv6", () => {
    const rec = build(undefined, { addresses: [{ ip: "2001:db8::5", udpPort: 1, tcpPort: 2 }, { ip: "203.0.113.9", udpPort: 3, tcpPort: 4 }] });
    expect(recordAddress(rec)).toBe("[2001:db8::5]:1/2");
    expect(formatNodeAddress(rec.addresses[1]!)).toBe("203.0.113.9:3/4");
  });

  test("toJson gives the CLI shape", () => {
    const key = generateNodeKey();
    const rec = build(key);
    expect(toJson(rec)).toEqual({
      id: key.nodeId,
      publicKey: key.publicKeyHex,
      addresses: ["203.0.113.1:7788/7789"],
      spki: "07".repeat(32),
      nat: "public",
      kinds: ["blockchain:bitcoin", "app:chat"],
      stakes: { "blockchain:bitcoin": "bc1qexampleaddress", "*": "0xdefault" },
      identityId: "box-1",
      seq: NOW,
    });
  });
});

function flip(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  out[0]! ^= 1;
  return out;
}
