//! Finding or starting the database: `DATABASE_URL` when set, else (dev only) a private
//! PostgreSQL cluster under the data directory.

use std::path::Path;

use diesel::QueryableByName;
use diesel::sql_types::Bool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use phoenix_localpg::{LocalPostgres, Options};

/// Name of the application database inside a private cluster.
pub const DEV_DATABASE: &str = "phoenix";

/// Default port of the private dev cluster (a free one is taken if it is busy).
pub const DEV_PG_PORT: u16 = 54329;

/// Starts (or attaches to) the private cluster in `dir` and makes sure the application
/// database exists; returns the cluster and the database URL.
pub async fn start_private(dir: &Path) -> anyhow::Result<(LocalPostgres, String)> {
    let options = Options { dir: dir.to_owned(), port: DEV_PG_PORT, fast_unsafe: false, max_connections: 100 };
    let pg = tokio::task::spawn_blocking(move || LocalPostgres::ensure_started(&options)).await??;
    create_database_if_missing(&pg.url("postgres"), DEV_DATABASE).await?;
    let url = pg.url(DEV_DATABASE);
    Ok((pg, url))
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

/// Creates `name` on the server behind `admin_url` unless it exists.
pub async fn create_database_if_missing(admin_url: &str, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name {name:?} must be [A-Za-z0-9_]"
    );
    let mut conn = AsyncPgConnection::establish(admin_url).await?;
    let found: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(&mut conn)
        .await?;
    if !found.exists {
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await?;
    }
    Ok(())
}
