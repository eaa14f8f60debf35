// The .deb as an operator gets it: its contents, its unit (systemd-analyze verify and the offline
// security score), and a real install on this machine (dpkg -i), a run of the installed binary as
// the service user under strace (checked against the unit's syscall filter and address families,
// since systemd is not PID 1 in CI), then remove and purge, which must leave the machine as it was.
// Building and inspecting needs dpkg-deb and systemd-analyze; installing needs root, and refuses to
// touch a machine where findings (or a findings user) is already there.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packagedConfig } from "../../packaging/debian/config.ts";
import { ensureDeb, flavor, packageVersion, run } from "../../scripts/package.ts";
import { freePort } from "../helpers.ts";
import { allowedSyscalls, readTrace, unitValues } from "./sandbox.ts";

const UNIT = "/usr/lib/systemd/system/findings.service";
const has = (tool: string) => Bun.which(tool) !== null;
const status = (cmd: string[]) => Bun.spawnSync(cmd, { stdout: "ignore", stderr: "ignore" }).exitCode;

/** Why the .deb cannot be built and inspected here, or null. */
function whyNotBuild(): string | null {
  const missing = ["dpkg-deb", "systemd-analyze"].filter((t) => !has(t));
  return missing.length ? `missing ${missing.join(", ")} (.ci/run installs them)` : null;
}

/** Why it must not be installed on this machine, or null. */
function whyNotInstall(): string | null {
  if (process.getuid?.() !== 0) return "needs root (dpkg -i / --purge)";
  const missing = ["dpkg", "adduser", "runuser", "setpriv", "strace"].filter((t) => !has(t));
  if (missing.length) return `missing ${missing.join(", ")} (.ci/run installs them)`;
  if (status(["dpkg", "-s", "findings"]) === 0) return "findings is installed on this machine; the test will not replace it";
  if (status(["getent", "passwd", "findings"]) === 0 || existsSync("/var/lib/findings")) return "a findings user or /var/lib/findings exists already";
  return null;
}

const skipBuild = whyNotBuild();
const skipInstall = skipBuild ?? whyNotInstall();
if (skipBuild) console.warn(`\n*** SKIPPED tests/packaging/deb.test.ts: ${skipBuild} ***\n`);
else if (skipInstall) console.warn(`\n*** SKIPPED the install part of tests/packaging/deb.test.ts: ${skipInstall} ***\n`);

const version = packageVersion();
let deb = "";
let unitText = "";

describe.skipIf(skipBuild !== null)("the findings .deb", () => {
  beforeAll(async () => {
    deb = await ensureDeb(flavor(false));
    unitText = readFileSync(join(import.meta.dir, "..", "..", "packaging", "debian", "findings.service"), "utf8");
  }, 600_000);

  afterAll(async () => {
    // Whatever failed above (even an unpack cut short), leave no package, user or state behind.
    if (status(["dpkg", "-s", "findings"]) === 0) await run(["dpkg", "--purge", "--force-remove-reinstreq", "findings"]);
  }, 120_000);

  test("holds the binary, the unit, the conffile and the maintainer scripts", async () => {
    const info = await run(["dpkg-deb", "-I", deb]);
    expect(info).toMatch(/^ Package: findings$/m);
    expect(info).toMatch(new RegExp(`^ Version: ${version.replace(/\./g, "\\.")}$`, "m"));
    expect(info).toMatch(/^ Architecture: amd64$/m);
    expect(info).toMatch(/^ Depends: .*adduser/m);
    for (const script of ["postinst", "prerm", "postrm", "conffiles"]) expect(info).toContain(` ${script} `);
    expect(await run(["dpkg-deb", "-f", deb, "Package"])).toBe("findings\n");

    const files = await run(["dpkg-deb", "-c", deb]);
    expect(files).toMatch(/^-rwxr-xr-x root\/root +\d+ .* \.\/usr\/bin\/findings$/m);
    expect(files).toMatch(/^-rw-r--r-- root\/root .* \.\/usr\/lib\/systemd\/system\/findings\.service$/m);
    expect(files).toMatch(/^-rw-r--r-- root\/root .* \.\/etc\/findings\/config\.toml$/m);
    // /var/lib/findings belongs to the maintainer scripts, so remove can leave it and purge delete it.
    expect(files).not.toContain("./var/");

    const dir = mkdtempSync(join(tmpdir(), "findings-deb-x-"));
    try {
      await run(["dpkg-deb", "-e", deb, join(dir, "DEBIAN")]);
      expect(readFileSync(join(dir, "DEBIAN", "conffiles"), "utf8").trim()).toBe("/etc/findings/config.toml");
      await run(["dpkg-deb", "-x", deb, dir]);
      expect(readFileSync(join(dir, "etc", "findings", "config.toml"), "utf8")).toBe(packagedConfig());
      expect(readFileSync(join(dir, UNIT.slice(1)), "utf8")).toBe(unitText);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("the unit runs the node as an unprivileged user and scores OK or better", async () => {
    expect(unitValues(unitText, "ExecStart")).toEqual(["/usr/bin/findings serve --home /var/lib/findings --config /etc/findings/config.toml"]);
    expect(unitValues(unitText, "User")).toEqual(["findings"]);
    expect(unitValues(unitText, "KillSignal")).toEqual(["SIGTERM"]);
    expect(unitValues(unitText, "CapabilityBoundingSet")).toEqual([""]);
    expect(unitValues(unitText, "NoNewPrivileges")).toEqual(["yes"]);
    expect(unitValues(unitText, "MemoryDenyWriteExecute")).toEqual([]); // the JIT needs W+X memory

    const dir = mkdtempSync(join(tmpdir(), "findings-unit-"));
    try {
      await Bun.write(join(dir, "findings.service"), unitText);
      const p = Bun.spawn(["systemd-analyze", "security", "--offline=yes", "--no-pager", join(dir, "findings.service")], { stdout: "pipe", stderr: "pipe" });
      const out = await new Response(p.stdout).text();
      await p.exited;
      const m = /Overall exposure level for findings\.service: ([\d.]+) (\w+)/.exec(out);
      expect(m).not.toBeNull();
      console.log(`systemd-analyze security: ${m![1]} ${m![2]}`);
      expect(["SAFE", "OK"]).toContain(m![2]!);
      expect(Number(m![1])).toBeLessThan(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  describe.skipIf(skipInstall !== null)("installed with dpkg -i", () => {
    test("creates the user and folders, enables the unit and does not start it without systemd", async () => {
      await run(["dpkg", "-i", deb]);
      const user = (await run(["getent", "passwd", "findings"])).trim().split(":");
      expect(Number(user[2])).toBeLessThan(1000);
      expect(user[5]).toBe("/var/lib/findings");
      expect(user[6]).toBe("/usr/sbin/nologin");
      const uid = Number(user[2]);
      for (const [dir, mode] of [["/var/lib/findings", 0o700], ["/var/log/findings", 0o750]] as const) {
        const st = statSync(dir);
        expect(st.uid).toBe(uid);
        expect(st.mode & 0o777).toBe(mode);
      }
      // deb-systemd-helper enables the unit even in a chroot; only a running systemd starts it.
      expect(existsSync("/etc/systemd/system/multi-user.target.wants/findings.service")).toBe(true);
      if (!existsSync("/run/systemd/system")) expect(status(["pgrep", "-u", "findings"])).not.toBe(0);
      expect(await run(["systemd-analyze", "verify", UNIT])).toBe("");
    }, 120_000);

    test("the installed binary prints its version and the packaged config", async () => {
      expect((await run(["/usr/bin/findings", "--version"])).trim()).toBe(version);
      const config = await run(["runuser", "-u", "findings", "--", "/usr/bin/findings", "config", "--home", "/var/lib/findings", "--config", "/etc/findings/config.toml"]);
      expect(config).toMatch(/^log_root = "\/var\/log\/findings"$/m);
      expect(config).toMatch(/^server_uport = 7788$/m);
    }, 30_000);

    test("serves as the service user within the unit's syscall filter and address families, and stops on SIGTERM", async () => {
      const traceDir = mkdtempSync(join(tmpdir(), "findings-trace-"));
      const client = mkdtempSync(join(tmpdir(), "findings-client-"));
      chownSync(traceDir, Number((await run(["id", "-u", "findings"])).trim()), 0);
      const [port, admin] = [await freePort(), await freePort()];
      // The unit's ExecStart as the unit's user without new privileges, on ports that cannot clash
      // with other tests, as the first node of a network. setpriv execs, so strace is our child.
      const execStart = unitValues(unitText, "ExecStart")[0]!.split(" ");
      const node = Bun.spawn(
        ["setpriv", "--reuid=findings", "--regid=findings", "--init-groups", "--no-new-privs", "strace", "-f", "-qq", "-o", join(traceDir, "trace"), ...execStart],
        {
          env: { PATH: "/usr/bin:/bin", FINDINGS_HOST: "127.0.0.1", FINDINGS_SERVER_UPORT: String(port), FINDINGS_SERVER_TPORT: String(port), FINDINGS_ADMIN: `127.0.0.1:${admin}`, FINDINGS_PUBLIC: "true" },
          stdout: "pipe",
          stderr: "pipe",
        },
      );
      try {
        // Under strace on a busy machine the start takes a few seconds.
        let ready = 1;
        for (const deadline = Date.now() + 60_000; ready !== 0 && Date.now() < deadline; ) {
          await Bun.sleep(200);
          ready = status(["/usr/bin/findings", "status", "--home", client, "--admin", `127.0.0.1:${admin}`]);
        }
        expect(ready).toBe(0);
        const whoami = await run(["/usr/bin/findings", "whoami", "--json", "--home", client, "--server", `127.0.0.1:${port}`]);
        expect(JSON.parse(whoami)).toMatchObject({ via: "quic" });
        // SIGTERM to the node itself, as systemd sends it; strace exits with the node's code.
        const pid = (await run(["pgrep", "-u", "findings", "-x", "findings"])).trim();
        expect(pid).toMatch(/^\d+$/);
        process.kill(Number(pid), "SIGTERM");
        expect(await node.exited).toBe(0);
      } finally {
        node.kill("SIGKILL");
        rmSync(client, { recursive: true, force: true });
      }
      const trace = readTrace(readFileSync(join(traceDir, "trace"), "utf8"));
      rmSync(traceDir, { recursive: true, force: true });
      const allowed = await allowedSyscalls(unitText);
      expect([...trace.syscalls].filter((s) => !allowed.has(s))).toEqual([]);
      const families = unitValues(unitText, "RestrictAddressFamilies").join(" ").split(/\s+/);
      expect([...trace.families].filter((f) => !families.includes(f))).toEqual([]);
      expect(trace.families.has("AF_INET")).toBe(true);

      const logs = readdirSync("/var/log/findings");
      expect(logs.length).toBeGreaterThan(0);
      expect(readFileSync(join("/var/log/findings", logs[0]!), "utf8")).toContain('"msg":"node stopped"');
    }, 120_000);

    test("remove keeps the state and the conffile; purge leaves nothing behind", async () => {
      await run(["dpkg", "-r", "findings"]);
      expect(existsSync("/usr/bin/findings")).toBe(false);
      expect(existsSync(UNIT)).toBe(false);
      expect(existsSync("/var/lib/findings/node.key")).toBe(true);
      expect(existsSync("/etc/findings/config.toml")).toBe(true);

      await run(["dpkg", "--purge", "findings"]);
      for (const path of ["/var/lib/findings", "/var/log/findings", "/etc/findings", "/etc/systemd/system/multi-user.target.wants/findings.service"]) expect(existsSync(path)).toBe(false);
      expect(status(["dpkg", "-s", "findings"])).not.toBe(0);
      expect(status(["getent", "passwd", "findings"])).not.toBe(0);
      expect(status(["getent", "group", "findings"])).not.toBe(0);
      const leftovers = (await run(["find", "/etc/systemd", "/var/lib/systemd", "-name", "*findings*"])).trim();
      expect(leftovers).toBe("");
    }, 120_000);
  });
});
