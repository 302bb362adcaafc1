//! `phoenix-users`: the `phoenix.users.v1.UsersService` — persons, staff, teachers, students
//! (with GDPR redaction) and RFID cards, schema `users`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | the tonic handlers, [`service::METHODS`] and the transactional operations |
//! | [`validate`] | requests → typed commands; tag normalisation |
//! | `convert` | rows → proto messages (full records) |
//! | [`redact`] | THE place where a record is cut down to what the caller may see |
//! | [`repo`] | diesel queries |
//! | `error` | database constraint names → caller-facing errors |

mod convert;
mod enums;
mod error;
pub mod redact;
pub mod repo;
pub mod service;
pub mod validate;

use phoenix_common::db::DbPool;
pub use phoenix_proto::users::v1::users_service_server::UsersServiceServer;

/// gRPC name of the service (health reports it).
pub const SERVICE_NAME: &str = "phoenix.users.v1.UsersService";

/// The tonic server of this domain on `pool`.
pub fn server(pool: DbPool) -> UsersServiceServer<service::Users> {
    UsersServiceServer::new(service::Users::new(pool))
}
