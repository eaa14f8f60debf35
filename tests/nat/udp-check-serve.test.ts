// The probe's UDP check against a real `findings serve` on loopback: the node answers the RFC 5389 Binding Request
// (its STUN responder) and the QUIC packet of a reserved version (its QUIC stack's Version Negotiation), each
// matched to this run's ids (src/nat/udp-check-packet.ts).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { udpCheckPackets } from "../../src/nat/udp-check-packet.ts";
import { publicNodeForFile } from "../helpers.ts";
import { until } from "../wait.ts";

setDefaultTimeout(30_000);

const node = publicNodeForFile();

describe("a serving node answers the probe's UDP check", () => {
  test("a Binding Success for the STUN request and a Version Negotiation for the QUIC one", async () => {
    const packets = udpCheckPackets();
    const got: ("stun" | "quic" | null)[] = [];
    const socket = await Bun.udpSocket({ hostname: "127.0.0.1", socket: { data: (_s, buf) => void got.push(packets.match(new Uint8Array(buf))) } });
    try {
      const send = () => {
        socket.send(packets.binding, node.ready.udpPort, "127.0.0.1");
        socket.send(packets.quicVersionProbe, node.ready.udpPort, "127.0.0.1");
      };
      await until(() => (send(), got.includes("stun") && got.includes("quic")), { what: "both answers", timeoutMs: 10_000, intervalMs: 200 });
      // Nothing else came back that looked like an answer to another run.
      expect(got.every((g) => g !== null)).toBe(true);
    } finally {
      socket.close();
    }
  });
});
