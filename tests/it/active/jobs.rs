//! The active domain's scheduled jobs against real data, with `now` injected (no sleeping):
//! the daily session end, the abandoned-session sweep and the attendance close — what each
//! changes (rows, states, presence events), a dry run of each that changes nothing, a school
//! week across midnights and both DST changes in Europe/Berlin, and two replicas running
//! one job at once (exactly one does the work).

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_active::jobs::{self, close_attendance, end_sessions, sweep_abandoned};
use phoenix_active::scan::{self, MAX_CLOCK_AHEAD, ScanCommand, ScanSettings};
use phoenix_active::scope::SessionControl;
use phoenix_active::sessions;
use phoenix_active::validate::StartSession;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::{Job, JobReport, JobRun, RunOutcome, Trigger, run_once};
use phoenix_common::server::ShutdownToken;
use phoenix_common::settings::LiveSettings;
use phoenix_db::schema::active::{attendance, group_supervisors, groups, visits};
use phoenix_db::schema::iot;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::school::{School, count, events};

const TZ: Tz = chrono_tz::Europe::Berlin;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("rfc3339").to_utc()
}

/// `h:m` local time on `day` in Berlin (these tests use no time inside a DST gap).
fn local(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    let t = NaiveTime::from_hms_opt(h, m, 0).expect("time");
    TZ.from_local_datetime(&day.and_time(t)).earliest().expect("local time exists").to_utc()
}

fn run(job: Job, now: DateTime<Utc>, dry_run: bool) -> JobRun {
    JobRun { job, now, dry_run, trigger: Trigger::Cli }
}

fn report(pairs: &[(&'static str, i64)]) -> JobReport {
    let mut r = JobReport::default();
    for (k, v) in pairs {
        r.add(k, *v);
    }
    r
}

/// The school (`reader-a` … `reader-d`, `reader-small`, `gate`) in the active service, with
/// the process's live settings and a connection of its own.
struct Env {
    app: TestApp,
    school: School,
    settings: LiveSettings,
    conn: AsyncPgConnection,
    scans: usize,
}

impl Env {
    async fn new(pupils: usize) -> Self {
        let app = TestApp::spawn(&[Domain::Active]).await;
        let mut conn = app.db.conn().await;
        let school = School::create(&mut conn, pupils).await;
        let settings = app.context.live_settings().await;
        Self { app, school, settings, conn, scans: 0 }
    }

    /// Starts a session in `room` at `at` (as `StartSession` does, with `sessions:manage`).
    async fn start(&mut self, room: i64, at: DateTime<Utc>, timeout_minutes: i32) -> i64 {
        let cmd = StartSession {
            room_id: room,
            activity_id: Some(self.school.activity),
            education_group_id: None,
            supervisors: vec![self.school.staff],
            force: false,
            timeout_minutes,
        };
        let control = SessionControl { staff_id: None, may_manage: true };
        sessions::start(&mut self.conn, cmd, control, TZ, at).await.expect("start session").0.row.id
    }

    /// Pupil `i` scanned at `reader` at `at`, received at once: the outcome.
    async fn scan(&mut self, reader: &str, i: usize, at: DateTime<Utc>) -> String {
        self.scans += 1;
        let settings = ScanSettings {
            max_age: std::time::Duration::from_secs(24 * 3600),
            max_ahead: MAX_CLOCK_AHEAD,
            timezone: TZ,
            daily_checkout_time: NaiveTime::from_hms_opt(15, 0, 0).expect("time"),
        };
        let cmd = ScanCommand {
            device_id: reader.into(),
            scan_id: format!("s{}", self.scans),
            tag: self.school.pupils[i].tag.clone(),
            scanned_at: at,
        };
        let r = scan::process(&mut self.conn, settings, cmd, at).await.expect("scan");
        format!("{}/{}", r.outcome.as_str(), r.code.as_str())
    }

    fn pupil(&self, i: usize) -> i64 {
        self.school.pupils[i].id
    }

    async fn session_end(&mut self, id: i64) -> Option<DateTime<Utc>> {
        groups::table.find(id).select(groups::end_time).first(&mut self.conn).await.expect("session")
    }

    async fn supervisor_end(&mut self, session: i64) -> Vec<Option<NaiveDate>> {
        group_supervisors::table
            .filter(group_supervisors::active_group_id.eq(session))
            .select(group_supervisors::end_date)
            .load(&mut self.conn)
            .await
            .expect("supervisors")
    }

    /// Exit times of pupil `i`'s visits, oldest first.
    async fn exits(&mut self, i: usize) -> Vec<Option<DateTime<Utc>>> {
        visits::table
            .filter(visits::student_id.eq(self.pupil(i)))
            .order(visits::entry_time)
            .select(visits::exit_time)
            .load(&mut self.conn)
            .await
            .expect("visits")
    }

    /// Pupil `i`'s attendance rows: `(date, check-out, closed_by_system)`, oldest first.
    async fn days(&mut self, i: usize) -> Vec<(NaiveDate, Option<DateTime<Utc>>, bool)> {
        attendance::table
            .filter(attendance::student_id.eq(self.pupil(i)))
            .order(attendance::date)
            .select((attendance::date, attendance::check_out_time, attendance::closed_by_system))
            .load(&mut self.conn)
            .await
            .expect("attendance")
    }

    /// Session ids of the `session_ended` events, in log order.
    async fn ended_events(&mut self) -> Vec<i64> {
        events(&mut self.conn, &["session_ended"]).await.into_iter().filter_map(|e| e.2).collect()
    }

    /// Marks `reader` seen at `at` (online for 5 minutes after it) and not offline.
    async fn seen(&mut self, reader: &str, at: DateTime<Utc>) {
        diesel::update(iot::devices::table.filter(iot::devices::device_id.eq(reader)))
            .set((iot::devices::last_seen.eq(Some(at)), iot::devices::offline_since.eq(None::<DateTime<Utc>>)))
            .execute(&mut self.conn)
            .await
            .expect("seen");
    }

    /// Everything a job could change, for the dry runs: running sessions, open visits,
    /// current supervisors, open attendance rows, presence events.
    async fn fingerprint(&mut self) -> [i64; 5] {
        let c = &mut self.conn;
        [
            count(c, "SELECT count(*) AS n FROM active.groups WHERE end_time IS NULL").await,
            count(c, "SELECT count(*) AS n FROM active.visits WHERE exit_time IS NULL").await,
            count(c, "SELECT count(*) AS n FROM active.group_supervisors WHERE end_date IS NULL").await,
            count(c, "SELECT count(*) AS n FROM active.attendance WHERE check_out_time IS NULL").await,
            count(c, "SELECT count(*) AS n FROM active.presence_events").await,
        ]
    }
}

/// Monday 12 Jan 2026: sessions in rooms A (09:00, two pupils in it), B (18:00 sharp, an
/// evening session) and C (started the day before and never ended).
async fn end_time_day(env: &mut Env) -> (NaiveDate, [i64; 3]) {
    let day = date("2026-01-12");
    let rooms = env.school.rooms.clone();
    let readers = env.school.readers.clone();
    let c = env.start(rooms[2], local(date("2026-01-11"), 10, 0), 30).await;
    let a = env.start(rooms[0], local(day, 9, 0), 30).await;
    assert_eq!(env.scan(&readers[0], 0, local(day, 10, 0)).await, "checked_in/ok");
    assert_eq!(env.scan(&readers[0], 1, local(day, 10, 5)).await, "checked_in/ok");
    let b = env.start(rooms[1], local(day, 18, 0), 30).await;
    (day, [a, b, c])
}

#[tokio::test]
async fn end_sessions_ends_the_days_sessions_at_the_end_time_and_their_pupils_are_in_transit() {
    let mut env = Env::new(2).await;
    let (day, [a, b, c]) = end_time_day(&mut env).await;
    let now = local(day, 18, 0) + Duration::seconds(30);

    let done = end_sessions(&mut env.conn, &env.settings, run(Job::SessionEnd, now, false)).await.expect("run");
    assert_eq!(done, report(&[("sessions_ended", 2), ("visits_closed", 2), ("supervisors_ended", 2)]));
    // A at today's 18:00 CET (17:00 UTC); C, from yesterday, at yesterday's 18:00.
    assert_eq!(env.session_end(a).await, Some(utc("2026-01-12T17:00:00Z")));
    assert_eq!(env.session_end(c).await, Some(utc("2026-01-11T17:00:00Z")));
    assert_eq!(env.session_end(b).await, None, "started at the end time: runs until the day ends");
    assert_eq!(env.exits(0).await, [Some(utc("2026-01-12T17:00:00Z"))]);
    assert_eq!(env.exits(1).await, [Some(utc("2026-01-12T17:00:00Z"))]);
    assert_eq!(env.supervisor_end(a).await, [Some(day)]);
    assert_eq!(env.supervisor_end(c).await, [Some(date("2026-01-11"))]);
    assert_eq!(env.supervisor_end(b).await, [None]);
    let mut ended = env.ended_events().await;
    ended.sort();
    let mut want = vec![a, c];
    want.sort();
    assert_eq!(ended, want, "one session_ended event per ended session, for the boards");
    // The pupils are in transit: present today, no open visit.
    assert_eq!(env.days(0).await, [(day, None, false)]);

    let again = end_sessions(&mut env.conn, &env.settings, run(Job::SessionEnd, now, false)).await.expect("rerun");
    assert_eq!(again, report(&[("sessions_ended", 0), ("visits_closed", 0), ("supervisors_ended", 0)]));
    // At the next end time the evening session ends — at the end of its own day.
    let next = local(date("2026-01-13"), 18, 0);
    let done = end_sessions(&mut env.conn, &env.settings, run(Job::SessionEnd, next, false)).await.expect("next day");
    assert_eq!(done.get("sessions_ended"), 1);
    assert_eq!(env.session_end(b).await, Some(utc("2026-01-12T23:00:00Z")));
}

#[tokio::test]
async fn end_sessions_dry_run_counts_and_changes_nothing() {
    let mut env = Env::new(2).await;
    let (day, [a, _, c]) = end_time_day(&mut env).await;
    let before = env.fingerprint().await;
    let now = local(day, 18, 1);
    let dry = end_sessions(&mut env.conn, &env.settings, run(Job::SessionEnd, now, true)).await.expect("dry run");
    assert_eq!(dry, report(&[("sessions_ended", 2), ("visits_closed", 2), ("supervisors_ended", 2)]));
    assert_eq!(env.fingerprint().await, before);
    assert_eq!((env.session_end(a).await, env.session_end(c).await), (None, None));
}

/// Sessions at `now` − 31 min (idle since), their readers in different states:
/// A offline (seen 10 min ago) with a pupil inside → abandoned; B online → kept; C idle only
/// 10 min → kept; D seen a minute ago but marked offline (Last Will) → abandoned; the small
/// room's has a 60-minute timeout → kept.
async fn sweep_day(env: &mut Env, now: DateTime<Utc>) -> [i64; 5] {
    let rooms = env.school.rooms.clone();
    let readers = env.school.readers.clone();
    let idle = now - Duration::minutes(31);
    let a = env.start(rooms[0], idle - Duration::minutes(5), 30).await;
    assert_eq!(env.scan(&readers[0], 0, idle).await, "checked_in/ok");
    let b = env.start(rooms[1], idle, 30).await;
    let c = env.start(rooms[2], now - Duration::minutes(10), 30).await;
    let d = env.start(rooms[3], idle, 30).await;
    let small = env.school.small_room;
    let e = env.start(small, idle - Duration::minutes(14), 60).await;
    env.seen(&readers[0], now - Duration::minutes(10)).await;
    env.seen(&readers[1], now - Duration::minutes(1)).await;
    env.seen(&readers[3], now - Duration::minutes(1)).await;
    diesel::update(iot::devices::table.filter(iot::devices::device_id.eq(&readers[3])))
        .set(iot::devices::offline_since.eq(Some(now - Duration::seconds(30))))
        .execute(&mut env.conn)
        .await
        .expect("offline");
    [a, b, c, d, e]
}

#[tokio::test]
async fn sweep_abandoned_ends_idle_sessions_whose_reader_is_offline() {
    let mut env = Env::new(1).await;
    let now = local(date("2026-02-03"), 11, 0);
    let [a, b, c, d, e] = sweep_day(&mut env, now).await;

    let done = sweep_abandoned(&mut env.conn, &env.settings, run(Job::AbandonedSweep, now, false)).await.expect("run");
    assert_eq!(done, report(&[("sessions_abandoned", 2), ("visits_closed", 1), ("supervisors_ended", 2)]));
    assert_eq!(env.session_end(a).await, Some(now));
    assert_eq!(env.session_end(d).await, Some(now));
    for kept in [b, c, e] {
        assert_eq!(env.session_end(kept).await, None, "session {kept} is not abandoned");
    }
    assert_eq!(env.exits(0).await, [Some(now)], "the pupil in A is in transit");
    assert_eq!(env.supervisor_end(a).await, [Some(date("2026-02-03"))]);
    let mut ended = env.ended_events().await;
    ended.sort();
    assert_eq!(ended, [a, d]);

    // A scan keeps a session alive: B's reader goes offline but B was just used.
    let readers = env.school.readers.clone();
    env.seen(&readers[1], now - Duration::hours(1)).await;
    assert_eq!(env.scan(&readers[1], 0, now + Duration::minutes(1)).await, "checked_in/ok");
    // (14 minutes on: the small room's 60-minute session is not yet due either.)
    let later = now + Duration::minutes(14);
    let done =
        sweep_abandoned(&mut env.conn, &env.settings, run(Job::AbandonedSweep, later, false)).await.expect("run");
    assert_eq!(done.get("sessions_abandoned"), 0, "{done:?}");
}

#[tokio::test]
async fn sweep_abandoned_dry_run_counts_and_changes_nothing() {
    let mut env = Env::new(1).await;
    let now = local(date("2026-02-03"), 11, 0);
    sweep_day(&mut env, now).await;
    let before = env.fingerprint().await;
    let dry = sweep_abandoned(&mut env.conn, &env.settings, run(Job::AbandonedSweep, now, true)).await.expect("dry");
    assert_eq!(dry, report(&[("sessions_abandoned", 2), ("visits_closed", 1), ("supervisors_ended", 2)]));
    assert_eq!(env.fingerprint().await, before);
}

/// Pupil 0 arrived on Fri 6 Mar and 1 on Mon 9 Mar and nobody checked them out; 2 went home
/// through the gate on 9 Mar; 3 is in an evening session of 9 Mar still running; 4 arrived
/// today (10 Mar, before the close).
async fn close_days(env: &mut Env) -> i64 {
    let rooms = env.school.rooms.clone();
    let readers = env.school.readers.clone();
    let gate = env.school.gate.clone();
    let (fri, mon, tue) = (date("2026-03-06"), date("2026-03-09"), date("2026-03-10"));
    assert_eq!(env.scan(&gate, 0, local(fri, 8, 0)).await, "checked_in/ok");
    assert_eq!(env.scan(&gate, 1, local(mon, 8, 0)).await, "checked_in/ok");
    assert_eq!(env.scan(&gate, 2, local(mon, 8, 0)).await, "checked_in/ok");
    assert_eq!(env.scan(&gate, 2, local(mon, 16, 0)).await, "checked_out/ok");
    let evening = env.start(rooms[0], local(mon, 19, 0), 480).await;
    assert_eq!(env.scan(&readers[0], 3, local(mon, 19, 30)).await, "checked_in/ok");
    assert_eq!(env.scan(&gate, 4, local(tue, 0, 2)).await, "checked_in/ok");
    evening
}

#[tokio::test]
async fn close_attendance_checks_out_pupils_left_open_with_the_flag() {
    let mut env = Env::new(5).await;
    let evening = close_days(&mut env).await;
    let (fri, mon, tue) = (date("2026-03-06"), date("2026-03-09"), date("2026-03-10"));
    let now = local(tue, 0, 5);

    let done =
        close_attendance(&mut env.conn, &env.settings, run(Job::AttendanceClose, now, false)).await.expect("run");
    assert_eq!(
        done,
        report(&[
            ("sessions_ended", 1),
            ("visits_closed", 1),
            ("supervisors_ended", 1),
            ("attendance_closed", 3),
            ("days", 2),
        ])
    );
    // 23:59:59 CET of each row's own date, flagged.
    assert_eq!(env.days(0).await, [(fri, Some(utc("2026-03-06T22:59:59Z")), true)]);
    assert_eq!(env.days(1).await, [(mon, Some(utc("2026-03-09T22:59:59Z")), true)]);
    assert_eq!(env.days(3).await, [(mon, Some(utc("2026-03-09T22:59:59Z")), true)]);
    let gone = env.days(2).await;
    assert_eq!((gone.len(), gone[0].1, gone[0].2), (1, Some(local(mon, 16, 0)), false), "checked out by the gate");
    assert_eq!(env.days(4).await, [(tue, None, false)], "today's row stays open");
    // The evening session ended at the end of its day, its pupil's visit with it.
    assert_eq!(env.session_end(evening).await, Some(utc("2026-03-09T23:00:00Z")));
    assert_eq!(env.exits(3).await, [Some(utc("2026-03-09T23:00:00Z"))]);
    assert_eq!(env.ended_events().await, [evening]);

    // The office sees it in the attendance API.
    let mut client = ActiveServiceClient::new(env.app.test_channel(Domain::Active).await);
    for (i, day, flagged) in [(1, mon, true), (2, mon, false)] {
        let a = client
            .get_attendance(pb::GetAttendanceRequest { student_id: env.pupil(i), date: day.to_string() })
            .await
            .expect("get attendance")
            .into_inner()
            .attendance
            .expect("attendance");
        assert_eq!((a.status(), a.closed_by_system), (pb::AttendanceStatus::GoneHome, flagged), "pupil {i}");
    }
    let again =
        close_attendance(&mut env.conn, &env.settings, run(Job::AttendanceClose, now, false)).await.expect("rerun");
    assert_eq!((again.get("attendance_closed"), again.get("sessions_ended")), (0, 0));
}

#[tokio::test]
async fn close_attendance_dry_run_counts_and_changes_nothing() {
    let mut env = Env::new(5).await;
    close_days(&mut env).await;
    let before = env.fingerprint().await;
    let now = local(date("2026-03-10"), 0, 5);
    let dry = close_attendance(&mut env.conn, &env.settings, run(Job::AttendanceClose, now, true)).await.expect("dry");
    assert_eq!(
        dry,
        report(&[
            ("sessions_ended", 1),
            ("visits_closed", 1),
            ("supervisors_ended", 1),
            // The evening pupil's row is still open while its session runs: counted too.
            ("attendance_closed", 3),
            ("days", 2),
        ])
    );
    assert_eq!(env.fingerprint().await, before);
}

/// One school day `day` as the jobs see it, `now` injected: pupil 0 arrives at the gate and
/// goes to room A; pupil 1 too and goes home at 17:00; the day's session ends at 18:00;
/// pupil 0 joins an evening session in room B; just after midnight the close runs.
async fn school_day(env: &mut Env, day: NaiveDate, evening_end: DateTime<Utc>, day_end: DateTime<Utc>) {
    let rooms = env.school.rooms.clone();
    let readers = env.school.readers.clone();
    let gate = env.school.gate.clone();
    let next = day.succ_opt().expect("next day");
    assert_eq!(env.scan(&gate, 0, local(day, 7, 30)).await, "checked_in/ok", "{day}: a new business day");
    assert_eq!(env.scan(&gate, 1, local(day, 7, 31)).await, "checked_in/ok", "{day}");
    let a = env.start(rooms[0], local(day, 8, 0), 30).await;
    assert_eq!(env.scan(&readers[0], 0, local(day, 8, 5)).await, "checked_in/ok", "{day}");
    assert_eq!(env.scan(&readers[0], 1, local(day, 8, 6)).await, "checked_in/ok", "{day}");
    assert_eq!(env.scan(&gate, 1, local(day, 17, 0)).await, "checked_out/ok", "{day}: pupil 1 goes home");

    let ended = end_sessions(&mut env.conn, &env.settings, run(Job::SessionEnd, local(day, 18, 0), false))
        .await
        .expect("session end");
    assert_eq!((ended.get("sessions_ended"), ended.get("visits_closed")), (1, 1), "{day}");
    let at_six = local(day, 18, 0);
    assert_eq!(env.session_end(a).await, Some(at_six), "{day}");
    assert_eq!(env.exits(0).await.last().copied().flatten(), Some(at_six), "{day}: pupil 0 in transit");

    let b = env.start(rooms[1], local(day, 19, 0), 480).await;
    assert_eq!(env.scan(&readers[1], 0, local(day, 19, 5)).await, "checked_in/ok", "{day}: evening");

    let close = local(next, 0, 5);
    let closed = close_attendance(&mut env.conn, &env.settings, run(Job::AttendanceClose, close, false))
        .await
        .expect("attendance close");
    assert_eq!(
        (closed.get("sessions_ended"), closed.get("visits_closed"), closed.get("attendance_closed")),
        (1, 1, 1),
        "{day}"
    );
    assert_eq!(env.session_end(b).await, Some(evening_end), "{day}: the evening session ends with its day");
    let rows = env.days(0).await;
    assert_eq!(rows.last().copied(), Some((day, Some(day_end), true)), "{day}: closed by the system");
    let rows = env.days(1).await;
    assert_eq!(rows.last().copied(), Some((day, Some(local(day, 17, 0)), false)), "{day}: went home");
}

#[tokio::test]
async fn a_school_week_across_midnights_and_both_dst_changes() {
    let mut env = Env::new(2).await;
    // (day, the evening session's end = the next local midnight, 23:59:59 local of the day)
    let days = [
        ("2026-03-27", "2026-03-27T23:00:00Z", "2026-03-27T22:59:59Z"),
        // The night into 29 Mar loses 02:00–03:00; 28 Mar itself is still CET.
        ("2026-03-28", "2026-03-28T23:00:00Z", "2026-03-28T22:59:59Z"),
        // 29 Mar has 23 hours: its 18:00 is CEST, its end 22:00 UTC.
        ("2026-03-29", "2026-03-29T22:00:00Z", "2026-03-29T21:59:59Z"),
        ("2026-03-30", "2026-03-30T22:00:00Z", "2026-03-30T21:59:59Z"),
        ("2026-10-23", "2026-10-23T22:00:00Z", "2026-10-23T21:59:59Z"),
        ("2026-10-24", "2026-10-24T22:00:00Z", "2026-10-24T21:59:59Z"),
        // 25 Oct has 25 hours: 02:00–03:00 twice; its end is CET again.
        ("2026-10-25", "2026-10-25T23:00:00Z", "2026-10-25T22:59:59Z"),
        ("2026-10-26", "2026-10-26T23:00:00Z", "2026-10-26T22:59:59Z"),
    ];
    for (day, evening_end, day_end) in days {
        school_day(&mut env, date(day), utc(evening_end), utc(day_end)).await;
    }
    // The session end followed the local clock: 18:00 CET = 17:00 UTC, 18:00 CEST = 16:00 UTC.
    let ends: Vec<DateTime<Utc>> = groups::table
        .filter(groups::room_id.eq(env.school.rooms[0]))
        .order(groups::start_time)
        .select(groups::end_time.assume_not_null())
        .load(&mut env.conn)
        .await
        .expect("ends");
    let hours: Vec<u32> = ends.iter().map(chrono::Timelike::hour).collect();
    assert_eq!(hours, [17, 17, 16, 16, 16, 16, 17, 17]);
    // One row per pupil and business day, every one closed.
    assert_eq!(env.days(0).await.len(), days.len());
    assert_eq!(
        count(&mut env.conn, "SELECT count(*) AS n FROM active.attendance WHERE check_out_time IS NULL").await,
        0
    );
    // The morning after the last close: a new business day.
    let gate = env.school.gate.clone();
    assert_eq!(env.scan(&gate, 0, utc("2026-10-27T06:00:00Z")).await, "checked_in/ok");
    assert_eq!(env.days(0).await.last().map(|d| d.0), Some(date("2026-10-27")));
}

#[tokio::test]
async fn two_replicas_running_one_job_do_its_work_once() {
    let mut env = Env::new(2).await;
    let (day, [a, _, c]) = end_time_day(&mut env).await;
    let shutdown = ShutdownToken::new();
    let ctx = env.app.context.domain_context(&shutdown).await;
    let spec = jobs::specs(&ctx).into_iter().find(|s| s.job == Job::SessionEnd).expect("session_end spec");
    let pool = env.app.db.pool().await;
    let now = local(day, 18, 0);

    // Hold session A's row lock elsewhere, so the first run is still working when the
    // second one starts.
    let mut blocker = env.app.db.conn().await;
    diesel::sql_query("BEGIN").execute(&mut blocker).await.expect("begin");
    diesel::sql_query(format!("SELECT id FROM active.groups WHERE id = {a} FOR UPDATE"))
        .execute(&mut blocker)
        .await
        .expect("lock");
    let first = {
        let (pool, spec) = (pool.clone(), spec.clone());
        tokio::spawn(async move { run_once(&pool, &spec, Trigger::Schedule, now, false).await })
    };
    // The first run holds the job lock (it waits on session A's row meanwhile).
    let mut held = false;
    for _ in 0..200 {
        let n = count(
            &mut env.conn,
            &format!(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND classid = {} AND objid = {}",
                phoenix_common::jobs::LOCK_NAMESPACE,
                Job::SessionEnd.lock_id()
            ),
        )
        .await;
        if n > 0 {
            held = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(held, "the first run took the job lock");
    let second = run_once(&pool, &spec, Trigger::Cli, now, false).await.expect("second replica");
    assert_eq!(second, RunOutcome::AlreadyRunning);
    diesel::sql_query("COMMIT").execute(&mut blocker).await.expect("commit");
    let first = first.await.expect("join").expect("first replica");
    let RunOutcome::Done(done) = first else { panic!("the first run did the work: {first:?}") };
    assert_eq!(done.get("sessions_ended"), 2);
    let mut ended = env.ended_events().await;
    ended.sort();
    let mut want = vec![a, c];
    want.sort();
    assert_eq!(ended, want, "each session ended once");
}
