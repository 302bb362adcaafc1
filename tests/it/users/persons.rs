//! `phoenix.users.v1.UsersService` over real gRPC against a real database: persons and staff —
//! round trips, validation, references, duplicates and the group-leader rule.

use phoenix_proto::users::v1 as pb;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason};
use tonic::Code;

use super::helpers::*;

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
