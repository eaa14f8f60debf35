// The admin status page in a real browser (headless Chromium) against a devnet of 3 meshed nodes: the mesh graph,
// the numbers it shows next to the node's own /status, text from peers never parsed as HTML, and a screenshot.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, MAIN, ROOT, freeUdpTcpPort, loopbackPrefix, tempDir } from "../helpers.ts";
import { until } from "../wait.ts";

const chromium = Bun.which("chromium") ?? Bun.which("chromium-browser");
const dir = tempDir("findings-page-");
const ARTIFACT = join(ROOT, ".tmp", "artifacts", "status-page.png");
/** A stake address a peer could choose: valid config (printable, no spaces), and HTML if anyone parsed it. */
const HOSTILE_STAKE = "<img/src=x/onerror=document.title=1>";
const BANNED_ID = "ab".repeat(32);

interface DevnetNode {
  name: string;
  id: string;
  address: string;
  admin: string;
}
let devnet: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
let nodes: DevnetNode[] = [];

interface StatusView {
  node: { id: string; role: string };
  nat: { own: { nat: string; label: string } | null };
  mesh: { candidates: unknown[]; mesh: { links: unknown[] }; bans: unknown[] };
}

/** Reads NDJSON events from the devnet until `event` came. */
async function waitForEvent(reader: ReadableStreamDefaultReader<Uint8Array>, event: string, seen: Record<string, unknown>[]): Promise<Record<string, unknown>> {
  let buf = "";
  for (;;) {
    const hit = seen.find((e) => e.event === event);
    if (hit) return hit;
    const { value, done } = await reader.read();
    if (done) throw new Error(`devnet exited before "${event}"`);
    buf += new TextDecoder().decode(value);
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      seen.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  }
}

beforeAll(async () => {
  if (!chromium) return;
  // A random loopback /24 and a free port keep this devnet apart from other tests and runs.
  const prefix = loopbackPrefix();
  const port = await freeUdpTcpPort(`${prefix}.1`);
  const home = join(dir.path, "home");
  mkdirSync(join(home, "devnet", "n1"), { recursive: true });
  writeFileSync(join(home, "devnet", "n1", "bans.json"), JSON.stringify({ ids: [BANNED_ID], ips: ["203.0.113.0/24"] }));
  const config = join(dir.path, "node.toml");
  writeFileSync(config, `[stakes]\n"app:chat" = ${JSON.stringify(HOSTILE_STAKE)}\n`);
  devnet = Bun.spawn([BUN, MAIN, "devnet", "3", "--json", "--prefix", prefix, "--port", String(port), "--home", home, "--config", config], { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const events: Record<string, unknown>[] = [];
  const reader = devnet.stdout.getReader();
  const ready = (await waitForEvent(reader, "ready", events)) as { nodes: DevnetNode[] };
  nodes = ready.nodes;
  await waitForEvent(reader, "meshed", events);
  reader.releaseLock();
}, 90_000);

afterAll(async () => {
  if (devnet && devnet.exitCode === null) {
    devnet.kill("SIGTERM");
    const timer = setTimeout(() => devnet?.kill("SIGKILL"), 10_000);
    await devnet.exited;
    clearTimeout(timer);
  }
  dir[Symbol.dispose]();
});

const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
let profiles = 0;

/** Runs Chromium on `url` with a fresh profile; virtual time lets the page poll /status `budgetMs` worth. */
async function chromiumRun(url: string, budgetMs: number, extra: string[]): Promise<string> {
  const args = [...CHROMIUM_FLAGS, `--user-data-dir=${join(dir.path, `chromium-${++profiles}`)}`, `--virtual-time-budget=${budgetMs}`, ...extra, url];
  const p = Bun.spawn([chromium!, ...args], { stdout: "pipe", stderr: "ignore" });
  const timer = setTimeout(() => p.kill(), 40_000);
  const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  clearTimeout(timer);
  return out;
}

/** What the page shows, read from the DOM after its scripts ran. */
interface PageView {
  html: string;
  linkEdges: number;
  candidateEdges: number;
  images: number;
  text: Record<string, string>;
  rows: Record<string, string[][]>;
}

async function readPage(html: string): Promise<PageView> {
  const view: PageView = { html, linkEdges: 0, candidateEdges: 0, images: 0, text: {}, rows: {} };
  const rewriter = new HTMLRewriter()
    .on("svg#graph line.edge.link", { element: () => void view.linkEdges++ })
    .on("svg#graph line.edge.candidate", { element: () => void view.candidateEdges++ })
    .on("img", { element: () => void view.images++ });
  for (const id of ["stat-links", "stat-candidates", "stat-nat", "stat-bans", "role", "summary", "error"]) {
    view.text[id] = "";
    rewriter.on(`#${id}`, { text: (t) => void (view.text[id] += t.text) });
  }
  for (const id of ["pools", "counters", "bans"]) {
    const rows: string[][] = (view.rows[id] = []);
    rewriter.on(`#${id} tr`, { element: () => void rows.push([]) }).on(`#${id} td`, { element: () => void rows.at(-1)!.push(""), text: (t) => void (rows.at(-1)![rows.at(-1)!.length - 1] += t.text) });
  }
  await rewriter.transform(new Response(html)).text();
  for (const id of Object.keys(view.rows)) view.rows[id] = view.rows[id]!.filter((r) => r.length > 0); // header rows hold th only
  return view;
}

/** STUN Binding requests (RFC 5389, 20-byte header) to `address` in waves, until stop(). */
function stunTraffic(address: string): { stop(): void; sent(): number } {
  const [ip, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  let running = true;
  let sent = 0;
  void (async () => {
    const sock = await Bun.udpSocket({});
    for (let tick = 0; running; tick++) {
      const burst = Math.round(4 + 4 * Math.sin(tick / 6));
      for (let i = 0; i < burst; i++) {
        const req = new Uint8Array(20);
        const view = new DataView(req.buffer);
        view.setUint16(0, 0x0001); // Binding request, no attributes
        view.setUint32(4, 0x2112a442); // magic cookie
        crypto.getRandomValues(req.subarray(8));
        sock.send(req, port, ip);
        sent++;
      }
      await Bun.sleep(50); // pacing: a burst every 50 ms, not a wait
    }
    sock.close();
  })();
  return { stop: () => void (running = false), sent: () => sent };
}

async function status(node: DevnetNode): Promise<StatusView> {
  return (await (await fetch(`${node.admin}/status`)).json()) as StatusView;
}

/** The numbers the page should show, from /status. */
function expected(s: StatusView) {
  return { links: s.mesh.mesh.links.length, candidates: s.mesh.candidates.length, bans: s.mesh.bans.length, nat: s.nat.own ? s.nat.own.label : "–" };
}

describe("status page", () => {
  test.skipIf(!chromium)("draws the mesh graph and shows the node's own /status numbers", async () => {
    const node = nodes[0]!;
    // The mesh may still settle: load until the page and /status (read before and after) agree.
    let page: PageView | undefined;
    let want: ReturnType<typeof expected> | undefined;
    const agree = async () => {
      const before = expected(await status(node));
      page = await readPage(await chromiumRun(`${node.admin}/`, 5000, ["--dump-dom"]));
      want = expected(await status(node));
      return JSON.stringify(before) === JSON.stringify(want) && page.linkEdges === want.links && want.links > 0;
    };
    // On a timeout the assertions below say what differs.
    await until(agree, { what: "the page and /status to agree", timeoutMs: 30_000, intervalMs: 1000 }).catch(() => {});
    expect(page!.text.error).toBe(""); // /status was read (the error line stays empty and hidden)
    expect(page!.html).toContain('<p id="error" class="err" hidden="">');
    expect(want!.links).toBeGreaterThan(0);
    expect(page!.linkEdges).toBe(want!.links);
    expect(page!.text["stat-links"]).toBe(String(want!.links));
    expect(page!.text["stat-candidates"]).toBe(String(want!.candidates));
    // Every candidate without a link is drawn on the outer ring.
    expect(page!.linkEdges + page!.candidateEdges).toBeGreaterThanOrEqual(want!.candidates);
    expect(page!.text["stat-nat"]).toBe(want!.nat);
    expect(want!.bans).toBe(2); // the two entries of n1's bans.json
    expect(page!.text["stat-bans"]).toBe("2");
    expect(page!.rows.bans!.map((r) => r[0])).toEqual([`${BANNED_ID.slice(0, 16)}…`, "203.0.113.0/24"]);
    expect(page!.rows.bans!.every((r) => r[3] === "never")).toBe(true);

    // Identity, role, the app pool of the served kind, the counters.
    expect(page!.html).toContain(node.id.slice(0, 16));
    expect(page!.text.summary).toContain(node.id);
    expect(page!.text.role).toBe("public · mesh service");
    expect(page!.rows.pools).toContainEqual(["app:chat", "0", "500"]);
    expect(page!.rows.counters!.map((r) => r[0])).toContain("udp_connections");

    // A peer-chosen string shows as text: no element made of it, the escaped text in the DOM.
    expect(page!.images).toBe(0);
    expect(page!.text.summary).toContain(HOSTILE_STAKE.replaceAll("<", "&lt;").replaceAll(">", "&gt;"));
    expect(page!.html).toContain("<title>Findings node</title>");
  }, 120_000);

  test.skipIf(!chromium)("charts the rate of STUN Binding requests while they come", async () => {
    const traffic = stunTraffic(nodes[0]!.address);
    const html = await chromiumRun(`${nodes[0]!.admin}/`, 12_000, ["--dump-dom"]).finally(() => traffic.stop());
    expect(traffic.sent()).toBeGreaterThan(0);
    let peak = "";
    let lines = 0;
    await new HTMLRewriter()
      .on("#charts > div:first-child polyline", { element: () => void lines++ })
      .on("#charts > div:first-child div.muted", { text: (t) => void (peak += t.text) })
      .transform(new Response(html))
      .text();
    expect(lines).toBeGreaterThan(0); // the answered series is drawn
    expect(Number(/peak ([\d.]+)/.exec(peak)?.[1])).toBeGreaterThan(0);
  }, 60_000);

  test.skipIf(!chromium)("saves a screenshot with some minutes of rates", async () => {
    mkdirSync(join(ROOT, ".tmp", "artifacts"), { recursive: true });
    await Bun.file(ARTIFACT).delete().catch(() => {});
    // Some traffic while the page samples, so that the charts have something to show.
    const traffic = stunTraffic(nodes[0]!.address);
    const probe = Bun.spawn([BUN, MAIN, "probe", "--json", "--home", join(dir.path, "prober"), "--server", nodes[0]!.address, "--timeout", "2"], { cwd: ROOT, stdout: "ignore", stderr: "ignore" });
    await chromiumRun(`${nodes[0]!.admin}/`, 30_000, ["--hide-scrollbars", "--window-size=1360,1500", `--screenshot=${ARTIFACT}`]).finally(() => traffic.stop());
    await probe.exited;
    const png = new Uint8Array(await Bun.file(ARTIFACT).arrayBuffer());
    expect([...png.subarray(1, 4)].map((b) => String.fromCharCode(b)).join("")).toBe("PNG");
    expect(png.length).toBeGreaterThan(20_000);
    console.log(`status page screenshot: ${ARTIFACT}`);
  }, 60_000);
});

if (!chromium) console.warn("\n*** status-page test SKIPPED: chromium is not installed (apt-get install chromium) ***\n");
