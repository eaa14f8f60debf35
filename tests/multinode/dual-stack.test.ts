// A dual-stack node on loopback: bound to "::" (one socket for both families), it advertises an IPv4 and an
// IPv6 address; a peer key-checks it at each and proves both, and an app reaches it over either family.
import { afterAll, describe, expect } from "bun:test";
import { until } from "../wait.ts";
import { freeUdpTcpPort } from "../helpers.ts";
import { Network, runCli, type NodeProcess } from "./harness.ts";

const net = await Network.create("dual-stack");
afterAll(() => net.stopAll());

describe("a dual-stack node", () => {
  net.test(
    "its record carries both addresses, a peer proves both, apps reach it on both",
    async () => {
      // 127.0.0.1, not a host of the network's own /24: a socket bound to "::" answers UDP from the source
      // address the kernel picks for the destination, and on lo that is 127.0.0.1 for all of 127/8.
      const v4 = "127.0.0.1";
      const port = await freeUdpTcpPort("::");
      const dual: NodeProcess = await net.start({ name: "dual", host: "::", port, adminHost: v4, public: true, config: { advertise: `${v4},::1` } });
      const peer = await net.start({ name: "peer", host: net.host(2), public: true, peers: [`${v4}:${port}#${dual.ready.publicKey}`] });

      const own = await until(async () => ((await dual.status()).mesh as unknown as { advertisedIps: string[] }).advertisedIps, { what: "dual advertises" });
      expect(own).toEqual([v4, "::1"]);

      const seen = await until(
        async () => {
          const c = (await peer.status()).mesh.candidates.find((x) => x.id === dual.ready.id);
          return c && c.proven.length === 2 ? c : null;
        },
        { what: "the peer proved both addresses of the dual-stack node", timeoutMs: 60_000 },
      );
      expect(seen.proven.sort()).toEqual([`${v4}:${port}/${port}`, `[::1]:${port}/${port}`].sort());

      // An app asks the node over each family (QUIC on the shared UDP socket).
      for (const server of [`${v4}:${port}`, `[::1]:${port}`]) {
        const out = await runCli(["peers", "--server", server, "--json"]);
        expect({ server, code: out.code, stderr: out.stderr.slice(0, 300) }).toEqual({ server, code: 0, stderr: expect.any(String) });
      }
    },
    120_000,
  );
});
