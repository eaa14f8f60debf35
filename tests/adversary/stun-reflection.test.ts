// Attack: a spoofed-source flood turns a node's STUN Binding responder into a reflector aimed at a victim.
// The hostile side sends real RFC 5389 Binding Requests to a real `findings serve` from one address (as a
// spoofer would, naming its victim); the node must answer that source at most its budget, in answers no larger
// than needed, while another source is still answered.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { encodeBindingRequest } from "../../src/stun/binding.ts";
import { publicNodeForFile } from "../helpers.ts";
import { until } from "../wait.ts";

setDefaultTimeout(30_000);

const FLOOD = 2_000;
const node = publicNodeForFile();

/** A UDP socket on `host` that counts the answers and their bytes. */
async function source(host: string) {
  const got = { answers: 0, bytes: 0, largest: 0 };
  const socket = await Bun.udpSocket({
    hostname: host,
    socket: {
      data(_s, buf) {
        got.answers++;
        got.bytes += buf.length;
        got.largest = Math.max(got.largest, buf.length);
      },
    },
  });
  return { socket, got };
}

describe("STUN Binding is not a free reflector", () => {
  test("one source gets at most its budget of answers, 40 B each; another source is still answered", async () => {
    const port = node.ready.udpPort;
    const victim = await source("127.0.0.1");
    const request = encodeBindingRequest(crypto.getRandomValues(new Uint8Array(12)));
    for (let i = 0; i < FLOOD; i++) {
      victim.socket.send(request, port, "127.0.0.1");
      if (i % 200 === 199) await Bun.sleep(1); // let the socket drain, so drops are the node's, not ours
    }
    const honest = await source("127.0.0.2");
    honest.socket.send(encodeBindingRequest(crypto.getRandomValues(new Uint8Array(12))), port, "127.0.0.1");
    // The node answers in arrival order: once the later source is answered, the flood has been handled.
    await until(() => honest.got.answers === 1, { what: "the other source's answer" });
    console.log(`${FLOOD} requests (${FLOOD * 20} B) from one source: ${victim.got.answers} answers, ${victim.got.bytes} B (largest ${victim.got.largest} B)`);
    victim.socket.close();
    honest.socket.close();
    expect(victim.got.answers).toBeLessThanOrEqual(400);
    expect(victim.got.largest).toBeLessThanOrEqual(40);
  });
});
