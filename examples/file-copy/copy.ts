// File copy between two machines behind NATs, built only on the Findings client library (in your own
// project: `import { FindingsClient } from "findings"`). See README.md next to this file.
//
//   bun copy.ts send FILE --server ADDR[#KEY] [--nat CLASS]      prints its id, serves FILE to every peer
//   bun copy.ts receive ID OUT --server ADDR[#KEY] [--nat CLASS] punches ID and writes the file to OUT
import { createHash } from "node:crypto";
import { createWriteStream, openAsBlob } from "node:fs";
import { FindingsClient, type NatClassName } from "../../src/client/index.ts";

const KIND = "app:chat";
const [mode, ...rest] = process.argv.slice(2);
const flag = (name: string) => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest.splice(i, 2)[1] : undefined;
};
const server = flag("--server");
const nat = flag("--nat") as NatClassName | undefined;
if (!server || (mode !== "send" && mode !== "receive")) {
  console.error("usage: bun copy.ts send FILE --server ADDR[#KEY] | receive ID OUT --server ADDR[#KEY]  [--nat CLASS]");
  process.exit(2);
}
const client = new FindingsClient({ server, nat });

if (mode === "send") {
  const file = rest[0]!;
  const pool = await client.join(KIND, {
    // Every peer that punches in may ask for the file: one stream, the file's bytes, FIN.
    onPeer: (peer) =>
      peer.onStream(async (stream) => {
        if (stream.protocol !== "file") return stream.reset();
        await (await openAsBlob(file)).stream().pipeTo(stream.writable).catch(() => stream.reset());
        console.log(JSON.stringify({ sent: file, to: peer.peerId }));
      }),
  });
  console.log(JSON.stringify({ id: pool.id, address: pool.joined.address }));
  process.on("SIGTERM", () => void client.close().then(() => process.exit(0)));
} else {
  const [peerId, out] = rest as [string, string];
  const peer = await client.punch(peerId, { kind: KIND, signal: AbortSignal.timeout(30_000) });
  const stream = await peer.openStream("file");
  await stream.writable.close(); // we only listen
  const hash = createHash("sha256");
  const file = createWriteStream(out);
  let bytes = 0;
  for await (const chunk of stream.readable) {
    hash.update(chunk);
    bytes += chunk.length;
    if (!file.write(chunk)) await new Promise((r) => file.once("drain", r));
  }
  await new Promise((r) => file.end(r));
  console.log(JSON.stringify({ received: out, bytes, sha256: hash.digest("hex"), via: peer.result.strategy }));
  await client.close();
  process.exit(0);
}
