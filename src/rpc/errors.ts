// The typed answer errors of the router: a handler throws AnswerError to choose the status; every other error
// is mapped to a status by answerOfError so the peer learns what was wrong with its request, not our internals.
import { DecodeError, LimitError, PeerError, SealError, TimeoutError } from "../errors.ts";
import { Status } from "../wire/index.ts";
import type { RpcReply } from "./policy.ts";

/** A handler's way to choose the answer status (and, on WSS, to close the link after the answer). */
export class AnswerError extends PeerError {
  readonly status: Status;
  readonly thenClose?: { code: number; reason: string };
  constructor(status: Status, message: string, thenClose?: { code: number; reason: string }) {
    super(message);
    this.name = "AnswerError";
    this.status = status;
    this.thenClose = thenClose;
  }
}

/** The answer for an error a handler of `method` threw. INTERNAL answers carry no detail. */
export function answerOfError(err: unknown, method: string): Required<Pick<RpcReply, "status" | "error">> & Pick<RpcReply, "thenClose"> {
  if (err instanceof AnswerError) return { status: err.status, error: err.message, thenClose: err.thenClose };
  if (err instanceof DecodeError || err instanceof LimitError) return { status: Status.BAD_REQUEST, error: err.message };
  if (err instanceof SealError) return { status: Status.UNAUTHENTICATED, error: err.message };
  if (err instanceof PeerError) return { status: Status.REFUSED, error: err.message };
  if (err instanceof TimeoutError) return { status: Status.INTERNAL, error: err.message };
  return { status: Status.INTERNAL, error: `${method} failed` };
}
