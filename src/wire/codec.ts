// Envelope and payload encoding with size limits and typed errors (DESIGN §4, STYLE §6).
import { create, fromBinary, toBinary, type DescMessage, type MessageShape, type MessageInitShape } from "@bufbuild/protobuf";
import { MAX_ENVELOPE_BYTES, PROTOCOL_VERSION } from "../constants.ts";
import { DecodeError, LimitError } from "../errors.ts";
import { EnvelopeSchema, Status, type Envelope } from "./gen/findings_pb.ts";

export { Status };
export type { Envelope };

/** Decodes one message of `schema`; any failure becomes a DecodeError naming `place`. */
export function decodeMessage<D extends DescMessage>(schema: D, bytes: Uint8Array, place: string, limit = MAX_ENVELOPE_BYTES): MessageShape<D> {
  if (bytes.length > limit) throw new LimitError(place, bytes.length, limit);
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw new DecodeError(place, err instanceof Error ? err.message : String(err), { cause: err });
  }
}

export function encodeMessage<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Uint8Array {
  return toBinary(schema, create(schema, init));
}

/** Decodes an Envelope, checking the size before parsing and the version after. */
export function decodeEnvelope(bytes: Uint8Array, limit = MAX_ENVELOPE_BYTES): Envelope {
  const env = decodeMessage(EnvelopeSchema, bytes, "envelope", limit);
  if (env.version !== PROTOCOL_VERSION) throw new DecodeError("envelope", `version ${env.version} is not supported (expected ${PROTOCOL_VERSION})`);
  if (env.method.length === 0 || env.method.length > 64) throw new DecodeError("envelope", `method name must be 1..64 characters, got ${env.method.length}`);
  return env;
}

export function encodeEnvelope(init: { id: bigint; method: string; status?: Status; error?: string; payload?: Uint8Array }): Uint8Array {
  const bytes = toBinary(EnvelopeSchema, create(EnvelopeSchema, { version: PROTOCOL_VERSION, status: Status.REQUEST, ...init }));
  if (bytes.length > MAX_ENVELOPE_BYTES) throw new LimitError("envelope", bytes.length, MAX_ENVELOPE_BYTES);
  return bytes;
}

/** An answer to `req`: same id and method. */
export function encodeAnswer(req: Envelope, status: Status, payload?: Uint8Array, error?: string): Uint8Array {
  return encodeEnvelope({ id: req.id, method: req.method, status, payload, error });
}

export function statusName(status: Status): string {
  return (Status[status] ?? `STATUS_${status}`).toLowerCase().replace(/_/g, "-");
}
