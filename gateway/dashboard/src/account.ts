// The pages Phoenix's mail links to, and "forgot password" from the sign-in form:
//
//   /reset-password?token=…       set a new password (ConfirmPasswordReset), then sign in
//   /invitation?token=…           a staff invitation: look it up, name and password, accept
//   /guardian-invitation?token=…  a parent's invitation: look it up, password, accept
//
// Every call here is public: the one-time token is the credential. The page takes the
// token out of the address bar as soon as it has read it (history.replaceState), so it stays
// neither in the browser's history nor on a shared screen; the page sends no referrer
// (index.html). After an invitation is accepted the new account is signed in at once.

import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb";
import { AuthService, InvitationService } from "./gen/phoenix/auth/v1/auth_pb";
import { reason, retryAfterSeconds } from "./errors";
import type { Key } from "./i18n";
import { byId, say } from "./view";

export type LinkKind = "reset" | "invitation" | "guardian";

/** A link from a Phoenix mail: which page, with its one-time token. */
export interface AccountLink {
  kind: LinkKind;
  token: string;
}

/** The mail's paths (services/auth/src/outbox/templates.rs `Kind::path`). */
const PATHS: Record<string, LinkKind> = {
  "/reset-password": "reset",
  "/invitation": "invitation",
  "/guardian-invitation": "guardian",
};

/** The account link the page was opened with, or `undefined` for any other address. */
export function accountLink(pathname: string, search: string): AccountLink | undefined {
  const kind = PATHS[pathname];
  const token = new URLSearchParams(search).get("token")?.trim();
  return kind && token ? { kind, token } : undefined;
}

/** The message (and its placeholders) for a failed account call. */
export function accountError(err: ConnectError): [Key, Record<string, string | number>] {
  const field = err.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field;
  switch (err.code) {
    case Code.NotFound:
      return ["account.invalid", {}];
    case Code.InvalidArgument:
      return field === "token" ? ["account.invalid", {}] : ["account.weak", {}];
    case Code.FailedPrecondition:
      switch (reason(err)) {
        case "INVITATION_USED":
          return ["account.used", {}];
        case "GUARDIAN_HAS_ACCOUNT":
          return ["account.hasAccount", {}];
        case "RESET_TOKEN_USED":
        case "RESET_TOKEN_EXPIRED":
          return ["account.resetSpent", {}];
        default:
          return ["account.expired", {}];
      }
    case Code.ResourceExhausted: {
      const seconds = retryAfterSeconds(err);
      return seconds ? ["login.throttled", { seconds }] : ["login.throttled.later", {}];
    }
    default:
      return ["login.unreachable", {}];
  }
}

/** What the account pages need from the rest of the page. */
export interface AccountHost {
  /** Signs in (the new account after an accepted invitation) and opens the board. */
  signIn(email: string, password: string): Promise<void>;
  /** The sign-in form, with a message and the email filled in. */
  showLogin(message?: Key, email?: string): void;
}

/** What the open link turned out to offer. */
interface Offer {
  link: AccountLink;
  /** The account's email, when the invitation names it (not for a reset). */
  email?: string;
}

const SECTIONS = ["login", "forgot", "account"] as const;

/** Shows one of the pre-board sections and focuses its heading. */
function showSection(id: (typeof SECTIONS)[number]): void {
  for (const s of SECTIONS) byId(s).hidden = s !== id;
  byId("board").hidden = true;
  byId(`${id}-heading`).focus();
}

export class AccountPages {
  private readonly auth;
  private readonly invitations;
  private offer: Offer | undefined;

  constructor(
    transport: Transport,
    private readonly host: AccountHost,
  ) {
    this.auth = createClient(AuthService, transport);
    this.invitations = createClient(InvitationService, transport);
    byId("forgot-open").addEventListener("click", () => this.openForgot());
    for (const id of ["forgot-back", "account-back"]) {
      byId(id).addEventListener("click", () => this.host.showLogin());
    }
    byId<HTMLFormElement>("forgot-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.requestReset();
    });
    byId<HTMLFormElement>("account-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submit();
    });
  }

  /** "Forgot password": asks for the email a reset link goes to. */
  openForgot(): void {
    const email = byId<HTMLInputElement>("forgot-email");
    email.value = byId<HTMLInputElement>("email").value;
    say(byId("forgot-error"), undefined);
    say(byId("forgot-done"), undefined);
    showSection("forgot");
  }

  private async requestReset(): Promise<void> {
    const email = byId<HTMLInputElement>("forgot-email");
    const value = email.value.trim();
    say(byId("forgot-done"), undefined);
    if (!value.includes("@")) {
      email.setAttribute("aria-invalid", "true");
      say(byId("forgot-error"), "forgot.invalid");
      email.focus();
      return;
    }
    email.removeAttribute("aria-invalid");
    await busy("forgot-submit", async () => {
      try {
        await this.auth.startPasswordReset({ email: value });
        say(byId("forgot-error"), undefined);
        // The same answer for every address: the page cannot tell whether it has an account.
        say(byId("forgot-done"), "forgot.sent", { email: value });
      } catch (e) {
        say(byId("forgot-error"), ...accountError(ConnectError.from(e)));
      }
    });
  }

  /** Opens the page of a mail's link: looks the invitation up, or asks for the new password. */
  async open(link: AccountLink): Promise<void> {
    this.offer = undefined;
    const form = byId<HTMLFormElement>("account-form");
    form.hidden = true;
    byId("account-names").hidden = link.kind !== "invitation";
    say(byId("account-error"), undefined);
    say(byId("account-heading"), `account.${link.kind}.heading`);
    say(byId("account-submit"), `account.${link.kind}.submit`);
    say(byId("account-intro"), "account.checking");
    showSection("account");
    try {
      if (link.kind === "invitation") {
        const inv = (await this.invitations.lookupInvitation({ token: link.token })).invitation;
        byId<HTMLInputElement>("account-first").value = inv?.firstName ?? "";
        byId<HTMLInputElement>("account-last").value = inv?.lastName ?? "";
        this.offer = { link, email: inv?.email };
        say(byId("account-intro"), "account.invitation.intro", { email: inv?.email ?? "" });
      } else if (link.kind === "guardian") {
        const inv = await this.invitations.lookupGuardianInvitation({ token: link.token });
        this.offer = { link, email: inv.email };
        say(byId("account-intro"), "account.guardian.intro", { name: inv.firstName, email: inv.email });
      } else {
        this.offer = { link };
        say(byId("account-intro"), "account.reset.intro");
      }
    } catch (e) {
      say(byId("account-intro"), ...accountError(ConnectError.from(e)));
      return;
    }
    form.hidden = false;
    byId<HTMLInputElement>(link.kind === "invitation" ? "account-first" : "account-password").focus();
  }

  private async submit(): Promise<void> {
    const offer = this.offer;
    if (!offer) return;
    const password = byId<HTMLInputElement>("account-password");
    const repeat = byId<HTMLInputElement>("account-repeat");
    const error = byId("account-error");
    if (!password.value || password.value !== repeat.value) {
      repeat.setAttribute("aria-invalid", "true");
      say(error, password.value ? "account.mismatch" : "account.weak");
      (password.value ? repeat : password).focus();
      return;
    }
    repeat.removeAttribute("aria-invalid");
    await busy("account-submit", async () => {
      const { link, email } = offer;
      try {
        if (link.kind === "reset") {
          await this.auth.confirmPasswordReset({ token: link.token, newPassword: password.value });
        } else if (link.kind === "invitation") {
          await this.invitations.acceptInvitation({
            token: link.token,
            password: password.value,
            firstName: byId<HTMLInputElement>("account-first").value.trim(),
            lastName: byId<HTMLInputElement>("account-last").value.trim(),
          });
        } else {
          await this.invitations.acceptGuardianInvitation({ token: link.token, password: password.value });
        }
      } catch (e) {
        const err = ConnectError.from(e);
        password.setAttribute("aria-invalid", String(err.code === Code.InvalidArgument));
        say(error, ...accountError(err));
        password.focus();
        return;
      }
      const chosen = password.value;
      password.value = "";
      repeat.value = "";
      this.offer = undefined;
      if (!email) {
        this.host.showLogin("account.reset.done");
        return;
      }
      try {
        await this.host.signIn(email, chosen);
      } catch {
        // The account exists; only the sign-in failed (a blip): the form says the rest.
        this.host.showLogin("account.created", email);
      }
    });
  }
}

/** Runs `work` with button `id` disabled and its form marked busy. */
async function busy(id: string, work: () => Promise<void>): Promise<void> {
  const button = byId<HTMLButtonElement>(id);
  const form = button.form;
  button.disabled = true;
  form?.setAttribute("aria-busy", "true");
  try {
    await work();
  } finally {
    button.disabled = false;
    form?.removeAttribute("aria-busy");
  }
}
