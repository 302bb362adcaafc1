//! Users and guardians.

mod guardians;
#[allow(clippy::module_inception)]
mod users;
