// Attack: a NAT test client sends its control hellos without their padding, so the node's acks (and the
// probes they lead to) outweigh what the client sent (src/nat/control-packet.ts: "hellos are padded so that
// what the server sends back to an address never exceeds what came from it"). The hostile client opens a real
// STUN:Cone session on a real `findings serve` over QUIC and sends correctly keyed hellos of the minimum SN size.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { METHOD } from "../../src/rpc/methods.ts";
import { CONTROL_MAC_LABEL, CONTROL_SOURCE_CODE, CONTROL_TYPE, buildControl, decodeControl } from "../../src/nat/control-packet.ts";
import { createUdpClient } from "../../src/transport/udp/client.ts";
import { decodeMessage, encodeMessage, Status } from "../../src/wire/codec.ts";
import { NatBeginAnswerSchema, NatBeginRequestSchema } from "../../src/wire/index.ts";
import { publicNodeForFile } from "../helpers.ts";
import { until } from "../wait.ts";

setDefaultTimeout(30_000);

const node = publicNodeForFile();

/** A control datagram keyed like a real one but only `size` bytes long (64 = the smallest SN datagram). */
function shortHello(key: Uint8Array, token: Uint8Array, type: number, size: number, tail: Uint8Array = new Uint8Array()): Uint8Array {
  const out = new Uint8Array(size);
  const rnd = crypto.getRandomValues(new Uint8Array(16));
  rnd[0] = (rnd[0]! & 0x3c) | CONTROL_SOURCE_CODE;
  out.set(rnd, 0);
  out.set(token, 48);
  out[48 + 16] = type;
  out.set(tail, 48 + 17);
  out.set(hmac.create(sha256, key).update(new TextEncoder().encode(CONTROL_MAC_LABEL)).update(rnd).update(out.subarray(48)).digest(), 16);
  return out;
}

describe("control hellos must carry their padding", () => {
  test("a short hello-formal gets no ack; the padded one does", async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const client = createUdpClient({}, { host: "127.0.0.1" });
    await client.start();
    try {
      const link = await client.dial({ ip: "127.0.0.1", port: node.ready.udpPort });
      const answer = await link.request(METHOD.nat.begin, encodeMessage(NatBeginRequestSchema, { probeKey: key }));
      expect(answer.status).toBe(Status.OK);
      const { token } = decodeMessage(NatBeginAnswerSchema, answer.payload, "NatBeginAnswer");
      // The formal socket: a fresh one that counts the acks it gets.
      const acks: number[] = [];
      const formal = await Bun.udpSocket({
        hostname: "127.0.0.1",
        socket: {
          data(_s, buf) {
            const d = decodeControl(new Uint8Array(buf), key);
            if (d.ok && d.msg.type === "ack-formal") acks.push(buf.length);
          },
        },
      });
      const short = shortHello(key, token, CONTROL_TYPE.helloFormal, 80);
      const padded = buildControl(key, { type: "hello-formal", token });
      expect(short.length).toBeLessThan(padded.length);
      for (let i = 0; i < 3; i++) formal.send(short, node.ready.udpPort, "127.0.0.1");
      formal.send(padded, node.ready.udpPort, "127.0.0.1");
      // The node handles datagrams in arrival order: once the padded hello is acked, the short ones were seen.
      await until(() => acks.length >= 1, { what: "the padded hello's ack" });
      console.log(`3 short hello-formal (${short.length} B) then one padded (${padded.length} B): ${acks.length} ack(s)`);
      expect(acks.length).toBe(1);
      formal.close();
    } finally {
      await client.stop();
    }
  });
});
