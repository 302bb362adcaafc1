//! Activities and their management.

#[allow(clippy::module_inception)]
mod activities;
mod manage;
