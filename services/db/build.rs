//! Rebuild when a migration is added or changed: `embed_migrations!` reads
//! `diesel_migrations/` at compile time, and cargo does not know that by itself.

fn main() {
    println!("cargo:rerun-if-changed=../../diesel_migrations");
}
