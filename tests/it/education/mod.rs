//! `phoenix.education.v1.EducationService` over real gRPC against a real database: groups,
//! group teachers, substitutions (date and overlap rules), transfers, my groups; staff,
//! rooms and pupils are created through the users and facilities services.

mod escalation;
mod groups;
mod helpers;
mod rollover;
mod substitutions;
mod transfers;
