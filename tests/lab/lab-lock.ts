// One user of the NAT lab at a time. The lab is machine-wide (namespaces, router rules, conntrack timeouts),
// so a lab test file holds lab.sh's lock file for its whole run: a second run's lab tests wait for it
// instead of tearing the lab down under the first. While this process holds it, the lab.sh commands it
// runs (up, down, status) are told so (FL_NATLAB_LOCK_HELD names the held file) and do not wait for it.
import type { Subprocess } from "bun";

/** The lock lab.sh takes for each command (FL_NATLAB_LOCK_FILE moves it, for tests of the lock). */
export const LAB_LOCK_FILE = process.env.FL_NATLAB_LOCK_FILE ?? "/tmp/fl-natlab.lock";
/** How long a lab test file waits for another run's lab tests to finish. */
const LAB_LOCK_WAIT_S = 900;

type Holder = Subprocess<"pipe", "pipe", "ignore">;
const locks = new Map<string, { held: Promise<Holder> | null; holders: number }>();

/** Waits for the exclusive lock on `file` and holds it until the returned release is called (or this
 *  process ends: the lock belongs to a `flock` child that exits when our end of its stdin closes). Holds
 *  in one process share the lock; the last release lets it go. */
export async function holdLabLock(file = LAB_LOCK_FILE, waitS = LAB_LOCK_WAIT_S): Promise<() => Promise<void>> {
  const lock = locks.get(file) ?? { held: null, holders: 0 };
  locks.set(file, lock);
  lock.holders++;
  lock.held ??= takeLock(file, waitS).then(
    (proc) => {
      setHeld(file, true);
      return proc;
    },
    (err: unknown) => {
      lock.held = null;
      throw err;
    },
  );
  try {
    await lock.held;
  } catch (err) {
    lock.holders--;
    throw err;
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    if (--lock.holders > 0) return;
    const last = lock.held!;
    lock.held = null;
    setHeld(file, false);
    const proc = await last;
    proc.stdin.end();
    await proc.exited;
  };
}

/** The lock files this process holds, as lab.sh reads them: FL_NATLAB_LOCK_HELD is a ":"-separated list
 *  (the real lab's lock and a test's own lock file can be held at once in one test process). */
export function heldLabLocks(): string[] {
  return (process.env.FL_NATLAB_LOCK_HELD ?? "").split(":").filter(Boolean);
}

function setHeld(file: string, held: boolean): void {
  const files = heldLabLocks().filter((f) => f !== file);
  if (held) files.push(file);
  if (files.length) process.env.FL_NATLAB_LOCK_HELD = files.join(":");
  else delete process.env.FL_NATLAB_LOCK_HELD;
}

async function takeLock(file: string, waitS: number): Promise<Holder> {
  const proc: Holder = Bun.spawn(["flock", "-x", "-w", String(waitS), file, "sh", "-c", "echo held; exec cat >/dev/null"], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "ignore",
  });
  const reader = proc.stdout.getReader();
  const notice = setTimeout(() => console.warn(`waiting for the NAT lab: another run holds ${file} (up to ${waitS} s)`), 1000);
  try {
    const { value } = await reader.read();
    if (!value || !new TextDecoder().decode(value).startsWith("held")) {
      throw new Error(`the NAT lab stayed busy: another run held ${file} for ${waitS} s (flock exited ${await proc.exited})`);
    }
  } finally {
    clearTimeout(notice);
    reader.releaseLock();
  }
  return proc;
}
