// The structured error details Phoenix attaches (google.rpc.ErrorInfo / RetryInfo), read
// from grpc-status-details-bin.

import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb";

/** `ErrorInfo.reason`, e.g. `CURSOR_EXPIRED`. */
export function reason(err: ConnectError): string | undefined {
  return err.findDetails(ErrorInfoSchema)[0]?.reason;
}

/** `RetryInfo.retry_delay` in whole seconds, rounded up. */
export function retryAfterSeconds(err: ConnectError): number | undefined {
  const delay = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  if (!delay) return undefined;
  return Math.max(1, Math.ceil(Number(delay.seconds) + delay.nanos / 1e9));
}

/**
 * What to tell the user about a failed action: the service's own message from the gRPC
 * status (Phoenix writes them for people: "the room is full", "missing permission …"), or
 * `undefined` when there is none worth showing (network failures, internal errors), so the
 * page shows its own "could not reach the server" instead.
 */
export function userMessage(err: ConnectError): string | undefined {
  const internal = err.code === Code.Internal || err.code === Code.Unknown || err.code === Code.Unavailable;
  const text = err.rawMessage.trim();
  if (internal || !text) return undefined;
  return text;
}
