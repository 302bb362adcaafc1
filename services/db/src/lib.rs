//! `phoenix-db`: the one PostgreSQL data model of Phoenix.
//!
//! - [`schema`]: diesel `table!` definitions on schema-qualified names (`auth.accounts`, …),
//!   one module per PostgreSQL schema. A test in `tests/it` fails when they drift from
//!   what the migrations create.
//! - [`MIGRATIONS`]: every migration in `diesel_migrations/`, embedded in the binary, and
//!   [`migrate`] to run them without the diesel CLI and without libpq.

pub mod auth_events;
pub mod schema;

use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The migrations of `diesel_migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../diesel_migrations");

/// What [`migrate`] should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationCommand {
    /// Apply every pending migration.
    Up,
    /// Revert the last `n` applied migrations.
    Down(usize),
    /// Revert every applied migration (an empty database again).
    DownAll,
    /// Only report.
    Status,
}

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Directory name, e.g. `2026-11-25-000001_create_schemas`.
    pub name: String,
    /// Whether the database has it.
    pub applied: bool,
}

/// Runs `command` against `database_url` (plain TCP) and returns the state of every migration
/// after it. `phoenix migrate` connects with `phoenix_common::db::establish` (TLS from the URL's
/// `sslmode`) and calls [`migrate_on`].
pub async fn migrate(database_url: &str, command: MigrationCommand) -> anyhow::Result<Vec<MigrationState>> {
    use diesel_async::AsyncConnection as _;
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
    migrate_on(conn, command).await
}

/// [`migrate`] on a connection the caller established.
///
/// diesel's migration harness is synchronous; it runs on a blocking thread over an
/// `AsyncConnectionWrapper`, so no libpq is needed.
pub async fn migrate_on(conn: AsyncPgConnection, command: MigrationCommand) -> anyhow::Result<Vec<MigrationState>> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<MigrationState>> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        match command {
            MigrationCommand::Up => {
                run(conn.run_pending_migrations(MIGRATIONS).map(|_| ()))?;
            }
            MigrationCommand::Down(n) => {
                for _ in 0..n {
                    run(conn.revert_last_migration(MIGRATIONS).map(|_| ()))?;
                }
            }
            MigrationCommand::DownAll => {
                run(conn.revert_all_migrations(MIGRATIONS).map(|_| ()))?;
            }
            MigrationCommand::Status => {}
        }
        let applied: Vec<String> = run(conn.applied_migrations())?.iter().map(|v| v.to_string()).collect();
        let all = run(diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS))?;
        Ok(all
            .iter()
            .map(|m| {
                let name = m.name().to_string();
                let version = m.name().version().to_string();
                MigrationState { applied: applied.contains(&version), name }
            })
            .collect())
    })
    .await?
}

fn run<T>(result: diesel::migration::Result<T>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("migration failed: {e}"))
}
