// A record with an IPv4 and an IPv6 address: each address is proven by its own key check, and only
// proven addresses are dialled or counted as the node's.
import { describe, expect, test } from "bun:test";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { createCandidatePool, dialAddress, netPrefixes } from "../../src/mesh/candidate-pool.ts";
import { answerKeyCheck, checkRecord } from "../../src/mesh/record-check.ts";
import { addressReachedAt, buildRecord, checkableAddresses, recordNodeId } from "../../src/mesh/record.ts";
import type { NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { Status } from "../../src/wire/index.ts";
import { ConfigError } from "../../src/errors.ts";
import { checkAdvertise, createOwnRecord } from "../../src/mesh/own-record.ts";

const NOW = 1_700_000_000_000;
const V4 = "203.0.113.1";
const V6 = "2001:db8:113::1";

function recordOf(key: NodeKey, ips: string[]): NodeRecord {
  return buildRecord(key, { addresses: ips.map((ip) => ({ ip, udpPort: 7788, tcpPort: 7788 })), spki: new Uint8Array(32), seq: 1, now: NOW });
}

/** Who sits at each IP: its key and its own record. Dialling an IP nobody holds fails like a dead route. */
type World = Map<string, { key: NodeKey; record: NodeRecord }>;

/** A MeshNet whose untrusted dial reaches the node holding the IP; that node answers the key check for
 *  the address it was reached at (the dialled IP is the local end of its socket). */
function netOf(world: World, dialled: string[] = []) {
  return {
    async dialUntrusted(addr: { ip: string; port: number }) {
      dialled.push(addr.ip);
      const node = world.get(addr.ip);
      if (!node) throw new Error(`connect ENETUNREACH ${addr.ip}`);
      return {
        request: async (_method: string, payload: Uint8Array) => answerKeyCheck(node.key, payload, node.record, { localIp: addr.ip }),
        close() {},
      } as never;
    },
  };
}

describe("the address a key answer vouches for", () => {
  const rec = recordOf(generateNodeKey(), [V4, V6]);

  test("the record's address at the local end of the connection", () => {
    expect(addressReachedAt(rec, { localIp: V4 })).toBe(`${V4}:7788/7788`);
    expect(addressReachedAt(rec, { localIp: `::ffff:${V4}` })).toBe(`${V4}:7788/7788`);
    expect(addressReachedAt(rec, { localIp: V6.toUpperCase() })).toBe(`[${V6}]:7788/7788`);
  });

  test("behind a full-cone NAT (private local IP): the record's address of that family", () => {
    expect(addressReachedAt(rec, { localIp: "10.0.0.5" })).toBe(`${V4}:7788/7788`);
    expect(addressReachedAt(rec, { localIp: "fd00::5" })).toBe(`[${V6}]:7788/7788`);
    expect(addressReachedAt(rec, { remoteIp: "2001:db8:99::7" })).toBe(`[${V6}]:7788/7788`);
    expect(addressReachedAt(rec, {})).toBe(`${V4}:7788/7788`);
  });

  test("a v4-only record answers with its v4 address on any connection", () => {
    expect(addressReachedAt(recordOf(generateNodeKey(), [V4]), { localIp: V6 })).toBe(`${V4}:7788/7788`);
  });
});

describe("checking a dual-stack record", () => {
  const checker = generateNodeKey();

  test("both addresses reached and proven: both are proven", async () => {
    const key = generateNodeKey();
    const record = recordOf(key, [V4, V6]);
    const world: World = new Map([[V4, { key, record }], [V6, { key, record }]]);
    const dialled: string[] = [];
    const res = await checkRecord(netOf(world, dialled), checker, record);
    expect(res.ok).toBe(true);
    if (res.ok) expect(res.proven.map((a) => a.ip)).toEqual([V4, V6]);
    expect(dialled.sort()).toEqual([V4, V6].sort());
  });

  test("the v6 address unreachable from the checker: only v4 is proven, and the pool never dials or counts v6", async () => {
    const key = generateNodeKey();
    const record = recordOf(key, [V6, V4]);
    const res = await checkRecord(netOf(new Map([[V4, { key, record }]])), checker, record);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.proven.map((a) => a.ip)).toEqual([V4]);
    const pool = createCandidatePool({ selfId: checker.nodeId });
    expect(pool.add(record, NOW, { rttMs: res.rttMs, proven: res.proven }).outcome).toBe("added");
    const c = pool.get(recordNodeId(record))!;
    // v6 comes first in the record, yet the node is dialled at its proven v4 address.
    expect(dialAddress(c)).toEqual({ ip: V4, port: 7788 });
    expect(netPrefixes(record, c.proven)).toEqual([netPrefixes(recordOf(key, [V4]))[0]!]);
  });

  test("a hostile node listing someone else's v6 address fails the check: the node there cannot open the challenge", async () => {
    const victim = generateNodeKey();
    const victimRecord = recordOf(victim, [V6]);
    const liar = generateNodeKey();
    const liarRecord = recordOf(liar, ["198.51.100.66", V6]);
    const world: World = new Map([["198.51.100.66", { key: liar, record: liarRecord }], [V6, { key: victim, record: victimRecord }]]);
    const res = await checkRecord(netOf(world), checker, liarRecord);
    expect(res).toMatchObject({ ok: false, kind: "key-mismatch" });
    if (!res.ok) expect(res.detail).toContain(V6);
  });

  test("an address relayed to the node's other address is not proven: the answer names the address it reached", async () => {
    // The record claims a v6 address whose holder forwards the check to the node's v4 address.
    const key = generateNodeKey();
    const record = recordOf(key, [V4, V6]);
    const relayingNet = {
      async dialUntrusted(addr: { ip: string; port: number }) {
        return {
          request: async (_m: string, payload: Uint8Array) => answerKeyCheck(key, payload, record, { localIp: V4 }),
          close() {},
        } as never;
      },
    };
    const res = await checkRecord(relayingNet, checker, record);
    expect(res).toMatchObject({ ok: false, kind: "key-mismatch" });
  });

  test("an unproven address never displaces the node that proved it", async () => {
    const victim = generateNodeKey();
    const victimRecord = recordOf(victim, [V6]);
    const pool = createCandidatePool({ selfId: checker.nodeId });
    expect(pool.add(victimRecord, NOW, { proven: victimRecord.addresses }).outcome).toBe("added");
    // A record that lists the victim's address but proved only its own.
    const other = generateNodeKey();
    const otherRecord = recordOf(other, ["198.51.100.66", V6]);
    const added = pool.add(otherRecord, NOW, { proven: [otherRecord.addresses[0]!] });
    expect(added).toEqual({ outcome: "added", removed: [] });
    expect(pool.has(recordNodeId(victimRecord))).toBe(true);
  });

  test("a check result naming an address the record does not list proves nothing", () => {
    const key = generateNodeKey();
    const record = recordOf(key, [V4]);
    const pool = createCandidatePool({ selfId: checker.nodeId });
    const stranger = recordOf(generateNodeKey(), [V6]).addresses[0]!;
    expect(pool.add(record, NOW, { proven: [stranger] }).outcome).toBe("unproven");
  });

  test("a re-signed record with the same addresses keeps its proofs without a new check", async () => {
    const key = generateNodeKey();
    const record = recordOf(key, [V4, V6]);
    const pool = createCandidatePool({ selfId: checker.nodeId });
    pool.add(record, NOW, { proven: [record.addresses[0]!] });
    const next = buildRecord(key, { addresses: checkableAddresses(record), spki: new Uint8Array(32), seq: 2, now: NOW + 1 });
    const plan = pool.planMerge([next], NOW + 1);
    expect(plan.refresh.length).toBe(1);
    expect(pool.add(next, NOW + 1).outcome).toBe("updated");
    expect(pool.get(recordNodeId(record))!.proven.map((a) => a.ip)).toEqual([V4]);
  });

  test("a node that does not serve refuses to vouch", () => {
    expect(answerKeyCheck(generateNodeKey(), new Uint8Array(4), undefined, { localIp: V4 }).status).toBe(Status.REFUSED);
  });
});

describe("advertising both families (config advertise)", () => {
  test("a node bound to :: lists each configured address in its record", () => {
    const key = generateNodeKey();
    const own = createOwnRecord({ nodeKey: key, host: "::", advertise: [V4, V6], spki: "00".repeat(32), stakes: {}, ports: () => ({ udpPort: 7788, tcpPort: 7789 }), nat: () => null });
    const built = own.serve(null, NOW);
    expect("built" in built && built.built.addresses.map((a) => [a.ip, a.udpPort, a.tcpPort])).toEqual([
      [V4, 7788, 7789],
      [V6, 7788, 7789],
    ]);
    expect(own.advertisedIps).toEqual([V4, V6]);
  });

  test("addresses a bound socket does not serve, two of a family, and non-addresses are config errors", () => {
    expect(() => checkAdvertise("203.0.113.1", [V4, V6])).toThrow(ConfigError);
    expect(() => checkAdvertise("0.0.0.0", [V6])).toThrow(/dual-stack node binds host "::"/);
    expect(() => checkAdvertise("::", [V4, "198.51.100.1"])).toThrow(/two IPv4/);
    expect(() => checkAdvertise("::", ["::"])).toThrow(/not a specific IP/);
    expect(() => checkAdvertise("::", ["example.org"])).toThrow(/not a specific IP/);
    expect(checkAdvertise("0.0.0.0", [V4])).toEqual([V4]);
    expect(checkAdvertise(V6, [V6])).toEqual([V6]);
  });
});
