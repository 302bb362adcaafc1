//! `phoenix backup [--schema S] [--out FILE]` and `phoenix restore FILE [--schema S]`: the
//! PostgreSQL client tools (`pg_dump -Fc`, `pg_restore`, `psql`) with the options one schema
//! or the whole database needs, and a manifest next to every archive (`FILE.manifest.json`)
//! that makes a restore over a different migration version impossible. The runbook:
//! docs/operations.md.
//!
//! - **Backup** opens a `REPEATABLE READ` transaction, reads the applied migrations
//!   (`public.__diesel_schema_migrations`, the only table in `public`) and every cross-schema
//!   foreign key, exports that snapshot and runs `pg_dump --snapshot`: the archive and the
//!   manifest describe the same instant. Owners and privileges stay in the archive (a restore
//!   may drop them with `--no-owner` / `--no-privileges`).
//! - **Restore of one schema** (from a one-schema archive or from a whole-database one) runs in
//!   ONE transaction through `psql --single-transaction`: drop the foreign keys of *other*
//!   schemas that point into it (everything points into `users`; a `DROP SCHEMA … CASCADE` has
//!   already removed them, then the manifest has their definitions), `pg_restore --clean
//!   --if-exists` of the schema's entries (the schema itself, its ACL and comment included),
//!   then those foreign keys added again — which validates every row against the restored
//!   data. Any error (an orphaned row, an object outside the archive that depends on the
//!   schema) rolls everything back: the database is as before. Refused unless the database's
//!   applied migrations are exactly the archive's. `meta` and `public` are restored only with
//!   the whole database (every schema's triggers call `meta`'s functions).
//! - **Restore of the whole database** is `pg_restore --clean --if-exists` in one transaction,
//!   into an empty database or over one whose migrations the archive contains (never over a
//!   database migrated further than the archive).
//!
//! Afterwards the restored tables are analyzed (pg_restore leaves planner statistics empty).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use phoenix_common::domain::Domain;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The manifest's format version.
const MANIFEST_FORMAT: u32 = 1;

/// The PostgreSQL client programs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub psql: PathBuf,
}

impl Tools {
    /// `PHOENIX_PG_BINDIR`, else the newest `/usr/lib/postgresql/<version>/bin`, else `PATH`:
    /// the first directory holding all three programs.
    pub fn find() -> anyhow::Result<Self> {
        let has_all = |d: &Path| ["pg_dump", "pg_restore", "psql"].iter().all(|p| d.join(p).is_file());
        let mut dirs: Vec<PathBuf> = std::env::var_os("PHOENIX_PG_BINDIR").map(PathBuf::from).into_iter().collect();
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev().map(|(_, d)| d));
        dirs.extend(
            std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default(),
        );
        let dir = dirs.into_iter().find(|d| has_all(d)).ok_or_else(|| {
            anyhow::anyhow!(
                "pg_dump, pg_restore and psql not found (looked at PHOENIX_PG_BINDIR, /usr/lib/postgresql/*/bin and \
                 PATH); install the client tools of your server's PostgreSQL version or newer, e.g. \
                 `apt-get install -y postgresql-client-15`"
            )
        })?;
        Ok(Self { pg_dump: dir.join("pg_dump"), pg_restore: dir.join("pg_restore"), psql: dir.join("psql") })
    }

    /// The major version of `pg_dump` (from `pg_dump --version`).
    async fn major_version(&self) -> anyhow::Result<u32> {
        let out = tokio::process::Command::new(&self.pg_dump).arg("--version").output().await?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.split('.').next()?.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("cannot read the version of {}: {text:?}", self.pg_dump.display()))
    }
}

/// A foreign key between two schemas, as `pg_get_constraintdef` gives it (schema-qualified).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, QueryableByName)]
pub struct ForeignKey {
    /// Schema of the referencing table.
    #[diesel(sql_type = Text)]
    pub schema: String,
    /// The referencing table.
    #[diesel(sql_type = Text)]
    pub table: String,
    /// The constraint's name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// `FOREIGN KEY (…) REFERENCES s.t(…) …`.
    #[diesel(sql_type = Text)]
    pub definition: String,
    /// Schema of the referenced table.
    #[diesel(sql_type = Text)]
    pub references_schema: String,
}

/// What `FILE.manifest.json` records about an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// The schema of a one-schema archive; `None`: the whole database.
    pub schema: Option<String>,
    /// The archive's file name (without directory).
    pub archive: String,
    /// SHA-256 of the archive, hex.
    pub archive_sha256: String,
    /// Size of the archive in bytes.
    pub archive_bytes: u64,
    /// The server's `server_version`.
    pub server_version: String,
    /// Applied migrations (diesel versions), ascending.
    pub migrations: Vec<String>,
    /// Every foreign key from one schema into another at the snapshot.
    pub foreign_keys: Vec<ForeignKey>,
}

impl Manifest {
    /// The newest applied migration.
    pub fn migration_version(&self) -> &str {
        self.migrations.last().map_or("none", String::as_str)
    }
}

/// Where the manifest of `archive` lives.
pub fn manifest_path(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest.json");
    archive.with_file_name(name)
}

/// The archive name when `--out` is not given: `phoenix-<schema|all>-<UTC time>.dump`.
pub fn default_archive_name(schema: Option<&str>, now: DateTime<Utc>) -> PathBuf {
    PathBuf::from(format!("phoenix-{}-{}.dump", schema.unwrap_or("all"), now.format("%Y%m%dT%H%M%SZ")))
}

/// A schema one may back up or restore alone: a domain's schema.
pub fn single_schema(name: &str) -> anyhow::Result<String> {
    if Domain::ALL.iter().any(|d| d.name() == name) {
        return Ok(name.to_owned());
    }
    let names: Vec<_> = Domain::ALL.iter().map(|d| d.name()).collect();
    if name == "meta" || name == "public" {
        bail!(
            "schema {name} is backed up and restored only with the whole database (omit --schema): every domain \
             depends on it"
        );
    }
    bail!("--schema {name:?}: not a Phoenix schema; one of: {}", names.join(", "))
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    value: String,
}

const MIGRATIONS: &str = "SELECT version::text AS value FROM public.__diesel_schema_migrations ORDER BY version";
const HAS_LEDGER: &str = "SELECT coalesce(to_regclass('public.__diesel_schema_migrations')::text, '') AS value";
/// Top-level constraints only (`conparentid = 0`): a partitioned table's partitions get theirs
/// from the parent's.
const CROSS_SCHEMA_FKS: &str = "
SELECT sn.nspname::text AS schema, sc.relname::text AS table, con.conname::text AS name,
       pg_get_constraintdef(con.oid) AS definition, tn.nspname::text AS references_schema
  FROM pg_constraint con
  JOIN pg_class sc ON sc.oid = con.conrelid JOIN pg_namespace sn ON sn.oid = sc.relnamespace
  JOIN pg_class tc ON tc.oid = con.confrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0 AND sn.nspname <> tn.nspname
 ORDER BY 1, 2, 3";

async fn applied_migrations(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<String>> {
    let ledger: Row = diesel::sql_query(HAS_LEDGER).get_result(conn).await?;
    if ledger.value.is_empty() {
        return Ok(Vec::new());
    }
    Ok(diesel::sql_query(MIGRATIONS).load::<Row>(conn).await?.into_iter().map(|r| r.value).collect())
}

/// Foreign keys as `pg_get_constraintdef` prints them with an empty `search_path`
/// (every table schema-qualified), as the restore script runs them.
async fn cross_schema_fks(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<ForeignKey>> {
    conn.batch_execute("SELECT pg_catalog.set_config('search_path', '', true)").await?;
    Ok(diesel::sql_query(CROSS_SCHEMA_FKS).load(conn).await?)
}

async fn one_value(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<String> {
    Ok(diesel::sql_query(sql).get_result::<Row>(conn).await?.value)
}

/// Refuses client tools older than the server (pg_dump cannot dump a newer server).
async fn check_versions(conn: &mut AsyncPgConnection, tools: &Tools) -> anyhow::Result<()> {
    let server: u32 =
        one_value(conn, "SELECT (current_setting('server_version_num')::int / 10000)::text AS value").await?.parse()?;
    let client = tools.major_version().await?;
    ensure!(
        client >= server,
        "{} is version {client}, the server {server}: install the client tools of version {server} or newer",
        tools.pg_dump.display()
    );
    Ok(())
}

/// What `phoenix backup` does: the archive at `out` and its manifest next to it.
pub async fn backup(database_url: &str, tools: &Tools, schema: Option<&str>, out: &Path) -> anyhow::Result<Manifest> {
    let schema = schema.map(single_schema).transpose()?;
    let conn_url = ConnUrl::parse(database_url);
    let mut conn = AsyncPgConnection::establish(database_url).await.context("cannot connect to the database")?;
    check_versions(&mut conn, tools).await?;
    conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let migrations = applied_migrations(&mut conn).await?;
    ensure!(
        !migrations.is_empty(),
        "the database has no applied migrations (public.__diesel_schema_migrations): nothing to back up"
    );
    let foreign_keys = cross_schema_fks(&mut conn).await?;
    let server_version = one_value(&mut conn, "SELECT current_setting('server_version') AS value").await?;
    let created_at = Utc::now();
    let snapshot = one_value(&mut conn, "SELECT pg_export_snapshot() AS value").await?;

    let mut cmd = tokio::process::Command::new(&tools.pg_dump);
    cmd.args(["--format=custom", "--no-password"]).arg(format!("--snapshot={snapshot}")).arg("--file").arg(out);
    if let Some(s) = &schema {
        cmd.arg(format!("--schema={s}"));
    }
    cmd.arg(format!("--dbname={}", conn_url.without_password));
    let result = run(conn_url.apply(&mut cmd), "pg_dump").await;
    // The snapshot had to live until pg_dump took it over; the transaction only read.
    conn.batch_execute("COMMIT").await?;
    result?;

    let (archive_sha256, archive_bytes) = sha256_of(out).await?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        created_at,
        schema,
        archive: out.file_name().unwrap_or_default().to_string_lossy().into_owned(),
        archive_sha256,
        archive_bytes,
        server_version,
        migrations,
        foreign_keys,
    };
    let path = manifest_path(out);
    tokio::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(manifest)
}

/// How a restore may change what the archive holds.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore only this schema (from a one-schema or a whole-database archive).
    pub schema: Option<String>,
    /// Objects owned by the restoring role instead of their original owners
    /// (`pg_restore --no-owner`: into a cluster without those roles).
    pub no_owner: bool,
    /// Leave out GRANTs (`pg_restore --no-privileges`: into a cluster without the roles they
    /// name; grant again afterwards).
    pub no_privileges: bool,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The restored schema; `None`: the whole database.
    pub schema: Option<String>,
    /// The archive's manifest.
    pub manifest: Manifest,
    /// Foreign keys of other schemas into the restored one, dropped and added again (validated).
    pub foreign_keys_restored: Vec<ForeignKey>,
}

/// Reads and checks `FILE.manifest.json` against the archive (present, same checksum).
pub async fn read_manifest(archive: &Path) -> anyhow::Result<Manifest> {
    let path = manifest_path(archive);
    let text = tokio::fs::read(&path).await.with_context(|| {
        format!("reading {} (every archive of `phoenix backup` has its manifest next to it)", path.display())
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a manifest", path.display()))?;
    ensure!(manifest.format == MANIFEST_FORMAT, "{}: unknown manifest format {}", path.display(), manifest.format);
    let (sha, _) = sha256_of(archive).await?;
    ensure!(
        sha == manifest.archive_sha256,
        "{} does not match its manifest (SHA-256 differs): a damaged or different archive",
        archive.display()
    );
    Ok(manifest)
}

/// Why the database's migrations forbid the restore, if they do: one schema needs exactly the
/// archive's migrations; the whole database none that the archive lacks.
pub fn version_conflict(manifest: &Manifest, database: &[String], whole: bool) -> Option<String> {
    let newer: Vec<&String> = database.iter().filter(|v| !manifest.migrations.contains(v)).collect();
    let db_version = database.last().map_or("none", String::as_str);
    if !newer.is_empty() {
        return Some(format!(
            "the database is at a newer migration version ({db_version}; {} migration(s) the backup lacks, first {}) \
             than the backup ({}): restoring it would put back tables older than what this database records. \
             Restore into a fresh database instead, then `phoenix migrate up`.",
            newer.len(),
            newer[0],
            manifest.migration_version()
        ));
    }
    if !whole && database.len() != manifest.migrations.len() {
        return Some(format!(
            "the backup was taken at a newer migration version ({}) than the database's ({db_version}): run \
             `phoenix migrate up` with the release that took it first",
            manifest.migration_version()
        ));
    }
    None
}

/// What `phoenix restore` does (see the module doc).
pub async fn restore(
    database_url: &str,
    tools: &Tools,
    archive: &Path,
    options: &RestoreOptions,
) -> anyhow::Result<RestoreReport> {
    let manifest = read_manifest(archive).await?;
    let schema = match (&options.schema, &manifest.schema) {
        (Some(s), Some(m)) if s != m => bail!("{} holds schema {m} only, not {s}", archive.display()),
        (Some(s), _) | (None, Some(s)) => Some(single_schema(s)?),
        (None, None) => None,
    };
    let mut conn = AsyncPgConnection::establish(database_url).await.context("cannot connect to the database")?;
    check_versions(&mut conn, tools).await?;
    let database = applied_migrations(&mut conn).await?;
    if let Some(why) = version_conflict(&manifest, &database, schema.is_none()) {
        bail!("restore refused: {why}");
    }

    let (mut pre, post, fks, list) = match &schema {
        None => (String::new(), String::new(), Vec::new(), None),
        Some(s) => {
            let fks = inbound_fks(&mut conn, &manifest, s).await?;
            let mut pre = String::new();
            let mut post = String::new();
            for fk in &fks {
                let table = format!("{}.{}", ident(&fk.schema), ident(&fk.table));
                pre.push_str(&format!(
                    "ALTER TABLE IF EXISTS {table} DROP CONSTRAINT IF EXISTS {};\n",
                    ident(&fk.name)
                ));
                post.push_str(&format!("ALTER TABLE {table} ADD CONSTRAINT {} {};\n", ident(&fk.name), fk.definition));
            }
            (pre, post, fks, Some(schema_toc(tools, archive, s).await?))
        }
    };

    pre.push_str(&drop_partitioned(&mut conn, schema.as_deref()).await?);
    let mut restore = tokio::process::Command::new(&tools.pg_restore);
    restore.args(["--clean", "--if-exists", "--file=-"]);
    if options.no_owner {
        restore.arg("--no-owner");
    }
    if options.no_privileges {
        restore.arg("--no-privileges");
    }
    if let Some(list) = &list {
        restore.arg("--use-list").arg(list.path());
    }
    restore.arg(archive);
    let conn_url = ConnUrl::parse(database_url);
    let mut psql = tokio::process::Command::new(&tools.psql);
    psql.args(["--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction", "--file=-"])
        .arg(format!("--dbname={}", conn_url.without_password));
    conn_url.apply(&mut psql);
    pipe_script(restore, psql, &pre, &post).await?;
    drop(list);

    analyze(&mut conn, schema.as_deref()).await?;
    Ok(RestoreReport { schema, manifest, foreign_keys_restored: fks })
}

/// `DROP TABLE … CASCADE` of the partitioned tables the restore replaces (in `schema`, or
/// all): `pg_restore --clean` would drop each partition's primary key on its own, which
/// PostgreSQL refuses ("cannot drop inherited constraint"); with the tables gone first, its
/// `IF EXISTS` drops find nothing and the archive recreates them (`active.visits`,
/// docs/database.md "Partitioning").
async fn drop_partitioned(conn: &mut AsyncPgConnection, schema: Option<&str>) -> anyhow::Result<String> {
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT format('DROP TABLE IF EXISTS %I.%I CASCADE;', n.nspname, c.relname) AS value \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'p' AND NOT c.relispartition \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND ($1 = '' OR n.nspname = $1) \
         ORDER BY 1",
    )
    .bind::<Text, _>(schema.unwrap_or(""))
    .load(conn)
    .await
    .context("cannot list the partitioned tables")?;
    Ok(rows.into_iter().map(|r| r.value + "\n").collect())
}

/// The foreign keys of other schemas into `schema`: the database's (they must go before the
/// schema's tables can be dropped), and the manifest's where the database has none left (a
/// `DROP SCHEMA … CASCADE` removed them), for tables that exist.
async fn inbound_fks(
    conn: &mut AsyncPgConnection,
    manifest: &Manifest,
    schema: &str,
) -> anyhow::Result<Vec<ForeignKey>> {
    let inbound = |fk: &ForeignKey| fk.references_schema == schema && fk.schema != schema;
    let mut by_name: BTreeMap<(String, String, String), ForeignKey> = BTreeMap::new();
    for fk in manifest.foreign_keys.iter().filter(|f| inbound(f)) {
        let exists: Row = diesel::sql_query("SELECT coalesce(to_regclass($1)::text, '') AS value")
            .bind::<Text, _>(format!("{}.{}", ident(&fk.schema), ident(&fk.table)))
            .get_result(conn)
            .await?;
        if !exists.value.is_empty() {
            by_name.insert((fk.schema.clone(), fk.table.clone(), fk.name.clone()), fk.clone());
        }
    }
    conn.batch_execute("BEGIN").await?;
    let current = cross_schema_fks(conn).await;
    conn.batch_execute("COMMIT").await?;
    for fk in current?.into_iter().filter(inbound) {
        by_name.insert((fk.schema.clone(), fk.table.clone(), fk.name.clone()), fk);
    }
    Ok(by_name.into_values().collect())
}

/// A TOC list (`pg_restore --use-list`) of `schema`'s entries in `archive`: the schema, its
/// comment and ACL, and every entry in it.
async fn schema_toc(tools: &Tools, archive: &Path, schema: &str) -> anyhow::Result<TempFile> {
    let out = tokio::process::Command::new(&tools.pg_restore)
        .arg("--list")
        .arg(archive)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running pg_restore --list")?;
    ensure!(out.status.success(), "pg_restore --list failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    let list = select_schema_entries(&String::from_utf8_lossy(&out.stdout), schema);
    ensure!(!list.is_empty(), "{} holds nothing of schema {schema}", archive.display());
    let file = TempFile::new("toc")?;
    tokio::fs::write(file.path(), list).await?;
    Ok(file)
}

/// The lines of a `pg_restore --list` that belong to `schema`. A line is
/// `<id>; <catalog oid> <oid> <DESC WORDS> <namespace> <tag…> <owner>`; the description's
/// words are upper case, a namespace is a (lower-case) schema name or `-`.
pub fn select_schema_entries(list: &str, schema: &str) -> String {
    let mut out = String::new();
    for line in list.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        let Some((_, rest)) = line.split_once("; ") else { continue };
        let words: Vec<&str> = rest.split(' ').skip(2).collect();
        let Some(ns_at) = words.iter().position(|w| !w.chars().all(|c| c.is_ascii_uppercase())) else { continue };
        let (desc, namespace, tag) = (words[..ns_at].join(" "), words[ns_at], &words[ns_at + 1..]);
        let ours = namespace == schema
            || (namespace == "-" && desc == "SCHEMA" && tag.first() == Some(&schema))
            || (namespace == "-"
                && matches!(desc.as_str(), "COMMENT" | "ACL")
                && tag.first() == Some(&"SCHEMA")
                && tag.get(1) == Some(&schema));
        if ours {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Streams `pre`, the script `pg_restore` prints, and `post` into `psql`; fails with psql's
/// (or pg_restore's) error when either fails.
async fn pipe_script(
    mut restore: tokio::process::Command,
    mut psql: tokio::process::Command,
    pre: &str,
    post: &str,
) -> anyhow::Result<()> {
    let mut psql = psql
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting psql")?;
    let mut restore = restore
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting pg_restore")?;
    let mut stdin = psql.stdin.take().context("psql stdin")?;
    let mut script = restore.stdout.take().context("pg_restore stdout")?;
    let feed = async {
        stdin.write_all(pre.as_bytes()).await?;
        tokio::io::copy(&mut script, &mut stdin).await?;
        stdin.write_all(post.as_bytes()).await?;
        stdin.shutdown().await?;
        drop(stdin);
        std::io::Result::Ok(())
    };
    let fed = feed.await;
    // When psql stopped early, pg_restore must see its reader gone instead of blocking.
    drop(script);
    let restore_out = restore.wait_with_output().await?;
    let psql_out = psql.wait_with_output().await?;
    if !psql_out.status.success() {
        bail!(
            "the restore failed and was rolled back (the database is unchanged): {}",
            String::from_utf8_lossy(&psql_out.stderr).trim()
        );
    }
    ensure!(
        restore_out.status.success(),
        "pg_restore failed (nothing was committed): {}",
        String::from_utf8_lossy(&restore_out.stderr).trim()
    );
    fed.context("feeding psql")?;
    Ok(())
}

/// `ANALYZE` of what was restored.
async fn analyze(conn: &mut AsyncPgConnection, schema: Option<&str>) -> anyhow::Result<()> {
    let Some(schema) = schema else {
        conn.batch_execute("ANALYZE").await?;
        return Ok(());
    };
    let tables: Vec<Row> = diesel::sql_query(
        "SELECT format('%I.%I', schemaname, tablename) AS value FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
    )
    .bind::<Text, _>(schema)
    .load(conn)
    .await?;
    for t in tables {
        conn.batch_execute(&format!("ANALYZE {}", t.value)).await?;
    }
    Ok(())
}

/// A SQL identifier, double-quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn sha256_of(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

async fn run(cmd: &mut tokio::process::Command, name: &str) -> anyhow::Result<()> {
    let out = cmd.stdin(Stdio::null()).output().await.with_context(|| format!("starting {name}"))?;
    ensure!(out.status.success(), "{name} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// A database URL for the client tools: the password goes in `PGPASSWORD`, never on a
/// command line another user of the machine could read.
struct ConnUrl {
    without_password: String,
    password: Option<String>,
}

impl ConnUrl {
    fn parse(url: &str) -> Self {
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return Self { without_password: url.to_owned(), password: None };
        };
        let authority_end = url[scheme_end..].find(['/', '?']).map_or(url.len(), |i| scheme_end + i);
        let authority = &url[scheme_end..authority_end];
        let Some(at) = authority.rfind('@') else { return Self { without_password: url.to_owned(), password: None } };
        let Some((user, password)) = authority[..at].split_once(':') else {
            return Self { without_password: url.to_owned(), password: None };
        };
        Self {
            without_password: format!("{}{user}{}{}", &url[..scheme_end], &authority[at..], &url[authority_end..]),
            password: Some(percent_decode(password)),
        }
    }

    fn apply<'c>(&self, cmd: &'c mut tokio::process::Command) -> &'c mut tokio::process::Command {
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        cmd.env("PGCONNECT_TIMEOUT", "10")
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(kind: &str) -> anyhow::Result<Self> {
        use rand::RngExt as _;
        let n: u64 = rand::rng().random();
        Ok(Self(std::env::temp_dir().join(format!("phoenix-restore-{kind}-{}-{n:016x}", std::process::id()))))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
