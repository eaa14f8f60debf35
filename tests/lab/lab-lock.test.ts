// The NAT lab's lock (tests/lab/lab-lock.ts, lab.sh): one run holds the lab at a time, a second waits, and the
// holder's own lab.sh commands do not wait for it. Dry: a temp lock file, and only `lab.sh status`, which
// changes nothing (no root needed, no namespaces touched).
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { until, within } from "../wait.ts";
import { heldLabLocks, holdLabLock } from "./lab-lock.ts";
import { LAB_SCRIPT } from "./lab.ts";

const dir = tempDir("findings-lab-lock-");
afterAll(() => dir[Symbol.dispose]());
const lockFile = join(dir.path, "natlab.lock");

const othersCanTake = () => Bun.spawnSync(["flock", "-n", lockFile, "true"]).exitCode === 0;

/** Another run holding the lock: a process of its own. */
async function otherRun(): Promise<{ release(): Promise<void> }> {
  const proc = Bun.spawn(["flock", "-x", lockFile, "sh", "-c", "echo held; exec cat >/dev/null"], { stdin: "pipe", stdout: "pipe" });
  const reader = proc.stdout.getReader();
  expect(new TextDecoder().decode((await reader.read()).value)).toStartWith("held");
  reader.releaseLock();
  return {
    async release() {
      proc.stdin.end();
      await proc.exited;
    },
  };
}

/** `lab.sh status` against the temp lock, with this process's environment (FL_NATLAB_LOCK_HELD while held). */
function labStatus() {
  return Bun.spawn(["bash", LAB_SCRIPT, "status"], { env: { ...process.env, FL_NATLAB_LOCK_FILE: lockFile }, stdout: "pipe", stderr: "pipe" });
}

describe("the NAT lab lock", () => {
  test("a hold keeps other processes out until released; holds in one process share it", async () => {
    const first = await holdLabLock(lockFile);
    expect(othersCanTake()).toBe(false);
    const second = await holdLabLock(lockFile);
    await first();
    expect(othersCanTake()).toBe(false);
    await second();
    expect(othersCanTake()).toBe(true);
    expect(heldLabLocks()).not.toContain(lockFile);
  });

  test("a second run waits for the first and gets the lock when the first lets go", async () => {
    const other = await otherRun();
    let granted = false;
    const hold = holdLabLock(lockFile).then((release) => ((granted = true), release));
    await Bun.sleep(300); // asserts waiting: nothing is granted while the other run holds the lock
    expect(granted).toBe(false);
    await other.release();
    const release = await hold;
    expect(othersCanTake()).toBe(false);
    await release();
  });

  test("lab.sh waits while another run holds the lock, and runs at once under this process's own hold", async () => {
    const other = await otherRun();
    const blocked = labStatus();
    await Bun.sleep(300); // asserts waiting: lab.sh does not run while another run holds the lab
    expect(blocked.exitCode).toBeNull();
    await other.release();
    await until(() => blocked.exitCode !== null, { what: "lab.sh status after the other run let go", timeoutMs: 10_000 });
    expect(await new Response(blocked.stdout).text()).toContain("lab:");

    const release = await holdLabLock(lockFile);
    try {
      expect(heldLabLocks()).toContain(lockFile);
      const own = labStatus();
      await within(own.exited, { what: "lab.sh status under this process's own hold", timeoutMs: 10_000 });
      expect(await new Response(own.stdout).text()).toContain("lab:");
    } finally {
      await release();
    }
  });
});

