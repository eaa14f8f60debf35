// The lifecycle contract: a Service starts and stops; a service group starts a list in order and stops it
// in reverse, undoing a partial start (STYLE "Lifecycle and waits").
import { errorLine } from "../errors.ts";
import { silentLogger, type Logger } from "./logger.ts";

export interface Service {
  /** Short name for logs and errors ("udp", "mesh-links"). */
  readonly name: string;
  /** Acquires sockets and timers. Rejects with nothing left open when it cannot. */
  start(): Promise<void>;
  /** Releases everything start() acquired. Must be safe to call once after a successful start(). */
  stop(): Promise<void>;
}

/** Anything with start/stop (sync or async) as a named Service: a thin wrapper for the room objects. */
export function asService(name: string, target: { start(): unknown; stop(): unknown }): Service {
  return {
    name,
    start: async () => {
      await target.start();
    },
    stop: async () => {
      await target.stop();
    },
  };
}

export interface ServiceGroup extends Service {
  /** Names of the services now running, in start order. */
  running(): string[];
}

/**
 * Runs `services` as one: start() starts them in list order. When one rejects, those already started are
 * stopped in reverse and start() rejects with the original error. stop() stops the running ones in
 * reverse, goes on past a failing stop, and then rejects with the first failure. Neither overlaps the
 * other: a stop() during start() waits for it.
 */
export function createServiceGroup(name: string, services: readonly Service[], opts: { log?: Logger } = {}): ServiceGroup {
  const log = opts.log ?? silentLogger;
  const started: Service[] = [];
  let chain: Promise<void> = Promise.resolve();
  const serial = (fn: () => Promise<void>): Promise<void> => {
    const p = chain.then(fn);
    chain = p.catch(() => {});
    return p;
  };

  async function stopStarted(): Promise<unknown[]> {
    const failures: unknown[] = [];
    while (started.length > 0) {
      const s = started.pop()!;
      try {
        await s.stop();
        log.debug("service stopped", { service: s.name });
      } catch (err) {
        failures.push(err);
        log.warn("service did not stop cleanly", { service: s.name, error: errorLine(err) });
      }
    }
    return failures;
  }

  return {
    name,
    start: () =>
      serial(async () => {
        if (started.length > 0) return;
        for (const s of services) {
          try {
            await s.start();
          } catch (err) {
            log.warn("service failed to start; stopping the others", { service: s.name, error: errorLine(err), started: started.map((x) => x.name) });
            await stopStarted();
            throw err;
          }
          started.push(s);
          log.debug("service started", { service: s.name });
        }
      }),
    stop: () =>
      serial(async () => {
        const failures = await stopStarted();
        if (failures.length > 0) throw failures[0];
      }),
    running: () => started.map((s) => s.name),
  };
}
