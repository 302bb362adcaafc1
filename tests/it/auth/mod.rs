//! Sign-in, accounts, roles, invitations, password reset, the caller identity and authorization.

mod accounts;
mod authz;
mod caller;
mod guardian_invitations;
mod hash_bound;
mod invitations;
mod login;
mod login_flood;
mod outbox;
mod password_reset;
mod revocation;
mod roles;
