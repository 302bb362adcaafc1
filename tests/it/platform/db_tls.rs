//! TLS to PostgreSQL (docs/database.md): a private cluster with `ssl = on` and a certificate
//! signed by a CA generated here (openssl CLI); the pool's connections honour the URL's
//! `sslmode`/`sslrootcert` — `require` encrypts, `verify-full` with the right CA connects,
//! with another CA it is refused naming the certificate, without `sslrootcert` it is refused
//! naming the parameter — and a URL without `sslmode` still connects in plain TCP.

use std::path::Path;
use std::process::Command;

use diesel::sql_types::Bool;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl as _;
use phoenix_common::db::{self, DbPool, PoolOptions};
use phoenix_tests::db::PrivateCluster;

/// A directory of its own under the temp dir, deleted on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("phoenix-db-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create the certificate directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// `ca.crt` (+ key), `server.crt`/`server.key` signed by it for the names `san` (openssl's
/// `subjectAltName` syntax), and `other-ca.crt`, a CA that signed nothing here.
fn certificates(dir: &Path, san: &str) {
    let ca = |name: &str| {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    };
    ca("ca");
    ca("other-ca");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), format!("subjectAltName={san}\n")).expect("write san.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

/// Whether the pool's connection is encrypted, by the server's own account.
async fn encrypted(pool: &DbPool) -> bool {
    let mut conn = db::conn(pool).await.expect("connection");
    sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(&mut conn)
        .await
        .expect("pg_stat_ssl")
        .ssl
}

async fn connect(url: &str) -> anyhow::Result<DbPool> {
    db::connect(
        url,
        PoolOptions { max_size: 1, connection_timeout: std::time::Duration::from_secs(3), ..Default::default() },
    )
    .await
}

#[tokio::test]
async fn sslmode_require_and_verify_full_are_honoured_and_a_wrong_ca_is_refused() {
    if phoenix_tests::require_tool("openssl", "openssl", "apt-get install -y openssl").is_none() {
        return;
    }
    let dir = Dir::new();
    certificates(dir.path(), "IP:127.0.0.1,DNS:localhost");
    let cluster = PrivateCluster::start().await;
    let read = |f: &str| std::fs::read(dir.path().join(f)).expect("read certificate");
    cluster.enable_tls(read("server.crt"), read("server.key")).await;
    let base = cluster.url("postgres");
    let ca = dir.path().join("ca.crt");
    let other = dir.path().join("other-ca.crt");

    let plain = connect(&base).await.expect("a URL without sslmode connects");
    assert!(!encrypted(&plain).await, "no sslmode: plain TCP, as before");

    let required = connect(&format!("{base}?sslmode=require")).await.expect("sslmode=require connects");
    assert!(encrypted(&required).await, "sslmode=require encrypts");

    let verified = connect(&format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display()))
        .await
        .expect("verify-full with the signing CA connects");
    assert!(encrypted(&verified).await);

    let refused = connect(&format!("{base}?sslmode=verify-full&sslrootcert={}", other.display()))
        .await
        .expect_err("verify-full with another CA must be refused");
    let text = format!("{refused:#}");
    assert!(text.contains("certificate") && text.contains("TLS"), "a clear error: {text}");

    let no_root = connect(&format!("{base}?sslmode=verify-full")).await.expect_err("verify-full needs sslrootcert");
    assert!(format!("{no_root:#}").contains("sslrootcert"), "{no_root:#}");

    // `phoenix migrate` over verify-full: every migration applied through the TLS connection.
    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display());
    let conn = db::establish(&url).await.expect("a TLS connection for the migrations");
    let states = phoenix_db::migrate_on(conn, phoenix_db::MigrationCommand::Up).await.expect("migrate over TLS");
    assert!(!states.is_empty() && states.iter().all(|m| m.applied), "every migration applied over TLS");
}

#[tokio::test]
async fn verify_ca_accepts_the_chain_under_another_host_name_and_verify_full_does_not() {
    if phoenix_tests::require_tool("openssl", "openssl", "apt-get install -y openssl").is_none() {
        return;
    }
    let dir = Dir::new();
    // A certificate for another name only: the chain is right, the host (127.0.0.1) is not in it.
    certificates(dir.path(), "DNS:db.example");
    let cluster = PrivateCluster::start().await;
    let read = |f: &str| std::fs::read(dir.path().join(f)).expect("read certificate");
    cluster.enable_tls(read("server.crt"), read("server.key")).await;
    let ca = dir.path().join("ca.crt");
    let port = cluster.port();
    let base = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let ca_only = connect(&format!("{base}?sslmode=verify-ca&sslrootcert={}", ca.display()))
        .await
        .expect("verify-ca checks the chain only");
    assert!(encrypted(&ca_only).await);
    let full = connect(&format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display()))
        .await
        .expect_err("verify-full checks the name: 127.0.0.1 is not db.example");
    assert!(format!("{full:#}").contains("certificate"), "{full:#}");
}
