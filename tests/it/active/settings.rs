//! The settings the active domain reads, live: each is changed through `ConfigService`'s
//! `UpdateSetting` (as an admin) on a *second* replica — its own process context and
//! settings cache on the same database — and the active replica's behaviour changes
//! without a restart once the change notice (LISTEN/NOTIFY) reached its cache.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone as _, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix::services::{self, ServiceContext};
use phoenix_active::jobs;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{Job, JobRun, Trigger};
use phoenix_common::server::ShutdownToken;
use phoenix_common::time::to_timestamp;
use phoenix_db::schema::active::{attendance, groups};
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::config::v1 as cpb;
use phoenix_proto::config::v1::config_service_client::ConfigServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::app::connect;
use phoenix_tests::auth::{admin_token, bearer};
use phoenix_tests::grpc::assert_precondition;
use phoenix_tests::school::{Client, School};
use tonic::transport::Channel;

/// How long a change may take to reach the active replica.
const WITHIN: Duration = Duration::from_secs(10);

/// The active service, the school, and a second replica serving `ConfigService`.
struct Env {
    app: TestApp,
    active: Client,
    school: School,
    config: ConfigServiceClient<Channel>,
    admin: String,
    _replica: ShutdownToken,
}

impl Env {
    async fn new(pupils: usize) -> Self {
        Self::with(pupils, |_| {}).await
    }

    async fn with(pupils: usize, configure: impl FnOnce(&mut phoenix_common::config::Config)) -> Self {
        let app = TestApp::spawn_with(&[Domain::Active], configure).await;
        let active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
        let mut conn = app.db.conn().await;
        let school = School::create(&mut conn, pupils).await;
        let replica = ShutdownToken::new();
        let ctx = ServiceContext::new(app.db.pool().await, app.config.clone());
        let running = services::start(&[Domain::Config], &ctx, app.config.listen_host, 0, false, &replica)
            .await
            .expect("second replica");
        assert!(
            !ctx.config_cache().await.same_as(&app.context.config_cache().await),
            "the replicas have separate caches"
        );
        let config = ConfigServiceClient::new(connect(running[0].addr).await);
        let (_, admin) = admin_token(&app).await;
        Self { app, active, school, config, admin, _replica: replica }
    }

    /// `UpdateSetting` on the other replica, as an admin.
    async fn set(&mut self, key: &str, value: &str) {
        self.config
            .update_setting(bearer(cpb::UpdateSettingRequest { key: key.into(), value: value.into() }, &self.admin))
            .await
            .unwrap_or_else(|e| panic!("update {key}: {e}"));
    }
}

/// Polls `probe` until it returns `Some`, for at most [`WITHIN`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not seen within {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scan(client: &mut Client, device: &str, scan_id: &str, tag: &str, at: DateTime<Utc>) -> String {
    let r = client
        .process_scan(pb::ProcessScanRequest {
            device_id: device.into(),
            scan_id: scan_id.into(),
            tag: tag.into(),
            scanned_at: Some(to_timestamp(at)),
        })
        .await
        .expect("process scan")
        .into_inner();
    let outcome = match r.outcome() {
        pb::ScanOutcome::CheckedIn => "checked_in",
        pb::ScanOutcome::CheckedOut => "checked_out",
        pb::ScanOutcome::Transferred => "transferred",
        pb::ScanOutcome::Rejected => "rejected",
        pb::ScanOutcome::Unspecified => "unspecified",
    };
    format!("{outcome}/{}", r.code)
}

#[tokio::test]
async fn scan_max_age_minutes_decides_which_scans_are_stale() {
    let mut env = Env::new(0).await;
    let reader = env.school.readers[0].clone();
    // An unknown card: the scan changes nothing either way, only its freshness differs.
    let tag = "DEADBEEF0042";
    let old = Utc::now() - chrono::Duration::minutes(30);
    assert_eq!(scan(&mut env.active, &reader, "fresh", tag, old).await, "rejected/unknown_tag", "24 h by default");
    env.set("scan.max_age_minutes", "10").await;
    let mut n = 0;
    eventually("a 10-minute scan window", || {
        n += 1;
        let (mut c, reader) = (env.active.clone(), reader.clone());
        async move {
            let at = Utc::now() - chrono::Duration::minutes(30);
            (scan(&mut c, &reader, &format!("probe-{n}"), tag, at).await == "rejected/stale_scan").then_some(())
        }
    })
    .await;
    env.set("scan.max_age_minutes", "60").await;
    eventually("a 60-minute scan window", || {
        n += 1;
        let (mut c, reader) = (env.active.clone(), reader.clone());
        async move {
            let at = Utc::now() - chrono::Duration::minutes(30);
            (scan(&mut c, &reader, &format!("probe-{n}"), tag, at).await == "rejected/unknown_tag").then_some(())
        }
    })
    .await;
}

/// The latest local 10:00 (or 08:00) between 5 minutes and 23 hours ago, as the gate's
/// clock would stamp it: inside the default scan window whatever time the test runs.
fn recent_local_morning(tz: chrono_tz::Tz) -> DateTime<Utc> {
    let now = Utc::now();
    let today = now.with_timezone(&tz).date_naive();
    for day in [today, today.pred_opt().expect("yesterday")] {
        for hour in [10, 8] {
            let t = NaiveTime::from_hms_opt(hour, 0, 0).expect("time");
            if let Some(at) = tz.from_local_datetime(&day.and_time(t)).earliest().map(|t| t.to_utc())
                && at <= now - chrono::Duration::minutes(5)
                && at >= now - chrono::Duration::hours(23)
            {
                return at;
            }
        }
    }
    unreachable!("one of four mornings is always in the window")
}

#[tokio::test]
async fn daily_checkout_time_decides_when_a_collected_pupil_may_leave_alone() {
    let mut env = Env::new(1).await;
    let tz = env.app.config.timezone;
    let gate = env.school.gate.clone();
    let pupil = env.school.pupils[0].clone();
    let morning = recent_local_morning(tz);
    let local = morning.with_timezone(&tz);
    // Collected six hours later that day.
    let mut conn = env.app.db.conn().await;
    diesel::sql_query(format!(
        "INSERT INTO schedule.student_pickup_exceptions (student_id, exception_date, pickup_time) \
         VALUES ({}, '{}', '{}')",
        pupil.id,
        local.date_naive(),
        (local.time() + chrono::Duration::hours(6)).format("%H:%M")
    ))
    .execute(&mut conn)
    .await
    .expect("pickup exception");
    let arrive = morning - chrono::Duration::minutes(10);
    assert_eq!(scan(&mut env.active, &gate, "arrive", &pupil.tag, arrive).await, "checked_in/ok");
    assert_eq!(
        scan(&mut env.active, &gate, "too-early", &pupil.tag, morning).await,
        "rejected/pickup_not_allowed",
        "before the daily check-out time (15:00) and long before the pickup"
    );
    env.set("attendance.daily_checkout_time", "07:00").await;
    let mut n = 0;
    eventually("check-out from 07:00", || {
        n += 1;
        let (mut c, gate, tag) = (env.active.clone(), gate.clone(), pupil.tag.clone());
        async move {
            let at = morning + chrono::Duration::seconds(n);
            let outcome = scan(&mut c, &gate, &format!("leave-{n}"), &tag, at).await;
            if outcome == "rejected/pickup_not_allowed" {
                return None;
            }
            assert_eq!(outcome, "checked_out/ok");
            Some(())
        }
    })
    .await;
    let out: Option<DateTime<Utc>> = attendance::table
        .filter(attendance::student_id.eq(pupil.id))
        .select(attendance::check_out_time)
        .first(&mut conn)
        .await
        .expect("attendance");
    assert!(out.is_some(), "the pupil went home");
}

async fn start(c: &mut Client, school: &School, timeout_minutes: i32) -> pb::Session {
    c.start_session(pb::StartSessionRequest {
        room_id: school.rooms[0],
        activity_id: Some(school.activity),
        supervisor_staff_ids: vec![school.staff],
        timeout_minutes,
        force: true,
        ..Default::default()
    })
    .await
    .expect("start session")
    .into_inner()
    .session
    .expect("session")
}

#[tokio::test]
async fn session_timeout_minutes_is_the_timeout_of_a_new_session_that_names_none() {
    let mut env = Env::new(0).await;
    let school = env.school.clone();
    assert_eq!(start(&mut env.active, &school, 0).await.timeout_minutes, 30, "the registry default");
    env.set("session.timeout_minutes", "45").await;
    eventually("new sessions time out after 45 minutes", || {
        let (mut c, school) = (env.active.clone(), school.clone());
        async move { (start(&mut c, &school, 0).await.timeout_minutes == 45).then_some(()) }
    })
    .await;
    assert_eq!(start(&mut env.active, &school, 20).await.timeout_minutes, 20, "a named timeout stays");
}

#[tokio::test]
async fn session_end_time_moves_the_daily_session_end() {
    let env = Env::new(0).await;
    let tz = env.app.config.timezone;
    let settings = env.app.context.live_settings().await;
    let shutdown = ShutdownToken::new();
    let ctx = env.app.context.domain_context(&shutdown).await;
    let describe =
        || jobs::specs(&ctx).into_iter().find(|s| s.job == Job::SessionEnd).expect("session_end").schedule.describe();
    assert_eq!(describe(), "daily 18:00");

    // A session of Monday 12 Jan 2026 from 09:00; the job runs at 13:00.
    let mut conn = env.app.db.conn().await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 12).expect("date");
    let at = |h| tz.from_local_datetime(&day.and_hms_opt(h, 0, 0).expect("time")).earliest().expect("local").to_utc();
    let control = phoenix_active::scope::SessionControl { staff_id: None, may_manage: true };
    let cmd = phoenix_active::validate::StartSession {
        room_id: env.school.rooms[0],
        activity_id: Some(env.school.activity),
        education_group_id: None,
        supervisors: vec![env.school.staff],
        force: false,
        timeout_minutes: 30,
    };
    let session = phoenix_active::sessions::start(&mut conn, cmd, control, tz, at(9)).await.expect("start").0.row.id;
    let run = JobRun { job: Job::SessionEnd, now: at(13), dry_run: false, trigger: Trigger::Cli };
    let before = jobs::end_sessions(&mut conn, &settings, run).await.expect("run at 18:00 setting");
    assert_eq!(before.get("sessions_ended"), 0, "13:00 is before 18:00");

    let mut env = env;
    env.set("session.end_time", "12:00").await;
    // The active replica's cache learns it from the notice (no RPC of its own touched it).
    eventually("the active replica's end time", || {
        let s = settings.clone();
        async move { (s.session_end_time() == NaiveTime::from_hms_opt(12, 0, 0).expect("time")).then_some(()) }
    })
    .await;
    assert_eq!(describe(), "daily 12:00", "the schedule reads it too");
    let after = jobs::end_sessions(&mut conn, &settings, run).await.expect("run at 12:00 setting");
    assert_eq!(after.get("sessions_ended"), 1);
    let end: Option<DateTime<Utc>> =
        groups::table.find(session).select(groups::end_time).first(&mut conn).await.expect("session");
    assert_eq!(end, Some(at(12)), "ended at the new end time");
}

#[tokio::test]
async fn the_time_zone_is_the_process_zone_for_every_business_date_and_locked() {
    // Kiritimati (UTC+14) and Honolulu (UTC−10) are a whole day apart: at any instant at
    // least one of them has another date than Berlin, so a Berlin default cannot pass both.
    for zone in [chrono_tz::Pacific::Kiritimati, chrono_tz::Pacific::Honolulu] {
        let mut env = Env::with(1, |c| c.timezone = zone).await;
        let err = env
            .config
            .update_setting(bearer(
                cpb::UpdateSettingRequest { key: "system.time_zone".into(), value: "Europe/Berlin".into() },
                &env.admin,
            ))
            .await
            .expect_err("locked");
        assert_precondition(&err, "SETTING_LOCKED");
        let (gate, tag) = (env.school.gate.clone(), env.school.pupils[0].tag.clone());
        let now = Utc::now();
        assert_eq!(scan(&mut env.active, &gate, "arrive", &tag, now).await, "checked_in/ok");
        let mut conn = env.app.db.conn().await;
        let stored: chrono::NaiveDate =
            attendance::table.select(attendance::date).first(&mut conn).await.expect("attendance");
        let expect = now.with_timezone(&zone).date_naive();
        // (A scan at the stroke of midnight could straddle it; the test's instant is the scan's.)
        assert_eq!(stored, expect, "{zone}: the business date is the process zone's");
        let today = env
            .active
            .get_attendance(pb::GetAttendanceRequest { student_id: env.school.pupils[0].id, date: String::new() })
            .await
            .expect("attendance today")
            .into_inner()
            .attendance
            .expect("attendance");
        assert_eq!(today.date, Utc::now().with_timezone(&zone).date_naive().to_string(), "{zone}: today");
        assert_eq!(today.status(), pb::AttendanceStatus::InTransit, "{zone}: present today");
    }
}
