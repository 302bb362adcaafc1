//! Per-test databases on a real PostgreSQL server.
//!
//! Server: `DATABASE_URL` (any database on it serves as the maintenance connection), else a
//! private cluster in `PHOENIX_TEST_PG_DIR` (default: a directory under the system temp dir),
//! started once and shared by every test process of the run (nextest runs each test in its
//! own process); the README's test command stops it at the end.
//!
//! Template: `phoenix_tpl_<hash of the migrations>`, built once under an advisory lock and
//! renamed into place only when complete, so a changed migration gets a fresh template and a
//! crashed build never leaves a half-migrated one.

use std::path::PathBuf;

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use phoenix_common::db::{DbPool, PoolOptions};
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

#[derive(Clone)]
struct Server {
    /// URL of the maintenance database.
    maintenance_url: String,
    /// Name of the migrated template.
    template: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

tokio::task_local! {
    /// The server of [`PrivateCluster::scope`]: test databases created inside it live there.
    static CLUSTER: Server;
}

/// A PostgreSQL cluster of one test, for faults that must not touch the shared one (a
/// restart): its own directory and port, initialised and migrated on start, stopped and
/// deleted on drop. Test databases created inside [`PrivateCluster::scope`] (a `TestApp`, a
/// `ReaderStack`) live on it.
pub struct PrivateCluster {
    pg: phoenix_localpg::LocalPostgres,
    server: Server,
}

impl PrivateCluster {
    /// Creates and starts the cluster and builds the migrated template on it.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("phoenix-fault-pg-{}", uuid::Uuid::new_v4().simple()));
        let options = phoenix_localpg::Options { dir, port: 0, fast_unsafe: true, max_connections: 100 };
        let pg = tokio::task::spawn_blocking(move || phoenix_localpg::LocalPostgres::ensure_started(&options))
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("cannot start a private PostgreSQL cluster: {e}"));
        let maintenance_url = pg.url("postgres");
        let template = format!("phoenix_tpl_{}", migrations_hash());
        build_template(&maintenance_url, &template).await;
        Self { pg, server: Server { maintenance_url, template } }
    }

    /// Runs `f` with test databases created on this cluster.
    pub async fn scope<F: std::future::Future>(&self, f: F) -> F::Output {
        CLUSTER.scope(self.server.clone(), f).await
    }

    /// `pg_ctl restart -m fast`: every session ends, the server is back on the same port
    /// when this returns.
    pub async fn restart(&self) {
        let pg = self.pg.clone();
        tokio::task::spawn_blocking(move || pg.restart()).await.expect("join").expect("pg_ctl restart");
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.pg.port()
    }

    /// Turns TLS on with the PEM certificate and key given ([`phoenix_localpg::LocalPostgres::enable_tls`]);
    /// returns once the reloaded server accepts TLS connections (up to 10 s).
    pub async fn enable_tls(&self, cert_pem: Vec<u8>, key_pem: Vec<u8>) {
        let pg = self.pg.clone();
        tokio::task::spawn_blocking(move || pg.enable_tls(&cert_pem, &key_pem))
            .await
            .expect("join")
            .expect("enable TLS on the private cluster");
        let url = format!("{}?sslmode=require", self.url("postgres"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while let Err(e) = phoenix_common::db::establish(&url).await {
            assert!(std::time::Instant::now() < deadline, "the cluster does not accept TLS after reload: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Connection URL of `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        self.pg.url(database)
    }

    /// A streaming replica of this cluster (`pg_basebackup -R`): its own directory and port,
    /// the primary's roles and databases, following its writes; stopped and deleted on drop.
    pub async fn start_replica(&self) -> Replica {
        let dir = std::env::temp_dir().join(format!("phoenix-replica-pg-{}", uuid::Uuid::new_v4().simple()));
        let options = phoenix_localpg::Options { dir, port: 0, fast_unsafe: true, max_connections: 100 };
        let primary = self.pg.clone();
        let pg = tokio::task::spawn_blocking(move || primary.start_replica(&options))
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("cannot start a streaming replica: {e}"));
        Replica { pg, primary_port: self.pg.port() }
    }
}

/// A streaming replica of a [`PrivateCluster`] ([`PrivateCluster::start_replica`]).
pub struct Replica {
    pg: phoenix_localpg::LocalPostgres,
    primary_port: u16,
}

impl Replica {
    /// `primary_url` (a URL on the primary) pointing at the replica instead: same login,
    /// database and parameters.
    pub fn url_of(&self, primary_url: &str) -> String {
        primary_url.replace(&format!("127.0.0.1:{}", self.primary_port), &format!("127.0.0.1:{}", self.pg.port()))
    }

    /// A superuser connection to `database` on the replica.
    pub async fn conn(&self, database: &str) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.pg.url(database)).await.expect("connect to the replica")
    }

    /// Waits (up to 30 s) until the replica has replayed everything the primary had written
    /// when this was called (its WAL insert position: the test clusters commit
    /// asynchronously, so the last commit may not be flushed yet).
    pub async fn catch_up(&self, primary: &mut AsyncPgConnection) {
        #[derive(QueryableByName)]
        struct Lsn {
            #[diesel(sql_type = Text)]
            lsn: String,
        }
        #[derive(QueryableByName)]
        struct Caught {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            ok: bool,
        }
        let target = sql_query("SELECT pg_current_wal_insert_lsn()::text AS lsn")
            .get_result::<Lsn>(primary)
            .await
            .expect("primary WAL position")
            .lsn;
        let mut conn = self.conn("postgres").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let caught = sql_query("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok")
                .bind::<Text, _>(&target)
                .get_result::<Caught>(&mut conn)
                .await
                .expect("replica replay position")
                .ok;
            if caught {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the replica did not replay up to {target} within 30 s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `pg_wal_replay_pause()`: the replica keeps receiving WAL but applies none of it.
    pub async fn pause_replay(&self) {
        sql_query("SELECT pg_wal_replay_pause()")
            .execute(&mut self.conn("postgres").await)
            .await
            .expect("pg_wal_replay_pause");
    }

    /// `pg_wal_replay_resume()`.
    pub async fn resume_replay(&self) {
        sql_query("SELECT pg_wal_replay_resume()")
            .execute(&mut self.conn("postgres").await)
            .await
            .expect("pg_wal_replay_resume");
    }

    /// Stops the replica (fast shutdown).
    pub async fn stop(&self) {
        let pg = self.pg.clone();
        tokio::task::spawn_blocking(move || pg.stop()).await.expect("join").expect("pg_ctl stop (replica)");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Err(e) = self.pg.stop() {
            eprintln!("warning: replica in {} not stopped: {e}", self.pg.dir().display());
        }
        let _ = std::fs::remove_dir_all(self.pg.dir());
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if let Err(e) = self.pg.stop() {
            eprintln!("warning: private cluster in {} not stopped: {e}", self.pg.dir().display());
        }
        let _ = std::fs::remove_dir_all(self.pg.dir());
    }
}

/// Replaces the database name in a PostgreSQL URL (`…/name?params`).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[authority_end..].find('/') {
        Some(i) => &base[..authority_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

fn migrations_hash() -> String {
    let dir = crate::workspace_root().join("diesel_migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read diesel_migrations/")
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten().map(|f| f.path()))
        .collect();
    files.sort();
    let mut h = Sha256::new();
    // The migrations compiled into this binary too: a binary built before a migration was
    // added must not build (and name) the template of the files on disk.
    {
        use diesel::migration::MigrationSource;
        let compiled =
            MigrationSource::<diesel::pg::Pg>::migrations(&phoenix_db::MIGRATIONS).expect("embedded migrations");
        for m in compiled {
            h.update(m.name().to_string().as_bytes());
        }
    }
    for f in files {
        h.update(f.strip_prefix(&dir).unwrap_or(&f).to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).expect("read migration file"));
    }
    hex::encode(&h.finalize()[..6])
}

/// Directory of the private test cluster.
pub fn private_cluster_dir() -> PathBuf {
    match std::env::var_os("PHOENIX_TEST_PG_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let root = crate::workspace_root().canonicalize().unwrap_or_else(|_| crate::workspace_root());
            let tag = hex::encode(&Sha256::digest(root.to_string_lossy().as_bytes())[..4]);
            std::env::temp_dir().join(format!("phoenix-test-pg-{tag}"))
        }
    }
}

async fn server() -> &'static Server {
    SERVER
        .get_or_init(|| async {
            let maintenance_url = match std::env::var("DATABASE_URL") {
                Ok(url) if !url.trim().is_empty() => url,
                _ => {
                    let options = phoenix_localpg::Options {
                        dir: private_cluster_dir(),
                        port: 0,
                        fast_unsafe: true,
                        max_connections: 300,
                    };
                    let pg =
                        tokio::task::spawn_blocking(move || phoenix_localpg::LocalPostgres::ensure_started(&options))
                            .await
                            .expect("join")
                            .unwrap_or_else(|e| panic!("cannot start the private test PostgreSQL: {e}"));
                    pg.url("postgres")
                }
            };
            let template = format!("phoenix_tpl_{}", migrations_hash());
            build_template(&maintenance_url, &template).await;
            Server { maintenance_url, template }
        })
        .await
}

/// The [`PrivateCluster`] in scope, else the shared server.
async fn current_server() -> Server {
    match CLUSTER.try_with(Server::clone) {
        Ok(server) => server,
        Err(_) => server().await.clone(),
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .get_result::<Count>(conn)
        .await
        .expect("query pg_database")
        .n
        > 0
}

async fn build_template(maintenance_url: &str, template: &str) {
    let mut conn = AsyncPgConnection::establish(maintenance_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
    // One builder per server at a time; the others wait, then find it built.
    sql_query("SELECT pg_advisory_lock(7345002)").execute(&mut conn).await.expect("advisory lock");
    if !database_exists(&mut conn, template).await {
        let building = format!("{template}_building");
        sql_query(format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .expect("drop");
        sql_query(format!("CREATE DATABASE \"{building}\"")).execute(&mut conn).await.expect("create template");
        phoenix_db::migrate(&with_database(maintenance_url, &building), phoenix_db::MigrationCommand::Up)
            .await
            .unwrap_or_else(|e| panic!("migrating the template failed: {e:#}"));
        sql_query(format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\""))
            .execute(&mut conn)
            .await
            .expect("rename template");
    }
    sql_query("SELECT pg_advisory_unlock(7345002)").execute(&mut conn).await.expect("unlock");
}

/// A database owned by one test; dropped (connections and all) when it goes out of scope.
pub struct TestDb {
    name: String,
    url: String,
    maintenance_url: String,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("name", &self.name).finish()
    }
}

impl TestDb {
    /// A migrated database (a clone of the template).
    pub async fn new() -> Self {
        let server = current_server().await;
        Self::create(&server.maintenance_url, Some(&server.template)).await
    }

    /// An empty database with no migrations applied (for migration tests).
    pub async fn empty() -> Self {
        let server = current_server().await;
        Self::create(&server.maintenance_url, None).await
    }

    async fn create(maintenance_url: &str, template: Option<&str>) -> Self {
        let name = format!("phoenix_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = AsyncPgConnection::establish(maintenance_url).await.expect("connect to test server");
        let sql = match template {
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        sql_query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("create test database: {e}"));
        Self { url: with_database(maintenance_url, &name), name, maintenance_url: maintenance_url.to_owned() }
    }

    /// Connection URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new single connection.
    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url).await.expect("connect to test database")
    }

    /// A small pool on this database.
    pub async fn pool(&self) -> DbPool {
        phoenix_common::db::connect(
            &self.url,
            PoolOptions { max_size: 4, connection_timeout: std::time::Duration::from_secs(10), ..Default::default() },
        )
        .await
        .expect("pool on test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, url) = (self.name.clone(), self.maintenance_url.clone());
        // Drop runs outside any async context guarantee: use a private runtime on a thread.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = AsyncPgConnection::establish(&url).await.ok()?;
                sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(with_database("postgres://u@h:5/a", "b"), "postgres://u@h:5/b");
        assert_eq!(with_database("postgres://u@h:5", "b"), "postgres://u@h:5/b");
        assert_eq!(with_database("postgres://u:p@h/a?sslmode=disable", "b"), "postgres://u:p@h/b?sslmode=disable");
    }
}
