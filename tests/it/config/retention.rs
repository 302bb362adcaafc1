//! The retention purge (`config.v1 RunRetentionCleanup`, `phoenix_config::retention`):
//! exactly the rows past each student's own retention go, open and young ones stay, every
//! batch writes its audit rows in the same transaction, a dry run counts the same and
//! deletes nothing, one run at a time, and only with `config:manage`.

use std::collections::BTreeSet;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pb::config_service_client::ConfigServiceClient;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{Job, LOCK_NAMESPACE};
use phoenix_config::retention::{self, Report, RetentionOptions, RunOutcome, Trigger};
use phoenix_db::schema::active::{presence_events, scan_receipts, visits};
use phoenix_proto::config::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{TestChannel, mint_token, role_permissions};
use phoenix_tests::fixtures;
use tonic::Code;

use phoenix_tests::grpc::assert_precondition;

/// A school with ended sessions and rows of known age.
struct World {
    session: i64,
    room: i64,
    device: i64,
    next_scan: usize,
}

impl World {
    async fn new(conn: &mut AsyncPgConnection) -> Self {
        let room = fixtures::room(conn, "Raum R", None).await;
        let activity = fixtures::activity(conn, "Freispiel", 100).await;
        let device = fixtures::device(conn, "reader-r", "room", Some(room)).await;
        let session = fixtures::insert_returning_id(
            conn,
            &format!(
                "INSERT INTO active.groups (room_id, activity_id, start_time, end_time)
                 VALUES ({room}, {activity}, now() - interval '60 days', now() - interval '1 hour') RETURNING id"
            ),
        )
        .await;
        Self { session, room, device, next_scan: 0 }
    }

    async fn student(&self, conn: &mut AsyncPgConnection, i: usize) -> i64 {
        fixtures::student(conn, &format!("Kind{i}"), "Test", &fixtures::tag(i)).await
    }

    /// A consent with `days` retention, created `age` ago.
    async fn consent(&self, conn: &mut AsyncPgConnection, student: i64, accepted: bool, days: i32, age: &str) -> i64 {
        let accepted_at = if accepted { format!("now() - interval '{age}'") } else { "NULL".into() };
        fixtures::insert_returning_id(
            conn,
            &format!(
                "INSERT INTO users.privacy_consents
                   (student_id, policy_version, accepted, accepted_at, data_retention_days, created_at)
                 VALUES ({student}, '1.0', {accepted}, {accepted_at}, {days}, now() - interval '{age}') RETURNING id"
            ),
        )
        .await
    }

    /// A visit created `age` ago; closed unless `open`.
    async fn visit(&self, conn: &mut AsyncPgConnection, student: i64, age: &str, open: bool) -> i64 {
        let exit = if open { "NULL".to_owned() } else { format!("now() - interval '{age}' + interval '10 minutes'") };
        fixtures::insert_returning_id(
            conn,
            &format!(
                "INSERT INTO active.visits (student_id, active_group_id, entry_time, exit_time, created_at)
                 VALUES ({student}, {}, now() - interval '{age}', {exit}, now() - interval '{age}') RETURNING id",
                self.session
            ),
        )
        .await
    }

    /// A scan receipt received `age` ago (`None`: a card that belongs to nobody).
    async fn receipt(&mut self, conn: &mut AsyncPgConnection, student: Option<i64>, age: &str) -> i64 {
        self.next_scan += 1;
        let (student, outcome, code) = match student {
            Some(s) => (s.to_string(), "checked_in", "ok"),
            None => ("NULL".into(), "rejected", "unknown_tag"),
        };
        fixtures::insert_returning_id(
            conn,
            &format!(
                "INSERT INTO active.scan_receipts (device_id, scan_id, student_id, scanned_at, outcome, code, result, received_at)
                 VALUES ({}, 'scan-{}', {student}, now() - interval '{age}', '{outcome}', '{code}', '{{}}', now() - interval '{age}')
                 RETURNING id",
                self.device, self.next_scan
            ),
        )
        .await
    }

    /// A presence event `age` old: a pupil's check-in, or (`None`) a session start.
    async fn event(&self, conn: &mut AsyncPgConnection, student: Option<i64>, age: &str) -> i64 {
        let (kind, student) = match student {
            Some(s) => ("checked_in", s.to_string()),
            None => ("session_started", "NULL".into()),
        };
        fixtures::insert_returning_id(
            conn,
            &format!(
                "INSERT INTO active.presence_events (kind, student_id, session_id, room_id, occurred_at)
                 VALUES ('{kind}', {student}, {}, {}, now() - interval '{age}') RETURNING id",
                self.session, self.room
            ),
        )
        .await
    }
}

/// Ids that must go and ids that must stay, per table.
#[derive(Default, Debug)]
struct Expect {
    gone_visits: BTreeSet<i64>,
    kept_visits: BTreeSet<i64>,
    gone_receipts: BTreeSet<i64>,
    kept_receipts: BTreeSet<i64>,
    gone_events: BTreeSet<i64>,
    kept_events: BTreeSet<i64>,
    /// (student, table, records, retention days, source, consent id)
    audit: BTreeSet<(i64, String, i32, i32, String, Option<i64>)>,
}

#[derive(QueryableByName, Debug)]
struct AuditRow {
    #[diesel(sql_type = Text)]
    entity_type: String,
    #[diesel(sql_type = BigInt)]
    entity_id: i64,
    #[diesel(sql_type = Text)]
    deletion_type: String,
    #[diesel(sql_type = Integer)]
    records_deleted: i32,
    #[diesel(sql_type = Text)]
    deleted_by: String,
    #[diesel(sql_type = Text)]
    tbl: String,
    #[diesel(sql_type = Integer)]
    retention_days: i32,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    consent_id: Option<i64>,
    #[diesel(sql_type = Text)]
    trigger: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    requested_by: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<String>,
}

async fn audit_rows(conn: &mut AsyncPgConnection) -> Vec<AuditRow> {
    diesel::sql_query(
        "SELECT entity_type, entity_id, deletion_type, records_deleted, deleted_by, metadata->>'table' AS tbl,
                (metadata->>'retention_days')::int AS retention_days, metadata->>'retention_source' AS source,
                (metadata->>'consent_id')::bigint AS consent_id, metadata->>'trigger' AS trigger,
                (metadata->>'requested_by_account_id')::bigint AS requested_by, reason
         FROM audit.data_deletions ORDER BY id",
    )
    .load(conn)
    .await
    .expect("audit rows")
}

async fn ids(conn: &mut AsyncPgConnection) -> (BTreeSet<i64>, BTreeSet<i64>, BTreeSet<i64>) {
    let v: Vec<i64> = visits::table.select(visits::id).load(conn).await.expect("visits");
    let r: Vec<i64> = scan_receipts::table.select(scan_receipts::id).load(conn).await.expect("receipts");
    let e: Vec<i64> = presence_events::table.select(presence_events::id).load(conn).await.expect("events");
    (v.into_iter().collect(), r.into_iter().collect(), e.into_iter().collect())
}

/// `active.presence_log_purge`: the last purged stream position (tx_id, event id).
async fn purge_mark(conn: &mut AsyncPgConnection) -> (i64, i64) {
    use phoenix_db::schema::active::presence_log_purge as mark;
    mark::table.select((mark::tx_id, mark::event_id)).first(conn).await.expect("purge mark")
}

async fn client(app: &TestApp) -> ConfigServiceClient<TestChannel> {
    ConfigServiceClient::new(app.test_channel(Domain::Config).await)
}

async fn cleanup(
    c: &mut ConfigServiceClient<TestChannel>,
    dry_run: bool,
) -> Result<pb::RunRetentionCleanupResponse, tonic::Status> {
    c.run_retention_cleanup(pb::RunRetentionCleanupRequest { dry_run }).await.map(|r| r.into_inner())
}

/// Students with every retention source and rows on both sides of their cutoff. The school
/// default is set to 14 days through the API first.
async fn populate(app: &TestApp, c: &mut ConfigServiceClient<TestChannel>) -> Expect {
    c.update_setting(pb::UpdateSettingRequest {
        key: "privacy.default_visit_retention_days".into(),
        value: "14".into(),
    })
    .await
    .expect("set default");
    let mut conn = app.db.conn().await;
    let mut w = World::new(&mut conn).await;
    let mut x = Expect::default();
    let consent = "privacy_consent".to_owned();
    let default = "school_default".to_owned();
    let (v, r) = ("active.visits".to_owned(), "active.scan_receipts".to_owned());

    // A: accepted consent, 7 days.
    let a = w.student(&mut conn, 0).await;
    let a_consent = w.consent(&mut conn, a, true, 7, "100 days").await;
    x.gone_visits.insert(w.visit(&mut conn, a, "10 days", false).await);
    x.kept_visits.insert(w.visit(&mut conn, a, "5 days", false).await);
    x.kept_visits.insert(w.visit(&mut conn, a, "40 days", true).await); // open: never purged
    x.gone_receipts.insert(w.receipt(&mut conn, Some(a), "10 days").await);
    x.kept_receipts.insert(w.receipt(&mut conn, Some(a), "2 hours").await);
    x.gone_events.insert(w.event(&mut conn, Some(a), "50 hours").await);
    x.kept_events.insert(w.event(&mut conn, Some(a), "30 hours").await);
    x.audit.insert((a, v.clone(), 1, 7, consent.clone(), Some(a_consent)));
    x.audit.insert((a, r.clone(), 1, 7, consent.clone(), Some(a_consent)));

    // B: no consent → the school default (14).
    let b = w.student(&mut conn, 1).await;
    x.gone_visits.insert(w.visit(&mut conn, b, "20 days", false).await);
    x.kept_visits.insert(w.visit(&mut conn, b, "10 days", false).await);
    x.audit.insert((b, v.clone(), 1, 14, default.clone(), None));

    // C: a consent that was never accepted counts for nothing → 14.
    let c_student = w.student(&mut conn, 2).await;
    w.consent(&mut conn, c_student, false, 1, "50 days").await;
    x.gone_visits.insert(w.visit(&mut conn, c_student, "15 days", false).await);
    x.kept_visits.insert(w.visit(&mut conn, c_student, "3 days", false).await);
    x.audit.insert((c_student, v.clone(), 1, 14, default.clone(), None));

    // D: the newest accepted consent (2 days) wins over an older one (31).
    let d = w.student(&mut conn, 3).await;
    w.consent(&mut conn, d, true, 31, "300 days").await;
    let d_consent = w.consent(&mut conn, d, true, 2, "100 days").await;
    x.gone_visits.insert(w.visit(&mut conn, d, "3 days", false).await);
    x.kept_visits.insert(w.visit(&mut conn, d, "1 day", false).await);
    x.gone_receipts.insert(w.receipt(&mut conn, Some(d), "3 days").await);
    x.kept_receipts.insert(w.receipt(&mut conn, Some(d), "30 hours").await);
    x.audit.insert((d, v.clone(), 1, 2, consent.clone(), Some(d_consent)));
    x.audit.insert((d, r.clone(), 1, 2, consent.clone(), Some(d_consent)));

    // E: 1 day; its presence events go after a day too.
    let e = w.student(&mut conn, 4).await;
    let e_consent = w.consent(&mut conn, e, true, 1, "100 days").await;
    x.gone_visits.insert(w.visit(&mut conn, e, "30 hours", false).await);
    x.kept_visits.insert(w.visit(&mut conn, e, "20 hours", false).await);
    x.gone_receipts.insert(w.receipt(&mut conn, Some(e), "30 hours").await);
    x.kept_receipts.insert(w.receipt(&mut conn, Some(e), "20 hours").await);
    x.gone_events.insert(w.event(&mut conn, Some(e), "30 hours").await);
    x.kept_events.insert(w.event(&mut conn, Some(e), "20 hours").await);
    x.audit.insert((e, v.clone(), 1, 1, consent.clone(), Some(e_consent)));
    x.audit.insert((e, r.clone(), 1, 1, consent.clone(), Some(e_consent)));

    // F: nothing old enough.
    let f = w.student(&mut conn, 5).await;
    x.kept_visits.insert(w.visit(&mut conn, f, "13 days", false).await);

    // Receipts of unknown cards follow the default; session events the 48 h horizon.
    x.gone_receipts.insert(w.receipt(&mut conn, None, "20 days").await);
    x.kept_receipts.insert(w.receipt(&mut conn, None, "2 days").await);
    x.gone_events.insert(w.event(&mut conn, None, "50 hours").await);
    x.kept_events.insert(w.event(&mut conn, None, "46 hours").await);
    x
}

fn union(a: &BTreeSet<i64>, b: &BTreeSet<i64>) -> BTreeSet<i64> {
    a.union(b).copied().collect()
}

#[tokio::test]
async fn purge_deletes_exactly_what_is_past_each_students_retention_and_audits_it() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let x = populate(&app, &mut c).await;
    let mut conn = app.db.conn().await;
    let before = ids(&mut conn).await;
    // The newest expiring presence event, in stream order: where the purge mark must end.
    let gone_events: Vec<i64> = x.gone_events.iter().copied().collect();
    let newest_gone: (i64, i64) = presence_events::table
        .filter(presence_events::id.eq_any(&gone_events))
        .order((presence_events::tx_id.desc(), presence_events::id.desc()))
        .select((presence_events::tx_id, presence_events::id))
        .first(&mut conn)
        .await
        .expect("newest expiring event");

    // Dry run: the counts of the real run, nothing deleted, nothing audited.
    let dry = cleanup(&mut c, true).await.expect("dry run");
    assert!(dry.dry_run && dry.complete);
    assert_eq!(
        (dry.visits, dry.scan_receipts, dry.presence_events, dry.students, dry.audit_records),
        (5, 4, 3, 5, 0),
        "{dry:?}"
    );
    assert_eq!(dry.default_retention_days, 14);
    assert_eq!(ids(&mut conn).await, before, "a dry run deletes nothing");
    assert!(audit_rows(&mut conn).await.is_empty());
    assert_eq!(purge_mark(&mut conn).await, (0, 0), "nor moves the purge mark");

    let run = cleanup(&mut c, false).await.expect("run");
    assert!(!run.dry_run && run.complete);
    assert_eq!(
        (run.visits, run.scan_receipts, run.presence_events, run.students),
        (dry.visits, dry.scan_receipts, dry.presence_events, dry.students),
        "the dry run predicted the run"
    );
    assert_eq!(run.audit_records, x.audit.len() as i64);

    // Exactly the expired rows went; open, young and other students' rows stayed.
    let (v, r, e) = ids(&mut conn).await;
    assert_eq!(v, x.kept_visits);
    assert_eq!(r, x.kept_receipts);
    assert_eq!(e, x.kept_events);
    // Cursors from before a deleted event now expire instead of resuming over a gap.
    assert_eq!(purge_mark(&mut conn).await, newest_gone, "the WatchPresence purge mark moved past them");
    assert_eq!(before.0, union(&x.gone_visits, &x.kept_visits), "fixture bookkeeping");
    assert_eq!(before.1, union(&x.gone_receipts, &x.kept_receipts));
    assert_eq!(before.2, union(&x.gone_events, &x.kept_events));

    // One audit row per student and table: what, how many, why, by whom.
    let rows = audit_rows(&mut conn).await;
    let got: BTreeSet<_> = rows
        .iter()
        .map(|a| (a.entity_id, a.tbl.clone(), a.records_deleted, a.retention_days, a.source.clone(), a.consent_id))
        .collect();
    assert_eq!(got, x.audit);
    let admin_account = rows[0].requested_by;
    for a in &rows {
        assert_eq!((a.entity_type.as_str(), a.deletion_type.as_str()), ("student", "visit_retention"));
        assert_eq!((a.deleted_by.as_str(), a.trigger.as_str()), ("system", "rpc"));
        assert!(a.requested_by.is_some() && a.requested_by == admin_account, "the requesting account is recorded");
        let reason = a.reason.as_deref().unwrap_or_default();
        assert!(reason.contains(&a.tbl) && reason.contains(&format!("{} days", a.retention_days)), "{reason}");
    }

    // Nothing left to do: a second run deletes and audits nothing.
    let again = cleanup(&mut c, false).await.expect("second run");
    assert_eq!((again.visits, again.scan_receipts, again.presence_events, again.audit_records), (0, 0, 0, 0));
    assert_eq!(audit_rows(&mut conn).await.len(), rows.len());
}

#[tokio::test]
async fn deletions_and_their_audit_rows_commit_together() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let x = populate(&app, &mut c).await;
    let mut conn = app.db.conn().await;
    let before = ids(&mut conn).await;
    // The audit insert of the first batch fails: its deletions must roll back with it.
    diesel::sql_query(
        "CREATE FUNCTION audit.fail_insert() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'audit write refused (test)'; END; $$",
    )
    .execute(&mut conn)
    .await
    .expect("function");
    diesel::sql_query(
        "CREATE TRIGGER fail_insert BEFORE INSERT ON audit.data_deletions FOR EACH ROW EXECUTE FUNCTION audit.fail_insert()",
    )
    .execute(&mut conn)
    .await
    .expect("trigger");
    let err = cleanup(&mut c, false).await.expect_err("the audit write fails");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert_eq!(ids(&mut conn).await, before, "no deletion without its audit row");

    diesel::sql_query("DROP TRIGGER fail_insert ON audit.data_deletions").execute(&mut conn).await.expect("drop");
    let run = cleanup(&mut c, false).await.expect("run");
    assert_eq!(run.visits, x.gone_visits.len() as i64);
    assert_eq!(ids(&mut conn).await.0, x.kept_visits);
}

async fn hold_lock(conn: &mut AsyncPgConnection, lock: bool) {
    let f = if lock { "pg_advisory_lock" } else { "pg_advisory_unlock" };
    diesel::sql_query(format!("SELECT {f}($1, $2)"))
        .bind::<Integer, _>(LOCK_NAMESPACE)
        .bind::<Integer, _>(Job::RetentionPurge.lock_id())
        .execute(conn)
        .await
        .expect("advisory lock");
}

#[tokio::test]
async fn a_second_concurrent_run_is_refused_and_changes_nothing() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let x = populate(&app, &mut c).await;
    let mut conn = app.db.conn().await;
    let before = ids(&mut conn).await;
    // Another replica's run holds the job lock.
    let mut other = app.db.conn().await;
    hold_lock(&mut other, true).await;

    let err = cleanup(&mut c, false).await.expect_err("refused while another run holds the lock");
    assert_precondition(&err, "RETENTION_CLEANUP_RUNNING");
    let cache = app.context.live_settings().await;
    let outcome =
        retention::run(&app.context.pool, &cache, app.context.retention_options(), Trigger::Cli, false).await.unwrap();
    assert_eq!(outcome, RunOutcome::AlreadyRunning, "the CLI path reports it too");
    assert_eq!(ids(&mut conn).await, before);
    assert!(audit_rows(&mut conn).await.is_empty());
    // A dry run takes no lock and still answers.
    assert_eq!(cleanup(&mut c, true).await.expect("dry run").visits, x.gone_visits.len() as i64);

    hold_lock(&mut other, false).await;
    let run = cleanup(&mut c, false).await.expect("runs once the lock is free");
    assert_eq!(run.visits, x.gone_visits.len() as i64);
}

fn done(outcome: RunOutcome) -> Report {
    match outcome {
        RunOutcome::Done(r) => r,
        RunOutcome::AlreadyRunning => panic!("unexpected: already running"),
    }
}

#[tokio::test]
async fn small_batches_time_budget_and_resume() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut conn = app.db.conn().await;
    let w = World::new(&mut conn).await;
    let many = w.student(&mut conn, 0).await;
    let one = w.student(&mut conn, 1).await;
    for day in 40..45 {
        w.visit(&mut conn, many, &format!("{day} days"), false).await;
    }
    w.visit(&mut conn, one, "40 days", false).await;
    let pool = app.context.pool.clone();
    let cache = app.context.live_settings().await;
    let options = RetentionOptions { batch_size: 2, ..app.context.retention_options() };

    // A spent time budget starts no batch: nothing happens, the run says it is incomplete.
    let stopped = RetentionOptions { time_budget: Duration::ZERO, ..options };
    let r = done(retention::run(&pool, &cache, stopped, Trigger::Schedule, false).await.unwrap());
    assert!(!r.complete && r.visits == 0, "{r:?}");
    assert_eq!(ids(&mut conn).await.0.len(), 6);

    // Batches of two: every row goes, the audit rows of a student add up to its count.
    let r = done(retention::run(&pool, &cache, options, Trigger::Schedule, false).await.unwrap());
    assert!(r.complete, "{r:?}");
    assert_eq!((r.visits, r.students), (6, 2));
    assert!(ids(&mut conn).await.0.is_empty());
    let rows = audit_rows(&mut conn).await;
    assert_eq!(r.audit_records, rows.len() as i64);
    assert!(rows.len() >= 4, "5 visits in batches of 2 need several rows: {rows:?}");
    let sum = |s: i64| rows.iter().filter(|a| a.entity_id == s).map(|a| a.records_deleted).sum::<i32>();
    assert_eq!((sum(many), sum(one)), (5, 1));
    assert!(rows.iter().all(|a| a.trigger == "schedule" && a.requested_by.is_none()));
}

#[tokio::test]
async fn receipts_outlive_a_short_retention_inside_the_scan_replay_window() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut conn = app.db.conn().await;
    let mut w = World::new(&mut conn).await;
    let pupil = w.student(&mut conn, 0).await;
    w.consent(&mut conn, pupil, true, 1, "10 days").await;
    let inside = w.receipt(&mut conn, Some(pupil), "3 days").await;
    let outside = w.receipt(&mut conn, Some(pupil), "6 days").await;
    let cache = app.context.live_settings().await;
    // Readers may re-send scans up to 5 days old here: their receipts must stay that long.
    let options = RetentionOptions { scan_window: Duration::from_secs(5 * 86_400), ..app.context.retention_options() };
    let r = done(retention::run(&app.context.pool, &cache, options, Trigger::Cli, false).await.unwrap());
    assert_eq!(r.scan_receipts, 1);
    let (_, receipts, _) = ids(&mut conn).await;
    assert!(receipts.contains(&inside) && !receipts.contains(&outside));
}

#[tokio::test]
async fn the_purge_needs_config_manage() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let staff =
        phoenix_tests::auth::create_account(&app, "s@school.de", phoenix_tests::auth::PASSWORD, &["staff"], true).await;
    // Staff hold config:read but not config:manage.
    let token = mint_token(&app, &staff.to_string(), &["staff"], &role_permissions(&app, "staff").await).await;
    let mut as_staff = ConfigServiceClient::new(app.channel_as(Domain::Config, &token).await);
    for dry_run in [true, false] {
        let err = cleanup(&mut as_staff, dry_run).await.expect_err("staff may not purge");
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(err.message().contains("config:manage"), "{}", err.message());
    }
    let mut admin = client(&app).await;
    assert!(cleanup(&mut admin, false).await.expect("admin may").complete);
}
