//! Diesel queries of the `users` schema (plus read-only joins into `education` and `auth`),
//! one module per table group. No proto types here; writers run inside the caller's
//! transaction. Functions return `phoenix_common::Result`, except the writers whose
//! constraint violations `crate::error` names: they return diesel's `QueryResult`, so the
//! handler can map the constraint (`.map_err(error::person_write…)`).

pub mod cards;
pub mod care;
pub mod family;
pub mod guardians;
pub mod persons;
pub mod staff;
pub mod students;

pub use cards::Card;
pub use persons::{Person, PersonFields, PersonFilter};
pub use staff::{StaffFilter, StaffRecord, TeacherFields};
pub use students::{GuardianContact, StudentFields, StudentFilter, StudentRecord, Supervisor};
