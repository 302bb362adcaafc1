//! Users and guardians.

#[allow(clippy::module_inception)]
mod users;
mod guardians;
