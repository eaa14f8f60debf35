// Process families of /metrics: memory, CPU, file descriptors, sockets, start time and event-loop lag. They follow
// the names of the Prometheus client libraries' process collector (process_resident_memory_bytes,
// process_cpu_seconds_total, process_open_fds, ...) under the registry's `findings_` prefix, so every family of
// the node shares one prefix. Descriptors and sockets are read from /proc (Linux); elsewhere those families are
// left out rather than reported as 0.
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { MetricsRegistry } from "../contracts/index.ts";

/** How often the event-loop lag is sampled, in ms: two timer wake-ups a second cost nothing measurable. */
const LAG_SAMPLE_INTERVAL_MS = 500;
/** Event-loop lag buckets in seconds: a healthy loop lags under a millisecond; a blocked one for seconds. */
const LAG_BUCKETS_SECONDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const PROC_FD = "/proc/self/fd";
/** Socket tables of this process's network namespace, read to tell a socket's protocol by its inode (the 10th
 *  column, the 7th in the unix table). /proc/net/tcp is not among them: for every read
 *  the kernel walks its whole established-connections hash (262,144 buckets on a small host), which blocks the
 *  event loop ~10 ms per scrape. A socket in none of these tables is counted as TCP: the node opens no other
 *  kinds (no SCTP, no packet sockets). */
const PROC_SOCKET_TABLES: readonly [protocol: "udp" | "other", path: string, inodeColumn: number][] = [
  ["udp", "/proc/self/net/udp", 9],
  ["udp", "/proc/self/net/udp6", 9],
  ["other", "/proc/self/net/raw", 9],
  ["other", "/proc/self/net/raw6", 9],
  ["other", "/proc/self/net/unix", 6],
  ["other", "/proc/self/net/netlink", 9],
];

export interface ProcessMetrics {
  /** Starts the event-loop lag sampler. */
  start(): void;
  /** Stops the sampler; the other families keep reading the process at each render. */
  stop(): void;
}

/** The targets of this process's open descriptors ("socket:[123]", "/dev/null", ...); [] without /proc. */
export function openDescriptors(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(PROC_FD)) {
    try {
      out.push(readlinkSync(`${PROC_FD}/${fd}`));
    } catch {
      // Closed between the listing and the read (the listing's own descriptor is one).
    }
  }
  return out;
}

/** Sockets among `descriptors`, by protocol: udp and other (Unix, netlink, raw) as the kernel's tables name
 *  their inodes, tcp for the rest. */
export function countSockets(descriptors: readonly string[]): { tcp: number; udp: number; other: number } {
  const inodes = descriptors.map((d) => /^socket:\[(\d+)\]$/.exec(d)?.[1]).filter((i): i is string => i !== undefined);
  const protocolOf = new Map<string, "udp" | "other">();
  if (inodes.length > 0) {
    for (const [protocol, path, column] of PROC_SOCKET_TABLES) {
      let table: string;
      try {
        table = readFileSync(path, "utf8");
      } catch {
        continue; // no IPv6 or no raw sockets in this kernel
      }
      for (const row of table.split("\n").slice(1)) {
        const inode = row.trim().split(/\s+/)[column];
        if (inode) protocolOf.set(inode, protocol);
      }
    }
  }
  const counts = { tcp: 0, udp: 0, other: 0 };
  for (const inode of inodes) counts[protocolOf.get(inode) ?? "tcp"]++;
  return counts;
}

/** The soft limit on open descriptors (RLIMIT_NOFILE), or null when /proc does not say. */
function maxDescriptors(): number | null {
  try {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    return soft && /^\d+$/.test(soft) ? Number(soft) : null;
  } catch {
    return null;
  }
}

/** Registers the process families on `registry`. Read at each render, except the event-loop lag, which a timer
 *  samples between start() and stop(). */
export function registerProcessMetrics(registry: MetricsRegistry): ProcessMetrics {
  const gauge = (name: string, help: string, read: () => number) => registry.gauge({ name, help, collect: (emit) => emit({}, read()) });
  // The wall-clock time the process started: now minus its uptime, fixed once so restarts show as steps.
  const startedAtSeconds = Date.now() / 1000 - process.uptime();

  registry.counter({
    name: "findings_process_cpu_seconds_total",
    help: "User and system CPU time the process has spent, in seconds.",
    collect: (emit) => {
      const { user, system } = process.cpuUsage();
      emit({}, (user + system) / 1e6);
    },
  });
  gauge("findings_process_resident_memory_bytes", "Resident set size of the process, in bytes.", () => process.memoryUsage.rss());
  gauge("findings_process_heap_used_bytes", "JavaScript heap in use, in bytes.", () => process.memoryUsage().heapUsed);
  gauge("findings_process_heap_total_bytes", "JavaScript heap reserved, in bytes.", () => process.memoryUsage().heapTotal);
  gauge("findings_process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", () => startedAtSeconds);

  if (existsSync(PROC_FD)) {
    // One listing per render serves both families: a render is synchronous, so the list is dropped at the next microtask.
    let listed: string[] | undefined;
    const descriptors = () => {
      if (!listed) {
        listed = openDescriptors();
        queueMicrotask(() => (listed = undefined));
      }
      return listed;
    };
    gauge("findings_process_open_fds", "Open file descriptors of the process (sockets included).", () => descriptors().length);
    const max = maxDescriptors();
    if (max !== null) gauge("findings_process_max_fds", "The process's limit on open file descriptors (soft RLIMIT_NOFILE).", () => max);
    registry.gauge<"protocol">({
      name: "findings_process_open_sockets",
      help: "Sockets the process holds open, by protocol (other = Unix, netlink and raw sockets).",
      labelNames: ["protocol"],
      collect: (emit) => {
        for (const [protocol, n] of Object.entries(countSockets(descriptors()))) emit({ protocol }, n);
      },
    });
  }

  const lag = registry.histogram({
    name: "findings_process_event_loop_lag_seconds",
    help: `How late a timer due every ${LAG_SAMPLE_INTERVAL_MS} ms fired: time the event loop was busy elsewhere, in seconds.`,
    buckets: LAG_BUCKETS_SECONDS,
  });
  let sampler: ReturnType<typeof setInterval> | undefined;
  return {
    start() {
      if (sampler) return;
      let last = performance.now();
      sampler = setInterval(() => {
        const t = performance.now();
        lag.observe({}, Math.max(0, t - last - LAG_SAMPLE_INTERVAL_MS) / 1000);
        last = t;
      }, LAG_SAMPLE_INTERVAL_MS);
      sampler.unref?.();
    },
    stop() {
      clearInterval(sampler);
      sampler = undefined;
    },
  };
}
