//! Database health figures for operators: `ConfigService.GetDatabaseStats` and
//! `phoenix db stats` read them through [`collect`]. Read-only catalog and statistics views
//! (`pg_class`, `pg_stat_user_tables`, `pg_stat_user_indexes`, `pg_stats`,
//! `pg_stat_activity`, `pg_stat_replication`); no extension (pgstattuple) needed.
//!
//! What a figure means and what to do about it: docs/operations.md "Monitoring".

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{Job, JobReport, JobSpec, Schedule};
use phoenix_common::metrics;

/// The schemas Phoenix owns: every domain's, `meta` (shared trigger functions) and `public`
/// (diesel's migration ledger).
pub fn phoenix_schemas() -> Vec<String> {
    let mut schemas: Vec<String> = Domain::ALL.iter().map(|d| d.name().to_owned()).collect();
    schemas.extend(["meta".to_owned(), "public".to_owned()]);
    schemas.sort();
    schemas
}

/// Everything [`collect`] reads, in one consistent snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseStats {
    /// `pg_database_size` of the current database.
    pub database_bytes: i64,
    /// Each Phoenix schema by name.
    pub schemas: Vec<SchemaSize>,
    /// The detailed schema.
    pub schema: String,
    /// Its tables by name.
    pub tables: Vec<TableStats>,
    /// Every Phoenix table, most bloat first.
    pub bloat: Vec<TableBloat>,
    /// Every Phoenix index, fewest scans first.
    pub indexes: Vec<IndexUsage>,
    /// Client sessions on this database per role.
    pub connections: Vec<RoleConnections>,
    /// Client sessions on the whole server.
    pub server_connections: i32,
    /// `max_connections`.
    pub max_connections: i32,
    /// Standbys streaming from this server.
    pub replicas: Vec<Replica>,
    /// `pg_stat_database.stats_reset` of this database.
    pub stats_reset: Option<DateTime<Utc>>,
}

/// Size of one schema.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct SchemaSize {
    #[diesel(sql_type = Text)]
    pub schema: String,
    #[diesel(sql_type = Integer)]
    pub tables: i32,
    #[diesel(sql_type = BigInt)]
    pub table_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub index_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub total_bytes: i64,
}

/// Activity of one table (`pg_stat_user_tables`).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct TableStats {
    #[diesel(sql_type = Text)]
    pub schema: String,
    #[diesel(sql_type = Text)]
    pub table: String,
    #[diesel(sql_type = BigInt)]
    pub live_tuples: i64,
    #[diesel(sql_type = BigInt)]
    pub dead_tuples: i64,
    #[diesel(sql_type = BigInt)]
    pub total_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub seq_scan: i64,
    #[diesel(sql_type = BigInt)]
    pub idx_scan: i64,
    #[diesel(sql_type = BigInt)]
    pub modified_since_analyze: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_vacuum: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_autovacuum: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_analyze: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_autoanalyze: Option<DateTime<Utc>>,
}

/// Estimated bloat of one table.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct TableBloat {
    #[diesel(sql_type = Text)]
    pub schema: String,
    #[diesel(sql_type = Text)]
    pub table: String,
    #[diesel(sql_type = BigInt)]
    pub real_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub bloat_bytes: i64,
    #[diesel(sql_type = Double)]
    pub bloat_percent: f64,
    /// No statistics yet (never analyzed) or a column type the estimate cannot size.
    #[diesel(sql_type = Bool)]
    pub estimate_unavailable: bool,
}

/// Use of one index (`pg_stat_user_indexes`).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct IndexUsage {
    #[diesel(sql_type = Text)]
    pub schema: String,
    #[diesel(sql_type = Text)]
    pub table: String,
    #[diesel(sql_type = Text)]
    pub index: String,
    #[diesel(sql_type = BigInt)]
    pub idx_scan: i64,
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
    /// Backs a primary key, unique or exclusion constraint (or is a unique index).
    #[diesel(sql_type = Bool)]
    pub enforces_constraint: bool,
}

impl IndexUsage {
    /// Never scanned and enforcing nothing: a candidate to drop.
    pub fn unused(&self) -> bool {
        self.idx_scan == 0 && !self.enforces_constraint
    }
}

/// Client sessions of one role on this database.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct RoleConnections {
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Integer)]
    pub total: i32,
    #[diesel(sql_type = Integer)]
    pub active: i32,
    #[diesel(sql_type = Integer)]
    pub idle: i32,
    #[diesel(sql_type = Integer)]
    pub idle_in_transaction: i32,
}

/// One standby (`pg_stat_replication`). Without `pg_monitor` (or superuser) PostgreSQL
/// hides the details of other roles' sessions: the lags are then unknown.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct Replica {
    #[diesel(sql_type = Text)]
    pub application_name: String,
    #[diesel(sql_type = Text)]
    pub client_addr: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Text)]
    pub sync_state: String,
    #[diesel(sql_type = BigInt)]
    pub replay_lag_bytes: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub write_lag_us: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub flush_lag_us: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub replay_lag_us: Option<i64>,
}

#[derive(QueryableByName)]
struct Overview {
    #[diesel(sql_type = BigInt)]
    database_bytes: i64,
    #[diesel(sql_type = Integer)]
    server_connections: i32,
    #[diesel(sql_type = Integer)]
    max_connections: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    stats_reset: Option<DateTime<Utc>>,
}

const OVERVIEW: &str = "
SELECT pg_database_size(current_database()) AS database_bytes,
       (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS server_connections,
       current_setting('max_connections')::int AS max_connections,
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset";

/// `$1`: the schemas. Tables are `r` (plain), `p` (partitioned, size 0 itself) and `m`.
const SCHEMA_SIZES: &str = "
SELECT n.nspname::text AS schema,
       count(c.oid)::int AS tables,
       coalesce(sum(pg_table_size(c.oid)), 0)::bigint AS table_bytes,
       coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint AS index_bytes,
       coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS total_bytes
  FROM pg_namespace n
  LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'm')
 WHERE n.nspname = ANY($1)
 GROUP BY n.nspname
 ORDER BY n.nspname";

/// `$1`: the one schema.
const TABLES: &str = "
SELECT schemaname::text AS schema, relname::text AS table,
       n_live_tup AS live_tuples, n_dead_tup AS dead_tuples,
       pg_total_relation_size(relid) AS total_bytes,
       seq_scan, coalesce(idx_scan, 0) AS idx_scan, n_mod_since_analyze AS modified_since_analyze,
       last_vacuum, last_autovacuum, last_analyze, last_autoanalyze
  FROM pg_stat_user_tables
 WHERE schemaname = $1
 ORDER BY relname";

/// Table bloat estimated from planner statistics (`pg_stats` average widths and null
/// fractions, `reltuples`, fillfactor), without reading the table or needing pgstattuple.
///
/// Taken from ioguix/pgsql-bloat-estimation, `table/table_bloat.sql` (Jehan-Guillaume de
/// Rorthais, BSD 2-clause; <https://github.com/ioguix/pgsql-bloat-estimation>), itself derived
/// from check_postgres' bloat query. Changes: limited to `$1` (the Phoenix schemas), the
/// debug columns dropped, a never-analyzed table (`reltuples = -1` since PostgreSQL 14)
/// counted as 0 rows and flagged, and the result in bytes. Like the original it is an
/// estimate: it is wrong for tables without statistics and for `name` columns
/// (`estimate_unavailable`), and a few pages of "bloat" on small tables are page overhead.
const BLOAT: &str = "
SELECT schemaname::text AS schema, tblname::text AS table,
       (bs * tblpages)::bigint AS real_bytes,
       (CASE WHEN tblpages - est_tblpages_ff > 0 THEN (tblpages - est_tblpages_ff) * bs ELSE 0 END)::bigint AS bloat_bytes,
       (CASE WHEN tblpages > 0 AND tblpages - est_tblpages_ff > 0
             THEN 100 * (tblpages - est_tblpages_ff) / tblpages::float8 ELSE 0 END)::float8 AS bloat_percent,
       (is_na OR never_analyzed) AS estimate_unavailable
FROM (
  SELECT ceil(reltuples / ((bs - page_hdr) * fillfactor / (tpl_size * 100))) + ceil(toasttuples / 4) AS est_tblpages_ff,
         tblpages, bs, schemaname, tblname, is_na, never_analyzed
  FROM (
    SELECT (4 + tpl_hdr_size + tpl_data_size + (2 * ma)
              - CASE WHEN tpl_hdr_size % ma = 0 THEN ma ELSE tpl_hdr_size % ma END
              - CASE WHEN ceil(tpl_data_size)::int % ma = 0 THEN ma ELSE ceil(tpl_data_size)::int % ma END
           ) AS tpl_size,
           (heappages + toastpages) AS tblpages, reltuples, toasttuples, bs, page_hdr,
           schemaname, tblname, fillfactor, is_na, never_analyzed
    FROM (
      SELECT ns.nspname AS schemaname, tbl.relname AS tblname,
             greatest(tbl.reltuples, 0) AS reltuples, tbl.reltuples < 0 AS never_analyzed,
             tbl.relpages AS heappages, coalesce(toast.relpages, 0) AS toastpages,
             coalesce(greatest(toast.reltuples, 0), 0) AS toasttuples,
             coalesce(substring(array_to_string(tbl.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::smallint, 100) AS fillfactor,
             current_setting('block_size')::numeric AS bs,
             CASE WHEN version() ~ 'mingw32' OR version() ~ '64-bit|x86_64|ppc64|ia64|amd64' THEN 8 ELSE 4 END AS ma,
             24 AS page_hdr,
             23 + CASE WHEN max(coalesce(s.null_frac, 0)) > 0 THEN (7 + count(s.attname)) / 8 ELSE 0::int END AS tpl_hdr_size,
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS tpl_data_size,
             bool_or(att.atttypid = 'pg_catalog.name'::regtype)
               OR sum(CASE WHEN att.attnum > 0 THEN 1 ELSE 0 END) <> count(s.attname) AS is_na
        FROM pg_attribute AS att
        JOIN pg_class AS tbl ON att.attrelid = tbl.oid
        JOIN pg_namespace AS ns ON ns.oid = tbl.relnamespace
        LEFT JOIN pg_stats AS s ON s.schemaname = ns.nspname AND s.tablename = tbl.relname
                               AND s.inherited = false AND s.attname = att.attname
        LEFT JOIN pg_class AS toast ON tbl.reltoastrelid = toast.oid
       WHERE NOT att.attisdropped AND att.attnum > 0
         AND tbl.relkind IN ('r', 'm')
         AND ns.nspname = ANY($1)
       GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ) AS s
  ) AS s2
) AS s3
ORDER BY bloat_bytes DESC, schemaname, tblname";

/// `$1`: the schemas.
const INDEXES: &str = "
SELECT s.schemaname::text AS schema, s.relname::text AS table, s.indexrelname::text AS index,
       s.idx_scan, pg_relation_size(s.indexrelid) AS bytes,
       (i.indisunique OR i.indisprimary OR i.indisexclusion
          OR EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)) AS enforces_constraint
  FROM pg_stat_user_indexes s
  JOIN pg_index i ON i.indexrelid = s.indexrelid
 WHERE s.schemaname = ANY($1)
 ORDER BY s.idx_scan, s.schemaname, s.relname, s.indexrelname";

const CONNECTIONS: &str = "
SELECT coalesce(usename::text, '') AS role,
       count(*)::int AS total,
       (count(*) FILTER (WHERE state = 'active'))::int AS active,
       (count(*) FILTER (WHERE state = 'idle'))::int AS idle,
       (count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')))::int AS idle_in_transaction
  FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend'
 GROUP BY usename
 ORDER BY usename";

/// Lags in microseconds; bytes between what was sent and what the standby replayed.
const REPLICATION: &str = "
SELECT coalesce(application_name, '') AS application_name,
       coalesce(host(client_addr), '') AS client_addr,
       coalesce(state, '') AS state, coalesce(sync_state, '') AS sync_state,
       coalesce(pg_wal_lsn_diff(sent_lsn, replay_lsn), 0)::bigint AS replay_lag_bytes,
       (extract(epoch FROM write_lag) * 1000000)::bigint AS write_lag_us,
       (extract(epoch FROM flush_lag) * 1000000)::bigint AS flush_lag_us,
       (extract(epoch FROM replay_lag) * 1000000)::bigint AS replay_lag_us
  FROM pg_stat_replication
 ORDER BY application_name, client_addr";

/// Reads every figure, with `schema`'s tables detailed, in one `REPEATABLE READ` snapshot
/// (the statistics views themselves are per-transaction snapshots too).
pub async fn collect(conn: &mut AsyncPgConnection, schema: &str) -> Result<DatabaseStats> {
    let schemas = phoenix_schemas();
    let schema = schema.to_owned();
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run::<_, phoenix_common::Error, _>(async move |c| {
            let overview: Overview = diesel::sql_query(OVERVIEW).get_result(c).await?;
            let sizes =
                diesel::sql_query(SCHEMA_SIZES).bind::<diesel::sql_types::Array<Text>, _>(&schemas).load(c).await?;
            let tables = diesel::sql_query(TABLES).bind::<Text, _>(&schema).load(c).await?;
            let bloat = diesel::sql_query(BLOAT).bind::<diesel::sql_types::Array<Text>, _>(&schemas).load(c).await?;
            let indexes =
                diesel::sql_query(INDEXES).bind::<diesel::sql_types::Array<Text>, _>(&schemas).load(c).await?;
            let connections = diesel::sql_query(CONNECTIONS).load(c).await?;
            let replicas = diesel::sql_query(REPLICATION).load(c).await?;
            Ok(DatabaseStats {
                database_bytes: overview.database_bytes,
                schemas: sizes,
                schema: schema.clone(),
                tables,
                bloat,
                indexes,
                connections,
                server_connections: overview.server_connections,
                max_connections: overview.max_connections,
                replicas,
                stats_reset: overview.stats_reset,
            })
        })
        .await
}

/// The schema to detail: `requested`, or `active` when empty; one of [`phoenix_schemas`].
pub fn detailed_schema(requested: &str) -> Result<String> {
    let requested = requested.trim();
    if requested.is_empty() {
        return Ok(Domain::Active.name().to_owned());
    }
    let schemas = phoenix_schemas();
    if schemas.iter().any(|s| s == requested) {
        Ok(requested.to_owned())
    } else {
        Err(phoenix_common::Error::invalid("schema", format!("not a Phoenix schema; one of: {}", schemas.join(", "))))
    }
}

/// How often the `db_stats` job publishes the figures as gauges.
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The figures as Prometheus gauges, every [`PUBLISH_EVERY`] by the process serving config
/// (one replica at a time: the job's advisory lock), so a scrape of any config replica's
/// `/metrics` never double-counts the database. A process without the metrics recorder
/// (`PHOENIX_METRICS_PORT=off`, the CLI) publishes nothing.
pub fn spec() -> JobSpec {
    JobSpec::new(Job::DbStats, Schedule::Every(PUBLISH_EVERY), |conn, _run| Box::pin(publish_job(conn)))
}

async fn publish_job(conn: &mut AsyncPgConnection) -> Result<JobReport> {
    let mut report = JobReport::default();
    if !metrics::is_installed() {
        return Ok(report);
    }
    let stats = collect(conn, Domain::Active.name()).await?;
    report.add("gauges", publish(&stats));
    Ok(report)
}

/// Sets the gauges of `stats` (docs/observability.md "Database"); returns how many series.
pub fn publish(stats: &DatabaseStats) -> i64 {
    let mut series = 0;
    let mut set = |name: &'static str, labels: &[(&'static str, &str)], value: f64| {
        metrics::set_gauge(name, labels, value);
        series += 1;
    };
    set(metrics::DB_SIZE, &[], stats.database_bytes as f64);
    for s in &stats.schemas {
        set(metrics::DB_SCHEMA_SIZE, &[("schema", &s.schema)], s.total_bytes as f64);
    }
    for t in &stats.tables {
        let labels = |state| [("schema", t.schema.as_str()), ("table", t.table.as_str()), ("state", state)];
        set(metrics::DB_TABLE_TUPLES, &labels("live"), t.live_tuples as f64);
        set(metrics::DB_TABLE_TUPLES, &labels("dead"), t.dead_tuples as f64);
        let vacuumed = t.last_autovacuum.map_or(0.0, |at| at.timestamp() as f64);
        set(metrics::DB_TABLE_LAST_AUTOVACUUM, &[("schema", &t.schema), ("table", &t.table)], vacuumed);
    }
    for b in stats.bloat.iter().filter(|b| !b.estimate_unavailable) {
        set(metrics::DB_TABLE_BLOAT, &[("schema", &b.schema), ("table", &b.table)], b.bloat_bytes as f64);
    }
    for i in &stats.indexes {
        set(metrics::DB_INDEX_SCANS, &[("schema", &i.schema), ("index", &i.index)], i.idx_scan as f64);
    }
    set(metrics::DB_UNUSED_INDEXES, &[], stats.indexes.iter().filter(|i| i.unused()).count() as f64);
    for c in &stats.connections {
        for (state, n) in [("active", c.active), ("idle", c.idle), ("idle_in_transaction", c.idle_in_transaction)] {
            set(metrics::DB_CONNECTIONS, &[("role", &c.role), ("state", state)], f64::from(n));
        }
    }
    set(metrics::DB_SERVER_CONNECTIONS, &[("kind", "in_use")], f64::from(stats.server_connections));
    set(metrics::DB_SERVER_CONNECTIONS, &[("kind", "max")], f64::from(stats.max_connections));
    for r in &stats.replicas {
        set(metrics::DB_REPLICATION_LAG_BYTES, &[("replica", &r.application_name)], r.replay_lag_bytes as f64);
        if let Some(us) = r.replay_lag_us {
            set(metrics::DB_REPLICATION_LAG, &[("replica", &r.application_name)], us as f64 / 1e6);
        }
    }
    series
}
