// Our own node record while we serve (DESIGN §4; seed 001 §公钥广播与验证): the advertised IP, building
// and re-signing with a higher seq (on changes, and every record_resign_s: mesh-upkeep.ts). Pure but
// for the node key it signs with; `now` comes from the caller.
//
// The advertised IPs are the configured `advertise` list (one per family: a dual-stack node bound to "::"
// lists its IPv4 and its IPv6 address, each proven by peers' key checks), else the configured host, or on a
// wildcard host ("0.0.0.0", "::", "") the IP the self-check saw, or for a --public node with nobody to ask
// the address its first peer reached.
import { isIP } from "node:net";
import { ConfigError } from "../errors.ts";
import { errorLine } from "../errors.ts";
import type { NodeKey } from "../identity/index.ts";
import { NatClass, type NodeRecord } from "../wire/index.ts";
import { buildRecord, nextRecordSeq } from "./record.ts";

export interface OwnRecordInit {
  nodeKey: NodeKey;
  /** Bound host (config `host`). */
  host: string;
  /** IPs to advertise, at most one per family (config `advertise`); empty = from host / self-check. */
  advertise?: readonly string[];
  /** Certificate SPKI of this run. */
  spki: string;
  /** Served kinds and their reward addresses (config [stakes]; "*" is the default address). */
  stakes: Readonly<Record<string, string>>;
  /** Identity id (config `user_id`); "" means the node id. */
  identityId?: string;
  /** Bound ports, read when the record is built (they are known only after start). */
  ports(): { udpPort: number; tcpPort: number };
  /** Our NAT class from the self-probe, or null (then Public). */
  nat(): string | null;
}

/** What a rebuild did, for the caller's log. */
export type RebuildOutcome = { built: NodeRecord } | { error: string } | { skipped: "not serving" | "no advertised IP" };

export interface OwnRecord {
  readonly serving: boolean;
  /** The first advertised IP. */
  readonly advertisedIp: string | null;
  /** Every advertised IP (one per family). */
  readonly advertisedIps: readonly string[];
  readonly kinds: readonly string[];
  /** The signed record while we serve and have an IP. */
  current(): NodeRecord | undefined;
  /** Start serving; `observedIp` is what the self-check saw (used on a wildcard host). */
  serve(observedIp: string | null, now: number): RebuildOutcome;
  /** An address a peer reached us at: becomes ours when we serve on a wildcard host without one. */
  learnIp(ip: string, now: number): RebuildOutcome | null;
  /** Builds and signs a fresh record with a higher seq (new NAT class, new address). */
  rebuild(now: number): RebuildOutcome;
}

export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}

/** Checks config `advertise` against the bound host: IP addresses, at most one per family, and a family
 *  the bound socket serves (an IPv6 address needs host "::" or that address). Throws ConfigError. */
export function checkAdvertise(host: string, advertise: readonly string[]): string[] {
  const out: string[] = [];
  const families = new Set<number>();
  for (const ip of advertise) {
    const family = isIP(ip);
    if (family === 0 || isWildcardHost(ip)) throw new ConfigError("advertise", `${JSON.stringify(ip.slice(0, 64))} is not a specific IP address`);
    if (families.has(family)) throw new ConfigError("advertise", `two IPv${family} addresses: list one per family`);
    families.add(family);
    const served = host === "::" || host === "" || host === ip || (host === "0.0.0.0" && family === 4);
    if (!served) throw new ConfigError("advertise", `${ip} is not served by host ${host} (a dual-stack node binds host "::")`);
    out.push(ip);
  }
  return out;
}

export function createOwnRecord(init: OwnRecordInit): OwnRecord {
  const configured = checkAdvertise(init.host, init.advertise ?? []);
  const wildcard = configured.length === 0 && isWildcardHost(init.host);
  const stakes = { ...init.stakes };
  const kinds = Object.keys(stakes).filter((k) => k !== "*");
  let serving = false;
  let advertisedIp: string | null = configured[0] ?? (wildcard ? null : init.host);
  const others = configured.slice(1);
  let record: NodeRecord | undefined;

  function rebuild(now: number): RebuildOutcome {
    if (!serving) return { skipped: "not serving" };
    if (!advertisedIp) return { skipped: "no advertised IP" };
    try {
      const { udpPort, tcpPort } = init.ports();
      record = buildRecord(init.nodeKey, {
        addresses: [advertisedIp, ...others].map((ip) => ({ ip, udpPort, tcpPort })),
        spki: init.spki,
        // A service node is reachable (self-check or --public): FullC when its own probe says so, else Public.
        nat: init.nat() === "full-cone" ? NatClass.NAT_FULL_CONE : NatClass.NAT_PUBLIC,
        kinds,
        stakes,
        identityId: init.identityId || init.nodeKey.nodeId,
        seq: nextRecordSeq(record?.seq, now),
        now,
      });
      return { built: record };
    } catch (err) {
      record = undefined;
      return { error: errorLine(err) };
    }
  }

  return {
    get serving() {
      return serving;
    },
    get advertisedIp() {
      return advertisedIp;
    },
    get advertisedIps() {
      return advertisedIp ? [advertisedIp, ...others] : [];
    },
    kinds,
    current: () => (serving ? record : undefined),
    serve(observedIp, now) {
      serving = true;
      if (wildcard && observedIp) advertisedIp = observedIp;
      return rebuild(now);
    },
    learnIp(ip, now) {
      if (!serving || !wildcard || advertisedIp || !ip) return null;
      advertisedIp = ip;
      return rebuild(now);
    },
    rebuild,
  };
}
