//! diesel queries over `auth.*`, plus the `audit.auth_events` rows that go with them (in
//! the caller's transaction). No proto types here.
//!
//! | module | holds |
//! |---|---|
//! | [`accounts`] | accounts: lookup, login bookkeeping, administration, roles and direct permissions held, linked `users.*` ids |
//! | [`sessions`] | refresh tokens and their families, signing keys, service clients |
//! | [`roles`] | roles and the permission catalogue |
//! | [`invitations`] | staff and guardian invitations, password-reset tokens, the outbox |
//! | [`events`] | `audit.auth_events` rows |
//!
//! Everything is re-exported here, so callers write `repo::find_account(…)`.

pub mod accounts;
pub mod events;
pub mod invitations;
pub mod roles;
pub mod sessions;

pub use accounts::*;
pub use events::*;
pub use invitations::*;
pub use roles::*;
pub use sessions::*;
