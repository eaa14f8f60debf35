// The Findings client library: what `import { FindingsClient } from "findings"` gives an app (README
// "Findings for apps"). The CLI commands are built on the same surface.
export { FindingsClient, type FindAnswer, type FindingsClientOptions, type JoinOptions, type FoundServer, type NatReport, type NodeInfo } from "./findings-client.ts";
export { KNOWN_HOSTS_FILE, KeyChangedError, knownHostsFile, openKnownHosts, type KnownHost, type KnownHosts } from "./known-hosts.ts";
export { knownHostName, type KeySource, type ResolvedKey } from "./node-key.ts";
export { PunchFailedError, type Membership, type MembershipEvents } from "./membership.ts";
export { DEFAULT_STREAM_PROTOCOL, type PeerConnection, type PeerStream } from "./connection.ts";
export { PIPE_PROTOCOL, bridge, expose, forward, type Forwarder, type PipeConnection, type PipeOptions } from "./pipe.ts";
export { type AddressChange, type JoinInfo, type PunchResult, PunchRefusedError, isPunchRefused } from "../punch/index.ts";
export { type NatClassName } from "../nat/index.ts";
export { ConfigError, DecodeError, FindingsError, LimitError, PeerError, PinMismatchError, TimeoutError } from "../errors.ts";
