//! The database pool: bb8 over diesel-async connections (tokio-postgres, no libpq).

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8;

/// The pool every service shares.
pub type DbPool = bb8::Pool<AsyncPgConnection>;

/// A connection checked out of [`DbPool`].
pub type DbConn<'a> = bb8::PooledConnection<'a, AsyncPgConnection>;

/// A connection from `pool` for one handler; a pool that cannot hand one out in time maps
/// to a retryable error (house style: handlers write `let mut conn = db::conn(&self.pool).await?;`).
pub async fn conn(pool: &DbPool) -> crate::Result<DbConn<'_>> {
    Ok(pool.get().await?)
}

/// Pool sizing; [`PoolOptions::from_config`] reads it from [`crate::config::Config`].
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Maximum open connections.
    pub max_size: u32,
    /// How long a caller waits for a free connection.
    pub connection_timeout: Duration,
}

impl PoolOptions {
    /// Sizing from the process configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self { max_size: config.db_pool_size, connection_timeout: config.db_pool_timeout }
    }
}

/// Builds the pool and checks out one connection, so a wrong URL fails at start-up
/// rather than at the first request.
pub async fn connect(url: &str, options: PoolOptions) -> anyhow::Result<DbPool> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    let pool = bb8::Pool::builder()
        .max_size(options.max_size)
        .connection_timeout(options.connection_timeout)
        // Recycle connections so a database fail-over or restart heals by itself.
        .max_lifetime(Some(Duration::from_secs(30 * 60)))
        .idle_timeout(Some(Duration::from_secs(10 * 60)))
        .build(manager)
        .await?;
    drop(pool.get().await.map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?);
    Ok(pool)
}
