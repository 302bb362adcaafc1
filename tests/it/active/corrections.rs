//! `CorrectionService` over real gRPC with real tokens: a visit's times and room corrected,
//! a pupil checked in at a past time; the rows afterwards and the audit record exactly, the
//! presence events, every refusal (bad input, overlaps, outside a session), and who may not
//! correct (a teacher outside their groups, a supervisor moving a pupil into someone else's
//! session, a guardian).

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_common::time::to_timestamp;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::correction_service_client::CorrectionServiceClient;
use phoenix_tests::auth::{PASSWORD, TestChannel, create_account, mint_token, role_permissions};
use phoenix_tests::grpc::{As, assert_code, assert_invalid, reason, request};
use phoenix_tests::school::{ActiveSchool, count, events, open_visit_count, open_visit_room};
use serde_json::{Value, json};
use tonic::Code;

type Corrections = CorrectionServiceClient<TestChannel>;

async fn corrections(env: &ActiveSchool) -> Corrections {
    CorrectionServiceClient::new(env.app.test_channel(Domain::Active).await)
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn one_id(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Id>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).id
}

fn sql_time(t: DateTime<Utc>) -> String {
    format!("'{}'::timestamptz", t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// The audit trail's spelling of an instant.
fn audit_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, to the microsecond the database keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A minute, or less in the first 100 minutes of the school's day (Europe/Berlin), so that
/// a timeline of up to 100 of them back from `t0` stays on `t0`'s business date: the
/// service checks a pupil out for *today*, whatever the wall clock says.
fn minute_within_today(t0: DateTime<Utc>) -> Duration {
    let berlin = chrono_tz::Europe::Berlin;
    let midnight = t0.with_timezone(&berlin).date_naive().and_time(chrono::NaiveTime::MIN);
    let since = midnight.and_local_timezone(berlin).earliest().map_or(Duration::days(1), |start| t0 - start.to_utc());
    Duration::minutes(1).min(Duration::microseconds((since / 100).num_microseconds().unwrap_or(i64::MAX)))
}

/// Moves the start of session `id` to `at`.
async fn start_session_at(conn: &mut AsyncPgConnection, id: i64, at: DateTime<Utc>) {
    exec(conn, &format!("UPDATE active.groups SET start_time = {} WHERE id = {id}", sql_time(at))).await;
}

/// A visit of `student` in `session`, inserted as it would be on record.
async fn visit(
    conn: &mut AsyncPgConnection,
    student: i64,
    session: i64,
    entry: DateTime<Utc>,
    exit: Option<DateTime<Utc>>,
) -> i64 {
    let exit = exit.map_or_else(|| "NULL".to_owned(), sql_time);
    one_id(
        conn,
        &format!(
            "INSERT INTO active.visits (student_id, active_group_id, entry_time, exit_time) \
             VALUES ({student}, {session}, {}, {exit}) RETURNING id",
            sql_time(entry)
        ),
    )
    .await
}

/// Today's attendance of `student`, arrived at `at`.
async fn arrived(conn: &mut AsyncPgConnection, student: i64, at: DateTime<Utc>) {
    exec(
        conn,
        &format!(
            "INSERT INTO active.attendance (student_id, date, check_in_time) \
             VALUES ({student}, (({})  AT TIME ZONE 'Europe/Berlin')::date, {})",
            sql_time(at),
            sql_time(at)
        ),
    )
    .await;
}

#[derive(QueryableByName, Debug, PartialEq)]
struct VisitRow {
    #[diesel(sql_type = BigInt)]
    session_id: i64,
    #[diesel(sql_type = Timestamptz)]
    entry_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    exit_time: Option<DateTime<Utc>>,
}

async fn visit_row(conn: &mut AsyncPgConnection, id: i64) -> (i64, DateTime<Utc>, Option<DateTime<Utc>>) {
    let r: VisitRow = diesel::sql_query(format!(
        "SELECT active_group_id AS session_id, entry_time, exit_time FROM active.visits WHERE id = {id}"
    ))
    .get_result(conn)
    .await
    .expect("visit row");
    (r.session_id, r.entry_time, r.exit_time)
}

#[derive(QueryableByName, Debug)]
struct AuditRow {
    #[diesel(sql_type = Text)]
    entity_type: String,
    #[diesel(sql_type = BigInt)]
    entity_id: i64,
    #[diesel(sql_type = BigInt)]
    student_id: i64,
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = Text)]
    old_values: String,
    #[diesel(sql_type = Text)]
    new_values: String,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Text)]
    changed_by: String,
}

/// Every audit row about visits, oldest first: (entity, visit, student, action, old, new, reason, by).
async fn audit_rows(conn: &mut AsyncPgConnection) -> Vec<(String, i64, i64, String, Value, Value, String, String)> {
    let rows: Vec<AuditRow> = diesel::sql_query(
        "SELECT entity_type, entity_id, student_id, action, old_values::text AS old_values, \
         new_values::text AS new_values, reason, changed_by FROM audit.data_changes ORDER BY id",
    )
    .load(conn)
    .await
    .expect("audit rows");
    rows.into_iter()
        .map(|r| {
            let parse = |s: &str| serde_json::from_str::<Value>(s).expect("json");
            (
                r.entity_type,
                r.entity_id,
                r.student_id,
                r.action,
                parse(&r.old_values),
                parse(&r.new_values),
                r.reason,
                r.changed_by,
            )
        })
        .collect()
}

/// `account:<id>` of staff member `staff`'s login (made by the test channel on first use).
async fn account_of(conn: &mut AsyncPgConnection, staff: i64) -> String {
    let id = one_id(
        conn,
        &format!(
            "SELECT p.account_id AS id FROM users.staff s JOIN users.persons p ON p.id = s.person_id WHERE s.id = {staff}"
        ),
    )
    .await;
    format!("account:{id}")
}

fn correction(visit: i64) -> pb::CorrectVisitRequest {
    pb::CorrectVisitRequest { visit_id: visit, reason: "Leser defekt".into(), ..Default::default() }
}

fn check_in_at(student: i64, room: i64, at: DateTime<Utc>) -> pb::CheckInAtRequest {
    pb::CheckInAtRequest {
        student_id: student,
        room_id: room,
        at: Some(to_timestamp(at)),
        reason: "Leser defekt".into(),
    }
}

fn visit_values(session: i64, room: i64, entry: DateTime<Utc>, exit: Option<DateTime<Utc>>) -> Value {
    json!({
        "session_id": session,
        "room_id": room,
        "entry_time": audit_time(entry),
        "exit_time": exit.map(audit_time),
    })
}

#[tokio::test]
async fn a_closed_visit_is_moved_in_time_and_room_with_its_audit_record() {
    let mut env = ActiveSchool::new(2, 2).await;
    let rooms = env.school.rooms.clone();
    let (sa, sb) = (env.session(rooms[0]).await, env.session(rooms[1]).await);
    let (teacher, p0) = (env.teacher, env.pupil(0));
    let t0 = now();
    let mut conn = env.conn().await;
    for s in [sa, sb] {
        start_session_at(&mut conn, s, t0 - Duration::minutes(60)).await;
    }
    let (entry, exit) = (t0 - Duration::minutes(50), t0 - Duration::minutes(40));
    let v = visit(&mut conn, p0, sa, entry, Some(exit)).await;
    arrived(&mut conn, p0, entry).await;
    let mut c = corrections(&env).await;

    let (new_entry, new_exit) = (t0 - Duration::minutes(55), t0 - Duration::minutes(45));
    let req = pb::CorrectVisitRequest {
        entry_time: Some(to_timestamp(new_entry)),
        exit_time: Some(to_timestamp(new_exit)),
        room_id: Some(rooms[1]),
        ..correction(v)
    };
    let done = c.correct_visit(request(As::Staff(teacher), req)).await.expect("teacher corrects").into_inner();
    let got = done.visit.expect("visit");
    assert_eq!((got.id, got.student_id, got.session_id, got.room_id, got.open), (v, p0, sb, rooms[1], false));
    assert_eq!(got.entry_time, Some(to_timestamp(new_entry)));
    assert_eq!(got.exit_time, Some(to_timestamp(new_exit)));
    assert_eq!(visit_row(&mut conn, v).await, (sb, new_entry, Some(new_exit)));
    let arrival = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM active.attendance WHERE student_id = {p0} AND check_in_time = {}",
            sql_time(new_entry)
        ),
    )
    .await;
    assert_eq!(arrival, 1, "the day's arrival moved to the earlier entry");

    let date = (new_entry.with_timezone(&chrono_tz::Europe::Berlin)).date_naive().to_string();
    let mut old = visit_values(sa, rooms[0], entry, Some(exit));
    old["attendance"] = json!({ "date": date, "check_in_time": audit_time(entry) });
    let mut new = visit_values(sb, rooms[1], new_entry, Some(new_exit));
    new["attendance"] = json!({ "date": date, "check_in_time": audit_time(new_entry) });
    let by = account_of(&mut conn, teacher).await;
    assert_eq!(
        audit_rows(&mut conn).await,
        vec![("visit".into(), v, p0, "visit_corrected".into(), old, new, "Leser defekt".into(), by)]
    );
    assert_eq!(
        one_id(&mut conn, "SELECT max(id) AS id FROM audit.data_changes").await,
        done.audit_id,
        "the response names the audit row"
    );
    assert!(
        events(&mut conn, &["checked_in", "checked_out", "transferred"]).await.is_empty(),
        "a closed visit's correction changes nobody's whereabouts"
    );

    // The audit trail is append-only.
    let tamper = diesel::sql_query("UPDATE audit.data_changes SET reason = 'x'").execute(&mut conn).await;
    assert!(tamper.is_err(), "audit.data_changes refuses updates");
}

#[tokio::test]
async fn correcting_an_open_visit_transfers_or_checks_out_the_pupil() {
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    let (sa, sb) = (env.session(rooms[0]).await, env.session(rooms[1]).await);
    let p0 = env.pupil(0);
    let t0 = now();
    let mut conn = env.conn().await;
    for s in [sa, sb] {
        start_session_at(&mut conn, s, t0 - Duration::minutes(60)).await;
    }
    let v = visit(&mut conn, p0, sa, t0 - Duration::minutes(30), None).await;
    arrived(&mut conn, p0, t0 - Duration::minutes(30)).await;
    let mut c = corrections(&env).await;

    // Really in room B: a transfer, the visit stays open.
    let moved = c.correct_visit(pb::CorrectVisitRequest { room_id: Some(rooms[1]), ..correction(v) }).await;
    let moved = moved.expect("move the open visit").into_inner().visit.expect("visit");
    assert_eq!((moved.session_id, moved.room_id, moved.open), (sb, rooms[1], true));
    assert_eq!(open_visit_room(&mut conn, p0).await, Some(rooms[1]));

    // Left 5 minutes ago: checked out.
    let out = t0 - Duration::minutes(5);
    let closed = c.correct_visit(pb::CorrectVisitRequest { exit_time: Some(to_timestamp(out)), ..correction(v) }).await;
    let closed = closed.expect("close the open visit").into_inner().visit.expect("visit");
    assert!(!closed.open);
    assert_eq!(visit_row(&mut conn, v).await, (sb, t0 - Duration::minutes(30), Some(out)));
    assert_eq!(open_visit_count(&mut conn, p0).await, 0);
    assert_eq!(
        events(&mut conn, &["checked_in", "checked_out", "transferred"]).await,
        vec![
            ("transferred".into(), Some(p0), Some(sb), Some(rooms[1]), Some(rooms[0])),
            ("checked_out".into(), Some(p0), Some(sb), Some(rooms[1]), None),
        ]
    );
    let rows = audit_rows(&mut conn).await;
    assert_eq!(rows.len(), 2);
    let values = |exit: Option<DateTime<Utc>>| {
        let mut v = visit_values(sb, rooms[1], t0 - Duration::minutes(30), exit);
        v["attendance"] = Value::Null;
        v
    };
    assert_eq!(
        (&rows[1].3, &rows[1].4, &rows[1].5),
        (&"visit_corrected".to_owned(), &values(None), &values(Some(out)))
    );
}

#[tokio::test]
async fn visits_never_overlap_and_stay_inside_a_session_of_their_room() {
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    let (sa, sb) = (env.session(rooms[0]).await, env.session(rooms[1]).await);
    let p0 = env.pupil(0);
    let t0 = now();
    let mut conn = env.conn().await;
    for s in [sa, sb] {
        start_session_at(&mut conn, s, t0 - Duration::minutes(60)).await;
    }
    let m = |n: i64| t0 - Duration::minutes(n);
    let first = visit(&mut conn, p0, sa, m(50), Some(m(40))).await;
    let open = visit(&mut conn, p0, sb, m(30), None).await;
    arrived(&mut conn, p0, m(50)).await;
    let mut c = corrections(&env).await;
    let at = |v: i64, entry: Option<i64>, exit: Option<i64>| pb::CorrectVisitRequest {
        entry_time: entry.map(|n| to_timestamp(m(n))),
        exit_time: exit.map(|n| to_timestamp(m(n))),
        ..correction(v)
    };

    // Overlaps, whichever visit moves; touching is fine.
    let into_open = c.correct_visit(at(first, None, Some(25))).await;
    assert_eq!(reason(&assert_code(into_open, Code::FailedPrecondition)).as_deref(), Some("VISIT_OVERLAP"));
    let back = c.correct_visit(at(open, Some(45), None)).await;
    assert_eq!(reason(&assert_code(back, Code::FailedPrecondition)).as_deref(), Some("VISIT_OVERLAP"));
    c.correct_visit(at(first, None, Some(30))).await.expect("ends when the next begins");
    assert_eq!(visit_row(&mut conn, first).await, (sa, m(50), Some(m(30))));

    // A check-in at a past time may not reach back into another visit: one open visit.
    let before_open = c.check_in_at(check_in_at(p0, rooms[0], m(35))).await;
    assert_eq!(reason(&assert_code(before_open, Code::FailedPrecondition)).as_deref(), Some("VISIT_OVERLAP"));
    let before_all = c.check_in_at(check_in_at(p0, rooms[0], m(55))).await;
    assert_eq!(reason(&assert_code(before_all, Code::FailedPrecondition)).as_deref(), Some("VISIT_OVERLAP"));
    assert_eq!(open_visit_count(&mut conn, p0).await, 1);

    // Inside a session of the room: not before it began, not in a room without one.
    let early = c.correct_visit(at(first, Some(70), None)).await;
    assert_eq!(reason(&assert_code(early, Code::FailedPrecondition)).as_deref(), Some("OUTSIDE_SESSION"));
    let idle = c.correct_visit(pb::CorrectVisitRequest { room_id: Some(rooms[2]), ..correction(first) }).await;
    assert_eq!(reason(&assert_code(idle, Code::FailedPrecondition)).as_deref(), Some("OUTSIDE_SESSION"));

    // Bad input: every field named; the stored entry counts for "exit after entry".
    let future =
        pb::CorrectVisitRequest { entry_time: Some(to_timestamp(t0 + Duration::hours(1))), ..correction(first) };
    assert_invalid(c.correct_visit(future).await, &["entry_time"]);
    assert_invalid(c.correct_visit(at(first, None, Some(55))).await, &["exit_time"]);
    assert_invalid(c.correct_visit(at(first, Some(20), Some(25))).await, &["exit_time"]);
    assert_invalid(c.correct_visit(correction(first)).await, &["entry_time", "exit_time", "room_id"]);
    let unknown_room = pb::CorrectVisitRequest { room_id: Some(rooms[0] + 10_000), ..correction(first) };
    assert_invalid(c.correct_visit(unknown_room).await, &["room_id"]);
    let blank =
        pb::CorrectVisitRequest { visit_id: 0, room_id: Some(rooms[1]), reason: " ".into(), ..Default::default() };
    assert_invalid(c.correct_visit(blank).await, &["visit_id", "reason"]);
    let missing = pb::CorrectVisitRequest { room_id: Some(rooms[1]), ..correction(open + 10_000) };
    assert_code(c.correct_visit(missing).await, Code::NotFound);

    // Only the one correction that passed is on record.
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM audit.data_changes").await, 1);
    assert_eq!(visit_row(&mut conn, open).await, (sb, m(30), None));
}

#[tokio::test]
async fn check_in_at_opens_the_visit_at_the_time_given() {
    let mut env = ActiveSchool::new(3, 3).await;
    let rooms = env.school.rooms.clone();
    let (sa, sb) = (env.session(rooms[0]).await, env.session(rooms[1]).await);
    let (teacher, p0, p1, p2) = (env.teacher, env.pupil(0), env.pupil(1), env.pupil(2));
    let t0 = now();
    let minute = minute_within_today(t0);
    let m = |n: i64| t0 - minute * n as i32;
    let mut conn = env.conn().await;
    for s in [sa, sb] {
        start_session_at(&mut conn, s, m(60)).await;
    }
    let earlier = visit(&mut conn, p0, sa, m(40), None).await;
    arrived(&mut conn, p0, m(40)).await;
    let mut c = corrections(&env).await;
    let date = m(30).with_timezone(&chrono_tz::Europe::Berlin).date_naive().to_string();

    // In room A since 40 minutes, in room B since 20 (the reader there was broken).
    let done = c.check_in_at(request(As::Staff(teacher), check_in_at(p0, rooms[1], m(20)))).await;
    let done = done.expect("teacher checks in at a past time").into_inner();
    let v = done.visit.expect("visit");
    assert_eq!((v.student_id, v.session_id, v.room_id, v.open), (p0, sb, rooms[1], true));
    assert_eq!(v.entry_time, Some(to_timestamp(m(20))));
    assert_eq!((done.closed_visit_id, done.arrived), (Some(earlier), false));
    assert_eq!(visit_row(&mut conn, earlier).await, (sa, m(40), Some(m(20))));
    assert_eq!(visit_row(&mut conn, v.id).await, (sb, m(20), None));
    let by = account_of(&mut conn, teacher).await;

    // A first visit of the day: the arrival is recorded at that time, by the teacher.
    let first = c.check_in_at(request(As::Staff(teacher), check_in_at(p1, rooms[0], m(30)))).await;
    let first = first.expect("first check-in of the day").into_inner();
    assert!(first.arrived);
    let p1_visit = first.visit.expect("visit").id;
    let day = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM active.attendance WHERE student_id = {p1} AND check_in_time = {} \
             AND checked_in_by = {teacher} AND check_out_time IS NULL",
            sql_time(m(30))
        ),
    )
    .await;
    assert_eq!(day, 1);

    let mut closed = visit_values(sa, rooms[0], m(40), Some(m(20)));
    closed["id"] = json!(earlier);
    let mut was_open = visit_values(sa, rooms[0], m(40), None);
    was_open["id"] = json!(earlier);
    assert_eq!(
        audit_rows(&mut conn).await,
        vec![
            (
                "visit".into(),
                v.id,
                p0,
                "checked_in_at".into(),
                json!({ "open_visit": was_open, "attendance": null }),
                json!({ "visit": visit_values(sb, rooms[1], m(20), None), "closed_visit": closed, "attendance": null }),
                "Leser defekt".into(),
                by.clone(),
            ),
            (
                "visit".into(),
                p1_visit,
                p1,
                "checked_in_at".into(),
                json!({ "open_visit": null, "attendance": null }),
                json!({
                    "visit": visit_values(sa, rooms[0], m(30), None),
                    "closed_visit": null,
                    "attendance": { "date": date, "check_in_time": audit_time(m(30)) },
                }),
                "Leser defekt".into(),
                by,
            ),
        ]
    );
    assert_eq!(
        events(&mut conn, &["checked_in", "checked_out", "transferred"]).await,
        vec![
            ("transferred".into(), Some(p0), Some(sb), Some(rooms[1]), Some(rooms[0])),
            ("checked_in".into(), Some(p1), Some(sa), Some(rooms[0]), None),
        ]
    );

    // Refusals, none of which writes anything.
    let again = c.check_in_at(check_in_at(p0, rooms[1], m(10))).await;
    assert_eq!(reason(&assert_code(again, Code::FailedPrecondition)).as_deref(), Some("STUDENT_CHECKED_IN"));
    let idle = c.check_in_at(check_in_at(p2, rooms[2], m(10))).await;
    assert_eq!(reason(&assert_code(idle, Code::FailedPrecondition)).as_deref(), Some("OUTSIDE_SESSION"));
    let before_start = c.check_in_at(check_in_at(p2, rooms[0], m(90))).await;
    assert_eq!(reason(&assert_code(before_start, Code::FailedPrecondition)).as_deref(), Some("OUTSIDE_SESSION"));
    assert_invalid(c.check_in_at(check_in_at(p2, rooms[0], t0 + Duration::minutes(5))).await, &["at"]);
    assert_invalid(c.check_in_at(check_in_at(p2, rooms[0], t0 - Duration::days(8))).await, &["at"]);
    assert_invalid(c.check_in_at(check_in_at(p2, rooms[0] + 10_000, m(10))).await, &["room_id"]);
    assert_invalid(c.check_in_at(pb::CheckInAtRequest::default()).await, &["student_id", "room_id", "at", "reason"]);
    assert_code(c.check_in_at(check_in_at(p2 + 10_000, rooms[0], m(10))).await, Code::NotFound);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM audit.data_changes").await, 2);

    // Gone home for the day: not checked in again by hand.
    env.client
        .check_out_for_day(pb::CheckOutForDayRequest {
            student_id: p1,
            destination: pb::CheckoutDestination::Home as i32,
        })
        .await
        .expect("p1 goes home");
    let home = c.check_in_at(check_in_at(p1, rooms[1], m(1))).await;
    assert_eq!(reason(&assert_code(home, Code::FailedPrecondition)).as_deref(), Some("GONE_HOME"));
}

#[tokio::test]
async fn only_the_pupils_staff_and_supervisors_correct_never_a_guardian() {
    // Pupil 0 is the teacher's; pupil 1 is in another group.
    let mut env = ActiveSchool::new(2, 1).await;
    let rooms = env.school.rooms.clone();
    let (sa, sb) = (env.session(rooms[0]).await, env.session(rooms[1]).await);
    let (teacher, stranger, lead) = (env.teacher, env.stranger, env.school.staff);
    let (p0, p1) = (env.pupil(0), env.pupil(1));
    // A session of room C that only the stranger supervises.
    let sc = phoenix_tests::school::start_session(&mut env.client, rooms[2], env.school.activity, stranger).await;
    let t0 = now();
    let m = |n: i64| t0 - Duration::minutes(n);
    let mut conn = env.conn().await;
    for s in [sa, sb, sc] {
        start_session_at(&mut conn, s, m(60)).await;
    }
    let v0 = visit(&mut conn, p0, sa, m(50), Some(m(40))).await;
    let v1 = visit(&mut conn, p1, sa, m(50), Some(m(40))).await;
    let mut c = corrections(&env).await;
    let earlier = |v: i64| pb::CorrectVisitRequest { entry_time: Some(to_timestamp(m(45))), ..correction(v) };

    // A teacher outside the pupil's group, a staff member who supervises nothing of it.
    let other_group = c.correct_visit(request(As::Staff(teacher), earlier(v1))).await;
    assert!(assert_code(other_group, Code::PermissionDenied).message().contains("supervisors of the visit's session"));
    assert_code(c.correct_visit(request(As::Staff(stranger), earlier(v0))).await, Code::PermissionDenied);
    let check_in = c.check_in_at(request(As::Staff(teacher), check_in_at(p1, rooms[1], m(10)))).await;
    assert!(assert_code(check_in, Code::PermissionDenied).message().contains("not in one of your groups"));
    let check_in = c.check_in_at(request(As::Staff(lead), check_in_at(p1, rooms[1], m(10)))).await;
    assert_code(check_in, Code::PermissionDenied);

    // The session's supervisor corrects in their sessions, not into someone else's.
    c.correct_visit(request(As::Staff(lead), earlier(v1))).await.expect("supervisor of the visit's session");
    let elsewhere = pb::CorrectVisitRequest { room_id: Some(rooms[2]), ..correction(v1) };
    assert_code(c.correct_visit(request(As::Staff(lead), elsewhere)).await, Code::PermissionDenied);
    let allowed = pb::CorrectVisitRequest { room_id: Some(rooms[1]), ..correction(v1) };
    c.correct_visit(request(As::Staff(lead), allowed)).await.expect("into a session they supervise");

    // A guardian has no visits:manage at all.
    let email = format!("eltern-{}@test.example", uuid::Uuid::new_v4().simple());
    let account = create_account(&env.app, &email, PASSWORD, &["guardian"], true).await;
    let token =
        mint_token(&env.app, &account.to_string(), &["guardian"], &role_permissions(&env.app, "guardian").await).await;
    let mut guardian = CorrectionServiceClient::new(env.app.channel_as(Domain::Active, &token).await);
    assert_code(guardian.correct_visit(earlier(v0)).await, Code::PermissionDenied);
    assert_code(guardian.check_in_at(check_in_at(p0, rooms[0], m(10))).await, Code::PermissionDenied);

    // Only the two allowed corrections changed anything.
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM audit.data_changes").await, 2);
    assert_eq!(visit_row(&mut conn, v0).await, (sa, m(50), Some(m(40))));
    assert_eq!(visit_row(&mut conn, v1).await, (sb, m(45), Some(m(40))));
}
