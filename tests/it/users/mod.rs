//! Users and guardians.

mod cards;
mod care;
mod escalation;
mod family;
mod guardian_helpers;
mod guardians;
mod helpers;
mod import;
mod persons;
mod redaction;
mod students;
