//! The scheduled-job machinery (`phoenix_common::jobs`, docs/jobs.md): a run takes the job's
//! advisory lock (two replicas at once → one runs), is recorded in `config.job_runs` and read
//! back through `ConfigService.ListJobRuns` (admins only); the scheduler fires on an injected
//! clock, once per due time; `phoenix jobs list|run`; and the jobs of auth (hourly cleanup) and
//! iot (device-log purge) delete exactly what expired, a dry run nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone as _, Utc};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pb::config_service_client::ConfigServiceClient;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{Job, JobReport, JobSpec, ManualClock, RunOutcome, Schedule, Scheduler, Trigger, run_once};
use phoenix_proto::config::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{mint_token, role_permissions};
use phoenix_tests::fixtures;
use tonic::Code;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).await.expect(sql).n
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.expect(sql);
}

/// A job whose work counts its calls, takes `hold` and reports `calls` = 1.
fn counting(job: Job, schedule: Schedule, calls: Arc<AtomicUsize>, hold: Duration) -> JobSpec {
    JobSpec::new(job, schedule, move |_conn, _run| {
        let calls = calls.clone();
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(hold).await;
            let mut r = JobReport::default();
            r.add("calls", 1);
            Ok(r)
        })
    })
}

#[tokio::test]
async fn two_replicas_running_a_job_at_once_do_its_work_once_and_the_run_is_recorded() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let spec = counting(Job::SessionEnd, Schedule::Manual, calls.clone(), Duration::from_millis(700));
    // Two pools = two replicas.
    let other = phoenix_common::db::connect(app.db.url(), phoenix_common::db::PoolOptions::default()).await.unwrap();
    let now = Utc::now();
    let (a, b) = tokio::join!(
        run_once(&app.context.pool, &spec, Trigger::Schedule, now, false),
        run_once(&other, &spec, Trigger::Schedule, now, false)
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 1, "the work ran once");
    assert_eq!(outcomes.iter().filter(|o| **o == RunOutcome::AlreadyRunning).count(), 1, "{outcomes:?}");
    let mut conn = app.db.conn().await;
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM config.job_runs WHERE job = 'session_end'").await, 1);

    // Read back as an admin: the counts, the trigger, the instant it acted for.
    let mut admin = ConfigServiceClient::new(app.test_channel(Domain::Config).await);
    let runs = admin
        .list_job_runs(pb::ListJobRunsRequest { job: "session_end".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(runs.total_size, 1);
    let run = &runs.runs[0];
    assert_eq!(
        (run.job.as_str(), run.trigger.as_str(), run.outcome.as_str(), run.dry_run),
        ("session_end", "schedule", "ok", false)
    );
    assert_eq!(run.counts.get("calls"), Some(&1));
    assert_eq!(run.acted_for.as_ref().map(|t| t.seconds), Some(now.timestamp()));
    let none =
        admin.list_job_runs(pb::ListJobRunsRequest { job: "cleanup".into(), ..Default::default() }).await.unwrap();
    assert_eq!(none.into_inner().total_size, 0, "the filter applies");
}

#[tokio::test]
async fn job_runs_are_for_admins_and_unknown_jobs_are_named() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let staff =
        phoenix_tests::auth::create_account(&app, "s@school.de", phoenix_tests::auth::PASSWORD, &["staff"], true).await;
    let token = mint_token(&app, &staff.to_string(), &["staff"], &role_permissions(&app, "staff").await).await;
    let mut as_staff = ConfigServiceClient::new(app.channel_as(Domain::Config, &token).await);
    let err = as_staff.list_job_runs(pb::ListJobRunsRequest::default()).await.expect_err("staff may not");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("jobs:read"), "{}", err.message());

    let mut admin = ConfigServiceClient::new(app.test_channel(Domain::Config).await);
    let err = admin
        .list_job_runs(pb::ListJobRunsRequest { job: "nightly_magic".into(), ..Default::default() })
        .await
        .expect_err("unknown job");
    phoenix_tests::grpc::assert_violations_include(&err, &["job"]);
    assert!(err.message().contains("session_end"), "names the jobs there are: {}", err.message());
}

#[tokio::test]
async fn a_failed_run_is_recorded_with_its_error_and_a_dry_run_is_marked() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let failing = JobSpec::new(Job::AttendanceClose, Schedule::Manual, |_conn, _run| {
        Box::pin(async { Err(phoenix_common::Error::Unavailable("the database went away".into())) })
    });
    let err = run_once(&app.context.pool, &failing, Trigger::Cli, Utc::now(), false).await.expect_err("fails");
    assert!(err.to_string().contains("went away"));
    let calls = Arc::new(AtomicUsize::new(0));
    let dry = counting(Job::Cleanup, Schedule::Manual, calls, Duration::ZERO);
    run_once(&app.context.pool, &dry, Trigger::Rpc, Utc::now(), true).await.unwrap();

    let mut admin = ConfigServiceClient::new(app.test_channel(Domain::Config).await);
    let runs = admin.list_job_runs(pb::ListJobRunsRequest::default()).await.unwrap().into_inner().runs;
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].job.as_str(), runs[0].dry_run, runs[0].trigger.as_str()),
        ("cleanup", true, "rpc"),
        "newest first"
    );
    assert_eq!((runs[1].job.as_str(), runs[1].outcome.as_str()), ("attendance_close", "failed"));
    assert!(runs[1].error.contains("went away"), "{}", runs[1].error);
}

fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Berlin.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("local time").to_utc()
}

/// Waits (real time, bounded) until `calls` reaches `n`.
async fn wait_for(calls: &AtomicUsize, n: usize) {
    for _ in 0..200 {
        if AtomicUsize::load(calls, Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_scheduler_fires_once_per_due_time_on_its_clock_and_follows_a_changed_daily_time() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let clock = Arc::new(ManualClock::new(berlin(2026, 10, 24, 17, 0)));
    let at = Arc::new(std::sync::Mutex::new(NaiveTime::from_hms_opt(18, 0, 0).unwrap()));
    let daily_at = at.clone();
    let schedule = Schedule::Daily(Arc::new(move || *daily_at.lock().unwrap()));
    let calls = Arc::new(AtomicUsize::new(0));
    let spec = counting(Job::SessionEnd, schedule, calls.clone(), Duration::ZERO);
    let scheduler =
        Scheduler { zone: chrono_tz::Europe::Berlin, clock: clock.clone(), step: Duration::from_millis(10) };
    let shutdown = phoenix_common::server::ShutdownToken::new();
    let task = tokio::spawn(scheduler.run(app.context.pool.clone(), spec, shutdown.clone()));

    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 0, "17:00: not due");
    clock.set(berlin(2026, 10, 24, 18, 0));
    wait_for(&calls, 1).await;
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 1, "18:00: ran");
    clock.set(berlin(2026, 10, 24, 23, 0));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 1, "once a day");
    // The setting changes to 17:30; the next day (25 Oct, the autumn DST change) fires at
    // 17:30 CET, not before.
    *at.lock().unwrap() = NaiveTime::from_hms_opt(17, 30, 0).unwrap();
    clock.set(berlin(2026, 10, 25, 17, 29));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 1, "17:29 on the next day: not yet");
    clock.set(berlin(2026, 10, 25, 17, 30));
    wait_for(&calls, 2).await;
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 2, "17:30: ran again");
    let mut conn = app.db.conn().await;
    let acted: Vec<i64> = {
        #[derive(QueryableByName)]
        struct At {
            #[diesel(sql_type = BigInt)]
            s: i64,
        }
        diesel::sql_query("SELECT extract(epoch FROM acted_for)::bigint AS s FROM config.job_runs ORDER BY id")
            .load::<At>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.s)
            .collect()
    };
    assert_eq!(acted, [berlin(2026, 10, 24, 18, 0).timestamp(), berlin(2026, 10, 25, 17, 30).timestamp()]);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops on shutdown").unwrap();
}

#[tokio::test]
async fn the_scheduler_runs_interval_jobs_and_quiet_idle_runs_leave_no_record() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let clock = Arc::new(ManualClock::new(berlin(2026, 3, 29, 1, 0)));
    let spec = JobSpec::new(Job::OutboxDelivery, Schedule::Every(Duration::from_secs(5)), |_conn, _run| {
        Box::pin(async { Ok(JobReport::default()) })
    });
    let scheduler =
        Scheduler { zone: chrono_tz::Europe::Berlin, clock: clock.clone(), step: Duration::from_millis(10) };
    let shutdown = phoenix_common::server::ShutdownToken::new();
    let task = tokio::spawn(scheduler.run(app.context.pool.clone(), spec, shutdown.clone()));
    let calls = Arc::new(AtomicUsize::new(0));
    let busy = counting(Job::AbandonedSweep, Schedule::Every(Duration::from_secs(900)), calls.clone(), Duration::ZERO);
    let busy_task = tokio::spawn(
        Scheduler { zone: chrono_tz::Europe::Berlin, clock: clock.clone(), step: Duration::from_millis(10) }.run(
            app.context.pool.clone(),
            busy,
            shutdown.clone(),
        ),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Across the spring-forward gap: 15 minutes of wall time later.
    for minute in [5, 10, 15, 16] {
        clock.set(berlin(2026, 3, 29, 1, minute));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(&calls, 1).await;
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 1, "every 15 min: due once in 16 minutes");
    let mut conn = app.db.conn().await;
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM config.job_runs WHERE job = 'outbox_delivery'").await, 0);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM config.job_runs WHERE job = 'abandoned_sweep'").await, 1);
    shutdown.cancel();
    task.await.unwrap();
    busy_task.await.unwrap();
}

#[tokio::test]
async fn the_hourly_cleanup_deletes_exactly_what_expired_past_its_grace_and_a_dry_run_nothing() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let mut conn = app.db.conn().await;
    let account = fixtures::account(&mut conn, "k@school.de").await;
    let fam = "gen_random_uuid()";
    for (hash, expires) in [
        ("old", "now() - interval '2 days'"),
        ("recent", "now() - interval '2 hours'"),
        ("live", "now() + interval '1 day'"),
    ] {
        exec(
            &mut conn,
            &format!(
                "INSERT INTO auth.tokens (account_id, token_hash, family_id, generation, expires_at, created_at)
                 VALUES ({account}, sha256('{hash}'), {fam}, 0, {expires}, {expires} - interval '1 hour')"
            ),
        )
        .await;
    }
    // One live reset token per account: the live one belongs to a second account.
    let second = fixtures::account(&mut conn, "l@school.de").await;
    for (owner, hash, expires, used) in [
        (account, "r-old", "now() - interval '3 days'", "NULL"),
        (account, "r-used", "now() + interval '1 hour'", "now() - interval '2 days'"),
        (second, "r-live", "now() + interval '1 hour'", "NULL"),
    ] {
        exec(
            &mut conn,
            &format!(
                "INSERT INTO auth.password_reset_tokens (account_id, token_hash, expires_at, used_at, created_at)
                 VALUES ({owner}, sha256('{hash}'), {expires}, {used}, now() - interval '40 days')"
            ),
        )
        .await;
    }
    exec(
        &mut conn,
        "INSERT INTO auth.password_reset_rate_limits (email_hash, attempts, window_start)
         VALUES (sha256('a'), 3, now() - interval '2 days'), (sha256('b'), 1, now())",
    )
    .await;
    let role = "(SELECT id FROM auth.roles WHERE name = 'staff')";
    for (email, expires, used) in [
        ("gone@school.de", "now() - interval '8 days'", "NULL"),
        ("shown@school.de", "now() - interval '2 days'", "NULL"),
        ("used@school.de", "now() - interval '30 days'", "now() - interval '31 days'"),
    ] {
        exec(
            &mut conn,
            &format!(
                "INSERT INTO auth.invitations (email, token_hash, role_id, expires_at, used_at, created_at)
                 VALUES ('{email}', sha256('{email}'), {role}, {expires}, {used}, now() - interval '40 days')"
            ),
        )
        .await;
    }
    exec(
        &mut conn,
        &format!(
            "INSERT INTO auth.outbox (kind, account_id, created_at, sent_at) VALUES
               ('password_reset', {account}, now() - interval '9 days', now() - interval '8 days'),
               ('password_reset', {account}, now() - interval '2 days', now() - interval '1 day'),
               ('password_reset', {account}, now() - interval '31 days', NULL),
               ('password_reset', {account}, now() - interval '1 day', NULL)"
        ),
    )
    .await;
    let before = |t: &'static str| format!("SELECT count(*) AS n FROM auth.{t}");
    let spec = phoenix_auth::cleanup::spec();
    let RunOutcome::Done(dry) = run_once(&app.context.pool, &spec, Trigger::Cli, Utc::now(), true).await.unwrap()
    else {
        panic!("ran")
    };
    assert_eq!(
        (
            dry.get("refresh_tokens"),
            dry.get("password_reset_tokens"),
            dry.get("rate_limit_rows"),
            dry.get("invitations")
        ),
        (1, 2, 1, 1),
        "{dry:?}"
    );
    for (t, n) in [
        ("tokens", 3),
        ("password_reset_tokens", 3),
        ("password_reset_rate_limits", 2),
        ("invitations", 3),
        ("outbox", 4),
    ] {
        assert_eq!(count(&mut conn, &before(t)).await, n, "dry run deleted nothing from {t}");
    }
    let RunOutcome::Done(done) = run_once(&app.context.pool, &spec, Trigger::Cli, Utc::now(), false).await.unwrap()
    else {
        panic!("ran")
    };
    assert_eq!(done.counts, dry.counts, "the run deletes what the dry run counted");
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM auth.tokens WHERE token_hash = sha256('old')").await, 0);
    assert_eq!(count(&mut conn, &before("tokens")).await, 2, "recently expired (grace) and live stay");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM auth.password_reset_tokens WHERE token_hash = sha256('r-live')")
            .await,
        1
    );
    assert_eq!(count(&mut conn, &before("password_reset_tokens")).await, 1);
    assert_eq!(count(&mut conn, &before("password_reset_rate_limits")).await, 1);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM auth.invitations WHERE email IN ('shown@school.de', 'used@school.de')"
        )
        .await,
        2,
        "an invitation expired two days ago is still shown; an accepted one is kept"
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM auth.outbox WHERE created_at > now() - interval '3 days'").await,
        2,
        "mail sent a day ago and mail still being retried stay"
    );
    assert_eq!(count(&mut conn, &before("outbox")).await, 2);
}

#[tokio::test]
async fn device_logs_older_than_90_days_go_and_younger_ones_stay() {
    let app = TestApp::spawn(&[Domain::Iot]).await;
    let mut conn = app.db.conn().await;
    let device = fixtures::device(&mut conn, "reader-x", "room", None).await;
    for age in ["100 days", "91 days", "89 days", "1 hour"] {
        exec(
            &mut conn,
            &format!(
                "INSERT INTO iot.device_logs (device_id, event, created_at) VALUES ({device}, 'online', now() - interval '{age}')"
            ),
        )
        .await;
    }
    let spec = phoenix_iot::log_purge::spec();
    let RunOutcome::Done(dry) = run_once(&app.context.pool, &spec, Trigger::Cli, Utc::now(), true).await.unwrap()
    else {
        panic!("ran")
    };
    assert_eq!(dry.get("device_logs"), 2);
    assert_eq!(
        count(&mut conn, &format!("SELECT count(*) AS n FROM iot.device_logs WHERE device_id = {device}")).await,
        4
    );
    let RunOutcome::Done(done) = run_once(&app.context.pool, &spec, Trigger::Cli, Utc::now(), false).await.unwrap()
    else {
        panic!("ran")
    };
    assert_eq!(done.get("device_logs"), 2);
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM iot.device_logs WHERE device_id = {device} AND created_at > now() - interval '90 days'")
        )
        .await,
        2
    );
    assert_eq!(
        count(&mut conn, &format!("SELECT count(*) AS n FROM iot.device_logs WHERE device_id = {device}")).await,
        2
    );
}

#[tokio::test]
async fn phoenix_jobs_lists_every_job_with_its_schedule_and_runs_one_by_name() {
    // Mail printed to the log: the sender job exists only where mail is configured.
    let app = TestApp::spawn_with(&[Domain::Config], |c| {
        c.smtp_url = Some(phoenix_common::config::Secret::new("log"));
    })
    .await;
    let ctx = &app.context;
    let text = phoenix::jobs::run(ctx, "device_log_purge", true).await.unwrap();
    assert!(text.starts_with("device_log_purge dry run (nothing changed): device_logs=0"), "{text}");
    let err = phoenix::jobs::run(ctx, "nightly_magic", false).await.unwrap_err().to_string();
    assert!(err.contains("unknown job") && err.contains("session_end"), "{err}");
    let list = phoenix::jobs::list(ctx).await.unwrap();
    for job in Job::ALL {
        assert!(list.lines().any(|l| l.starts_with(job.name())), "{} missing from\n{list}", job.name());
    }
    let purge = list.lines().find(|l| l.starts_with("device_log_purge")).unwrap();
    assert!(purge.contains("daily 03:30") && purge.contains("cli") && purge.contains("ok (dry)"), "{purge}");
    let cleanup = list.lines().find(|l| l.starts_with("cleanup")).unwrap();
    assert!(cleanup.contains("every 60 min") && cleanup.contains("never"), "{cleanup}");
}
