// GET /whoami on the TLS port: the client's address as this server sees it (DESIGN §1 "findings
// whoami --tcp", §2), over HTTP/2 or HTTP/1.1.
import { formatAddress } from "../../contracts/index.ts";
import { jsonAnswer, type HttpHandler } from "./https-routes.ts";

export const WHOAMI_PATH = "/whoami";

/** JSON body of /whoami. `via` tells it apart from the QUIC answer ("quic"). */
export interface HttpsWhoami {
  readonly address: string;
  readonly ip: string;
  readonly port: number;
  readonly via: "https";
}

export const whoamiHandler: HttpHandler = (req) => {
  const body: HttpsWhoami = { address: formatAddress(req.remote), ip: req.remote.ip, port: req.remote.port, via: "https" };
  return jsonAnswer(200, body);
};
