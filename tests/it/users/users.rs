//! `phoenix.users.v1.UsersService` over real gRPC against a real database: persons, staff,
//! students, RFID cards (including the tag move and its atomicity), validation, pagination
//! and GDPR redaction by caller.

use diesel_async::RunQueryDsl as _;
use phoenix_common::domain::Domain;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason, request};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

type Client = UsersServiceClient<TestChannel>;

async fn app() -> (TestApp, Client) {
    let app = TestApp::spawn(&[Domain::Users]).await;
    let client = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    (app, client)
}

fn new_student(first: &str, last: &str, class: &str) -> pb::Student {
    pb::Student { first_name: first.into(), last_name: last.into(), school_class: class.into(), ..Default::default() }
}

async fn create_student(client: &mut Client, s: pb::Student) -> pb::Student {
    client
        .create_student(pb::CreateStudentRequest { student: Some(s) })
        .await
        .expect("create student")
        .into_inner()
        .student
        .expect("student in response")
}

async fn get_student(client: &mut Client, caller: As, id: i64) -> pb::Student {
    client
        .get_student(request(caller, pb::GetStudentRequest { id }))
        .await
        .expect("get student")
        .into_inner()
        .student
        .expect("student in response")
}

async fn create_person(client: &mut Client, first: &str, tag: Option<&str>) -> pb::Person {
    client
        .create_person(pb::CreatePersonRequest {
            person: Some(pb::Person {
                first_name: first.into(),
                last_name: "Muster".into(),
                tag_id: tag.map(Into::into),
                ..Default::default()
            }),
        })
        .await
        .expect("create person")
        .into_inner()
        .person
        .expect("person in response")
}

async fn create_teacher(client: &mut Client, first: &str) -> pb::Staff {
    client
        .create_staff(pb::CreateStaffRequest {
            staff: Some(pb::Staff {
                first_name: first.into(),
                last_name: "Lehrer".into(),
                is_teacher: true,
                ..Default::default()
            }),
        })
        .await
        .expect("create staff")
        .into_inner()
        .staff
        .expect("staff in response")
}

async fn person(client: &mut Client, id: i64) -> pb::Person {
    client.get_person(pb::GetPersonRequest { id }).await.expect("get person").into_inner().person.expect("person")
}

// ---- persons ------------------------------------------------------------------------------

#[tokio::test]
async fn person_create_get_list_update_delete_round_trip() {
    let (app, mut client) = app().await;
    let created = client
        .create_person(pb::CreatePersonRequest {
            person: Some(pb::Person {
                first_name: " Hanna ".into(),
                last_name: "Schmidt".into(),
                birthday: Some("1985-04-12".into()),
                tag_id: Some("04:a1:b2:c3".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .person
        .unwrap();
    assert_eq!(created.first_name, "Hanna");
    assert_eq!(created.tag_id.as_deref(), Some("04A1B2C3"), "tag normalised and its card auto-created");
    assert_eq!(person(&mut client, created.id).await, created);

    create_person(&mut client, "Hannes", None).await;
    create_person(&mut client, "Paul", None).await;
    let by_prefix = client
        .list_persons(pb::ListPersonsRequest { first_name: Some("han".into()), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_prefix.total_size, 2);
    let by_tag = client
        .list_persons(pb::ListPersonsRequest { tag_id: Some("04-A1-B2-C3".into()), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_tag.persons, vec![created.clone()]);

    let updated = client
        .update_person(pb::UpdatePersonRequest {
            person: Some(pb::Person {
                id: created.id,
                last_name: "Schmitt".into(),
                birthday: None,
                ..Default::default()
            }),
            update_mask: mask(&["last_name", "birthday"]),
        })
        .await
        .unwrap()
        .into_inner()
        .person
        .unwrap();
    assert_eq!((updated.first_name.as_str(), updated.last_name.as_str(), updated.birthday), ("Hanna", "Schmitt", None));

    client.delete_person(pb::DeletePersonRequest { id: created.id }).await.expect("delete");
    assert_code(client.get_person(pb::GetPersonRequest { id: created.id }).await, Code::NotFound);
    assert_code(client.delete_person(pb::DeletePersonRequest { id: created.id }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn person_validation_and_references() {
    let (app, mut client) = app().await;
    let p =
        |first: &str, last: &str| pb::Person { first_name: first.into(), last_name: last.into(), ..Default::default() };
    assert_invalid(client.create_person(pb::CreatePersonRequest { person: None }).await, &["person"]);
    assert_invalid(
        client.create_person(pb::CreatePersonRequest { person: Some(p(" ", "")) }).await,
        &["person.first_name", "person.last_name"],
    );
    assert_invalid(
        client
            .create_person(pb::CreatePersonRequest {
                person: Some(pb::Person { birthday: Some("12.04.1985".into()), ..p("A", "B") }),
            })
            .await,
        &["person.birthday"],
    );
    assert_invalid(
        client
            .create_person(pb::CreatePersonRequest {
                person: Some(pb::Person { tag_id: Some("xyz".into()), ..p("A", "B") }),
            })
            .await,
        &["person.tag_id"],
    );
    assert_invalid(
        client
            .create_person(pb::CreatePersonRequest {
                person: Some(pb::Person { account_id: Some(999), ..p("A", "B") }),
            })
            .await,
        &["person.account_id"],
    );
    // An account links to one person only.
    let mut conn = app.db.conn().await;
    let account = fixtures::account(&mut conn, "hanna@example.org").await;
    client
        .create_person(pb::CreatePersonRequest {
            person: Some(pb::Person { account_id: Some(account), ..p("A", "B") }),
        })
        .await
        .expect("first link");
    assert_code(
        client
            .create_person(pb::CreatePersonRequest {
                person: Some(pb::Person { account_id: Some(account), ..p("C", "D") }),
            })
            .await,
        Code::AlreadyExists,
    );
    assert_invalid(
        client
            .update_person(pb::UpdatePersonRequest { person: Some(p("A", "B")), update_mask: mask(&["tag_id"]) })
            .await,
        &["person.id", "update_mask"],
    );
    assert_code(
        client
            .update_person(pb::UpdatePersonRequest {
                person: Some(pb::Person { id: 999, ..p("A", "B") }),
                update_mask: mask(&["first_name"]),
            })
            .await,
        Code::NotFound,
    );
    assert_invalid(
        client.list_persons(pb::ListPersonsRequest { page_size: 1000, ..Default::default() }).await,
        &["page_size"],
    );
    app.stop().await;
}

#[tokio::test]
async fn a_students_person_cannot_be_deleted_here() {
    let (app, mut client) = app().await;
    let s = create_student(&mut client, new_student("Mia", "Muster", "1a")).await;
    let status =
        assert_code(client.delete_person(pb::DeletePersonRequest { id: s.person_id }).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("PERSON_IS_STUDENT"));
    get_student(&mut client, As::Admin, s.id).await;
    app.stop().await;
}

// ---- staff --------------------------------------------------------------------------------

#[tokio::test]
async fn staff_create_get_list_update_delete_round_trip() {
    let (app, mut client) = app().await;
    let teacher = create_teacher(&mut client, "Anna").await;
    assert!(teacher.is_teacher && teacher.teacher_id.is_some());
    assert_eq!((teacher.first_name.as_str(), teacher.last_name.as_str()), ("Anna", "Lehrer"));

    let existing = create_person(&mut client, "Bert", None).await;
    let helper = client
        .create_staff(pb::CreateStaffRequest {
            staff: Some(pb::Staff { person_id: existing.id, staff_notes: Some("Mensa".into()), ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert_eq!((helper.person_id, helper.is_teacher, helper.teacher_id), (existing.id, false, None));

    let got = client.get_staff(pb::GetStaffRequest { id: teacher.id }).await.unwrap().into_inner().staff.unwrap();
    assert_eq!(got, teacher);
    let all = client.list_staff(pb::ListStaffRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.total_size, 2);
    let teachers = client
        .list_staff(pb::ListStaffRequest { teachers_only: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((teachers.total_size, teachers.staff[0].id), (1, teacher.id));
    let by_name = client
        .list_staff(pb::ListStaffRequest { first_name: Some("be".into()), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_name.staff.len(), 1);

    // Promote the helper to teacher with a role; change only the notes of the teacher.
    let promoted = client
        .update_staff(pb::UpdateStaffRequest {
            staff: Some(pb::Staff {
                id: helper.id,
                is_teacher: true,
                role: Some("Erzieher".into()),
                ..Default::default()
            }),
            update_mask: mask(&["is_teacher", "role"]),
        })
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert!(promoted.is_teacher);
    assert_eq!((promoted.role.as_deref(), promoted.staff_notes.as_deref()), (Some("Erzieher"), Some("Mensa")));
    let demoted = client
        .update_staff(pb::UpdateStaffRequest {
            staff: Some(pb::Staff { id: helper.id, is_teacher: false, ..Default::default() }),
            update_mask: mask(&["is_teacher"]),
        })
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert!(!demoted.is_teacher && demoted.role.is_none());

    client.delete_staff(pb::DeleteStaffRequest { id: helper.id }).await.expect("delete staff");
    assert_code(client.get_staff(pb::GetStaffRequest { id: helper.id }).await, Code::NotFound);
    assert_eq!(person(&mut client, existing.id).await.id, existing.id, "the person stays");
    assert_code(client.delete_staff(pb::DeleteStaffRequest { id: helper.id }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn staff_validation_duplicates_and_the_group_leader_rule() {
    let (app, mut client) = app().await;
    assert_invalid(
        client
            .create_staff(pb::CreateStaffRequest { staff: Some(pb::Staff { person_id: 999, ..Default::default() }) })
            .await,
        &["staff.person_id"],
    );
    assert_invalid(
        client.create_staff(pb::CreateStaffRequest { staff: Some(pb::Staff::default()) }).await,
        &["staff.first_name", "staff.last_name"],
    );
    let p = create_person(&mut client, "Carla", None).await;
    let staff = pb::Staff { person_id: p.id, ..Default::default() };
    client.create_staff(pb::CreateStaffRequest { staff: Some(staff.clone()) }).await.expect("first");
    assert_code(client.create_staff(pb::CreateStaffRequest { staff: Some(staff) }).await, Code::AlreadyExists);

    // A teacher who leads a group is not silently stripped of it.
    let t = create_teacher(&mut client, "Dora").await;
    let mut conn = app.db.conn().await;
    let g = fixtures::group(&mut conn, "Füchse").await;
    fixtures::group_teacher(&mut conn, g, t.teacher_id.unwrap()).await;
    let status = assert_code(
        client
            .update_staff(pb::UpdateStaffRequest {
                staff: Some(pb::Staff { id: t.id, is_teacher: false, ..Default::default() }),
                update_mask: mask(&["is_teacher"]),
            })
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("TEACHER_LEADS_GROUPS"));
    assert_code(
        client
            .update_staff(pb::UpdateStaffRequest {
                staff: Some(pb::Staff { id: 999, ..Default::default() }),
                update_mask: mask(&["role"]),
            })
            .await,
        Code::NotFound,
    );
    app.stop().await;
}

// ---- students -----------------------------------------------------------------------------

#[tokio::test]
async fn student_create_get_list_update_deactivate_round_trip() {
    let (app, mut client) = app().await;
    let mut conn = app.db.conn().await;
    let group = fixtures::group(&mut conn, "Eulen").await;
    let created = create_student(
        &mut client,
        pb::Student {
            birthday: Some("2017-05-01".into()),
            group_id: Some(group),
            tag_id: Some("04 aa bb cc dd".into()),
            health_info: Some("Nussallergie".into()),
            bus: true,
            ..new_student(" Mia ", "Muster", " 2a ")
        },
    )
    .await;
    assert!(created.id > 0 && created.person_id > 0);
    assert_eq!((created.first_name.as_str(), created.school_class.as_str()), ("Mia", "2a"));
    assert_eq!(created.group_name.as_deref(), Some("Eulen"));
    assert_eq!(created.tag_id.as_deref(), Some("04AABBCCDD"));
    assert_eq!((created.sick, created.sick_since), (Some(false), None));
    assert!(created.active && created.has_full_access && created.bus);
    assert_eq!(get_student(&mut client, As::Admin, created.id).await, created);

    let listed = client.list_students(pb::ListStudentsRequest::default()).await.unwrap().into_inner();
    assert_eq!((listed.total_size, listed.students.clone()), (1, vec![created.clone()]));

    let updated = client
        .update_student(pb::UpdateStudentRequest {
            student: Some(pb::Student {
                id: created.id,
                school_class: "3a".into(),
                sick: Some(true),
                ..Default::default()
            }),
            update_mask: mask(&["school_class", "sick"]),
        })
        .await
        .unwrap()
        .into_inner()
        .student
        .unwrap();
    assert_eq!((updated.school_class.as_str(), updated.sick), ("3a", Some(true)));
    assert!(updated.sick_since.is_some(), "sick stamps sick_since");
    assert_eq!(updated.health_info.as_deref(), Some("Nussallergie"), "unmasked fields stay");

    // Deactivation: hidden from lists, card back in the pool; reactivation undoes it.
    let gone = client
        .deactivate_student(pb::DeactivateStudentRequest { id: created.id })
        .await
        .unwrap()
        .into_inner()
        .student
        .unwrap();
    assert!(!gone.active && gone.deactivate_time.is_some());
    assert_eq!(gone.tag_id, None);
    let listed = client.list_students(pb::ListStudentsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 0);
    let with_inactive = client
        .list_students(pb::ListStudentsRequest { include_inactive: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_inactive.total_size, 1);
    let pool =
        client.list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest::default()).await.unwrap().into_inner();
    assert_eq!(pool.cards.iter().map(|c| c.tag_id.as_str()).collect::<Vec<_>>(), ["04AABBCCDD"]);
    let status = assert_code(
        client.deactivate_student(pb::DeactivateStudentRequest { id: created.id }).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("STUDENT_INACTIVE"));
    let back = client
        .reactivate_student(pb::ReactivateStudentRequest { id: created.id })
        .await
        .unwrap()
        .into_inner()
        .student
        .unwrap();
    assert!(back.active && back.deactivate_time.is_none());
    assert_code(
        client.reactivate_student(pb::ReactivateStudentRequest { id: created.id }).await,
        Code::FailedPrecondition,
    );
    assert_code(client.deactivate_student(pb::DeactivateStudentRequest { id: 999 }).await, Code::NotFound);
    assert_code(client.get_student(pb::GetStudentRequest { id: 999 }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn student_validation_names_each_field() {
    let (app, mut client) = app().await;
    let ok = new_student("A", "B", "1a");
    assert_invalid(client.create_student(pb::CreateStudentRequest { student: None }).await, &["student"]);
    assert_invalid(
        client.create_student(pb::CreateStudentRequest { student: Some(new_student(" ", "", " ")) }).await,
        &["student.first_name", "student.last_name", "student.school_class"],
    );
    for bad in ["2017-13-01", "01.05.2017", "2017-5-1"] {
        assert_invalid(
            client
                .create_student(pb::CreateStudentRequest {
                    student: Some(pb::Student { birthday: Some(bad.into()), ..ok.clone() }),
                })
                .await,
            &["student.birthday"],
        );
    }
    assert_invalid(
        client
            .create_student(pb::CreateStudentRequest {
                student: Some(pb::Student { birthday: Some("2999-01-01".into()), ..ok.clone() }),
            })
            .await,
        &["student.birthday"],
    );
    for bad in ["123", "04:AA:BB:ZZ:11", &"A".repeat(65)] {
        assert_invalid(
            client
                .create_student(pb::CreateStudentRequest {
                    student: Some(pb::Student { tag_id: Some(bad.into()), ..ok.clone() }),
                })
                .await,
            &["student.tag_id"],
        );
    }
    assert_invalid(
        client
            .create_student(pb::CreateStudentRequest {
                student: Some(pb::Student { group_id: Some(-1), ..ok.clone() }),
            })
            .await,
        &["student.group_id"],
    );
    // A group that does not exist is the request's fault (the original answered 500).
    assert_invalid(
        client
            .create_student(pb::CreateStudentRequest {
                student: Some(pb::Student { group_id: Some(999), ..ok.clone() }),
            })
            .await,
        &["student.group_id"],
    );
    let s = create_student(&mut client, ok.clone()).await;
    assert_invalid(
        client
            .update_student(pb::UpdateStudentRequest {
                student: Some(pb::Student { id: s.id, school_class: " ".into(), ..Default::default() }),
                update_mask: mask(&["school_class"]),
            })
            .await,
        &["student.school_class"],
    );
    assert_invalid(
        client
            .update_student(pb::UpdateStudentRequest {
                student: Some(pb::Student { id: s.id, ..Default::default() }),
                update_mask: mask(&["tag_id"]),
            })
            .await,
        &["update_mask"],
    );
    assert_invalid(
        client
            .update_student(pb::UpdateStudentRequest {
                student: Some(pb::Student { id: s.id, group_id: Some(999), ..Default::default() }),
                update_mask: mask(&["group_id"]),
            })
            .await,
        &["student.group_id"],
    );
    assert_code(
        client
            .update_student(pb::UpdateStudentRequest {
                student: Some(pb::Student { id: 999, ..ok.clone() }),
                update_mask: mask(&["school_class"]),
            })
            .await,
        Code::NotFound,
    );
    // Nothing was half-created by the failed requests.
    let all = client.list_students(pb::ListStudentsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.total_size, 1);
    app.stop().await;
}

#[tokio::test]
async fn student_lists_filter_and_paginate_with_true_totals() {
    let (app, mut client) = app().await;
    let mut conn = app.db.conn().await;
    let foxes = fixtures::group(&mut conn, "Füchse").await;
    let owls = fixtures::group(&mut conn, "Eulen").await;
    let names = ["Emma", "Noah", "Mia", "Leon", "Hanna", "Paul", "Lina"];
    let mut ids = Vec::new();
    for (i, first) in names.iter().enumerate() {
        let s = create_student(
            &mut client,
            pb::Student {
                group_id: Some(if i % 2 == 0 { foxes } else { owls }),
                ..new_student(first, if i < 4 { "Müller" } else { "Schmidt" }, if i < 3 { "1a" } else { "2b" })
            },
        )
        .await;
        ids.push(s.id);
    }
    fixtures::guardian_of(&mut conn, ids[1], "Petra", "Wagner", true).await;

    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = client
            .list_students(pb::ListStudentsRequest { page_size: 3, page_token: token, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_size, 7, "true total on every page");
        seen.extend(page.students.iter().map(|s| s.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);

    let count = |r: pb::ListStudentsRequest| {
        let mut c = client.clone();
        async move { c.list_students(r).await.unwrap().into_inner().total_size }
    };
    assert_eq!(count(pb::ListStudentsRequest { group_id: Some(foxes), ..Default::default() }).await, 4);
    assert_eq!(count(pb::ListStudentsRequest { school_class: Some("2B".into()), ..Default::default() }).await, 4);
    assert_eq!(count(pb::ListStudentsRequest { last_name: Some("mü".into()), ..Default::default() }).await, 4);
    assert_eq!(count(pb::ListStudentsRequest { first_name: Some("l".into()), ..Default::default() }).await, 2);
    assert_eq!(count(pb::ListStudentsRequest { search: Some("hanna schm".into()), ..Default::default() }).await, 1);
    assert_eq!(count(pb::ListStudentsRequest { search: Some(ids[2].to_string()), ..Default::default() }).await, 1);
    assert_eq!(count(pb::ListStudentsRequest { guardian_name: Some("wagn".into()), ..Default::default() }).await, 1);
    assert_eq!(
        count(pb::ListStudentsRequest { group_id: Some(owls), school_class: Some("1a".into()), ..Default::default() })
            .await,
        1
    );

    let first = client
        .list_students(pb::ListStudentsRequest { page_size: 2, group_id: Some(foxes), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_invalid(
        client
            .list_students(pb::ListStudentsRequest {
                page_token: first.next_page_token,
                group_id: Some(owls),
                ..Default::default()
            })
            .await,
        &["page_token"],
    );
    assert_invalid(
        client.list_students(pb::ListStudentsRequest { page_size: 501, group_id: Some(0), ..Default::default() }).await,
        &["page_size", "group_id"],
    );
    app.stop().await;
}

// ---- RFID cards ---------------------------------------------------------------------------

#[tokio::test]
async fn assigning_a_tag_held_by_pupil_a_to_pupil_b_leaves_a_without_a_tag() {
    let (app, mut client) = app().await;
    let a =
        create_student(&mut client, pb::Student { tag_id: Some("04A1B2C3D4".into()), ..new_student("A", "A", "1a") })
            .await;
    let b =
        create_student(&mut client, pb::Student { tag_id: Some("04FFFFFFFF".into()), ..new_student("B", "B", "1a") })
            .await;

    let moved = client
        .assign_rfid_card(pb::AssignRfidCardRequest { person_id: b.person_id, tag_id: "04:a1:b2:c3:d4".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.card.as_ref().map(|c| (c.tag_id.as_str(), c.person_id)), Some(("04A1B2C3D4", Some(b.person_id))));
    assert_eq!(moved.previous_person_id, Some(a.person_id));
    assert_eq!(moved.previous_tag_id.as_deref(), Some("04FFFFFFFF"));

    assert_eq!(get_student(&mut client, As::Admin, a.id).await.tag_id, None, "A lost the tag");
    assert_eq!(get_student(&mut client, As::Admin, b.id).await.tag_id.as_deref(), Some("04A1B2C3D4"));
    let card = client.get_rfid_card(pb::GetRfidCardRequest { tag_id: "04a1b2c3d4".into() }).await.unwrap().into_inner();
    assert_eq!(card.card.unwrap().person_id, Some(b.person_id));
    // B's old card is unassigned, not lost.
    let pool =
        client.list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest::default()).await.unwrap().into_inner();
    assert_eq!(pool.cards.iter().map(|c| c.tag_id.as_str()).collect::<Vec<_>>(), ["04FFFFFFFF"]);

    // Assigning a card to its holder again changes nothing.
    let again = client
        .assign_rfid_card(pb::AssignRfidCardRequest { person_id: b.person_id, tag_id: "04A1B2C3D4".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.previous_person_id, again.previous_tag_id), (None, None));
    app.stop().await;
}

#[tokio::test]
async fn a_failure_midway_through_a_tag_move_leaves_both_pupils_unchanged() {
    let (app, mut client) = app().await;
    let a =
        create_student(&mut client, pb::Student { tag_id: Some("04A1B2C3D4".into()), ..new_student("A", "A", "1a") })
            .await;
    let b =
        create_student(&mut client, pb::Student { tag_id: Some("04FFFFFFFF".into()), ..new_student("B", "B", "1a") })
            .await;
    // Make the last step of the move (linking the card to B) fail inside the database,
    // after A has already been unlinked in the same transaction.
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "CREATE FUNCTION public.fail_link() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.id = {b} AND NEW.tag_id = '04A1B2C3D4' THEN RAISE EXCEPTION 'injected failure'; END IF; \
           RETURN NEW; END $$",
        b = b.person_id
    ))
    .execute(&mut conn)
    .await
    .expect("create function");
    diesel::sql_query(
        "CREATE TRIGGER fail_link BEFORE UPDATE ON users.persons FOR EACH ROW EXECUTE FUNCTION public.fail_link()",
    )
    .execute(&mut conn)
    .await
    .expect("create trigger");

    let err = client
        .assign_rfid_card(pb::AssignRfidCardRequest { person_id: b.person_id, tag_id: "04A1B2C3D4".into() })
        .await
        .expect_err("the injected failure aborts the move");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(!err.message().contains("injected"), "internals are not leaked: {}", err.message());

    assert_eq!(
        get_student(&mut client, As::Admin, a.id).await.tag_id.as_deref(),
        Some("04A1B2C3D4"),
        "A keeps the tag"
    );
    assert_eq!(get_student(&mut client, As::Admin, b.id).await.tag_id.as_deref(), Some("04FFFFFFFF"), "B keeps theirs");
    app.stop().await;
}

#[tokio::test]
async fn card_unassign_deactivate_and_their_rules() {
    let (app, mut client) = app().await;
    let p = create_person(&mut client, "Ida", Some("04AABBCCDD")).await;
    let other = create_person(&mut client, "Ben", None).await;

    let card = client
        .unassign_rfid_card(pb::UnassignRfidCardRequest { person_id: p.id })
        .await
        .unwrap()
        .into_inner()
        .card
        .unwrap();
    assert_eq!((card.tag_id.as_str(), card.person_id, card.active), ("04AABBCCDD", None, true));
    assert_eq!(person(&mut client, p.id).await.tag_id, None);
    let status = assert_code(
        client.unassign_rfid_card(pb::UnassignRfidCardRequest { person_id: p.id }).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("NO_CARD"));
    let pool =
        client.list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest::default()).await.unwrap().into_inner();
    assert_eq!(pool.total_size, 1);

    let dead = client
        .deactivate_rfid_card(pb::DeactivateRfidCardRequest { tag_id: "04-AA-BB-CC-DD".into() })
        .await
        .unwrap()
        .into_inner()
        .card
        .unwrap();
    assert!(!dead.active);
    let pool =
        client.list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest::default()).await.unwrap().into_inner();
    assert_eq!(pool.total_size, 0, "an inactive card is not available");
    let status = assert_code(
        client.assign_rfid_card(pb::AssignRfidCardRequest { person_id: other.id, tag_id: "04AABBCCDD".into() }).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("CARD_INACTIVE"));
    assert_code(
        client.deactivate_rfid_card(pb::DeactivateRfidCardRequest { tag_id: "04AABBCCDD".into() }).await,
        Code::FailedPrecondition,
    );

    assert_invalid(
        client.assign_rfid_card(pb::AssignRfidCardRequest { person_id: 0, tag_id: "nope".into() }).await,
        &["person_id", "tag_id"],
    );
    assert_code(
        client.assign_rfid_card(pb::AssignRfidCardRequest { person_id: 999, tag_id: "04000001".into() }).await,
        Code::NotFound,
    );
    assert_code(client.get_rfid_card(pb::GetRfidCardRequest { tag_id: "04000001".into() }).await, Code::NotFound);
    assert_code(client.unassign_rfid_card(pb::UnassignRfidCardRequest { person_id: 999 }).await, Code::NotFound);
    assert_code(
        client.deactivate_rfid_card(pb::DeactivateRfidCardRequest { tag_id: "04000001".into() }).await,
        Code::NotFound,
    );
    assert_invalid(client.get_rfid_card(pb::GetRfidCardRequest { tag_id: "x".into() }).await, &["tag_id"]);

    // Pagination of the pool by tag.
    for i in 0..5 {
        client
            .assign_rfid_card(pb::AssignRfidCardRequest { person_id: other.id, tag_id: format!("0400000{i}") })
            .await
            .expect("assign");
    }
    let mut token = String::new();
    let mut tags = Vec::new();
    loop {
        let page = client
            .list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest { page_size: 2, page_token: token })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_size, 4, "four earlier cards of Ben are back in the pool");
        tags.extend(page.cards.into_iter().map(|c| c.tag_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(tags, ["04000000", "04000001", "04000002", "04000003"]);
    app.stop().await;
}

// ---- GDPR redaction and the modify rule --------------------------------------------------

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
