//! Visits by hand over real gRPC with real tokens: who may check a pupil in and out, every
//! refusal, the database afterwards and the presence events; lists with their access scope
//! and true totals; a manual check-in racing a reader scan.

use chrono::{Duration, Utc};
use phoenix_proto::active::v1 as pb;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, reason, request};
use phoenix_tests::school::{ActiveSchool, attendance_open, count, events, open_visit_count, open_visit_room, scan};
use tonic::Code;

fn check_in(student: i64, session: i64, transfer: bool) -> pb::CheckInStudentRequest {
    pb::CheckInStudentRequest { student_id: student, session_id: session, transfer }
}

#[tokio::test]
async fn manual_check_in_follows_the_rules() {
    // Pupils 0–2 are in the teacher's group, 3–5 in another.
    let mut env = ActiveSchool::new(6, 3).await;
    let rooms = env.school.rooms.clone();
    let (a, b) = (env.session(rooms[0]).await, env.session(rooms[1]).await);
    let small = env.session(env.school.small_room).await;
    let ended = env.session(rooms[2]).await;
    let (teacher, stranger) = (env.teacher, env.stranger);
    let p: Vec<i64> = (0..6).map(|i| env.pupil(i)).collect();
    let c = &mut env.client;
    c.end_session(pb::EndSessionRequest { id: ended }).await.expect("end");

    // Only the pupil's group teacher (or an admin) checks in by hand; the rule is named.
    let denied = c.check_in_student(request(As::Staff(stranger), check_in(p[0], a, false))).await;
    assert!(assert_code(denied, Code::PermissionDenied).message().contains("not in one of your groups"));
    let denied = c.check_in_student(request(As::Staff(teacher), check_in(p[3], a, false))).await;
    assert_code(denied, Code::PermissionDenied);

    let done = c
        .check_in_student(request(As::Staff(teacher), check_in(p[0], a, false)))
        .await
        .expect("teacher checks in")
        .into_inner();
    let visit = done.visit.expect("visit");
    assert!(done.arrived, "the first check-in of the day is the arrival");
    assert_eq!((visit.student_id, visit.session_id, visit.room_id, visit.open), (p[0], a, rooms[0], true));
    assert_eq!(done.closed_visit_id, None);
    let mut conn = env.conn().await;
    assert_eq!(open_visit_room(&mut conn, p[0]).await, Some(rooms[0]));
    assert_eq!(attendance_open(&mut conn, p[0]).await, Some(true));
    let by_teacher = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM active.attendance WHERE student_id = {} AND checked_in_by = {teacher}",
            p[0]
        ),
    )
    .await;
    assert_eq!(by_teacher, 1, "the attendance names who checked the pupil in");

    // Already checked in: refused, unless a transfer to another session.
    let c = &mut env.client;
    let twice = c.check_in_student(request(As::Staff(teacher), check_in(p[0], b, false))).await;
    assert_eq!(reason(&assert_code(twice, Code::FailedPrecondition)).as_deref(), Some("STUDENT_CHECKED_IN"));
    let moved =
        c.check_in_student(request(As::Staff(teacher), check_in(p[0], b, true))).await.expect("transfer").into_inner();
    assert_eq!(moved.closed_visit_id, Some(visit.id));
    assert!(!moved.arrived);
    let same = c.check_in_student(request(As::Staff(teacher), check_in(p[0], b, true))).await;
    assert_eq!(reason(&assert_code(same, Code::FailedPrecondition)).as_deref(), Some("STUDENT_CHECKED_IN"));

    // Ended session; room capacity (2) with the admin, who may check in anyone.
    let closed = c.check_in_student(check_in(p[1], ended, false)).await;
    assert_eq!(reason(&assert_code(closed, Code::FailedPrecondition)).as_deref(), Some("SESSION_ENDED"));
    c.check_in_student(check_in(p[3], small, false)).await.expect("first in the small room");
    c.check_in_student(check_in(p[4], small, false)).await.expect("second");
    let full = c.check_in_student(check_in(p[5], small, false)).await;
    assert_eq!(reason(&assert_code(full, Code::FailedPrecondition)).as_deref(), Some("ROOM_FULL"));
    assert_eq!(open_visit_count(&mut conn, p[5]).await, 0);
    assert_eq!(attendance_open(&mut conn, p[5]).await, None, "a refused check-in writes nothing");

    // Gone home today: no check-in by hand.
    c.check_in_student(check_in(p[1], a, false)).await.expect("check in");
    c.check_out_for_day(pb::CheckOutForDayRequest {
        student_id: p[1],
        destination: pb::CheckoutDestination::Home as i32,
    })
    .await
    .expect("gone home");
    let home = c.check_in_student(request(As::Staff(teacher), check_in(p[1], b, false))).await;
    assert_eq!(reason(&assert_code(home, Code::FailedPrecondition)).as_deref(), Some("GONE_HOME"));

    // Input and references.
    assert_invalid(c.check_in_student(check_in(0, -1, false)).await, &["student_id", "session_id"]);
    assert_code(c.check_in_student(check_in(p[5] + 1000, a, false)).await, Code::NotFound);
    assert_invalid(c.check_in_student(check_in(p[2], 777_777, false)).await, &["session_id"]);

    // Events of the successful changes only, in order.
    let logged = events(&mut conn, &["checked_in", "transferred"]).await;
    let ev = |k: &str, s: i64, session: i64, room: i64, from: Option<i64>| {
        (k.to_owned(), Some(s), Some(session), Some(room), from)
    };
    assert_eq!(
        logged,
        vec![
            ev("checked_in", p[0], a, rooms[0], None),
            ev("transferred", p[0], b, rooms[1], Some(rooms[0])),
            ev("checked_in", p[3], small, env.school.small_room, None),
            ev("checked_in", p[4], small, env.school.small_room, None),
            ev("checked_in", p[1], a, rooms[0], None),
        ]
    );
}

#[tokio::test]
async fn check_out_and_end_visit_need_the_group_or_the_session() {
    // Pupil 0 is the teacher's; pupil 1 is not.
    let mut env = ActiveSchool::new(2, 1).await;
    let rooms = env.school.rooms.clone();
    let a = env.session(rooms[0]).await;
    let b = env.session(rooms[1]).await;
    let (teacher, stranger, lead) = (env.teacher, env.stranger, env.school.staff);
    let (p0, p1) = (env.pupil(0), env.pupil(1));
    let c = &mut env.client;
    // The stranger supervises b only.
    c.update_session_supervisors(pb::UpdateSessionSupervisorsRequest {
        session_id: b,
        supervisors: vec![pb::SupervisorAssignment { staff_id: stranger, role: pb::SupervisorRole::Supervisor as i32 }],
    })
    .await
    .expect("stranger supervises b");
    c.check_in_student(check_in(p1, a, false)).await.expect("admin checks in p1");

    let out = |s| pb::CheckOutStudentRequest { student_id: s };
    // Neither the pupil's group nor the visit's session: refused, naming the rule.
    let denied = c.check_out_student(request(As::Staff(teacher), out(p1))).await;
    assert!(assert_code(denied, Code::PermissionDenied).message().contains("session you supervise"));
    assert_code(c.check_out_student(request(As::Staff(stranger), out(p1))).await, Code::PermissionDenied);
    // Combined with b, session a is the stranger's too.
    let combo = c
        .create_combined_group(pb::CreateCombinedGroupRequest {
            name: "Zusammen".into(),
            room_id: rooms[0],
            session_ids: vec![a, b],
            notes: String::new(),
        })
        .await
        .expect("combine")
        .into_inner()
        .combined_group
        .expect("cg");
    let closed = c
        .check_out_student(request(As::Staff(stranger), out(p1)))
        .await
        .expect("supervisor through the combination")
        .into_inner()
        .visit
        .expect("visit");
    assert!(!closed.open && closed.exit_time.is_some());
    let mut conn = env.conn().await;
    assert_eq!(open_visit_count(&mut conn, p1).await, 0, "in transit");
    assert_eq!(attendance_open(&mut conn, p1).await, Some(true), "still present today");
    // Not checked in any more: only someone with access to the pupil learns that.
    let c = &mut env.client;
    let status = assert_code(c.check_out_student(out(p1)).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("NOT_CHECKED_IN"));
    assert_eq!(status.message(), format!("student {p1} is not currently checked in"));
    assert_code(c.check_out_student(request(As::Staff(stranger), out(p1))).await, Code::PermissionDenied);
    c.end_combined_group(pb::EndCombinedGroupRequest { id: combo.id }).await.expect("end combination");

    // EndVisit by id: the pupil's teacher may; the session's supervisor may; others not.
    let v0 = c
        .check_in_student(request(As::Staff(teacher), check_in(p0, a, false)))
        .await
        .expect("check in p0")
        .into_inner()
        .visit
        .expect("visit")
        .id;
    assert_code(
        c.end_visit(request(As::Staff(stranger), pb::EndVisitRequest { id: v0 })).await,
        Code::PermissionDenied,
    );
    let ended = c
        .end_visit(request(As::Staff(lead), pb::EndVisitRequest { id: v0 }))
        .await
        .expect("the supervisor of a ends it")
        .into_inner()
        .visit
        .expect("visit");
    assert_eq!((ended.id, ended.open), (v0, false));
    let again = c.end_visit(request(As::Staff(teacher), pb::EndVisitRequest { id: v0 })).await;
    assert_eq!(reason(&assert_code(again, Code::FailedPrecondition)).as_deref(), Some("VISIT_ENDED"));
    assert_code(c.end_visit(pb::EndVisitRequest { id: 99_999_999 }).await, Code::NotFound);
    assert_invalid(c.end_visit(pb::EndVisitRequest { id: 0 }).await, &["id"]);
    assert_invalid(c.check_out_student(out(0)).await, &["student_id"]);

    let logged = events(&mut conn, &["checked_out"]).await;
    assert_eq!(
        logged,
        vec![
            ("checked_out".to_owned(), Some(p1), Some(a), Some(rooms[0]), None),
            ("checked_out".to_owned(), Some(p0), Some(a), Some(rooms[0]), None),
        ]
    );
}

#[tokio::test]
async fn visits_are_listed_within_the_callers_scope_with_true_totals() {
    // Pupils 0–2 are the teacher's, 3–4 not.
    let mut env = ActiveSchool::new(5, 3).await;
    let rooms = env.school.rooms.clone();
    let a = env.session(rooms[0]).await;
    let b = env.session(rooms[1]).await;
    let teacher = env.teacher;
    let p: Vec<i64> = (0..5).map(|i| env.pupil(i)).collect();
    let c = &mut env.client;
    // 7 visits: each pupil into a, then 0 and 3 move to b (closing two).
    for s in &p {
        c.check_in_student(check_in(*s, a, false)).await.expect("check in");
    }
    for s in [p[0], p[3]] {
        c.check_in_student(check_in(s, b, true)).await.expect("transfer");
    }

    let list = |f: pb::ListVisitsRequest| f;
    let all = c.list_visits(list(pb::ListVisitsRequest::default())).await.expect("all").into_inner();
    assert_eq!((all.visits.len(), all.total_size), (7, 7));
    assert!(all.visits.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    // Pages of 3: 3 + 3 + 1, the total on each, the last without a token.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_visits(pb::ListVisitsRequest { page_size: 3, page_token: token.clone(), ..Default::default() })
            .await
            .expect("page")
            .into_inner();
        assert_eq!(page.total_size, 7);
        seen.extend(page.visits.iter().map(|v| v.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, all.visits.iter().map(|v| v.id).collect::<Vec<_>>());
    let first =
        c.list_visits(pb::ListVisitsRequest { page_size: 3, ..Default::default() }).await.expect("page").into_inner();
    assert_invalid(
        c.list_visits(pb::ListVisitsRequest {
            page_size: 3,
            page_token: first.next_page_token,
            open_only: true,
            ..Default::default()
        })
        .await,
        &["page_token"],
    );

    // Filters.
    let total = |r: pb::ListVisitsResponse| r.total_size;
    let today = phoenix_common::time::business_date(Utc::now());
    let cases = [
        (pb::ListVisitsRequest { student_id: Some(p[0]), ..Default::default() }, 2),
        (pb::ListVisitsRequest { session_id: Some(b), ..Default::default() }, 2),
        (pb::ListVisitsRequest { room_id: Some(rooms[0]), ..Default::default() }, 5),
        (pb::ListVisitsRequest { open_only: true, ..Default::default() }, 5),
        (pb::ListVisitsRequest { date: today.to_string(), ..Default::default() }, 7),
        (pb::ListVisitsRequest { date: (today - Duration::days(1)).to_string(), ..Default::default() }, 0),
        (pb::ListVisitsRequest { open_only: true, session_id: Some(a), ..Default::default() }, 3),
    ];
    for (i, (req, want)) in cases.into_iter().enumerate() {
        assert_eq!(total(c.list_visits(req).await.expect("filter").into_inner()), want, "case {i}");
    }
    assert_invalid(
        c.list_visits(pb::ListVisitsRequest {
            date: "03.12.2026".into(),
            student_id: Some(0),
            page_size: -1,
            ..Default::default()
        })
        .await,
        &["date", "student_id", "page_size"],
    );

    // The teacher sees their pupils' visits (4 of pupils 0–2), not the others'.
    let theirs = c
        .list_visits(request(As::Staff(teacher), pb::ListVisitsRequest::default()))
        .await
        .expect("teacher")
        .into_inner();
    assert_eq!(theirs.total_size, 4);
    assert!(theirs.visits.iter().all(|v| p[..3].contains(&v.student_id)));
    let none = c
        .list_visits(request(
            As::Staff(teacher),
            pb::ListVisitsRequest { student_id: Some(p[3]), ..Default::default() },
        ))
        .await
        .expect("teacher, other pupil")
        .into_inner();
    assert_eq!((none.visits.len(), none.total_size), (0, 0));
    // The supervisor of a and b (school.staff) sees every visit of those sessions.
    let lead = env.school.staff;
    let c = &mut env.client;
    let supervised =
        c.list_visits(request(As::Staff(lead), pb::ListVisitsRequest::default())).await.expect("lead").into_inner();
    assert_eq!(supervised.total_size, 7);

    // GetVisit within the same scope.
    let other = all.visits.iter().find(|v| v.student_id == p[3]).expect("visit of p3").clone();
    let got = c.get_visit(pb::GetVisitRequest { id: other.id }).await.expect("admin").into_inner();
    assert_eq!(got.visit.expect("visit"), other);
    assert_code(
        c.get_visit(request(As::Staff(teacher), pb::GetVisitRequest { id: other.id })).await,
        Code::PermissionDenied,
    );
    assert_code(c.get_visit(pb::GetVisitRequest { id: 55_555_555 }).await, Code::NotFound);
    assert_invalid(c.get_visit(pb::GetVisitRequest { id: -4 }).await, &["id"]);
}

#[tokio::test]
async fn a_manual_check_in_racing_a_reader_scan_never_opens_two_visits() {
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    let _a = env.session(rooms[0]).await;
    let b = env.session(rooms[1]).await;
    let pupil = env.school.pupils[0].clone();
    let pid = pupil.id;
    let reader = env.school.readers[0].clone();
    // Every change that opened a visit: scans that checked in or transferred, manual
    // check-ins that succeeded. Both take the pupil's lock, so none is lost or doubled.
    let mut opened = 0;
    for round in 0..60 {
        let scanner = {
            let (mut c, tag, reader) = (env.client.clone(), pupil.tag.clone(), reader.clone());
            tokio::spawn(async move { scan(&mut c, &reader, &format!("race-{round}"), &tag, Utc::now()).await })
        };
        let manual = {
            let mut c = env.client.clone();
            tokio::spawn(async move { c.check_in_student(check_in(pid, b, true)).await })
        };
        let scanned = scanner.await.expect("join scan");
        // `superseded`: the manual check-in committed first and is newer than the scan's
        // scanned_at (a manual change is an ordering mark, docs/faults.md).
        assert!(matches!(scanned.code.as_str(), "ok" | "superseded"), "round {round}: {scanned:?}");
        if matches!(scanned.outcome(), pb::ScanOutcome::CheckedIn | pb::ScanOutcome::Transferred) {
            opened += 1;
        }
        match manual.await.expect("join manual") {
            Ok(r) => {
                assert!(r.into_inner().visit.expect("visit").open);
                opened += 1;
            }
            // The scan had just put the pupil into b: already there. Never Aborted (a lost
            // race on the open-visit index), never Internal.
            Err(status) => assert_eq!(reason(&status).as_deref(), Some("STUDENT_CHECKED_IN"), "{status:?}"),
        }
    }
    let mut conn = env.conn().await;
    assert!(open_visit_count(&mut conn, pid).await <= 1, "at most one open visit");
    let visits = count(&mut conn, &format!("SELECT count(*) AS n FROM active.visits WHERE student_id = {pid}")).await;
    assert_eq!(visits, opened, "each applied change opened exactly one visit");
    let closed_twice = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM active.visits WHERE student_id = {pid} AND exit_time IS NULL \
             AND id <> (SELECT max(id) FROM active.visits WHERE student_id = {pid})"
        ),
    )
    .await;
    assert_eq!(closed_twice, 0, "only the newest visit can be open");
    let changes = events(&mut conn, &["checked_in", "checked_out", "transferred"]).await;
    assert_eq!(changes.iter().filter(|e| e.0 != "checked_out").count() as i64, opened, "one event per change");
}
