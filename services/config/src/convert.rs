//! Domain rows → proto messages.

use phoenix_common::settings::LiveSettings;
use phoenix_common::time::to_timestamp;
use phoenix_proto::config::v1 as pb;

use crate::flags::Reason;
use crate::registry::{Kind, SettingDef};
use crate::repo::{FlagRow, JobRunRow, StoredSetting};
use crate::retention::Report;

/// A registry entry with its stored value, if any; the default shown is this process's
/// effective one (an environment variable may give a key its first default).
pub(crate) fn setting(def: &SettingDef, settings: &LiveSettings, stored: Option<&StoredSetting>) -> pb::Setting {
    let default = settings.default_of(def.key).unwrap_or(def.default);
    let (kind, min, max) = match def.kind {
        Kind::Integer { min, max } => (pb::SettingType::Integer, Some(min), Some(max)),
        Kind::Boolean => (pb::SettingType::Boolean, None, None),
        Kind::TimeOfDay => (pb::SettingType::TimeOfDay, None, None),
        Kind::TimeZone => (pb::SettingType::TimeZone, None, None),
    };
    pb::Setting {
        key: def.key.to_owned(),
        value: stored.filter(|_| !def.locked).map_or(default, |s| s.value.as_str()).to_owned(),
        category: def.category().to_owned(),
        description: def.description.to_owned(),
        r#type: kind as i32,
        default_value: default.to_owned(),
        min_value: min,
        max_value: max,
        locked: def.locked,
        requires_restart: def.requires_restart,
        is_set: stored.is_some(),
        update_time: stored.map(|s| to_timestamp(s.updated_at)),
    }
}

pub(crate) fn flag(row: FlagRow) -> pb::FeatureFlag {
    pb::FeatureFlag {
        key: row.key,
        enabled: row.enabled,
        description: row.description.unwrap_or_default(),
        updated_by_account_id: row.updated_by,
        create_time: Some(to_timestamp(row.created_at)),
        update_time: Some(to_timestamp(row.updated_at)),
        rollout_percentage: row.rollout_percentage,
        roles: row.roles,
    }
}

pub(crate) fn reason(r: Reason) -> pb::EvaluationReason {
    match r {
        Reason::FlagOff => pb::EvaluationReason::FlagOff,
        Reason::OnForEveryone => pb::EvaluationReason::OnForEveryone,
        Reason::RoleNotMatched => pb::EvaluationReason::RoleNotMatched,
        Reason::OutsideRollout => pb::EvaluationReason::OutsideRollout,
        Reason::RulesMatched => pb::EvaluationReason::RulesMatched,
    }
}

pub(crate) fn retention_report(r: &Report) -> pb::RunRetentionCleanupResponse {
    pb::RunRetentionCleanupResponse {
        dry_run: r.dry_run,
        visits: r.visits,
        scan_receipts: r.scan_receipts,
        presence_events: r.presence_events,
        students: i32::try_from(r.students).unwrap_or(i32::MAX),
        audit_records: r.audit_records,
        complete: r.complete,
        default_retention_days: r.default_retention_days,
        start_time: Some(to_timestamp(r.started_at)),
        finish_time: Some(to_timestamp(r.finished_at)),
    }
}

pub(crate) fn job_run(row: JobRunRow) -> pb::JobRun {
    let counts = row
        .counts
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| v.as_i64().map(|n| (k.clone(), n))).collect())
        .unwrap_or_default();
    pb::JobRun {
        id: row.id,
        job: row.job,
        trigger: row.trigger,
        dry_run: row.dry_run,
        outcome: row.outcome,
        start_time: Some(to_timestamp(row.started_at)),
        finish_time: Some(to_timestamp(row.finished_at)),
        acted_for: Some(to_timestamp(row.acted_for)),
        counts,
        error: row.error.unwrap_or_default(),
    }
}

/// The figures of `GetDatabaseStats`.
pub(crate) fn database_stats(s: crate::db_stats::DatabaseStats) -> pb::GetDatabaseStatsResponse {
    use phoenix_common::time::to_timestamp_opt;
    let duration = |us: Option<i64>| {
        us.map(|us| prost_types::Duration {
            seconds: us.div_euclid(1_000_000),
            nanos: i32::try_from(us.rem_euclid(1_000_000) * 1000).unwrap_or(0),
        })
    };
    pb::GetDatabaseStatsResponse {
        database_bytes: s.database_bytes,
        schemas: s
            .schemas
            .into_iter()
            .map(|r| pb::SchemaSize {
                schema: r.schema,
                tables: r.tables,
                table_bytes: r.table_bytes,
                index_bytes: r.index_bytes,
                total_bytes: r.total_bytes,
            })
            .collect(),
        tables: s
            .tables
            .into_iter()
            .map(|r| pb::TableStats {
                schema: r.schema,
                table: r.table,
                live_tuples: r.live_tuples,
                dead_tuples: r.dead_tuples,
                total_bytes: r.total_bytes,
                seq_scan: r.seq_scan,
                idx_scan: r.idx_scan,
                modified_since_analyze: r.modified_since_analyze,
                last_vacuum_time: to_timestamp_opt(r.last_vacuum),
                last_autovacuum_time: to_timestamp_opt(r.last_autovacuum),
                last_analyze_time: to_timestamp_opt(r.last_analyze),
                last_autoanalyze_time: to_timestamp_opt(r.last_autoanalyze),
            })
            .collect(),
        bloat: s
            .bloat
            .into_iter()
            .map(|r| pb::TableBloat {
                schema: r.schema,
                table: r.table,
                real_bytes: r.real_bytes,
                bloat_bytes: r.bloat_bytes,
                bloat_percent: r.bloat_percent,
                estimate_unavailable: r.estimate_unavailable,
            })
            .collect(),
        indexes: s
            .indexes
            .into_iter()
            .map(|r| pb::IndexUsage {
                unused: r.unused(),
                schema: r.schema,
                table: r.table,
                index: r.index,
                idx_scan: r.idx_scan,
                bytes: r.bytes,
                enforces_constraint: r.enforces_constraint,
            })
            .collect(),
        connections: s
            .connections
            .into_iter()
            .map(|r| pb::RoleConnections {
                role: r.role,
                total: r.total,
                active: r.active,
                idle: r.idle,
                idle_in_transaction: r.idle_in_transaction,
            })
            .collect(),
        server_connections: s.server_connections,
        max_connections: s.max_connections,
        replicas: s
            .replicas
            .into_iter()
            .map(|r| pb::Replica {
                application_name: r.application_name,
                client_addr: r.client_addr,
                state: r.state,
                sync_state: r.sync_state,
                replay_lag_bytes: r.replay_lag_bytes,
                write_lag: duration(r.write_lag_us),
                flush_lag: duration(r.flush_lag_us),
                replay_lag: duration(r.replay_lag_us),
            })
            .collect(),
        stats_reset_time: to_timestamp_opt(s.stats_reset),
        schema: s.schema,
    }
}
