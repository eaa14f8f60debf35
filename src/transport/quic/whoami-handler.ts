// `whoami` over QUIC: the requester's address as this node sees it (DESIGN §1 `findings whoami`). Allowed
// on first-contact links: it tells the peer only what its own packets already carry, like STUN.
import { encodeMessage, Status } from "../../wire/codec.ts";
import { WhoamiResponseSchema } from "../../wire/gen/findings_pb.ts";
import type { RequestHandler } from "./rpc.ts";

export const WHOAMI_METHOD = "whoami";

/** ctx.remoteIp is already unmapped (an IPv4 peer of a dual-stack socket is reported as IPv4). */
export const whoamiHandler: RequestHandler = async (_req, ctx) => ({
  status: Status.OK,
  payload: encodeMessage(WhoamiResponseSchema, { ip: ctx.remoteIp, port: ctx.remotePort, transport: "quic" }),
});
