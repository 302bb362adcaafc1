//! Users and guardians.

mod escalation;
mod family;
mod guardians;
#[allow(clippy::module_inception)]
mod users;
