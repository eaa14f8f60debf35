// The app bootstrap over WSS against a running node: pinned link, wrong key refused, MITM refused.
import { METHOD } from "../../../src/rpc/methods.ts";
import { describe, expect, test } from "bun:test";
import { hexToBytes } from "@noble/hashes/utils.js";
import { generateNodeKey } from "../../../src/identity/node-key.ts";
import { wssAppDialer } from "../../../src/transport/app-bootstrap/wss.ts";
import { bootstrapApp } from "../../../src/transport/app-bootstrap/bootstrap.ts";
import { decodeMessage, Status } from "../../../src/wire/codec.ts";
import { WhoamiResponseSchema } from "../../../src/wire/gen/findings_pb.ts";
import { publicNodeForFile, startServe, tempDir } from "../../helpers.ts";

const node = publicNodeForFile("findings-appwss-");

describe("app bootstrap over WSS", () => {
  test("ends with a link pinned to the node's certificate that serves requests", async () => {
    const addr = { ip: "127.0.0.1", port: node.ready.tcpPort };
    const { link, spki } = await bootstrapApp(wssAppDialer(), { addr, nodePublicKey: hexToBytes(node.ready.publicKey) }, { appKey: generateNodeKey(), timeoutMs: 5000 });
    expect(spki).toBe(node.ready.spki);
    expect(link.trust).toBe("pinned");
    const answer = await link.request(METHOD.app.whoami);
    expect(answer.status).toBe(Status.OK);
    expect(decodeMessage(WhoamiResponseSchema, answer.payload, "whoami")).toMatchObject({ ip: "127.0.0.1", transport: "wss" });
    link.close();
  });

  test("a wrong node key is refused with a clear error", async () => {
    const addr = { ip: "127.0.0.1", port: node.ready.tcpPort };
    const err = await bootstrapApp(wssAppDialer(), { addr, nodePublicKey: generateNodeKey().publicKey }, { appKey: generateNodeKey(), timeoutMs: 5000 }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toMatch(/could not open our hello/);
  });

  test("a pinned dial to another certificate on the same address is refused", async () => {
    using other = tempDir();
    const mitm = await startServe(["--home", other.path, "--host", "127.0.0.1", "--port", "0", "--admin", "", "--public"]);
    try {
      const err = await wssAppDialer().dial({ ip: "127.0.0.1", port: mitm.ready.tcpPort }, { pinSpki: node.ready.spki, timeoutMs: 5000 }).catch((e) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err.name).toBe("PinMismatchError");
    } finally {
      await mitm.stop();
    }
  });
});
