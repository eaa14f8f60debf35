// What the unit's sandbox allows, read from the unit file and systemd's own syscall groups, and what
// a traced run used (strace). Lets the package test check the sandbox against a real run on a
// machine where systemd is not PID 1 (a CI container), where the unit itself cannot be started.

/** The values of `key=` lines in a unit file, in order (an empty assignment resets the list). */
export function unitValues(unit: string, key: string): string[] {
  const out: string[] = [];
  for (const line of unit.split("\n")) {
    const m = new RegExp(`^${key}=(.*)$`).exec(line.trim());
    if (m) out.push(m[1]!.trim());
  }
  return out;
}

/** Every syscall group systemd knows, with its members (syscalls or other @groups). */
async function syscallGroups(): Promise<Map<string, string[]>> {
  const p = Bun.spawn(["systemd-analyze", "syscall-filter"], { stdout: "pipe", stderr: "pipe" });
  const text = await new Response(p.stdout).text();
  if ((await p.exited) !== 0) throw new Error("systemd-analyze syscall-filter failed");
  const groups = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const raw of text.split("\n")) {
    if (/^@[\w-]+$/.test(raw)) groups.set(raw, (current = []));
    else if (raw.startsWith("#")) current = null; // "# Unknown/unlisted system calls" after the groups
    else if (current && /^\s+[@\w]/.test(raw) && !raw.trim().startsWith("#")) current.push(raw.trim());
  }
  return groups;
}

function expand(groups: Map<string, string[]>, name: string, into = new Set<string>()): Set<string> {
  if (!name.startsWith("@")) return into.add(name);
  const members = groups.get(name);
  if (!members) throw new Error(`unknown syscall group ${name}`);
  for (const m of members) expand(groups, m, into);
  return into;
}

/** The syscalls the unit's SystemCallFilter= lines allow (an allow list, then `~` deny lists). */
export async function allowedSyscalls(unit: string): Promise<Set<string>> {
  const groups = await syscallGroups();
  let allowed: Set<string> | null = null;
  for (const value of unitValues(unit, "SystemCallFilter")) {
    const deny = value.startsWith("~");
    const names = value.replace(/^~/, "").split(/\s+/).filter(Boolean);
    const set = new Set<string>();
    for (const n of names) expand(groups, n, set);
    if (deny) {
      if (!allowed) throw new Error("a deny list before any allow list");
      for (const s of set) allowed.delete(s);
    } else allowed = new Set([...(allowed ?? []), ...set]);
  }
  if (!allowed) throw new Error("the unit has no SystemCallFilter allow list");
  return allowed;
}

export interface Trace {
  syscalls: Set<string>;
  /** Address families of socket() and socketpair() calls, e.g. AF_INET. */
  families: Set<string>;
}

/** Reads `strace -f -o FILE` output. */
export function readTrace(text: string): Trace {
  const syscalls = new Set<string>();
  const families = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^\d+\s+([a-z0-9_]+)\((.*)$/.exec(line);
    if (!m) continue;
    syscalls.add(m[1]!);
    if (m[1] === "socket" || m[1] === "socketpair") families.add(m[2]!.split(",")[0]!.trim());
  }
  return { syscalls, families };
}
