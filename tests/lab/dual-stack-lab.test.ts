// A dual-stack node in the NAT lab: `findings serve` in fl-s1 bound to "::" (one socket for both families) advertises
// 203.0.113.1 and 2001:db8:113::11; a node in fl-s2 key-checks it at both and proves both, and an app in fl-c-public
// reaches it over IPv4 and over IPv6 and gets its record with both addresses. Skips with the reason when namespaces
// cannot be built here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { until } from "../wait.ts";
import { cleanEnv } from "../helpers.ts";
import { BUN, labDown, labUnavailableReason, labUp } from "./lab.ts";
import { labIsUp } from "./lab-servers.ts";
import { holdLabLock } from "./lab-lock.ts";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");
const PORT = 7795;
const ADMIN = "127.0.0.1:7796";
const V4 = "203.0.113.1";
// fl-s1 has two addresses per family. A socket bound to "::" answers UDP from the source the kernel picks
// for the destination (no IPV6_PKTINFO in Bun): 203.0.113.1, but 2001:db8:113::11 (the later of ::1 and
// ::11; see `ip -6 route get 2001:db8:113::100` in fl-s1). Advertising ::1 instead, the IPv6 key check
// (TCP, answered on the connection's own address) passes but QUIC over IPv6 does not: answers leave from ::11.
const V6 = "2001:db8:113::11";

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`SKIPPED: the NAT lab cannot run here: ${unavailable}`);
const releaseLab = unavailable === null ? await holdLabLock() : async () => {};
afterAll(releaseLab);

/** The clean test environment; the lab's addresses are documentation ranges, which a public node refuses to probe. */
function labEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { ...cleanEnv(), FINDINGS_ALLOW_SPECIAL_TARGETS: "true", ...extra };
}

interface Served {
  proc: Subprocess<"ignore", "pipe", Bun.BunFile>;
  home: string;
}

async function serve(ns: string, args: string[], env: Record<string, string> = {}): Promise<Served> {
  const home = mkdtempSync(join(tmpdir(), `findings-dual-${ns}-`));
  const proc = Bun.spawn(["ip", "netns", "exec", ns, BUN, MAIN, "serve", "--json", "--port", String(PORT), "--admin", ADMIN, "--home", home, "--log-level", "warn", ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: Bun.file(join(home, "stderr.log")),
    env: labEnv(env),
  });
  const reader = proc.stdout.getReader();
  let buf = "";
  try {
    await until(
      async () => {
        const r = await reader.read();
        if (r.done) throw new Error(`${ns} exited: ${await Bun.file(join(home, "stderr.log")).text()}`);
        buf += new TextDecoder().decode(r.value);
        return buf.includes('"event":"ready"');
      },
      { what: `${ns} ready`, timeoutMs: 20_000 },
    );
  } finally {
    reader.releaseLock();
  }
  return { proc, home };
}

async function cli(ns: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(["ip", "netns", "exec", ns, BUN, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: labEnv() });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

type Candidate = { id: string; proven: string[] };

describe.skipIf(unavailable !== null)("a dual-stack node in the NAT lab", () => {
  let wasUp = false;
  const nodes: Served[] = [];

  beforeAll(async () => {
    wasUp = labIsUp();
    labUp();
    nodes.push(await serve("fl-s1", ["--host", "::", "--public"], { FINDINGS_ADVERTISE: `${V4},${V6}` }));
    nodes.push(await serve("fl-s2", ["--host", "203.0.113.2", "--public", "--peer", `${V4}:${PORT}`]));
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) n.proc.kill("SIGTERM");
    await Promise.race([Promise.all(nodes.map((n) => n.proc.exited)), Bun.sleep(3_000)]);
    for (const n of nodes) if (n.proc.exitCode === null) n.proc.kill("SIGKILL");
    await Promise.all(nodes.map((n) => n.proc.exited));
    for (const n of nodes) rmSync(n.home, { recursive: true, force: true });
    if (!wasUp) labDown();
  }, 30_000);

  test("a node in fl-s2 proves both of its addresses", async () => {
    const proven = await until(
      async () => {
        const r = await cli("fl-s2", ["status", "--json", "--admin", ADMIN, "--timeout", "2"]);
        if (r.code !== 0) return null;
        const c = (JSON.parse(r.out) as { mesh: { candidates: Candidate[] } }).mesh.candidates.find((x) => x.proven.length === 2);
        return c?.proven;
      },
      { what: "fl-s2 proved both addresses of the dual-stack node", timeoutMs: 30_000, intervalMs: 500 },
    );
    expect([...proven].sort()).toEqual([`${V4}:${PORT}/${PORT}`, `[${V6}]:${PORT}/${PORT}`].sort());
  }, 40_000);

  for (const server of [`${V4}:${PORT}`, `[${V6}]:${PORT}`]) {
    test(`an app in fl-c-public reaches it at ${server} and gets its record with both addresses`, async () => {
      const r = await cli("fl-c-public", ["peers", "--server", server, "--json"]);
      expect({ code: r.code, err: r.err.slice(0, 300) }).toEqual({ code: 0, err: "" });
      const addresses = (JSON.parse(r.out) as { peers: { addresses: string[] }[] }).peers.flatMap((p) => p.addresses);
      expect(addresses).toContain(`${V4}:${PORT}/${PORT}`);
      expect(addresses).toContain(`[${V6}]:${PORT}/${PORT}`);
    }, 30_000);
  }
});
