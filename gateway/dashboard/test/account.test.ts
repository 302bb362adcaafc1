// The pages Phoenix's mail links to (src/account.ts): which address opens which page, and
// what a person is told for each way an account call can fail.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { accountError, accountLink } from "../src/account";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb";

test("the mail's three paths open their page with the token; anything else is the sign-in", () => {
  assert.deepEqual(accountLink("/reset-password", "?token=abc_-1"), { kind: "reset", token: "abc_-1" });
  assert.deepEqual(accountLink("/invitation", "?token=t"), { kind: "invitation", token: "t" });
  assert.equal(accountLink("/invitation/", "?token=t"), undefined, "the gateway serves the exact paths only");
  assert.deepEqual(accountLink("/guardian-invitation", "?lang=de&token=g"), { kind: "guardian", token: "g" });
  assert.equal(accountLink("/reset-password", ""), undefined, "no token");
  assert.equal(accountLink("/reset-password", "?token=%20"), undefined, "a blank token");
  assert.equal(accountLink("/", "?token=t"), undefined);
  assert.equal(accountLink("/invitations", "?token=t"), undefined);
});

function failed(code: Code, detail?: ConstructorParameters<typeof ConnectError>[3]): ConnectError {
  return new ConnectError("server text", code, undefined, detail);
}

test("each failure of an account call gets its own message", () => {
  const info = (reason: string) => failed(Code.FailedPrecondition, [{ desc: ErrorInfoSchema, value: { reason } }]);
  const bad = (field: string) =>
    failed(Code.InvalidArgument, [{ desc: BadRequestSchema, value: { fieldViolations: [{ field, description: "x" }] } }]);
  assert.deepEqual(accountError(failed(Code.NotFound)), ["account.invalid", {}]);
  assert.deepEqual(accountError(bad("token")), ["account.invalid", {}], "an unknown reset token");
  assert.deepEqual(accountError(bad("password")), ["account.weak", {}]);
  assert.deepEqual(accountError(bad("new_password")), ["account.weak", {}]);
  assert.deepEqual(accountError(info("INVITATION_USED")), ["account.used", {}]);
  assert.deepEqual(accountError(info("INVITATION_EXPIRED")), ["account.expired", {}]);
  assert.deepEqual(accountError(info("GUARDIAN_HAS_ACCOUNT")), ["account.hasAccount", {}]);
  assert.deepEqual(accountError(info("RESET_TOKEN_USED")), ["account.resetSpent", {}]);
  assert.deepEqual(accountError(info("RESET_TOKEN_EXPIRED")), ["account.resetSpent", {}]);
  const throttled = failed(Code.ResourceExhausted, [
    { desc: RetryInfoSchema, value: { retryDelay: { seconds: 1200n, nanos: 0 } } },
  ]);
  assert.deepEqual(accountError(throttled), ["login.throttled", { seconds: 1200 }]);
  assert.deepEqual(accountError(failed(Code.ResourceExhausted)), ["login.throttled.later", {}]);
  assert.deepEqual(accountError(failed(Code.Unavailable)), ["login.unreachable", {}]);
});
