// The structured error details Phoenix attaches (google.rpc.ErrorInfo / RetryInfo), read
// from grpc-status-details-bin.

import { ConnectError } from "@connectrpc/connect";
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
