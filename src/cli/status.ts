// `findings status`: a running node's pools, links, bans and counters, read from its admin endpoint (DESIGN §1, §2).
import { defineCommand } from "citty";
import { DEFAULTS } from "../config/index.ts";
import { PeerError } from "../errors.ts";
import { parseAddress } from "../contracts/index.ts";
import { action, commonArgs, jsonArg, loadContext, printJson } from "./common.ts";

interface NatdView {
  kind: string;
  joined: string | null;
  address: string | null;
  nat: string | null;
  peers: { id: string; address: string; rttMs: number | null }[];
}

interface MeshStatusView {
  role: string;
  serving: boolean;
  advertisedIp: string | null;
  advertisedIps?: string[];
  candidates: { id: string; address: string; rttMs: number | null }[];
  mesh: { out: number; in: number; maxOut: number; maxIn: number; links: { peer: string; remote: string; direction: string; ageMs: number; rttMs: number | null }[] };
  bans: { target: string; reason: string; source: string }[];
}

export const statusCommand = defineCommand({
  meta: { name: "status", description: "Show a running node's pools, mesh links, bans and counters (from its admin endpoint)" },
  args: {
    ...commonArgs,
    ...jsonArg,
    admin: { type: "string", description: `Admin address of the node (default: the config's admin, ${DEFAULTS.admin})`, valueHint: "ADDR" },
    timeout: { type: "string", description: "Seconds to wait (default 5)", valueHint: "S" },
  },
  run: action(async ({ args }) => {
    const addrText = args.admin ?? loadContext(args).config.admin;
    if (!addrText) throw new Error('Cannot read the status: the admin endpoint is off (admin = ""); pass --admin ADDR');
    const { ip, port } = parseAddress(addrText, "--admin");
    const url = `http://${ip.includes(":") ? `[${ip}]` : ip}:${port}/status`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(parseTimeout(args.timeout)) });
    } catch (err) {
      throw new PeerError(`Cannot reach the admin endpoint ${url}: ${err instanceof Error ? err.message : String(err)} (is the node running?)`);
    }
    if (!res.ok) throw new PeerError(`The admin endpoint ${url} answered HTTP ${res.status}`);
    const status = (await res.json()) as { node?: { id?: string; udp?: string; tcp?: string }; uptimeMs?: number; mesh?: MeshStatusView; natd?: NatdView; counters?: Record<string, number> };
    if (args.json) {
      printJson(status);
      return;
    }
    const lines: string[] = [];
    lines.push(`node      ${status.node?.id ?? "?"}`);
    lines.push(`address   udp ${status.node?.udp ?? "?"}  tcp ${status.node?.tcp ?? "?"}  up ${Math.round((status.uptimeMs ?? 0) / 1000)} s`);
    const m = status.mesh;
    if (m) {
      lines.push(`role      ${m.role}${m.serving ? " (serving)" : ""}${m.advertisedIp ? `  advertised ${m.advertisedIps?.join(", ") || m.advertisedIp}` : ""}`);
      lines.push(`mesh      out ${m.mesh.out}/${m.mesh.maxOut}  in ${m.mesh.in}/${m.mesh.maxIn}`);
      for (const l of m.mesh.links) lines.push(`  ${l.direction.padEnd(3)} ${l.peer.slice(0, 16)}  ${l.remote.padEnd(22)} age ${Math.round(l.ageMs / 1000)} s  rtt ${l.rttMs ?? "-"} ms`);
      lines.push(`candidates ${m.candidates.length}`);
      for (const c of m.candidates.slice(0, 20)) lines.push(`  ${c.id.slice(0, 16)}  ${c.address.padEnd(22)} rtt ${c.rttMs ?? "-"} ms`);
      if (m.candidates.length > 20) lines.push(`  … ${m.candidates.length - 20} more (--json for all)`);
      lines.push(`bans      ${m.bans.length}`);
      for (const b of m.bans) lines.push(`  ${b.target.slice(0, 40)}  ${b.source}  ${b.reason}`);
    }
    // Behind NAT: the public node whose findings pool we joined and our direct links to other NAT'd nodes.
    const n = status.natd;
    if (n?.joined) {
      lines.push(`natd      ${n.kind} at ${n.joined} as ${n.address ?? "?"} (nat ${n.nat ?? "unknown"})  links ${n.peers.length}`);
      for (const p of n.peers) lines.push(`  ${p.id.slice(0, 16)}  ${p.address.padEnd(22)} rtt ${p.rttMs ?? "-"} ms`);
    }
    process.stdout.write(lines.join("\n") + "\n");
  }),
});

/** --timeout in seconds (positive), as ms. */
function parseTimeout(text: string | undefined): number {
  const ms = text === undefined ? 5000 : Number(text) * 1000;
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(text)} is not allowed (allowed: a positive number of seconds)`);
  return ms;
}
