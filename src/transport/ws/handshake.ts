// The WebSocket opening handshake over HTTP/1.1 (RFC 6455 §4): checking and answering an upgrade
// request on the server, writing one and checking the 101 answer on the client. Pure text work.
import { createHash } from "node:crypto";
import { WS_GUID } from "./constants.ts";

export type HeaderBag = Record<string, string | string[] | undefined>;

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (§4.2.2 step 5.4). */
export function acceptKeyOf(key: string): string {
  return createHash("sha1").update(key + WS_GUID).digest("base64");
}

/** A fresh Sec-WebSocket-Key: 16 random bytes, base64 (§4.1). */
export function newClientKey(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
}

export type UpgradeCheck = { ok: true; key: string } | { ok: false; status: number; reason: string };

/** Checks an upgrade request (§4.2.1). We offer no extension and no subprotocol, so a client's
 *  offers of those are ignored rather than refused (§9.1: the server may decline them). */
export function checkUpgradeRequest(method: string | undefined, headers: HeaderBag): UpgradeCheck {
  if (method !== "GET") return { ok: false, status: 405, reason: "WebSocket upgrade must use GET" };
  if (headerValue(headers, "upgrade")?.toLowerCase() !== "websocket") {
    return { ok: false, status: 400, reason: "Upgrade header is not websocket" };
  }
  const connection = headerValue(headers, "connection")?.toLowerCase() ?? "";
  if (!connection.split(",").some((t) => t.trim() === "upgrade")) {
    return { ok: false, status: 400, reason: "Connection header lacks upgrade" };
  }
  if (headerValue(headers, "sec-websocket-version") !== "13") {
    return { ok: false, status: 426, reason: "Sec-WebSocket-Version must be 13" };
  }
  const key = headerValue(headers, "sec-websocket-key") ?? "";
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) return { ok: false, status: 400, reason: "Sec-WebSocket-Key is not 16 bytes of base64" };
  return { ok: true, key };
}

export function upgradeResponse(key: string): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKeyOf(key)}\r\n\r\n`;
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
  429: "Too Many Requests",
  503: "Service Unavailable",
};

/** A refusal written on the raw socket before it is closed. */
export function refusalResponse(status: number, reason: string): string {
  const body = `${reason}\n`;
  const extra = status === 426 ? "Sec-WebSocket-Version: 13\r\n" : "";
  return (
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\nConnection: close\r\n${extra}` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** The client's request; `authority` is host:port with IPv6 in brackets. */
export function upgradeRequest(authority: string, path: string, key: string): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: ${authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}

export type UpgradeAnswer = { ok: true } | { ok: false; status: number; reason: string };

/** Checks the server's answer head (everything before the blank line) (§4.1, client steps 1–6). */
export function checkUpgradeResponse(head: string, key: string): UpgradeAnswer {
  const lines = head.split("\r\n");
  const m = /^HTTP\/1\.1 (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
  if (!m) return { ok: false, status: 0, reason: "answer is not HTTP/1.1" };
  const status = Number(m[1]);
  if (status !== 101) return { ok: false, status, reason: `server answered ${status}${m[2] ? ` ${m[2]}` : ""}` };
  const headers: HeaderBag = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  if (headerValue(headers, "upgrade")?.toLowerCase() !== "websocket") return { ok: false, status, reason: "101 without Upgrade: websocket" };
  if (headerValue(headers, "sec-websocket-accept") !== acceptKeyOf(key)) return { ok: false, status, reason: "Sec-WebSocket-Accept does not match" };
  if (headerValue(headers, "sec-websocket-extensions")) return { ok: false, status, reason: "server chose an extension we did not offer" };
  return { ok: true };
}

/** Index just past the first CRLFCRLF, or -1. */
export function findHeadEnd(bytes: Uint8Array): number {
  for (let i = 3; i < bytes.length; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) return i + 1;
  }
  return -1;
}

function headerValue(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}
