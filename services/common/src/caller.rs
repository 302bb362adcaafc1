//! Who is calling: the ONE seam between the domain services and authentication.
//!
//! The shared auth layer (checking each RPC's declared permission and putting an auth context
//! in the request extensions) is built separately. Until it lands, [`caller_from_request`]
//! answers with an administrator, or with the identity of the test-only metadata headers
//! below. When the auth layer lands, only this function changes: it reads the auth context
//! from the extensions instead.

use tonic::Request;

/// Test-only header: the caller's `auth.accounts.id`. Remove when the auth layer lands.
pub const TEST_ACCOUNT_HEADER: &str = "x-phoenix-test-account-id";
/// Test-only header: the caller's `users.staff.id`. Remove when the auth layer lands.
pub const TEST_STAFF_HEADER: &str = "x-phoenix-test-staff-id";

/// The authenticated caller, as far as the domain services need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// `auth.accounts.id` (written to `updated_by`, `author_account_id`, …).
    pub account_id: Option<i64>,
    /// `users.staff.id` when the caller is staff (written to `created_by`, ownership checks).
    pub staff_id: Option<i64>,
    /// Holds an admin wildcard (`admin:*` / `*:*`): resource rules do not apply.
    pub is_admin: bool,
}

impl Caller {
    /// The administrator used while no auth layer exists.
    pub fn admin() -> Self {
        Self { account_id: None, staff_id: None, is_admin: true }
    }
}

/// SEAM (auth): the caller of `request`.
///
/// For now: an admin, unless the test-only headers [`TEST_ACCOUNT_HEADER`] /
/// [`TEST_STAFF_HEADER`] name a non-admin caller.
pub fn caller_from_request<T>(request: &Request<T>) -> Caller {
    let read = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let (account_id, staff_id) = (read(TEST_ACCOUNT_HEADER), read(TEST_STAFF_HEADER));
    if account_id.is_none() && staff_id.is_none() {
        return Caller::admin();
    }
    Caller { account_id, staff_id, is_admin: false }
}
