// Test tiers: which test files `npm run test:unit`, `test:net`, `test:lab` and `test:sim` run (`npm test` runs them all).
//
//   bun tests/tiers.ts check                 every test file is in exactly one tier, and unit files are pure
//   bun tests/tiers.ts list unit|net|lab     the files of a tier
//   bun tests/tiers.ts unit|net|lab [ARGS]   check, then `bun test ARGS <files of the tier>`
//
// unit: pure code and fake-clock tests (no sockets, no processes), every test file not listed below, so
//       a new test lands here by default; `check` refuses a unit file that opens sockets or spawns processes
//       (the fix is a line in NET).
// net:  real sockets and processes on loopback, including tests/multinode.
// lab:  the network-namespace NAT lab (root only; one run at a time, see tests/lab/lab-lock.ts).
// sim:  the network simulator (src/sim): a 200-node network with churn and hostile nodes in one process.
import { Glob } from "bun";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

/** Files or folders (ending in "/") of the net tier. */
const NET = [
  "tests/adversary/",
  "tests/cli/",
  "tests/client/",
  "tests/contracts/address.test.ts",
  "tests/contracts/service.test.ts",
  "tests/multinode/",
  "tests/node/",
  "tests/mesh/link.test.ts",
  "tests/mesh/mesh-bootstrap.test.ts",
  "tests/mesh/mesh-service.test.ts",
  "tests/nat/service.test.ts",
  "tests/nat/service-cone.test.ts",
  "tests/nat/service-delegate.test.ts",
  "tests/nat/udp-check-serve.test.ts",
  "tests/natd/natd-newhost.test.ts",
  "tests/natd/natd-service.test.ts",
  "tests/ops/dashboard.test.ts",
  "tests/ops/metrics.test.ts",
  "tests/ops/process-metrics.test.ts",
  "tests/ops/status-page.test.ts",
  "tests/packaging/",
  "tests/punch/punch-client.test.ts",
  "tests/punch/punch-recipes.test.ts",
  "tests/punch/punch-remap.test.ts",
  "tests/punch/punch-service.test.ts",
  "tests/rpc/transports.test.ts",
  "tests/share/service.test.ts",
  "tests/stun/real-client.test.ts",
  "tests/transport/app-bootstrap/",
  "tests/transport/quic/",
  "tests/transport/tls/",
  "tests/transport/udp/shared-socket.test.ts",
  "tests/transport/ws/connection.test.ts",
  "tests/transport/ws/frame.test.ts",
];
const LAB = ["tests/lab/"];
/** The network simulator's scenarios: hundreds of nodes in one process, tens of seconds each. */
const SIM = ["tests/sim/"];

export type Tier = "unit" | "net" | "lab" | "sim";

/** What marks a file as using sockets or processes (so it does not belong in unit). */
const IMPURE = /\bBun\.(spawn|spawnSync|udpSocket|listen|connect|serve)\b|^import (?!type )[^;]*?from "node:(dgram|net|tls|https?|http2|child_process)"|\b(createNode|startServe|runCli|createTlsEndpoint|createUdpEndpoint|createUdpClient|dialWss|createServer)\(/m;

/** Every file `bun test` would run: its name patterns, anywhere but node_modules and build output. */
export function allTestFiles(): string[] {
  const glob = new Glob("**/*{.test,_test,.spec,_spec}.{ts,tsx,js,jsx,mts,cts,mjs,cjs}");
  const files: string[] = [];
  for (const f of glob.scanSync({ cwd: ROOT, onlyFiles: true })) {
    if (!/(^|\/)(node_modules|dist|\.tmp|\.git)\//.test(f)) files.push(f);
  }
  return files.sort();
}

const listed = (entries: string[], file: string) => entries.some((e) => (e.endsWith("/") ? file.startsWith(e) : file === e));

export function tierOf(file: string): Tier {
  if (listed(LAB, file)) return "lab";
  if (listed(SIM, file)) return "sim";
  if (listed(NET, file)) return "net";
  return "unit";
}

/** Problems with the tier lists: entries that match nothing, unit files that are not pure. */
export function checkTiers(files = allTestFiles()): string[] {
  const problems: string[] = [];
  for (const e of [...NET, ...LAB, ...SIM]) if (!files.some((f) => listed([e], f))) problems.push(`${e} is listed in tests/tiers.ts but no test file matches it`);
  for (const f of files.filter((x) => tierOf(x) === "unit")) {
    const m = IMPURE.exec(readFileSync(join(ROOT, f), "utf8"));
    if (m) problems.push(`${f} uses ${m[0]}: a unit test must not open sockets or spawn processes; add it to NET in tests/tiers.ts`);
  }
  return problems;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const files = allTestFiles();
  const problems = checkTiers(files);
  if (cmd === "check") {
    for (const p of problems) console.error(`tiers: ${p}`);
    if (problems.length === 0) {
      const count = (t: Tier) => files.filter((f) => tierOf(f) === t).length;
      console.log(`tiers: ${files.length} test files: unit ${count("unit")}, net ${count("net")}, lab ${count("lab")}, sim ${count("sim")}`);
    }
    return problems.length ? 1 : 0;
  }
  const tier = (cmd === "list" ? rest.shift() : cmd) as Tier | undefined;
  if (tier !== "unit" && tier !== "net" && tier !== "lab" && tier !== "sim") {
    console.error("usage: bun tests/tiers.ts check | list unit|net|lab|sim | unit|net|lab|sim [bun test args]");
    return 2;
  }
  const chosen = files.filter((f) => tierOf(f) === tier);
  if (cmd === "list") {
    console.log(chosen.join("\n"));
    return 0;
  }
  if (problems.length) {
    for (const p of problems) console.error(`tiers: ${p}`);
    return 1;
  }
  // "./" makes each argument a path, not a name filter that could match other files.
  const t0 = Date.now();
  const proc = Bun.spawn([process.execPath, "test", ...rest, ...chosen.map((f) => `./${f}`)], { cwd: ROOT, stdio: ["inherit", "inherit", "inherit"] });
  const code = await proc.exited;
  console.log(`tiers: ${tier}: ${chosen.length} files in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return code;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));

