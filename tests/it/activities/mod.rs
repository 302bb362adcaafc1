//! Activities and their management.

#[allow(clippy::module_inception)]
mod activities;
mod enrollment_lists;
mod helpers;
mod listing;
mod manage;
mod sub_resources;
