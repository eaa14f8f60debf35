// Signalling coordination (seed 000 §信令协调: "if one side's NAT mapping changes, the node helps both
// reconnect"; DESIGN §7). Two triggers:
//   - a member re-joins from another address than it had (a restarted app, a connection that died and came
//     back through a new mapping): punch-service.ts onJoin;
//   - the NAT re-maps a live app connection: the transport reports a validated path move ("migrate", QUIC
//     path validation, RFC 9000 §8.2/§9; a spoofed source never gets that far). The node updates the app pool,
//     tells the app its new public address (punch.address) and re-brokers.
// Re-brokering pushes fresh offers to the moved member and each recent partner still in the pool, so a peer
// link broken by the re-mapping comes back without anyone asking, and a directed punch to the member right
// after uses its new address. One member's re-brokering runs at most once per REBROKER_MIN_INTERVAL_MS: an
// app that keeps re-mapping itself cannot make the node flood its partners.
import { create, toBinary } from "@bufbuild/protobuf";
import { METHOD } from "../rpc/index.ts";
import { BoundedMap, type Counter, type Logger } from "../contracts/index.ts";
import { errorLine } from "../errors.ts";
import type { QuicLink } from "../transport/index.ts";
import { AddressChangeSchema, type PunchInfo } from "../wire/index.ts";
import { sameAddress, type AppAddress, type AppMember, type AppPool } from "./app-pool.ts";
import { OFFER_PUSH_TIMEOUT_MS } from "./constants.ts";
import { brokerPunch } from "./punch-offer.ts";
import type { PunchPairs } from "./punch-pairs.ts";
import { shortHex } from "./punch-messages.ts";

/** Shortest time between two re-brokerings of one member's pairs, in ms. */
const REBROKER_MIN_INTERVAL_MS = 2_000;
/** Members whose last re-brokering time is remembered; the oldest is forgotten first. */
const MAX_REBROKER_TIMES = 10_000;

export interface CoordinationCounters {
  /** Live app connections the NAT re-mapped (validated path moves of a member's link). */
  remaps: number;
  /** Offers pushed again after a mapping change (per pair). */
  rebrokered: number;
  /** Re-brokerings skipped because the member had one less than REBROKER_MIN_INTERVAL_MS ago. */
  rebrokerThrottled: number;
}

export interface CoordinationDeps {
  pool: AppPool;
  pairs: PunchPairs;
  /** Pushes one side's PunchInfo to a member over its kept link; true when it acknowledged. */
  push(member: AppMember, info: PunchInfo): Promise<boolean>;
  /** Remembers a node id's last address (kept after it leaves). */
  remember(nodeId: string, address: AppAddress): void;
  running(): boolean;
  now(): number;
  log?: Logger;
  brokered?: Counter<"strategy">;
}

export interface Coordination {
  /** New offers between a member whose address changed and its recent partners. */
  rebroker(member: AppMember): Promise<void>;
  /** The transport saw a validated move of `link`'s peer from `previous` to link.remote. */
  onMigrate(link: QuicLink, previous: AppAddress): Promise<void>;
  readonly counters: CoordinationCounters;
}

export function createCoordination(d: CoordinationDeps): Coordination {
  const counters: CoordinationCounters = { remaps: 0, rebrokered: 0, rebrokerThrottled: 0 };
  const lastRebroker = new BoundedMap<string, number>(MAX_REBROKER_TIMES);

  async function rebroker(member: AppMember): Promise<void> {
    const t = d.now();
    const last = lastRebroker.get(member.nodeId);
    if (last !== undefined && t - last < REBROKER_MIN_INTERVAL_MS) {
      counters.rebrokerThrottled++;
      return;
    }
    lastRebroker.setNewest(member.nodeId, t);
    for (const p of d.pairs.partnersOf(member.nodeId, t)) {
      const current = d.pool.get(member.kind, member.nodeId);
      const partner = d.pool.get(p.kind, p.nodeId);
      if (!d.running() || !current || !partner || sameAddress(current.address, partner.address)) continue;
      const b = brokerPunch(current, partner);
      if (b.plan.strategy === "impossible") continue;
      d.pairs.note(current, partner, t);
      counters.rebrokered++;
      d.brokered?.inc({ strategy: b.plan.strategy });
      d.log?.info("re-brokering a punch after a mapping change", {
        id: current.nodeId.slice(0, 16),
        at: `${current.address.ip}:${current.address.port}`,
        partner: partner.nodeId.slice(0, 16),
        strategy: b.plan.strategy,
        attempt: shortHex(b.attemptId),
      });
      await Promise.all([d.push(current, b.forA), d.push(partner, b.forB)]);
    }
  }

  async function onMigrate(link: QuicLink, previous: AppAddress): Promise<void> {
    const members = d.pool.byConnection(link.connectionId);
    if (members.length === 0 || !d.running()) return;
    const address = { ip: link.remote.ip, port: link.remote.port };
    const t = d.now();
    const byNode = new Map<string, AppMember>();
    for (const m of members) if (!byNode.has(m.nodeId)) byNode.set(m.nodeId, m);
    for (const id of byNode.keys()) {
      d.pool.updateAddress(id, address, t);
      d.remember(id, address);
    }
    counters.remaps++;
    d.log?.info("an app's NAT re-mapped its live connection", {
      ids: [...byNode.keys()].map((id) => id.slice(0, 16)),
      from: `${previous.ip}:${previous.port}`,
      to: `${address.ip}:${address.port}`,
    });
    // The app learns its new address first, then the offers built on it arrive.
    const change = create(AddressChangeSchema, { ip: address.ip, port: address.port, previousIp: previous.ip, previousPort: previous.port });
    try {
      await link.request(METHOD.punch.address, toBinary(AddressChangeSchema, change), { timeoutMs: OFFER_PUSH_TIMEOUT_MS });
    } catch (err) {
      d.log?.debug("address change not delivered", { error: errorLine(err) });
    }
    for (const m of byNode.values()) {
      const current = d.pool.get(m.kind, m.nodeId);
      if (current) await rebroker(current);
    }
  }

  return { rebroker, onMigrate, counters };
}
