// `app.whoami` over QUIC or WSS: the requester's address as this node sees it (DESIGN §1 `findings whoami`).
// Allowed on first-contact links: it tells the peer only what its own packets already carry, like STUN.
import { ANY_TRUST, perHost, type Route } from "../../rpc/index.ts";
import { encodeMessage } from "../../wire/index.ts";
import { WhoamiResponseSchema } from "../../wire/index.ts";

/** Cheap as a STUN Binding: a generous rate, still bounded so it cannot be used to spin the node. */
export const whoamiRoute: Route = {
  trust: ANY_TRUST,
  rate: perHost(50, 200),
  maxInFlight: 256,
  maxPayloadBytes: 0,
  /** ctx.remote is already unmapped (an IPv4 peer of a dual-stack socket is reported as IPv4). */
  handler: (_payload, ctx) => encodeMessage(WhoamiResponseSchema, { ip: ctx.remote.ip, port: ctx.remote.port, transport: ctx.transport }),
};
