//! `phoenix.active.v1.PresenceService` over real gRPC against real PostgreSQL: the board per
//! caller (redaction, "mine") and counts of every state.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::domain::Domain;
use phoenix_db::schema::users;
use phoenix_proto::active::v1 as pb;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::As;
use phoenix_tests::school;

use super::presence_helpers::*;

#[tokio::test]
async fn the_board_shows_each_caller_exactly_the_pupils_they_may_see() {
    let Setup { app, mut active, mut presence, school: s } = setup(8).await;
    let mut conn = app.db.conn().await;
    let p: Vec<i64> = s.pupils.iter().map(|p| p.id).collect();
    let g = groups(&mut conn, &p[0..3], &p[3..6]).await;
    let sam = fixtures::staff(&mut conn, "Sam", "Springer").await;
    let olga = fixtures::staff(&mut conn, "Olga", "Ohnegruppe").await;
    let erika = s.staff;
    let (room_a, room_b) = (s.rooms[0], s.rooms[1]);
    let session_a = start_session(&mut active, room_a, Some(s.activity), Some(g.foxes), vec![erika]).await;
    let session_b = start_session(&mut active, room_b, Some(s.activity), None, vec![sam]).await;
    // Room A: a fox, an owl and a pupil without a group; room B: a fox and an owl.
    for i in [0, 3, 6] {
        scan(&mut active, &s.readers[0], &s.pupils[i].tag).await;
    }
    for i in [1, 4] {
        scan(&mut active, &s.readers[1], &s.pupils[i].tag).await;
    }

    let admin = board(&mut presence, As::Admin).await;
    assert_eq!(admin.rooms.iter().map(|r| r.room_id).collect::<Vec<_>>(), [room_a, room_b], "by name");
    let a = room_by_id(&admin, room_a);
    assert_eq!(
        (a.session_id, a.room_name.as_str(), a.activity_name.as_str(), a.education_group_name.as_str()),
        (session_a, "Raum A", "Freispiel", "Füchse")
    );
    assert_eq!((a.activity_id, a.education_group_id, a.capacity), (Some(s.activity), Some(g.foxes), None));
    assert_eq!(
        a.supervisors,
        [pb::PresenceSupervisor { staff_id: erika, display_name: "Erika B.".into() }],
        "supervisors with display names"
    );
    assert_eq!((a.pupil_count, pupil_ids(a), a.pupils_redacted, a.mine), (3, vec![p[0], p[3], p[6]], false, false));
    let kind0 = a.pupils.iter().find(|x| x.student_id == p[0]).expect("pupil 0");
    assert_eq!(kind0.display_name, "Kind0 T.", "first name + last initial only");
    assert!(kind0.since.is_some());
    let b = room_by_id(&admin, room_b);
    assert_eq!((b.session_id, b.pupil_count, pupil_ids(b), b.pupils_redacted), (session_b, 2, vec![p[1], p[4]], false));
    assert_eq!(b.education_group_id, None);
    let counts = admin.counts.expect("counts");
    assert_eq!((counts.in_room, counts.total), (5, 8));
    assert!(!admin.cursor.is_empty());
    assert_eq!(admin.date, phoenix_common::time::business_date(Utc::now()).format("%Y-%m-%d").to_string());

    // The foxes' teacher: only foxes, in every room; room A (the foxes' session) is theirs.
    let fox = board(&mut presence, As::Staff(g.fox_teacher)).await;
    assert_eq!(fox.rooms.iter().map(|r| (r.room_id, r.mine)).collect::<Vec<_>>(), [(room_a, true), (room_b, false)]);
    let (fa, fb) = (room_by_id(&fox, room_a), room_by_id(&fox, room_b));
    assert_eq!((fa.pupil_count, pupil_ids(fa), fa.pupils_redacted), (3, vec![p[0]], true));
    assert_eq!((fb.pupil_count, pupil_ids(fb), fb.pupils_redacted), (2, vec![p[1]], true));

    // The owls' teacher: only owls; nothing is theirs, so the order is by name.
    let owl = board(&mut presence, As::Staff(g.owl_teacher)).await;
    assert_eq!(owl.rooms.iter().map(|r| (r.room_id, r.mine)).collect::<Vec<_>>(), [(room_a, false), (room_b, false)]);
    assert_eq!(pupil_ids(room_by_id(&owl, room_a)), [p[3]]);
    assert_eq!(pupil_ids(room_by_id(&owl, room_b)), [p[4]]);

    // Room B's supervisor sees everyone in B (whatever their group) and nobody in A; B first.
    let sup = board(&mut presence, As::Staff(sam)).await;
    assert_eq!(sup.rooms.iter().map(|r| (r.room_id, r.mine)).collect::<Vec<_>>(), [(room_b, true), (room_a, false)]);
    let (sa, sb) = (room_by_id(&sup, room_a), room_by_id(&sup, room_b));
    assert_eq!((pupil_ids(sb), sb.pupils_redacted), (vec![p[1], p[4]], false));
    assert_eq!((pupil_ids(sa), sa.pupils_redacted, sa.pupil_count), (vec![], true, 3));

    // Staff of no group supervising nothing: counts and rooms, no pupils.
    let none = board(&mut presence, As::Staff(olga)).await;
    assert!(none.rooms.iter().all(|r| r.pupils.is_empty() && r.pupils_redacted && !r.mine));
    assert_eq!(none.rooms.iter().map(|r| r.pupil_count).collect::<Vec<_>>(), [3, 2]);

    // Health reports the presence service next to ActiveService.
    let serving = tonic_health::ServingStatus::Serving as i32;
    for service in ["phoenix.active.v1.ActiveService", "phoenix.active.v1.PresenceService"] {
        let status = phoenix_tests::app::health_status(app.addr(Domain::Active), service).await.expect("health");
        assert_eq!(status, serving, "{service}");
    }

    for other in [&fox, &owl, &sup, &none] {
        assert_eq!(other.counts, admin.counts, "aggregates are the same for everyone");
        assert_eq!(other.rooms.len(), 2);
        let supervisors: Vec<_> = other.rooms.iter().map(|r| r.supervisors.clone()).collect();
        assert_eq!(supervisors.len(), 2);
    }
    let _ = g.owls;
}

#[tokio::test]
async fn counts_place_every_active_pupil_in_exactly_one_state() {
    let Setup { app, mut active, mut presence, school: s } = setup(8).await;
    let mut conn = app.db.conn().await;
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let tag = |i: usize| s.pupils[i].tag.clone();
    scan(&mut active, &s.readers[0], &tag(0)).await; // 0: in the room
    scan(&mut active, &s.readers[0], &tag(1)).await; // 1: in and out again → in transit
    scan(&mut active, &s.readers[0], &tag(1)).await;
    // 2: never seen → absent
    scan(&mut active, &s.gate, &tag(3)).await; // 3: arrived and went home
    scan(&mut active, &s.gate, &tag(3)).await;
    scan(&mut active, &s.gate, &tag(5)).await; // 5: arrived at the gate only → in transit
    scan(&mut active, &s.readers[0], &tag(7)).await; // 7: in the room, then marked sick
    let mark_sick = |i: usize| {
        diesel::update(users::students::table.find(s.pupils[i].id))
            .set((users::students::sick.eq(true), users::students::sick_since.eq(Some(Utc::now()))))
    };
    mark_sick(4).execute(&mut conn).await.expect("sick"); // 4: sick at home
    mark_sick(7).execute(&mut conn).await.expect("sick");
    diesel::update(users::students::table.find(s.pupils[6].id)) // 6: left the school
        .set(users::students::deactivated_at.eq(Some(Utc::now())))
        .execute(&mut conn)
        .await
        .expect("deactivate");

    let counts = board(&mut presence, As::Admin).await.counts.expect("counts");
    assert_eq!(
        counts,
        pb::PresenceCounts { in_room: 2, in_transit: 2, absent: 1, gone_home: 1, sick: 1, total: 7 },
        "the room wins over sick; a deactivated pupil is not counted"
    );
    let sum = counts.in_room + counts.in_transit + counts.absent + counts.gone_home + counts.sick;
    assert_eq!(sum, counts.total);
}

async fn exec(conn: &mut diesel_async::AsyncPgConnection, sql: String) {
    diesel::sql_query(&sql).execute(conn).await.unwrap_or_else(|e| panic!("{e}: {sql}"));
}

fn name_of(b: &pb::GetPresenceBoardResponse, student: i64) -> String {
    let pupil = b.rooms.iter().flat_map(|r| &r.pupils).find(|p| p.student_id == student).expect("pupil on the board");
    pupil.display_name.clone()
}

// The board is served from a school-wide board the process keeps between changes
// (presence/board_cache.rs): each change below is committed just after a board was read,
// so a board served stale would miss it.
#[tokio::test]
async fn every_change_committed_before_a_board_call_is_on_it() {
    let Setup { app, mut active, mut presence, school: s } = setup(4).await;
    let mut conn = app.db.conn().await;
    let p: Vec<i64> = s.pupils.iter().map(|p| p.id).collect();
    let g = groups(&mut conn, &p[0..2], &p[2..4]).await;
    let sam = fixtures::staff(&mut conn, "Sam", "Springer").await;
    let room = s.rooms[0];
    let session = start_session(&mut active, room, Some(s.activity), None, vec![s.staff]).await;
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    let first = board(&mut presence, As::Admin).await;
    assert_eq!(pupil_ids(room_by_id(&first, room)), [p[0]]);
    let again = board(&mut presence, As::Admin).await;
    assert_eq!((&again.rooms, &again.counts), (&first.rooms, &first.counts), "nothing changed in between");

    // A scan (a presence event).
    scan(&mut active, &s.readers[0], &s.pupils[2].tag).await;
    let b = board(&mut presence, As::Admin).await;
    assert_eq!(pupil_ids(room_by_id(&b, room)), [p[0], p[2]]);

    // Changes without a presence event: a pupil's name, a sick flag, the room, the activity.
    exec(
        &mut conn,
        format!(
            "UPDATE users.persons SET first_name = 'Umbenannt' \
             WHERE id = (SELECT person_id FROM users.students WHERE id = {})",
            p[0]
        ),
    )
    .await;
    assert_eq!(name_of(&board(&mut presence, As::Admin).await, p[0]), "Umbenannt T.");
    let sick = board(&mut presence, As::Admin).await.counts.expect("counts").sick;
    exec(&mut conn, format!("UPDATE users.students SET sick = true, sick_since = now() WHERE id = {}", p[3])).await;
    assert_eq!(board(&mut presence, As::Admin).await.counts.expect("counts").sick, sick + 1);
    exec(&mut conn, format!("UPDATE facilities.rooms SET name = 'Raum Z', capacity = 12 WHERE id = {room}")).await;
    let b = board(&mut presence, As::Admin).await;
    let r = room_by_id(&b, room);
    assert_eq!((r.room_name.as_str(), r.capacity), ("Raum Z", Some(12)));
    exec(&mut conn, format!("UPDATE activities.activities SET name = 'Basteln' WHERE id = {}", s.activity)).await;
    assert_eq!(room_by_id(&board(&mut presence, As::Admin).await, room).activity_name, "Basteln");

    // The supervisors (an event, but on the tile) and who sees the room's pupils.
    let supervised = board(&mut presence, As::Staff(sam)).await;
    assert_eq!(pupil_ids(room_by_id(&supervised, room)), Vec::<i64>::new(), "not theirs yet");
    active
        .update_session_supervisors(pb::UpdateSessionSupervisorsRequest {
            session_id: session,
            supervisors: vec![pb::SupervisorAssignment { staff_id: sam, role: pb::SupervisorRole::Supervisor as i32 }],
        })
        .await
        .expect("supervisors");
    let b = board(&mut presence, As::Staff(sam)).await;
    let r = room_by_id(&b, room);
    assert_eq!(r.supervisors.iter().map(|x| x.staff_id).collect::<Vec<_>>(), [sam]);
    assert_eq!((pupil_ids(r), r.mine), (vec![p[0], p[2]], true), "now they supervise it");

    // A pupil changes group: the new group's teacher sees them, the old one's no longer.
    assert_eq!(pupil_ids(room_by_id(&board(&mut presence, As::Staff(g.fox_teacher)).await, room)), [p[0]]);
    exec(&mut conn, format!("UPDATE users.students SET group_id = {} WHERE id = {}", g.foxes, p[2])).await;
    assert_eq!(pupil_ids(room_by_id(&board(&mut presence, As::Staff(g.fox_teacher)).await, room)), [p[0], p[2]]);
    assert_eq!(pupil_ids(room_by_id(&board(&mut presence, As::Staff(g.owl_teacher)).await, room)), Vec::<i64>::new());
}

#[tokio::test]
async fn a_board_read_again_resumes_the_stream_without_gap_or_duplicate() {
    let Setup { app: _app, mut active, mut presence, school: s } = setup(4).await;
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    let first = board(&mut presence, As::Admin).await;
    let second = board(&mut presence, As::Admin).await;
    assert_eq!(second.rooms, first.rooms);
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await;
    let third = board(&mut presence, As::Admin).await;
    assert_eq!(pupil_ids(room_by_id(&third, s.rooms[0])).len(), 2, "the scan before it is on it");
    scan(&mut active, &s.readers[0], &s.pupils[2].tag).await;
    let (p1, p2) = (s.pupils[1].id, s.pupils[2].id);
    let events = |p: i64| vec![(pb::PresenceEventKind::CheckedIn, Some(p), Some(s.rooms[0]))];
    for (cursor, expected) in [
        (&first.cursor, [events(p1), events(p2)].concat()),
        (&second.cursor, [events(p1), events(p2)].concat()),
        (&third.cursor, events(p2)),
    ] {
        let mut stream = watch(&mut presence, As::Admin, cursor).await;
        let got = next_events(&mut stream, expected.len()).await;
        assert_eq!(shape(&got), expected, "exactly the scans after the board");
        // Nothing more: the next event is a later sentinel scan.
        let sentinel = &s.pupils[3];
        scan(&mut active, &s.readers[0], &sentinel.tag).await;
        let next = next_event(&mut stream).await;
        assert_eq!(next.pupil.map(|x| x.student_id), Some(sentinel.id));
        // Out again, so the next round's sentinel scan is a check-in too.
        scan(&mut active, &s.readers[0], &sentinel.tag).await;
    }
}

#[tokio::test]
async fn calls_at_once_after_a_change_all_show_it() {
    let Setup { app: _app, mut active, presence, school: s } = setup(6).await;
    let room = s.rooms[0];
    school::start_session(&mut active, room, s.activity, s.staff).await;
    for (i, pupil) in s.pupils.iter().enumerate() {
        scan(&mut active, &s.readers[0], &pupil.tag).await;
        let calls = (0..8).map(|_| {
            let mut presence = presence.clone();
            async move { board(&mut presence, As::Admin).await }
        });
        for b in futures::future::join_all(calls).await {
            let expected: Vec<i64> = s.pupils[..=i].iter().map(|p| p.id).collect();
            let mut got = pupil_ids(room_by_id(&b, room));
            got.sort();
            let mut want = expected.clone();
            want.sort();
            assert_eq!(got, want, "every pupil scanned before the calls");
        }
    }
}

#[tokio::test]
async fn a_transit_alert_appears_when_its_threshold_passes_without_any_change() {
    #[derive(QueryableByName)]
    struct Since {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        check_in_time: chrono::DateTime<Utc>,
    }
    let Setup { app, mut active, mut presence, school: s } = setup(2).await;
    let mut conn = app.db.conn().await;
    let pupil = s.pupils[0].id;
    scan(&mut active, &s.gate, &s.pupils[0].tag).await;
    // In transit for the default 15 minutes six seconds from now.
    let since: Since = diesel::sql_query(format!(
        "UPDATE active.attendance SET check_in_time = now() - interval '15 minutes' + interval '6 seconds' \
         WHERE student_id = {pupil} RETURNING check_in_time"
    ))
    .get_result(&mut conn)
    .await
    .expect("arrival");
    let threshold = since.check_in_time + chrono::Duration::minutes(15);
    let mut before = false;
    loop {
        let b = board(&mut presence, As::Admin).await;
        let as_of = phoenix_common::time::from_timestamp(&b.as_of.expect("as_of")).expect("as_of");
        let alerted = b.alerts.iter().any(|a| a.kind() == pb::AlertKind::LongInTransit && a.student_id == pupil);
        assert_eq!(alerted, as_of >= threshold, "at {as_of} (threshold {threshold})");
        before |= !alerted;
        if alerted {
            break;
        }
        assert!(as_of < threshold + chrono::Duration::seconds(20), "the threshold passed long ago");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(before, "a board was read before the threshold");
}
