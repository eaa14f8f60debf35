// One request router for QUIC streams and WSS mesh links (DESIGN §3–§4): method → policy + handler. Before a
// handler runs the router checks, in this order, that the method is served on the transport, the caller's
// trust, the payload size, the per-source token buckets and the in-flight cap; every refusal is counted by
// method and reason. Handlers are added with their policy and removed with the disposer add() returns.
import type { DescMethod } from "@bufbuild/protobuf";
import type { Histogram, Logger } from "../contracts/index.ts";
import { errorLine } from "../errors.ts";
import { Status } from "../wire/index.ts";
import { answerOfError } from "./errors.ts";
import { prefixOf } from "./ip-prefix.ts";
import { methodName } from "./methods.ts";
import { BOTH_TRANSPORTS, type Route, type RpcAnswer, type RpcContext, type RpcReply, type Transport } from "./policy.ts";
import { TokenBuckets } from "./rate-buckets.ts";

/** Why the router refused a request before its handler. */
export type RefusalReason = "unknown" | "trust" | "payload" | "rate" | "in-flight";

export interface RouterStats {
  /** Requests that reached their handler, by method. */
  calls: Record<string, number>;
  /** Requests refused before the handler, by method and reason (unknown methods under "*"). */
  refused: Record<string, Partial<Record<RefusalReason, number>>>;
  /** Handlers that threw an error other than AnswerError / a decode error, by method (answered INTERNAL). */
  failed: Record<string, number>;
}

export interface RouterInit {
  /** @default Date.now */
  now?: () => number;
  /** Most token buckets kept (least recently used go first). @default MAX_RATE_BUCKETS */
  maxBuckets?: number;
  /** Handlers that fail unexpectedly are logged here. @default silentLogger */
  log?: Logger;
  /** Where handler times go (requests that passed the policy), when the node keeps metrics. */
  requestSeconds?: Histogram<"method" | "transport">;
}

export type RouteTable = ReadonlyArray<readonly [DescMethod | string, Route]>;

export interface Router {
  /** Adds `route` for `method` on its transports; returns the disposer. Throws if the method already has a
   *  route on one of them, unless `replace` (an app redefining its own method, a test standing in for a
   *  service). A string method is for apps' own methods (punched links). */
  add(method: DescMethod | string, route: Route, opts?: { replace?: boolean }): () => void;
  /** Adds every route of `table`; one disposer removes them all. */
  addAll(table: RouteTable): () => void;
  /** Whether `method` is served on `transport`. */
  has(method: string, transport: Transport): boolean;
  /** Runs the policy and the handler. Never throws: every outcome is a reply. */
  dispatch(method: string, payload: Uint8Array, ctx: RpcContext): Promise<RpcReply & { status: Status }>;
  stats(): RouterStats;
  /** Totals for metrics: rpc_calls, rpc_failed, rpc_refused_<reason>. */
  counters(): Record<string, number>;
}

/** Source prefixes a router remembers (a few dozen bytes each). */
const MAX_PREFIX_MEMO = 4096;

/** Most token buckets a router keeps: 64 B each, so 64 Ki buckets are a few MB at worst. */
export const MAX_RATE_BUCKETS = 65_536;

export function createRouter(init: RouterInit = {}): Router {
  const now = init.now ?? Date.now;
  const routes = new Map<string, Map<Transport, Route>>();
  const inFlight = new Map<Route, number>();
  const buckets = new TokenBuckets(init.maxBuckets ?? MAX_RATE_BUCKETS);
  const stats: RouterStats = { calls: {}, refused: {}, failed: {} };

  const refuse = (method: string, reason: RefusalReason, status: Status, error: string) => {
    const byReason = (stats.refused[method] ??= {});
    byReason[reason] = (byReason[reason] ?? 0) + 1;
    return { status, error };
  };

  /** Source prefixes already worked out (a link's requests all come from one address); emptied when full. */
  const prefixes = new Map<string, string>();
  const prefixFor = (ip: string, v4Bits: number, v6Bits: number): string => {
    const memoKey = `${v4Bits}/${v6Bits}|${ip}`;
    let p = prefixes.get(memoKey);
    if (p === undefined) {
      if (prefixes.size >= MAX_PREFIX_MEMO) prefixes.clear();
      p = prefixOf(ip, v4Bits, v6Bits);
      prefixes.set(memoKey, p);
    }
    return p;
  };

  /** Takes a token from every bucket of the route, or none when one is empty. */
  const takeTokens = (method: string, route: Route, ip: string): boolean => {
    const t = now();
    const keys: string[] = [];
    for (let i = 0; i < route.rate.length; i++) {
      const r = route.rate[i]!;
      const key = `${method}#${i}|${prefixFor(ip, r.v4Bits ?? 32, r.v6Bits ?? 64)}`;
      if (!buckets.has(key, r.ratePerS, r.burst, t)) return false;
      keys.push(key);
    }
    for (let i = 0; i < keys.length; i++) buckets.take(keys[i]!, route.rate[i]!.ratePerS, route.rate[i]!.burst, t);
    return true;
  };

  /** Runs the handler. A handler that answers at once costs no abort wiring; one that returns a promise
   *  races the request's signal. */
  async function run(route: Route, payload: Uint8Array, ctx: RpcContext): Promise<RpcReply & { status: Status }> {
    const { method, signal } = ctx;
    const late = () => ({ status: Status.INTERNAL, error: `${method} did not finish in time` });
    let aborted: (() => void) | undefined;
    try {
      if (signal.aborted) return late();
      const first = route.handler(payload, ctx);
      let out: RpcAnswer;
      if (typeof (first as PromiseLike<unknown> | null)?.then === "function") {
        const abortedP = new Promise<"aborted">((resolve) => {
          aborted = () => resolve("aborted");
          signal.addEventListener("abort", aborted, { once: true });
        });
        const raced = await Promise.race([first as Promise<RpcAnswer>, abortedP]);
        if (raced === "aborted") return late();
        out = raced;
      } else out = first as RpcAnswer;
      if (out instanceof Uint8Array) return { status: Status.OK, payload: out };
      return { ...(out ?? {}), status: out?.status ?? Status.OK };
    } catch (err) {
      if (signal.aborted) return late();
      const answer = answerOfError(err, method);
      if (answer.status === Status.INTERNAL) {
        stats.failed[method] = (stats.failed[method] ?? 0) + 1;
        init.log?.warn("request handler failed", { method, transport: ctx.transport, error: errorLine(err) });
      }
      return answer;
    } finally {
      if (aborted) signal.removeEventListener("abort", aborted);
    }
  }

  const router: Router = {
    add(method, route, opts = {}) {
      const name = typeof method === "string" ? method : methodName(method);
      const transports = route.transports ?? BOTH_TRANSPORTS;
      const byTransport = routes.get(name) ?? new Map<Transport, Route>();
      for (const t of transports) if (byTransport.has(t) && !opts.replace) throw new Error(`Cannot add ${name} on ${t}: it already has a handler`);
      for (const t of transports) byTransport.set(t, route);
      routes.set(name, byTransport);
      let disposed = false;
      return () => {
        if (disposed) return;
        disposed = true;
        for (const t of transports) if (byTransport.get(t) === route) byTransport.delete(t);
        if (byTransport.size === 0 && routes.get(name) === byTransport) routes.delete(name);
      };
    },
    addAll(table) {
      const disposers: Array<() => void> = [];
      try {
        for (const [method, route] of table) disposers.push(router.add(method, route));
      } catch (err) {
        for (const d of disposers) d();
        throw err;
      }
      return () => {
        for (const d of disposers) d();
      };
    },
    has: (method, transport) => routes.get(method)?.has(transport) ?? false,
    async dispatch(method, payload, ctx) {
      const route = routes.get(method)?.get(ctx.transport);
      if (!route) return refuse("*", "unknown", Status.BAD_REQUEST, `unknown method ${method}`);
      if (!route.trust.includes(ctx.trust)) {
        // An untrusted caller of an app method can fix it with the app bootstrap; say so.
        if (ctx.trust === "untrusted" && route.trust.includes("pinned")) {
          return refuse(method, "trust", Status.UNAUTHENTICATED, `${method} needs a pinned link: run the app bootstrap first`);
        }
        return refuse(method, "trust", Status.REFUSED, `${method} is not allowed on a ${ctx.trust} link`);
      }
      if (payload.length > route.maxPayloadBytes) {
        return refuse(method, "payload", Status.BAD_REQUEST, `Cannot accept ${method} of ${payload.length} bytes: limit is ${route.maxPayloadBytes}`);
      }
      if (!takeTokens(method, route, ctx.remote.ip)) return refuse(method, "rate", Status.RATE_LIMITED, `too many ${method} requests; slow down`);
      const running = inFlight.get(route) ?? 0;
      if (running >= route.maxInFlight) return refuse(method, "in-flight", Status.RATE_LIMITED, `more than ${route.maxInFlight} ${method} requests in flight`);
      inFlight.set(route, running + 1);
      stats.calls[method] = (stats.calls[method] ?? 0) + 1;
      const observed = init.requestSeconds?.startTimer({ method, transport: ctx.transport });
      try {
        return await run(route, payload, ctx);
      } finally {
        observed?.();
        const n = (inFlight.get(route) ?? 1) - 1;
        if (n <= 0) inFlight.delete(route);
        else inFlight.set(route, n);
      }
    },
    stats() {
      return structuredClone(stats);
    },
    counters() {
      const sum = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);
      const out: Record<string, number> = { rpc_calls: sum(stats.calls), rpc_failed: sum(stats.failed) };
      for (const reason of ["unknown", "trust", "payload", "rate", "in-flight"] as const) {
        out[`rpc_refused_${reason.replace("-", "_")}`] = Object.values(stats.refused).reduce((a, r) => a + (r[reason] ?? 0), 0);
      }
      return out;
    },
  };
  return router;
}
