//! The database pool: bb8 over diesel-async connections (tokio-postgres, no libpq), and the
//! [`ReadPool`] that sends lag-tolerant reads to a read replica; TLS from the URL's `sslmode`
//! ([`establish`]); hand-written SQL prepared once per connection ([`prepared`]).

use std::time::Duration;

mod prepared;
mod replica;
mod tls;
pub use prepared::{Binds, Bound, Prepared, prepared};
pub use replica::{ReadPool, ReadTarget};
pub use tls::{TlsMode, TlsUrl, establish};

use diesel::ConnectionError;
use diesel_async::pooled_connection::bb8;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection as _, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection as _};

/// The pool every service shares.
pub type DbPool = bb8::Pool<AsyncPgConnection>;

/// A connection checked out of [`DbPool`].
pub type DbConn<'a> = bb8::PooledConnection<'a, AsyncPgConnection>;

/// A connection from `pool` for one handler; a pool that cannot hand one out in time maps
/// to a retryable error (house style: handlers write `let mut conn = db::conn(&self.pool).await?;`).
pub async fn conn(pool: &DbPool) -> crate::Result<DbConn<'_>> {
    let started = std::time::Instant::now();
    let conn = pool.get().await;
    crate::metrics::pool_waited(started.elapsed());
    Ok(conn?)
}

/// Pool sizing and the bounds every pooled connection carries; [`PoolOptions::from_config`]
/// reads them from [`crate::config::Config`].
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Maximum open connections.
    pub max_size: u32,
    /// How long a caller waits for a free connection.
    pub connection_timeout: Duration,
    /// Set on every new pooled connection.
    pub session: SessionTimeouts,
}

impl PoolOptions {
    /// Sizing and bounds from the process configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            max_size: config.db_pool_size,
            connection_timeout: config.db_pool_timeout,
            session: SessionTimeouts::from_config(config),
        }
    }
}

impl Default for PoolOptions {
    /// The defaults of the configuration variables.
    fn default() -> Self {
        Self { max_size: 10, connection_timeout: Duration::from_secs(5), session: SessionTimeouts::default() }
    }
}

/// PostgreSQL's own bounds on a session, so that no statement, lock wait or forgotten
/// transaction holds a connection (and the locks it took) for long: PostgreSQL cancels the
/// statement or ends the session, the error maps to a retryable `Unavailable`
/// ([`crate::error::transient_database_error`]) and the pool replaces a closed connection.
/// Zero turns a bound off (docs/faults.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// `statement_timeout` (`PHOENIX_DB_STATEMENT_TIMEOUT`).
    pub statement: Duration,
    /// `lock_timeout` (`PHOENIX_DB_LOCK_TIMEOUT`).
    pub lock: Duration,
    /// `idle_in_transaction_session_timeout` (`PHOENIX_DB_IDLE_IN_TX_TIMEOUT`).
    pub idle_in_transaction: Duration,
}

impl Default for SessionTimeouts {
    /// The defaults of the configuration variables: 15 s, 5 s, 30 s.
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(15),
            lock: Duration::from_secs(5),
            idle_in_transaction: Duration::from_secs(30),
        }
    }
}

impl SessionTimeouts {
    /// The bounds from the process configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            statement: config.db_statement_timeout,
            lock: config.db_lock_timeout,
            idle_in_transaction: config.db_idle_in_tx_timeout,
        }
    }

    /// For a long-lived `LISTEN` connection: it waits, it does not work, so only the
    /// idle-in-transaction bound applies.
    pub fn for_listen(self) -> Self {
        Self { statement: Duration::ZERO, lock: Duration::ZERO, ..self }
    }

    /// The `SET` statements (milliseconds; 0 = off), and `jit = off`: Phoenix's statements are
    /// short OLTP queries, and a stale row estimate (a freshly filled visits partition) made
    /// PostgreSQL JIT-compile the board's query for ~860 ms (docs/database.md "Partitioning").
    pub fn set_sql(&self) -> String {
        format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {}; SET jit = off",
            self.statement.as_millis(),
            self.lock.as_millis(),
            self.idle_in_transaction.as_millis()
        )
    }
}

/// Builds the pool and checks out one connection, so a wrong URL fails at start-up
/// rather than at the first request. Every connection the pool opens (dedicated ones
/// included, see [`listen_connection`]) runs [`SessionTimeouts::set_sql`] first: `SET` on the
/// session rather than `options=-c …` in the URL, so an operator's URL is used as given and
/// a failure is reported as what it is.
pub async fn connect(url: &str, options: PoolOptions) -> anyhow::Result<DbPool> {
    connect_with_setup(url, options, options.session.set_sql()).await
}

/// [`connect`] running `setup` (SQL, the session bounds included) on every new connection
/// instead of only the session bounds: a domain's pool sets its role first
/// ([`crate::db_roles`]).
pub async fn connect_with_setup(url: &str, options: PoolOptions, setup: String) -> anyhow::Result<DbPool> {
    let pool = build_pool(url, options, setup).await?;
    if let Err(e) = pool.get().await {
        // bb8 reports only that it timed out; one direct attempt names the cause (a refused
        // certificate, a wrong password, an unknown database).
        let cause = match establish(url).await {
            Err(cause) => cause.to_string(),
            Ok(_) => e.to_string(),
        };
        anyhow::bail!("cannot connect to the database: {cause}");
    }
    crate::metrics::watch_pool(&pool, options.max_size);
    Ok(pool)
}

/// The pool of [`connect_with_setup`] without the start-up check: it opens connections when
/// asked for them.
async fn build_pool(url: &str, options: PoolOptions, setup: String) -> anyhow::Result<DbPool> {
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.custom_setup = Box::new(move |url| {
        let setup = setup.clone();
        Box::pin(async move {
            let mut conn = establish(url).await?;
            conn.batch_execute(&setup).await.map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    // A checked-out connection is checked without a round trip (diesel-async's default
    // sends `SELECT 1` first: one more round trip on every RPC): refused when its socket is
    // closed (a restarted or failed-over server, a terminated session) or its transaction
    // state broken. A connection that dies unseen fails its first statement as Unavailable,
    // and the pool drops it.
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
        let broken = conn.is_broken();
        Box::pin(async move {
            if broken {
                let closed = "the pooled connection is closed".to_owned();
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection,
                    Box::new(closed),
                ))
            } else {
                Ok(())
            }
        })
    }));
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    let pool = bb8::Pool::builder()
        .max_size(options.max_size)
        .connection_timeout(options.connection_timeout)
        // Recycle connections so a database fail-over or restart heals by itself.
        .max_lifetime(Some(Duration::from_secs(30 * 60)))
        .idle_timeout(Some(Duration::from_secs(10 * 60)))
        .build(manager)
        .await?;
    Ok(pool)
}

/// A dedicated (non-pooled) connection for `LISTEN`: opened like a pooled one, then with the
/// statement and lock bounds lifted ([`SessionTimeouts::for_listen`]); the idle-in-transaction
/// bound stays.
pub async fn listen_connection(pool: &DbPool) -> anyhow::Result<AsyncPgConnection> {
    let mut conn = pool.dedicated_connection().await?;
    conn.batch_execute("SET statement_timeout = 0; SET lock_timeout = 0").await?;
    Ok(conn)
}
