//! Daily attendance, a pupil's presence and the analytics over real gRPC: states, who sees
//! what (full access, limited, no staff record), check-out for the day, paging with true
//! totals, counts and room utilisation over fixed past data.

use chrono::{Duration, Utc};
use phoenix_proto::active::v1 as pb;
use phoenix_tests::auth::{PASSWORD, bearer, create_account, mint_token, role_permissions};
use phoenix_tests::grpc::{As, assert_code, assert_invalid, reason, request};
use phoenix_tests::school::{ActiveSchool, attendance_open, count, events, open_visit_count};
use tonic::Code;

fn status_of(a: &pb::Attendance) -> pb::AttendanceStatus {
    a.status()
}

#[tokio::test]
async fn attendance_states_lists_and_check_out_for_the_day() {
    // Pupils 0–4 are the teacher's group, 5 is in another group.
    let mut env = ActiveSchool::new(6, 5).await;
    let rooms = env.school.rooms.clone();
    let a = env.session(rooms[0]).await;
    let (teacher, stranger, lead) = (env.teacher, env.stranger, env.school.staff);
    let p: Vec<i64> = (0..6).map(|i| env.pupil(i)).collect();
    let mut conn = env.conn().await;
    // 0 in a room; 1 in transit; 2 goes home (underway); 3 sick at home; 4 absent; 5 in transit.
    let c = &mut env.client;
    for s in [p[0], p[1], p[2], p[5]] {
        c.check_in_student(pb::CheckInStudentRequest { student_id: s, session_id: a, transfer: false })
            .await
            .expect("check in");
    }
    for s in [p[1], p[5]] {
        c.check_out_student(pb::CheckOutStudentRequest { student_id: s }).await.expect("check out");
    }
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!("UPDATE users.students SET sick = true, sick_since = now() WHERE id = {}", p[3])),
        &mut conn,
    )
    .await
    .expect("sick");
    let home = c
        .check_out_for_day(request(
            As::Staff(teacher),
            pb::CheckOutForDayRequest { student_id: p[2], destination: pb::CheckoutDestination::Underway as i32 },
        ))
        .await
        .expect("underway")
        .into_inner();
    assert!(home.closed_visit_id.is_some(), "the open visit was closed");
    let day = home.attendance.expect("attendance");
    assert_eq!(status_of(&day), pb::AttendanceStatus::GoneHome);
    assert_eq!(day.destination(), pb::CheckoutDestination::Underway);
    assert_eq!(day.checked_out_by_staff_id, Some(teacher));
    assert!(day.check_out_time.is_some() && day.check_in_time.is_some());
    assert_eq!(open_visit_count(&mut conn, p[2]).await, 0);
    assert_eq!(attendance_open(&mut conn, p[2]).await, Some(false));
    let stored = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM active.attendance WHERE student_id = {} AND check_out_destination = 'unterwegs' \
             AND checked_out_by = {teacher}",
            p[2]
        ),
    )
    .await;
    assert_eq!(stored, 1);

    // GetAttendance, as the teacher.
    let get = |s: i64, date: &str| {
        request(As::Staff(teacher), pb::GetAttendanceRequest { student_id: s, date: date.to_owned() })
    };
    let c = &mut env.client;
    let want = [
        (p[0], pb::AttendanceStatus::InRoom),
        (p[1], pb::AttendanceStatus::InTransit),
        (p[2], pb::AttendanceStatus::GoneHome),
        (p[3], pb::AttendanceStatus::Sick),
        (p[4], pb::AttendanceStatus::Absent),
    ];
    for (s, status) in want {
        let got = c.get_attendance(get(s, "")).await.expect("get").into_inner().attendance.expect("attendance");
        assert_eq!(status_of(&got), status, "student {s}");
    }
    let in_room = c.get_attendance(get(p[0], "")).await.expect("get").into_inner().attendance.expect("a");
    assert_eq!((in_room.room_id, in_room.session_id), (Some(rooms[0]), Some(a)));
    // Another group's pupil: admins only; another day: the day's outcome.
    assert_code(c.get_attendance(get(p[5], "")).await, Code::PermissionDenied);
    let admin = c.get_attendance(pb::GetAttendanceRequest { student_id: p[5], date: String::new() }).await;
    assert_eq!(status_of(&admin.expect("admin").into_inner().attendance.expect("a")), pb::AttendanceStatus::InTransit);
    let yesterday = (phoenix_common::time::business_date(Utc::now()) - Duration::days(1)).to_string();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO active.attendance (student_id, date, check_in_time) VALUES ({}, '{yesterday}', now() - interval '1 day')",
            p[4]
        )),
        &mut conn,
    )
    .await
    .expect("yesterday");
    let past = c.get_attendance(get(p[4], &yesterday)).await.expect("past").into_inner().attendance.expect("a");
    assert_eq!((status_of(&past), past.date.as_str()), (pb::AttendanceStatus::Present, yesterday.as_str()));
    let past_sick = c.get_attendance(get(p[3], &yesterday)).await.expect("past").into_inner().attendance.expect("a");
    assert_eq!(status_of(&past_sick), pb::AttendanceStatus::Absent, "sick is about today");
    assert_invalid(c.get_attendance(get(0, "gestern")).await, &["student_id", "date"]);
    assert_code(c.get_attendance(get(p[5] + 1000, "")).await, Code::NotFound);
    assert_code(
        c.get_attendance(pb::GetAttendanceRequest { student_id: p[5] + 1000, date: String::new() }).await,
        Code::NotFound,
    );

    // ListAttendance: every pupil, absent ones included, by id, true totals.
    let list = |status: pb::AttendanceStatus, group: Option<i64>, size: i32, token: String| pb::ListAttendanceRequest {
        page_size: size,
        page_token: token,
        date: String::new(),
        education_group_id: group,
        status: status as i32,
    };
    let all = c
        .list_attendance(list(pb::AttendanceStatus::Unspecified, None, 0, String::new()))
        .await
        .expect("all")
        .into_inner();
    assert_eq!(all.total_size, 6);
    assert_eq!(all.attendance.iter().map(|x| x.student_id).collect::<Vec<_>>(), p);
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_attendance(list(pb::AttendanceStatus::Unspecified, None, 4, token))
            .await
            .expect("page")
            .into_inner();
        assert_eq!(page.total_size, 6);
        paged.extend(page.attendance.into_iter().map(|x| x.student_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, p);
    for (status, n) in [
        (pb::AttendanceStatus::InRoom, 1),
        (pb::AttendanceStatus::InTransit, 2),
        (pb::AttendanceStatus::GoneHome, 1),
        (pb::AttendanceStatus::Sick, 1),
        (pb::AttendanceStatus::Absent, 1),
        (pb::AttendanceStatus::Present, 0),
    ] {
        let r = c.list_attendance(list(status, None, 0, String::new())).await.expect("by status").into_inner();
        assert_eq!((r.total_size, r.attendance.len() as i64), (n, n), "{status:?}");
    }
    // The teacher sees their group only; another group is refused.
    let theirs = c
        .list_attendance(request(As::Staff(teacher), list(pb::AttendanceStatus::Unspecified, None, 0, String::new())))
        .await
        .expect("teacher")
        .into_inner();
    assert_eq!(theirs.total_size, 5);
    let group = c
        .list_attendance(list(pb::AttendanceStatus::Unspecified, Some(env.group), 0, String::new()))
        .await
        .expect("by group")
        .into_inner();
    assert_eq!(group.total_size, 5);
    let other = c
        .list_attendance(request(
            As::Staff(teacher),
            list(pb::AttendanceStatus::Unspecified, Some(env.other_group), 0, String::new()),
        ))
        .await;
    assert_code(other, Code::PermissionDenied);
    let none = c
        .list_attendance(request(As::Staff(stranger), list(pb::AttendanceStatus::Unspecified, None, 0, String::new())))
        .await
        .expect("stranger")
        .into_inner();
    assert_eq!(none.total_size, 0, "staff without groups see no pupil's attendance");
    assert_invalid(
        c.list_attendance(pb::ListAttendanceRequest { status: 42, date: "x".into(), ..Default::default() }).await,
        &["status", "date"],
    );

    // CheckOutForDay refusals.
    let out = |s: i64, d: pb::CheckoutDestination| pb::CheckOutForDayRequest { student_id: s, destination: d as i32 };
    let absent = c.check_out_for_day(out(p[4], pb::CheckoutDestination::Home)).await;
    assert_eq!(reason(&assert_code(absent, Code::FailedPrecondition)).as_deref(), Some("NOT_ARRIVED"));
    let twice = c.check_out_for_day(out(p[2], pb::CheckoutDestination::Home)).await;
    assert_eq!(reason(&assert_code(twice, Code::FailedPrecondition)).as_deref(), Some("GONE_HOME"));
    assert_invalid(
        c.check_out_for_day(out(0, pb::CheckoutDestination::Unspecified)).await,
        &["student_id", "destination"],
    );
    assert_code(
        c.check_out_for_day(request(As::Staff(stranger), out(p[1], pb::CheckoutDestination::Home))).await,
        Code::PermissionDenied,
    );
    // The supervisor of the pupil's session may send them home.
    let sent = c
        .check_out_for_day(request(As::Staff(lead), out(p[0], pb::CheckoutDestination::Home)))
        .await
        .expect("supervisor")
        .into_inner();
    assert_eq!(sent.attendance.expect("a").destination(), pb::CheckoutDestination::Home);

    let logged = events(&mut conn, &["gone_home"]).await;
    assert_eq!(
        logged,
        vec![
            ("gone_home".to_owned(), Some(p[2]), None, None, Some(rooms[0])),
            ("gone_home".to_owned(), Some(p[0]), None, None, Some(rooms[0])),
        ]
    );
}

#[tokio::test]
async fn a_pupils_presence_is_redacted_without_full_access() {
    // Pupils 0 and 1 are the teacher's.
    let mut env = ActiveSchool::new(2, 2).await;
    let rooms = env.school.rooms.clone();
    let a = env.session(rooms[0]).await;
    let b = env.session(rooms[1]).await;
    let (teacher, stranger) = (env.teacher, env.stranger);
    let (p0, p1) = (env.pupil(0), env.pupil(1));
    let mut conn = env.conn().await;
    let c = &mut env.client;
    c.check_in_student(pb::CheckInStudentRequest { student_id: p0, session_id: a, transfer: false })
        .await
        .expect("in a");
    c.check_in_student(pb::CheckInStudentRequest { student_id: p0, session_id: b, transfer: true })
        .await
        .expect("to b");
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!("UPDATE users.students SET sick = true, sick_since = now() WHERE id = {p1}")),
        &mut conn,
    )
    .await
    .expect("sick");
    let get = |who: As, s: i64| request(who, pb::GetStudentPresenceRequest { student_id: s });

    let full = c.get_student_presence(get(As::Staff(teacher), p0)).await.expect("teacher").into_inner();
    let full = full.presence.expect("presence");
    assert!(full.full_access);
    assert_eq!(full.status(), pb::AttendanceStatus::InRoom);
    assert_eq!((full.room_id, full.room_name.as_str(), full.session_id), (Some(rooms[1]), "Raum B", Some(b)));
    assert!(full.since.is_some());
    assert_eq!(
        full.today_visits.iter().map(|v| (v.room_id, v.open)).collect::<Vec<_>>(),
        [(rooms[0], false), (rooms[1], true)]
    );

    let limited = c.get_student_presence(get(As::Staff(stranger), p0)).await.expect("stranger").into_inner();
    assert_eq!(
        limited.presence.expect("presence"),
        pb::StudentPresence { student_id: p0, status: pb::AttendanceStatus::InRoom as i32, ..Default::default() },
        "state only: no room, session, time or history"
    );
    let sick = c.get_student_presence(get(As::Staff(teacher), p1)).await.expect("sick").into_inner();
    let sick = sick.presence.expect("presence");
    assert_eq!((sick.status(), sick.since.is_some()), (pb::AttendanceStatus::Sick, true));
    let hidden = c.get_student_presence(get(As::Staff(stranger), p1)).await.expect("hidden").into_inner();
    assert_eq!(hidden.presence.expect("presence").status(), pb::AttendanceStatus::Absent, "sickness is health data");
    let admin = c.get_student_presence(pb::GetStudentPresenceRequest { student_id: p0 }).await.expect("admin");
    assert!(admin.into_inner().presence.expect("presence").full_access);
    assert_code(c.get_student_presence(pb::GetStudentPresenceRequest { student_id: p1 + 99 }).await, Code::NotFound);
    assert_invalid(c.get_student_presence(pb::GetStudentPresenceRequest { student_id: 0 }).await, &["student_id"]);

    // A guardian account holds no staff permission (their children's presence is the
    // FamilyService's): refused before any student is looked at.
    let account = create_account(&env.app, "mama@example.org", PASSWORD, &["guardian"], true).await;
    let token =
        mint_token(&env.app, &account.to_string(), &["guardian"], &role_permissions(&env.app, "guardian").await).await;
    let c = &mut env.client;
    let guardian = c.get_student_presence(bearer(pb::GetStudentPresenceRequest { student_id: p0 }, &token)).await;
    assert!(assert_code(guardian, Code::PermissionDenied).message().contains("groups:read"));
}

#[tokio::test]
async fn counts_and_room_utilization_are_aggregates() {
    let mut env = ActiveSchool::new(3, 3).await;
    let rooms = env.school.rooms.clone();
    let a = env.session(rooms[0]).await;
    let b = env.session(rooms[1]).await;
    let p: Vec<i64> = (0..3).map(|i| env.pupil(i)).collect();
    let c = &mut env.client;
    for s in &p {
        c.check_in_student(pb::CheckInStudentRequest { student_id: *s, session_id: a, transfer: false })
            .await
            .expect("check in");
    }
    c.check_out_student(pb::CheckOutStudentRequest { student_id: p[1] }).await.expect("out");
    c.check_out_for_day(pb::CheckOutForDayRequest {
        student_id: p[2],
        destination: pb::CheckoutDestination::Home as i32,
    })
    .await
    .expect("home");
    c.leave_session(pb::LeaveSessionRequest { session_id: b, staff_id: Some(env.school.staff) })
        .await
        .expect("b unclaimed");
    let counts = c.get_activity_counts(pb::GetActivityCountsRequest {}).await.expect("counts").into_inner();
    assert_eq!(
        counts,
        pb::GetActivityCountsResponse {
            running_session_count: 2,
            unclaimed_session_count: 1,
            visits_today_count: 3,
            open_visit_count: 1,
            present_pupil_count: 2,
            gone_home_pupil_count: 1,
        }
    );

    // Fixed past data in the small room (capacity 2) on 2026-11-02 (UTC+1 in Berlin): one
    // session 10:00–12:00 UTC, three visits; the exit at 11:00 and the entry at 11:00 do not
    // overlap, so at most two pupils were in at once.
    let room = env.school.small_room;
    let mut conn = env.conn().await;
    let session = phoenix_tests::fixtures::insert_returning_id(
        &mut conn,
        &format!(
            "INSERT INTO active.groups (room_id, activity_id, start_time, end_time, last_activity) VALUES \
             ({room}, {}, '2026-11-02 10:00Z', '2026-11-02 12:00Z', '2026-11-02 12:00Z') RETURNING id",
            env.school.activity
        ),
    )
    .await;
    for (s, from, to) in [(p[0], "10:00", "11:00"), (p[1], "10:30", "11:30"), (p[2], "11:00", "12:00")] {
        phoenix_tests::fixtures::insert_returning_id(
            &mut conn,
            &format!(
                "INSERT INTO active.visits (student_id, active_group_id, entry_time, exit_time) VALUES \
                 ({s}, {session}, '2026-11-02 {from}Z', '2026-11-02 {to}Z') RETURNING id"
            ),
        )
        .await;
    }
    let c = &mut env.client;
    let range = |start: &str, end: &str| pb::GetRoomUtilizationRequest {
        room_id: room,
        start_date: start.into(),
        end_date: end.into(),
    };
    let day = c.get_room_utilization(range("2026-11-02", "2026-11-02")).await.expect("day").into_inner();
    assert_eq!(
        day,
        pb::GetRoomUtilizationResponse {
            room_id: room,
            room_name: "Klein".into(),
            start_date: "2026-11-02".into(),
            end_date: "2026-11-02".into(),
            session_count: 1,
            session_minutes: 120,
            visit_count: 3,
            peak_pupil_count: 2,
            capacity: Some(2),
        }
    );
    let later = c.get_room_utilization(range("2026-11-03", "2026-12-03")).await.expect("31 days").into_inner();
    assert_eq!((later.session_count, later.visit_count, later.peak_pupil_count), (0, 0, 0));
    assert_invalid(c.get_room_utilization(range("2026-11-01", "2026-12-02")).await, &["end_date"]);
    assert_invalid(c.get_room_utilization(range("2026-11-02", "")).await, &["end_date"]);
    assert_invalid(
        c.get_room_utilization(pb::GetRoomUtilizationRequest { room_id: 0, ..Default::default() }).await,
        &["room_id"],
    );
    assert_code(
        c.get_room_utilization(pb::GetRoomUtilizationRequest { room_id: room + 500, ..Default::default() }).await,
        Code::NotFound,
    );
    // Today in room a: one running session, three visits, three in at once.
    let today = c
        .get_room_utilization(pb::GetRoomUtilizationRequest { room_id: rooms[0], ..Default::default() })
        .await
        .expect("today")
        .into_inner();
    assert_eq!((today.session_count, today.visit_count, today.peak_pupil_count, today.capacity), (1, 3, 3, None));
}
