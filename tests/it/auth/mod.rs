//! Sign-in, accounts, roles, invitations, password reset, the caller identity and authorization.

mod login;
mod accounts;
mod roles;
mod invitations;
mod password_reset;
mod caller;
mod authz;
