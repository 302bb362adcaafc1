//! `phoenix.users.v1.UsersService` over real gRPC against a real database: students — round
//! trips, validation of each field, lists with filters, pagination and true totals.

use phoenix_proto::users::v1 as pb;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason};
use tonic::Code;

use super::helpers::*;

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
