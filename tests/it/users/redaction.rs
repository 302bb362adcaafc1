//! `phoenix.users.v1.UsersService` over real gRPC against a real database: GDPR redaction by
//! caller (fields, lists, the current location) and who may change a pupil.

use diesel_async::RunQueryDsl as _;
use phoenix_proto::users::v1 as pb;
use phoenix_tests::grpc::{As, assert_code, mask, request};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

use super::helpers::*;

/// A school where `teacher` leads the pupil's group, `substitute` covers it today, and
/// `other` is staff of another group.
struct School {
    app: TestApp,
    client: Client,
    pupil: pb::Student,
    teacher: i64,
    substitute: i64,
    other: i64,
}

async fn school() -> School {
    let (app, mut client) = app().await;
    let mut conn = app.db.conn().await;
    let foxes = fixtures::group(&mut conn, "Füchse").await;
    let owls = fixtures::group(&mut conn, "Eulen").await;
    let teacher = create_teacher(&mut client, "Tina").await;
    let substitute = create_teacher(&mut client, "Sven").await;
    let other = create_teacher(&mut client, "Olga").await;
    fixtures::group_teacher(&mut conn, foxes, teacher.teacher_id.expect("teacher")).await;
    fixtures::group_teacher(&mut conn, owls, other.teacher_id.expect("teacher")).await;
    // Yesterday's substitution by `other` is over; today's by `substitute` counts. The
    // server's "today" is the Berlin date; these rows cover it whatever the DB's zone.
    fixtures::substitution(&mut conn, foxes, other.id, "CURRENT_DATE - 3", "CURRENT_DATE - 2").await;
    fixtures::substitution(&mut conn, foxes, substitute.id, "CURRENT_DATE - 1", "CURRENT_DATE + 1").await;
    let pupil = create_student(
        &mut client,
        pb::Student {
            birthday: Some("2017-05-01".into()),
            group_id: Some(foxes),
            tag_id: Some("04AABBCCDD".into()),
            extra_info: Some("liest gern".into()),
            supervisor_notes: Some("braucht Ruhe".into()),
            health_info: Some("Asthma".into()),
            sick: Some(true),
            pickup_status: Some("geht allein".into()),
            ..new_student("Mia", "Muster", "2a")
        },
    )
    .await;
    fixtures::guardian_of(&mut conn, pupil.id, "Petra", "Muster", true).await;
    School { app, client, pupil, teacher: teacher.id, substitute: substitute.id, other: other.id }
}

#[tokio::test]
async fn get_student_shows_each_caller_exactly_the_fields_they_may_see() {
    let School { app, mut client, pupil, teacher, substitute, other } = school().await;
    let admin_view = get_student(&mut client, As::Admin, pupil.id).await;
    // Full record: everything present.
    assert!(admin_view.has_full_access);
    assert_eq!(admin_view.birthday.as_deref(), Some("2017-05-01"));
    assert_eq!(admin_view.health_info.as_deref(), Some("Asthma"));
    assert_eq!(admin_view.extra_info.as_deref(), Some("liest gern"));
    assert_eq!(admin_view.supervisor_notes.as_deref(), Some("braucht Ruhe"));
    assert_eq!(admin_view.sick, Some(true));
    assert!(admin_view.sick_since.is_some());
    assert_eq!(admin_view.tag_id.as_deref(), Some("04AABBCCDD"));
    let contacts = admin_view.guardian_contacts.clone().expect("guardian contacts").contacts;
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        (contacts[0].first_name.as_str(), contacts[0].phone_numbers.clone()),
        ("Petra", vec!["+49 30 1234".to_owned()])
    );
    assert_eq!(admin_view.group_supervisors.iter().map(|s| s.staff_id).collect::<Vec<_>>(), [teacher]);

    // The group's teacher and today's substitute see exactly what the admin sees.
    assert_eq!(get_student(&mut client, As::Staff(teacher), pupil.id).await, admin_view);
    assert_eq!(get_student(&mut client, As::Staff(substitute), pupil.id).await, admin_view);

    // Other staff (whose substitution of this group ended yesterday): the sensitive fields
    // are absent, everything else is identical.
    let limited = get_student(&mut client, As::Staff(other), pupil.id).await;
    let expected = pb::Student {
        birthday: None,
        extra_info: None,
        supervisor_notes: None,
        health_info: None,
        sick: None,
        sick_since: None,
        tag_id: None,
        guardian_contacts: None,
        has_full_access: false,
        ..admin_view.clone()
    };
    assert_eq!(limited, expected);
    app.stop().await;
}

#[tokio::test]
async fn lists_persons_and_cards_are_redacted_the_same_way() {
    let School { app, mut client, pupil, teacher, other, .. } = school().await;
    let list = |caller| {
        let mut c = client.clone();
        async move {
            c.list_students(request(caller, pb::ListStudentsRequest::default())).await.unwrap().into_inner().students
        }
    };
    let as_teacher = list(As::Staff(teacher)).await;
    let as_other = list(As::Staff(other)).await;
    assert_eq!(as_teacher[0].health_info.as_deref(), Some("Asthma"));
    assert_eq!(
        (as_other[0].health_info.clone(), as_other[0].tag_id.clone(), as_other[0].has_full_access),
        (None, None, false)
    );

    let p = client
        .get_person(request(As::Staff(other), pb::GetPersonRequest { id: pupil.person_id }))
        .await
        .unwrap()
        .into_inner();
    let p = p.person.unwrap();
    assert_eq!((p.birthday, p.tag_id, p.first_name.as_str()), (None, None, "Mia"));
    let p = client
        .get_person(request(As::Staff(teacher), pb::GetPersonRequest { id: pupil.person_id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.person.unwrap().tag_id.as_deref(), Some("04AABBCCDD"));
    let listed = client
        .list_persons(request(
            As::Staff(other),
            pb::ListPersonsRequest { first_name: Some("Mia".into()), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.persons[0].birthday, None);

    // Who holds a pupil's tag is hidden like the tag.
    let card = client
        .get_rfid_card(request(As::Staff(other), pb::GetRfidCardRequest { tag_id: "04AABBCCDD".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(card.card.unwrap().person_id, None);
    app.stop().await;
}

#[tokio::test]
async fn only_admins_and_the_pupils_own_staff_may_change_a_pupil() {
    let School { app, mut client, pupil, teacher, substitute, other } = school().await;
    let change = |caller: As, class: &str| {
        let mut c = client.clone();
        let req = pb::UpdateStudentRequest {
            student: Some(pb::Student { id: pupil.id, school_class: class.into(), ..Default::default() }),
            update_mask: mask(&["school_class"]),
        };
        async move { c.update_student(request(caller, req)).await }
    };
    change(As::Staff(teacher), "2b").await.expect("the group's teacher");
    change(As::Staff(substitute), "2c").await.expect("today's substitute");
    assert_code(change(As::Staff(other), "2d").await, Code::PermissionDenied);
    assert_eq!(get_student(&mut client, As::Admin, pupil.id).await.school_class, "2c");
    // Nor may other staff take the pupil's card or deactivate the pupil.
    let stranger = create_person(&mut client, "Fremd", None).await;
    assert_code(
        client
            .assign_rfid_card(request(
                As::Staff(other),
                pb::AssignRfidCardRequest { person_id: stranger.id, tag_id: "04AABBCCDD".into() },
            ))
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        client.deactivate_student(request(As::Staff(other), pb::DeactivateStudentRequest { id: pupil.id })).await,
        Code::PermissionDenied,
    );
    // A pupil without a group: admins only.
    let loose = create_student(&mut client, new_student("Lose", "Kind", "1a")).await;
    let req = pb::UpdateStudentRequest {
        student: Some(pb::Student { id: loose.id, school_class: "1b".into(), ..Default::default() }),
        update_mask: mask(&["school_class"]),
    };
    assert_code(client.update_student(request(As::Staff(teacher), req.clone())).await, Code::PermissionDenied);
    client.update_student(request(As::Admin, req)).await.expect("admin");
    app.stop().await;
}

#[tokio::test]
async fn the_current_location_is_exact_for_the_pupils_staff_and_coarse_for_others() {
    let School { app, client, pupil, teacher, other, .. } = school().await;
    let location = |caller: As| {
        let mut c = client.clone();
        async move {
            c.get_student(request(caller, pb::GetStudentRequest { id: pupil.id }))
                .await
                .expect("get")
                .into_inner()
                .student
                .and_then(|s| s.location)
                .expect("location")
        }
    };
    let presence = |l: &pb::StudentLocation| pb::Presence::try_from(l.presence).expect("known presence");
    // No attendance today: absent for everyone.
    assert_eq!(presence(&location(As::Staff(teacher)).await), pb::Presence::Absent);

    // Arrived (the day's attendance is open), in no room: in transit, or just "present".
    let mut conn = app.db.conn().await;
    let today = phoenix_common::time::business_today().format("%Y-%m-%d").to_string();
    fixtures::insert_returning_id(
        &mut conn,
        &format!(
            "INSERT INTO active.attendance (student_id, date, check_in_time) \
             VALUES ({}, '{today}', now() - interval '2 hours') RETURNING id",
            pupil.id
        ),
    )
    .await;
    let mine = location(As::Staff(teacher)).await;
    assert_eq!(presence(&mine), pb::Presence::InTransit);
    assert!(mine.since.is_some());
    let theirs = location(As::Staff(other)).await;
    assert_eq!((presence(&theirs), theirs.since), (pb::Presence::Present, None));

    // In a running room session: the room, for everyone.
    let visit = fixtures::insert_returning_id(
        &mut conn,
        &format!(
            "WITH r AS (INSERT INTO facilities.rooms (name) VALUES ('Mensa') RETURNING id), \
                  s AS (INSERT INTO active.groups (room_id, education_group_id, start_time) \
                        SELECT r.id, {group}, now() - interval '1 hour' FROM r RETURNING id) \
             INSERT INTO active.visits (student_id, active_group_id) SELECT {pupil}, s.id FROM s RETURNING id",
            group = pupil.group_id.expect("group"),
            pupil = pupil.id
        ),
    )
    .await;
    for caller in [As::Staff(teacher), As::Staff(other)] {
        let l = location(caller).await;
        assert_eq!((presence(&l), l.room_name.as_deref()), (pb::Presence::InRoom, Some("Mensa")));
        assert!(l.since.is_some());
    }

    // Checked out for the day: gone home (with the time) or absent.
    diesel::sql_query(format!("UPDATE active.visits SET exit_time = now() WHERE id = {visit}"))
        .execute(&mut conn)
        .await
        .expect("leave the room");
    diesel::sql_query(format!("UPDATE active.attendance SET check_out_time = now() WHERE student_id = {}", pupil.id))
        .execute(&mut conn)
        .await
        .expect("check out");
    let mine = location(As::Staff(teacher)).await;
    assert_eq!(presence(&mine), pb::Presence::GoneHome);
    assert!(mine.since.is_some());
    let theirs = location(As::Staff(other)).await;
    assert_eq!((presence(&theirs), theirs.since), (pb::Presence::Absent, None));
    app.stop().await;
}
