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
