//! `phoenix db stats`: the figures of `ConfigService.GetDatabaseStats`
//! ([`phoenix_config::db_stats`]) as readable tables. What they mean: docs/operations.md.

use std::fmt::Write as _;

use phoenix_common::db::{self, DbPool};
use phoenix_config::db_stats::{self, DatabaseStats};

/// Collects the figures (with `schema`'s tables detailed; empty: `active`) and renders them.
pub async fn stats(pool: &DbPool, schema: &str) -> anyhow::Result<String> {
    let schema = db_stats::detailed_schema(schema)?;
    let mut conn = db::conn(pool).await?;
    let stats = db_stats::collect(&mut conn, &schema).await?;
    Ok(render(&stats))
}

/// Bytes for a person: `512 B`, `8.0 KiB`, `1.5 MiB`, `2.0 GiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "never".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

fn lag(us: Option<i64>) -> String {
    us.map_or_else(|| "-".to_owned(), |us| format!("{:.3} s", us as f64 / 1e6))
}

/// The report as text (every line ends with a newline).
pub fn render(s: &DatabaseStats) -> String {
    let mut o = String::new();
    let since =
        s.stats_reset.map_or_else(|| "the server's start".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    let _ = writeln!(o, "Database: {} (counters since {since})", bytes(s.database_bytes));

    let _ = writeln!(o, "\nSchemas");
    let _ = writeln!(o, "  {:<12} {:>6} {:>11} {:>11} {:>11}", "schema", "tables", "tables", "indexes", "total");
    for r in &s.schemas {
        let _ = writeln!(
            o,
            "  {:<12} {:>6} {:>11} {:>11} {:>11}",
            r.schema,
            r.tables,
            bytes(r.table_bytes),
            bytes(r.index_bytes),
            bytes(r.total_bytes)
        );
    }

    let _ = writeln!(o, "\nTables of {} (dead tuples, vacuum)", s.schema);
    let _ = writeln!(
        o,
        "  {:<28} {:>9} {:>8} {:>10} {:>9} {:>9} {:<16} {:<16}",
        "table", "live", "dead", "size", "seq scans", "idx scans", "last autovacuum", "last autoanalyze"
    );
    for r in &s.tables {
        let _ = writeln!(
            o,
            "  {:<28} {:>9} {:>8} {:>10} {:>9} {:>9} {:<16} {:<16}",
            r.table,
            r.live_tuples,
            r.dead_tuples,
            bytes(r.total_bytes),
            r.seq_scan,
            r.idx_scan,
            when(r.last_autovacuum),
            when(r.last_autoanalyze)
        );
    }

    let _ = writeln!(o, "\nTable bloat (estimate from planner statistics; most first)");
    let _ = writeln!(o, "  {:<40} {:>10} {:>10} {:>7}", "table", "size", "bloat", "bloat %");
    for r in s.bloat.iter().filter(|r| r.bloat_bytes > 0 && !r.estimate_unavailable).take(15) {
        let _ = writeln!(
            o,
            "  {:<40} {:>10} {:>10} {:>6.1}%",
            format!("{}.{}", r.schema, r.table),
            bytes(r.real_bytes),
            bytes(r.bloat_bytes),
            r.bloat_percent
        );
    }
    let unknown = s.bloat.iter().filter(|r| r.estimate_unavailable).count();
    if unknown > 0 {
        let _ = writeln!(o, "  ({unknown} tables without statistics yet: no estimate until they are analyzed)");
    }

    let unused: Vec<_> = s.indexes.iter().filter(|i| i.unused()).collect();
    let _ = writeln!(o, "\nUnused indexes (never scanned, enforcing no constraint): {}", unused.len());
    for i in &unused {
        let _ = writeln!(o, "  {:<60} {:>10}", format!("{}.{}", i.schema, i.index), bytes(i.bytes));
    }
    let mut busiest: Vec<_> = s.indexes.iter().collect();
    busiest.sort_by_key(|i| std::cmp::Reverse(i.idx_scan));
    let _ = writeln!(o, "\nMost used indexes");
    for i in busiest.iter().take(10).filter(|i| i.idx_scan > 0) {
        let _ = writeln!(o, "  {:<60} {:>10} scans", format!("{}.{}", i.schema, i.index), i.idx_scan);
    }

    let _ = writeln!(
        o,
        "\nConnections: {} on the server of max_connections {}; on this database by role:",
        s.server_connections, s.max_connections
    );
    let _ = writeln!(o, "  {:<24} {:>6} {:>7} {:>6} {:>8}", "role", "total", "active", "idle", "idle tx");
    for r in &s.connections {
        let _ =
            writeln!(o, "  {:<24} {:>6} {:>7} {:>6} {:>8}", r.role, r.total, r.active, r.idle, r.idle_in_transaction);
    }

    if s.replicas.is_empty() {
        let _ = writeln!(o, "\nReplication: no standby streams from this server");
    } else {
        let _ = writeln!(o, "\nReplication");
        let _ = writeln!(
            o,
            "  {:<20} {:<16} {:<10} {:<6} {:>10} {:>10}",
            "standby", "address", "state", "sync", "replay lag", "behind"
        );
        for r in &s.replicas {
            let _ = writeln!(
                o,
                "  {:<20} {:<16} {:<10} {:<6} {:>10} {:>10}",
                r.application_name,
                r.client_addr,
                r.state,
                r.sync_state,
                lag(r.replay_lag_us),
                bytes(r.replay_lag_bytes)
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn bytes_read_like_a_person_writes_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(8192), "8.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
