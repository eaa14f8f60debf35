// Client side of GET /whoami over HTTPS (DESIGN §2): first contact, so the server's self-signed
// certificate is not verified; the answer is public information about ourselves, nothing to protect.
import { connect } from "node:http2";
import { formatAddress } from "../../contracts/index.ts";
import { DecodeError, TimeoutError } from "../../errors.ts";

export interface HttpsWhoamiResult {
  address: string;
  ip: string;
  port: number;
  rttMs: number;
  httpVersion: string;
}

/** Largest /whoami body accepted (a few dozen bytes in practice). */
const MAX_WHOAMI_BODY_BYTES = 4096;

export function httpsWhoami(server: { ip: string; port: number }, opts: { signal?: AbortSignal } = {}): Promise<HttpsWhoamiResult> {
  const origin = `https://${formatAddress(server.ip, server.port)}`;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const session = connect(origin, { rejectUnauthorized: false });
    const fail = (err: unknown) => {
      session.destroy();
      reject(err);
    };
    const onAbort = () => fail(new TimeoutError(`GET ${origin}/whoami`, 0));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    session.on("error", fail);
    const req = session.request({ ":path": "/whoami", ":method": "GET" });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_WHOAMI_BODY_BYTES) fail(new DecodeError("whoami answer", `body over ${MAX_WHOAMI_BODY_BYTES} bytes`));
      else chunks.push(c);
    });
    req.on("error", fail);
    req.on("end", () => {
      opts.signal?.removeEventListener("abort", onAbort);
      session.close();
      try {
        const j = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        if (typeof j.ip !== "string" || typeof j.port !== "number") throw new Error("missing ip or port");
        resolve({ address: formatAddress(j.ip, j.port), ip: j.ip, port: j.port, rttMs: performance.now() - t0, httpVersion: "2" });
      } catch (err) {
        reject(new DecodeError("whoami answer", err instanceof Error ? err.message : String(err)));
      }
    });
    req.end();
  });
}

/** GET `path` over HTTPS (HTTP/2, first contact: the certificate is not verified) and parse the JSON body, at most
 *  `maxBytes`. Rejects on a non-2xx status, a bad body or the signal. */
export function httpsGetJson(server: { ip: string; port: number }, path: string, opts: { signal?: AbortSignal; maxBytes?: number; localAddress?: string } = {}): Promise<unknown> {
  const origin = `https://${formatAddress(server.ip, server.port)}`;
  const maxBytes = opts.maxBytes ?? MAX_WHOAMI_BODY_BYTES;
  return new Promise((resolve, reject) => {
    const session = connect(origin, { rejectUnauthorized: false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const fail = (err: unknown) => {
      opts.signal?.removeEventListener("abort", onAbort);
      session.destroy();
      reject(err);
    };
    const onAbort = () => fail(opts.signal?.reason ?? new TimeoutError(`GET ${origin}${path}`, 0));
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    session.on("error", fail);
    const req = session.request({ ":path": path, ":method": "GET" });
    let status = 0;
    req.on("response", (headers) => (status = Number(headers[":status"] ?? 0)));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) fail(new DecodeError(`GET ${path} answer`, `body over ${maxBytes} bytes`));
      else chunks.push(c);
    });
    req.on("error", fail);
    req.on("end", () => {
      opts.signal?.removeEventListener("abort", onAbort);
      session.close();
      if (status < 200 || status > 299) return reject(new DecodeError(`GET ${path} answer`, `status ${status}`));
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (err) {
        reject(new DecodeError(`GET ${path} answer`, err instanceof Error ? err.message : String(err)));
      }
    });
    req.end();
  });
}
