// Raw streams next to requests on one QUIC link: the first byte tells them apart; an endpoint without a
// raw-stream handler (a node) resets them; a malformed header is reset; requests still work on the same link.
import { afterEach, expect, test } from "bun:test";
import { createRunCertificate } from "../../../src/identity/certificate.ts";
import { generateNodeKey } from "../../../src/identity/node-key.ts";
import { METHOD } from "../../../src/rpc/methods.ts";
import { decodeMessage, WhoamiResponseSchema } from "../../../src/wire/index.ts";
import { expectOk } from "../../../src/transport/quic/link.ts";
import type { RawStream } from "../../../src/transport/quic/raw-stream.ts";
import { createUdpClient } from "../../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpointInit } from "../../../src/transport/udp/endpoint.ts";
import { rejection, until } from "../../wait.ts";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function linkTo(init: Partial<UdpEndpointInit>) {
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: generateNodeKey() }, { host: "127.0.0.1", port: 0, ...init });
  await ep.start();
  cleanups.push(() => ep.stop());
  const c = createUdpClient({}, { host: "127.0.0.1", port: 0 });
  await c.start();
  cleanups.push(() => c.stop());
  return { ep, link: await c.dial({ ip: "127.0.0.1", port: ep.port }) };
}

test("a raw stream reaches onRawStream with its protocol, both ways with FIN; a request on the same link still answers", async () => {
  const taken: string[] = [];
  const { link } = await linkTo({
    onRawStream: (s: RawStream) => {
      taken.push(s.protocol);
      void (async () => {
        const text = await new Response(s.readable).text();
        const w = s.writable.getWriter();
        await w.write(new TextEncoder().encode(text.toUpperCase()));
        await w.close();
      })();
    },
  });
  const s = await link.openStream("echo/1");
  const w = s.writable.getWriter();
  await w.write(new TextEncoder().encode("hello"));
  await w.close();
  expect(await new Response(s.readable).text()).toBe("HELLO");
  expect(taken).toEqual(["echo/1"]);
  const who = decodeMessage(WhoamiResponseSchema, expectOk(await link.request(METHOD.app.whoami)), "WhoamiResponse");
  expect(who.ip).toBe("127.0.0.1");
});

test("an endpoint without a raw-stream handler (a node) resets raw streams and counts them", async () => {
  const { ep, link } = await linkTo({});
  const s = await link.openStream("pipe");
  expect(await rejection(s.readable.getReader().read())).toMatch(/reset the QUIC stream \(read side\): refused/);
  await until(() => ep.counters().rawRefused === 1, { what: "the refusal counted" });
  expect(ep.counters().rawStreams).toBe(0);
});

test("protocol names outside 1..64 bytes are refused before anything is sent", async () => {
  const { link } = await linkTo({ onRawStream: () => {} });
  await expect(link.openStream("")).rejects.toThrow(/1 to 64 bytes/);
  await expect(link.openStream("x".repeat(65))).rejects.toThrow(/1 to 64 bytes/);
});
