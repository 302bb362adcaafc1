//! `active.visits` partitioned by month (migration 2026-12-10-000001, docs/database.md
//! "Partitioning"): the migration converts a table with rows in several months without loss
//! and back; the `visit_partitions` job creates the months ahead (as the active role) and is
//! idempotent; the retention purge drops a fully expired month whole and audits its rows;
//! the scan's and the board's main queries read partitions through indexes and date-bounded
//! queries prune to one month (EXPLAIN plan shape); one open visit per pupil still holds
//! across partitions.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike as _, Duration, TimeZone as _, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection as _};
use phoenix_active::jobs::partitions::{self, MONTHS_AHEAD};
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{Job, JobRun, Trigger as JobTrigger};
use phoenix_config::retention::{self, RunOutcome, Trigger};
use phoenix_db::{MigrationCommand, migrate};
use phoenix_tests::{TestApp, TestDb, fixtures};

const MIGRATION: &str = "2026-12-10-000001_active_visits_partitioned";

#[derive(QueryableByName, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct VisitRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    student_id: i64,
    #[diesel(sql_type = BigInt)]
    active_group_id: i64,
    #[diesel(sql_type = Timestamptz)]
    entry_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    exit_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

#[derive(QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName, Debug)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn names(conn: &mut AsyncPgConnection, sql: &str) -> Vec<String> {
    let rows: Vec<Name> = diesel::sql_query(sql).load(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(|r| r.name).collect()
}

async fn number(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<N>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    conn.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn visits(conn: &mut AsyncPgConnection) -> Vec<VisitRow> {
    diesel::sql_query(
        "SELECT id, student_id, active_group_id, entry_time, exit_time, created_at, updated_at \
         FROM active.visits ORDER BY id",
    )
    .load(conn)
    .await
    .expect("visits")
}

/// `relkind` of active.visits: `r` plain, `p` partitioned.
async fn kind(conn: &mut AsyncPgConnection) -> String {
    names(conn, "SELECT relkind::text AS name FROM pg_class WHERE oid = 'active.visits'::regclass").await.remove(0)
}

/// Monthly partitions of active.visits, oldest first.
async fn partitions(conn: &mut AsyncPgConnection) -> Vec<String> {
    names(conn, "SELECT name FROM active.visit_partitions()").await
}

/// The partition of month `at` (UTC), as the migration names them.
fn partition_of(at: DateTime<Utc>) -> String {
    format!("visits_y{:04}m{:02}", at.year(), at.month())
}

/// The first instant (UTC) of the month `months` after the one holding `at`.
fn month_start(at: DateTime<Utc>, months: i32) -> DateTime<Utc> {
    let index = at.year() * 12 + at.month0() as i32 + months;
    Utc.with_ymd_and_hms(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1, 0, 0, 0).single().expect("month")
}

/// A session in a new room (any start: visits may be dated freely).
async fn session(conn: &mut AsyncPgConnection) -> i64 {
    let room = fixtures::room(conn, "Partitionen", None).await;
    let activity = fixtures::activity(conn, "Monate", 500).await;
    fixtures::insert_returning_id(
        conn,
        &format!(
            "INSERT INTO active.groups (room_id, activity_id, start_time) \
             VALUES ({room}, {activity}, now() - interval '3 years') RETURNING id"
        ),
    )
    .await
}

/// A visit entered at `entry` (`exit` minutes later, open when `None`), created `created_days` ago.
async fn visit(
    conn: &mut AsyncPgConnection,
    student: i64,
    session: i64,
    entry: DateTime<Utc>,
    exit: Option<i64>,
    created_days: i64,
) -> i64 {
    let exit =
        exit.map_or("NULL".to_owned(), |m| format!("'{}'::timestamptz", (entry + Duration::minutes(m)).to_rfc3339()));
    fixtures::insert_returning_id(
        conn,
        &format!(
            "INSERT INTO active.visits (student_id, active_group_id, entry_time, exit_time, created_at) \
             VALUES ({student}, {session}, '{}', {exit}, now() - interval '{created_days} days') RETURNING id",
            entry.to_rfc3339()
        ),
    )
    .await
}

/// How many migrations, from this one on, are applied (what `Down(n)` must revert to stand
/// just before it, whatever later migrations exist).
async fn from_this_one(db: &TestDb) -> usize {
    let status = migrate(db.url(), MigrationCommand::Status).await.expect("status");
    let at = status.iter().position(|m| m.name == MIGRATION).expect("the partitioning migration is embedded");
    assert!(status[at..].iter().all(|m| m.applied), "a migrated test database: {status:?}");
    status.len() - at
}

#[tokio::test]
async fn the_migration_converts_visits_in_several_months_without_loss_and_back() {
    let db = TestDb::new().await;
    let n = from_this_one(&db).await;
    migrate(db.url(), MigrationCommand::Down(n)).await.expect("down to before the partitioning");
    let mut conn = db.conn().await;
    assert_eq!(kind(&mut conn).await, "r", "before the migration active.visits is a plain table");

    let now = Utc::now();
    let students = fixtures::students(&mut conn, 3).await;
    let s = session(&mut conn).await;
    // Rows in five months (one a year back, one a second before a month's end, one on the
    // first instant of a month), closed and open, plus a deleted one (the sequence moved on).
    let months = [month_start(now, -12), month_start(now, -3), month_start(now, -2), month_start(now, -1)];
    visit(&mut conn, students[0], s, months[0] + Duration::days(3), Some(50), 400).await;
    visit(&mut conn, students[1], s, months[2] - Duration::seconds(1), Some(60), 70).await;
    visit(&mut conn, students[0], s, months[2], Some(5), 60).await;
    visit(&mut conn, students[2], s, months[3] + Duration::days(10), None, 20).await;
    let gone = visit(&mut conn, students[1], s, now - Duration::minutes(30), Some(10), 0).await;
    visit(&mut conn, students[1], s, now - Duration::minutes(10), None, 0).await;
    exec(&mut conn, &format!("DELETE FROM active.visits WHERE id = {gone}")).await;
    let before = visits(&mut conn).await;
    let next_before = number(&mut conn, "SELECT last_value AS n FROM active.visits_id_seq").await;
    assert_eq!(before.len(), 5);

    migrate(db.url(), MigrationCommand::Up).await.expect("up: the conversion");
    let mut conn = db.conn().await;
    assert_eq!(kind(&mut conn).await, "p", "after the migration active.visits is partitioned");
    assert_eq!(visits(&mut conn).await, before, "every row, every column, unchanged");
    // Each row sits in the partition of its month.
    let placed =
        names(&mut conn, "SELECT format('%s %s', id, tableoid::regclass) AS name FROM active.visits ORDER BY id").await;
    let expected: Vec<String> =
        before.iter().map(|v| format!("{} active.{}", v.id, partition_of(v.entry_time))).collect();
    assert_eq!(placed, expected);
    // The months of the rows through three months ahead, each a partition.
    let parts = partitions(&mut conn).await;
    for m in [month_start(now, -12), month_start(now, -3), month_start(now, -2), month_start(now, -1)]
        .into_iter()
        .chain((0..=MONTHS_AHEAD).map(|i| month_start(now, i)))
    {
        assert!(parts.contains(&partition_of(m)), "{} missing from {parts:?}", partition_of(m));
    }
    assert_eq!(number(&mut conn, "SELECT count(*) AS n FROM active.visits_default").await, 0);
    // The open visits are tracked; the identity continues after the old sequence.
    let open: BTreeSet<String> =
        names(&mut conn, "SELECT format('%s %s', student_id, visit_id) AS name FROM active.open_visits")
            .await
            .into_iter()
            .collect();
    let expected_open: BTreeSet<String> =
        before.iter().filter(|v| v.exit_time.is_none()).map(|v| format!("{} {}", v.student_id, v.id)).collect();
    assert_eq!(open, expected_open);
    let next = visit(&mut conn, students[0], s, now, None, 0).await;
    assert_eq!(next, next_before + 1, "ids continue where the plain table's sequence stopped");

    // And back: a plain table with the same rows (the new one too) and its unique index.
    let with_new = visits(&mut conn).await;
    migrate(db.url(), MigrationCommand::Down(n)).await.expect("down: back to plain");
    let mut conn = db.conn().await;
    assert_eq!(kind(&mut conn).await, "r");
    assert_eq!(visits(&mut conn).await, with_new);
    let second_open = diesel::sql_query(format!(
        "INSERT INTO active.visits (student_id, active_group_id) VALUES ({}, {s})",
        students[0]
    ))
    .execute(&mut conn)
    .await;
    assert!(second_open.is_err(), "the plain table's unique index is back");
    migrate(db.url(), MigrationCommand::Up).await.expect("up again");
    let mut conn = db.conn().await;
    assert_eq!(visits(&mut conn).await, with_new);
}

#[tokio::test]
async fn a_second_open_visit_of_a_pupil_is_refused_across_months() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let now = Utc::now();
    let students = fixtures::students(&mut conn, 2).await;
    let s = session(&mut conn).await;
    exec(&mut conn, "SET ROLE phoenix_active").await;
    let first = visit(&mut conn, students[0], s, now - Duration::hours(1), None, 0).await;
    // Last month is another partition: a per-partition index could not see the first one.
    let other_month = month_start(now, -1) + Duration::days(2);
    let second = diesel::sql_query(format!(
        "INSERT INTO active.visits (student_id, active_group_id, entry_time) VALUES ({}, {s}, '{}')",
        students[0],
        other_month.to_rfc3339()
    ))
    .execute(&mut conn)
    .await
    .expect_err("a second open visit of the same pupil");
    assert_eq!(
        phoenix_common::convert::violated_constraint(&second),
        Some("uq_active_visits_open_per_student"),
        "{second:?}"
    );
    // Reopening a closed visit of the pupil is a second open visit too.
    let closed = visit(&mut conn, students[0], s, other_month, Some(30), 0).await;
    let reopen = diesel::sql_query(format!("UPDATE active.visits SET exit_time = NULL WHERE id = {closed}"))
        .execute(&mut conn)
        .await;
    assert!(reopen.is_err(), "reopening is refused while another visit is open");
    // Another pupil may; after closing (here: moving the open visit to another month first),
    // the pupil may open a new one.
    visit(&mut conn, students[1], s, now, None, 0).await;
    exec(
        &mut conn,
        &format!("UPDATE active.visits SET entry_time = '{}' WHERE id = {first}", other_month.to_rfc3339()),
    )
    .await;
    assert_eq!(
        number(&mut conn, &format!("SELECT count(*) AS n FROM active.open_visits WHERE visit_id = {first}")).await,
        1,
        "a visit moved to another month stays the pupil's open visit"
    );
    exec(&mut conn, &format!("UPDATE active.visits SET exit_time = entry_time + interval '1 hour' WHERE id = {first}"))
        .await;
    visit(&mut conn, students[0], s, now, None, 0).await;
    assert_eq!(number(&mut conn, "SELECT count(*) AS n FROM active.open_visits").await, 2);
    assert_eq!(
        number(&mut conn, "SELECT count(*) AS n FROM active.visits WHERE exit_time IS NULL").await,
        2,
        "open_visits and the open rows agree"
    );
}

#[tokio::test]
async fn the_partition_job_creates_the_months_ahead_and_is_idempotent() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let students = fixtures::students(&mut conn, 1).await;
    let s = session(&mut conn).await;
    // Acting for a day years ahead: none of its months exist yet. A visit already dated in
    // one of them waits in the DEFAULT partition.
    let now = Utc.with_ymd_and_hms(2031, 11, 20, 3, 45, 0).single().expect("now");
    let early = visit(&mut conn, students[0], s, month_start(now, 2) + Duration::days(1), None, 0).await;
    exec(&mut conn, "SET ROLE phoenix_active").await;
    let run = |dry_run| JobRun { job: Job::VisitPartitions, now, dry_run, trigger: JobTrigger::Cli };
    let months: Vec<String> = (0..=MONTHS_AHEAD).map(|i| partition_of(month_start(now, i))).collect();

    let dry = partitions::work(&mut conn, run(true)).await.expect("dry run");
    assert_eq!(dry.get("partitions_created"), i64::from(MONTHS_AHEAD) + 1);
    assert!(partitions(&mut conn).await.iter().all(|p| !months.contains(p)), "a dry run creates nothing");

    let done = partitions::work(&mut conn, run(false)).await.expect("run");
    assert_eq!(done.get("partitions_created"), i64::from(MONTHS_AHEAD) + 1);
    let parts = partitions(&mut conn).await;
    assert!(months.iter().all(|m| parts.contains(m)), "{months:?} in {parts:?}");
    assert_eq!(
        names(&mut conn, &format!("SELECT tableoid::regclass::text AS name FROM active.visits WHERE id = {early}"))
            .await,
        [format!("active.{}", months[2])],
        "the row the DEFAULT partition held moved into its month"
    );
    assert_eq!(
        number(&mut conn, &format!("SELECT count(*) AS n FROM active.open_visits WHERE visit_id = {early}")).await,
        1,
        "and is still the pupil's open visit"
    );

    let again = partitions::work(&mut conn, run(false)).await.expect("second run");
    assert_eq!(again.get("partitions_created"), 0, "a second run creates nothing");
    assert_eq!(partitions(&mut conn).await, parts);
    // A month later one more month is due.
    let later = JobRun { now: month_start(now, 1) + Duration::days(3), ..run(false) };
    assert_eq!(partitions::work(&mut conn, later).await.expect("a month later").get("partitions_created"), 1);
    assert!(partitions(&mut conn).await.contains(&partition_of(month_start(now, MONTHS_AHEAD + 1))));
}

#[derive(QueryableByName, Debug)]
struct AuditRow {
    #[diesel(sql_type = BigInt)]
    entity_id: i64,
    #[diesel(sql_type = BigInt)]
    records_deleted: i64,
    #[diesel(sql_type = Nullable<Text>)]
    partition: Option<String>,
    #[diesel(sql_type = Text)]
    table: String,
}

#[tokio::test]
async fn retention_drops_a_fully_expired_month_whole_and_audits_its_rows() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut conn = app.db.conn().await;
    let now = Utc::now();
    let students = fixtures::students(&mut conn, 3).await;
    let s = session(&mut conn).await;
    let (expired, mixed) = (month_start(now, -4), month_start(now, -3));
    exec(&mut conn, &format!("SELECT active.create_visit_partitions('{}', 2)", expired.to_rfc3339())).await;
    // The expired month: closed visits of two pupils, all created long past the 30 days.
    for (student, day) in [(students[0], 1), (students[0], 2), (students[1], 3)] {
        visit(&mut conn, student, s, expired + Duration::days(day), Some(40), 100).await;
    }
    // The month after: one expired visit and one still open, so it stays a partition.
    let old_closed = visit(&mut conn, students[1], s, mixed + Duration::days(1), Some(40), 90).await;
    let open = visit(&mut conn, students[2], s, mixed + Duration::days(2), None, 90).await;

    let cache = app.context.live_settings().await;
    let outcome = retention::run(&app.context.pool, &cache, app.context.retention_options(), Trigger::Cli, false)
        .await
        .expect("purge");
    let RunOutcome::Done(report) = outcome else { panic!("not run: {outcome:?}") };
    let parts = partitions(&mut conn).await;
    assert!(!parts.contains(&partition_of(expired)), "the expired month is gone: {parts:?}");
    assert!(parts.contains(&partition_of(mixed)), "the month with an open visit stays: {parts:?}");
    assert!(report.visit_partitions_dropped >= 1, "{report:?}");
    assert_eq!(report.visits, 4, "three with the month, one row-wise: {report:?}");
    let left: Vec<i64> = visits(&mut conn).await.into_iter().map(|v| v.id).collect();
    assert_eq!(left, [open], "the expired row of the mixed month went one by one (not {old_closed})");

    let audit: Vec<AuditRow> = diesel::sql_query(
        "SELECT entity_id, records_deleted::bigint, metadata->>'partition' AS partition, metadata->>'table' AS table \
         FROM audit.data_deletions WHERE deletion_type = 'visit_retention' ORDER BY id",
    )
    .load(&mut conn)
    .await
    .expect("audit rows");
    let mut of_month: Vec<(i64, i64)> = audit
        .iter()
        .filter(|a| a.partition.as_deref() == Some(partition_of(expired).as_str()))
        .map(|a| (a.entity_id, a.records_deleted))
        .collect();
    of_month.sort();
    assert_eq!(of_month, [(students[0], 2), (students[1], 1)], "one row per pupil of the dropped month: {audit:?}");
    assert!(audit.iter().all(|a| a.table == "active.visits"));
    let row_wise: i64 = audit.iter().filter(|a| a.partition.is_none()).map(|a| a.records_deleted).sum();
    assert_eq!(row_wise, 1, "the row-wise delete audits as before: {audit:?}");
    assert_eq!(report.audit_records, audit.len() as i64);
}

/// Every scan node of a JSON plan: (node type, relation).
fn scans(plan: &serde_json::Value, out: &mut Vec<(String, String)>) {
    if let Some(rel) = plan.get("Relation Name").and_then(|r| r.as_str()) {
        let node = plan.get("Node Type").and_then(|n| n.as_str()).unwrap_or_default();
        out.push((node.to_owned(), rel.to_owned()));
    }
    for child in plan.get("Plans").and_then(|p| p.as_array()).into_iter().flatten() {
        scans(child, out);
    }
}

#[derive(QueryableByName)]
struct Plan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    json: String,
}

async fn plan(conn: &mut AsyncPgConnection, sql: &str) -> Vec<(String, String)> {
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    let json =
        diesel::sql_query(&explain).get_result::<Plan>(conn).await.unwrap_or_else(|e| panic!("{explain}: {e}")).json;
    let value: serde_json::Value = serde_json::from_str(&json).expect("plan json");
    let mut out = Vec::new();
    scans(&value[0]["Plan"], &mut out);
    out
}

/// The visits partitions a plan reads; each with more than a few pages of rows must be read
/// through an index (a seq scan of an empty or tiny partition is the planner's right choice).
async fn visits_scans(conn: &mut AsyncPgConnection, sql: &str) -> Vec<(String, String)> {
    let filled: BTreeSet<String> =
        names(conn, "SELECT relname::text AS name FROM pg_class WHERE relname LIKE 'visits\\_%' AND reltuples > 1000")
            .await
            .into_iter()
            .collect();
    assert!(filled.len() >= 4, "the months are filled: {filled:?}");
    let nodes: Vec<(String, String)> =
        plan(conn, sql).await.into_iter().filter(|(_, r)| r.starts_with("visits_")).collect();
    for (node, rel) in &nodes {
        if filled.contains(rel) {
            assert!(
                matches!(node.as_str(), "Index Scan" | "Index Only Scan" | "Bitmap Heap Scan"),
                "{rel} (over 1000 rows) read by {node} in\n{sql}\n{nodes:?}"
            );
        }
    }
    nodes
}

#[tokio::test]
async fn scan_and_board_queries_use_indexes_and_date_bounded_ones_prune_to_a_month() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let now = Utc::now();
    let students = fixtures::students(&mut conn, 200).await;
    let s = session(&mut conn).await;
    let from = month_start(now, -3);
    exec(&mut conn, &format!("SELECT active.create_visit_partitions('{}', 3)", from.to_rfc3339())).await;
    // Closed visits through the current month (about 6000 a month: this month's are dated
    // ahead, so that it is as full as at its end), then today's open ones.
    exec(
        &mut conn,
        &format!(
            "INSERT INTO active.visits (student_id, active_group_id, entry_time, exit_time)
             SELECT st, {s}, t, t + interval '40 minutes'
             FROM unnest(ARRAY[{}]::bigint[]) st,
                  generate_series('{}'::timestamptz, '{}'::timestamptz - interval '1 hour', interval '11 hours') t;
             INSERT INTO active.visits (student_id, active_group_id, entry_time)
             SELECT st, {s}, now() - interval '5 minutes' FROM unnest(ARRAY[{}]::bigint[]) st;
             ANALYZE active.visits;",
            students.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
            from.to_rfc3339(),
            month_start(now, 1).to_rfc3339(),
            students[..50].iter().map(i64::to_string).collect::<Vec<_>>().join(","),
        ),
    )
    .await;
    let student = students[7];

    // The scan: the pupil's open visit (repo::open_visit) and the session's head count
    // (repo::count_open_visits); the board: running rooms with their counts
    // (presence::repo::running_rooms) and the pupils in rooms (room_students).
    let open_visit = format!(
        "SELECT v.id, v.active_group_id, v.entry_time, g.room_id FROM active.visits v \
         JOIN active.groups g ON g.id = v.active_group_id WHERE v.student_id = {student} AND v.exit_time IS NULL"
    );
    let head_count = format!("SELECT count(*) FROM active.visits WHERE active_group_id = {s} AND exit_time IS NULL");
    let running_rooms = "SELECT g.id, (SELECT count(*) FROM active.visits v \
                          WHERE v.active_group_id = g.id AND v.exit_time IS NULL) AS n \
                         FROM active.groups g JOIN facilities.rooms r ON r.id = g.room_id WHERE g.end_time IS NULL"
        .to_owned();
    let in_rooms = "SELECT v.active_group_id, st.id, v.entry_time FROM active.visits v \
                    JOIN active.groups g ON g.id = v.active_group_id AND g.end_time IS NULL \
                    JOIN users.students st ON st.id = v.student_id WHERE v.exit_time IS NULL"
        .to_owned();
    for sql in [&open_visit, &head_count, &running_rooms, &in_rooms] {
        let nodes = visits_scans(&mut conn, sql).await;
        assert!(!nodes.is_empty(), "the plan reads visits: {sql}");
    }

    // Date-bounded: a pupil's visits of a day (ListVisits with a date, a pupil's day), the
    // day's count (analytics): one partition only, by index for the pupil's.
    let day = month_start(now, -2) + Duration::days(4);
    let (lo, hi) = (day.to_rfc3339(), (day + Duration::days(1)).to_rfc3339());
    let pupils_day = format!(
        "SELECT id FROM active.visits WHERE student_id = {student} AND entry_time >= '{lo}' AND entry_time < '{hi}'"
    );
    let nodes = visits_scans(&mut conn, &pupils_day).await;
    let month = partition_of(day);
    assert_eq!(nodes.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(), [month.as_str()], "pruned: {nodes:?}");
    let days_count = format!("SELECT count(*) FROM active.visits WHERE entry_time >= '{lo}' AND entry_time < '{hi}'");
    let nodes = plan(&mut conn, &days_count).await;
    let read: BTreeSet<&str> = nodes.iter().map(|(_, r)| r.as_str()).filter(|r| r.starts_with("visits_")).collect();
    assert_eq!(read, BTreeSet::from([month.as_str()]), "the day's count reads one month: {nodes:?}");
}
