//! `phoenix.education.v1.EducationService` over real gRPC against a real database: groups —
//! round trips, validation, duplicates, delete rules, group teachers and pagination.

use phoenix_proto::education::v1 as pb;
use phoenix_proto::users::v1 as upb;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{assert_code, assert_invalid, mask, reason};
use tonic::Code;

use super::helpers::*;

#[tokio::test]
async fn group_create_get_list_update_delete_round_trip() {
    let Env { app, mut edu, mut users, mut rooms } = env().await;
    let (_, anna) = teacher(&mut users, "Anna").await;
    let (_, bert) = teacher(&mut users, "Bert").await;
    let r101 = room(&mut rooms, "Raum 101").await;
    let created = edu
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: " Füchse ".into(),
                room_id: Some(r101),
                teacher_ids: vec![anna],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!((created.name.as_str(), created.room_name.as_deref()), ("Füchse", Some("Raum 101")));
    assert_eq!(created.teacher_ids, [anna]);
    assert_eq!(created.teachers[0].first_name, "Anna");
    assert_eq!(created.student_count, 0);
    users
        .create_student(upb::CreateStudentRequest {
            student: Some(upb::Student {
                first_name: "Mia".into(),
                last_name: "M".into(),
                school_class: "1a".into(),
                group_id: Some(created.id),
                ..Default::default()
            }),
        })
        .await
        .expect("pupil");
    let got = edu.get_group(pb::GetGroupRequest { id: created.id }).await.unwrap().into_inner().group.unwrap();
    assert_eq!(got.student_count, 1);

    group(&mut edu, "Eulen", vec![bert]).await;
    let by_teacher = edu
        .list_groups(pb::ListGroupsRequest { teacher_id: Some(bert), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((by_teacher.total_size, by_teacher.groups[0].name.as_str()), (1, "Eulen"));
    let by_room = edu
        .list_groups(pb::ListGroupsRequest { room_id: Some(r101), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_room.total_size, 1);
    let by_name = edu
        .list_groups(pb::ListGroupsRequest { name_contains: Some("CHS".into()), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_name.groups[0].id, created.id);

    // Rename and replace the teacher set; the room is not in the mask and stays.
    let updated = edu
        .update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group {
                id: created.id,
                name: "Rotfüchse".into(),
                teacher_ids: vec![bert],
                ..Default::default()
            }),
            update_mask: mask(&["name", "teacher_ids"]),
        })
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.teacher_ids.clone(), updated.room_id),
        ("Rotfüchse", vec![bert], Some(r101))
    );

    let eulen = by_teacher.groups[0].id;
    edu.delete_group(pb::DeleteGroupRequest { id: eulen }).await.expect("delete");
    assert_code(edu.get_group(pb::GetGroupRequest { id: eulen }).await, Code::NotFound);
    assert_code(edu.delete_group(pb::DeleteGroupRequest { id: eulen }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn group_validation_duplicates_and_delete_rules() {
    let Env { app, mut edu, mut users, .. } = env().await;
    let g = |name: &str| pb::Group { name: name.into(), ..Default::default() };
    assert_invalid(edu.create_group(pb::CreateGroupRequest { group: None }).await, &["group"]);
    assert_invalid(edu.create_group(pb::CreateGroupRequest { group: Some(g(" ")) }).await, &["group.name"]);
    assert_invalid(
        edu.create_group(pb::CreateGroupRequest { group: Some(pb::Group { room_id: Some(999), ..g("A") }) }).await,
        &["group.room_id"],
    );
    assert_invalid(
        edu.create_group(pb::CreateGroupRequest { group: Some(pb::Group { teacher_ids: vec![999], ..g("A") }) }).await,
        &["group.teacher_ids"],
    );
    let foxes = group(&mut edu, "Füchse", vec![]).await;
    let owls = group(&mut edu, "Eulen", vec![]).await;
    assert_code(edu.create_group(pb::CreateGroupRequest { group: Some(g("Füchse")) }).await, Code::AlreadyExists);
    assert_code(
        edu.update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group { id: owls.id, ..g("Füchse") }),
            update_mask: mask(&["name"]),
        })
        .await,
        Code::AlreadyExists,
    );
    assert_invalid(
        edu.update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group { id: owls.id, teacher_ids: vec![999], ..g("x") }),
            update_mask: mask(&["teacher_ids"]),
        })
        .await,
        &["group.teacher_ids"],
    );
    assert_code(
        edu.update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group { id: 999, ..g("x") }),
            update_mask: mask(&["name"]),
        })
        .await,
        Code::NotFound,
    );
    assert_invalid(
        edu.update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group { id: owls.id, ..g("x") }),
            update_mask: mask(&["id"]),
        })
        .await,
        &["update_mask"],
    );

    // A group with pupils, or with session history, is not deleted out from under them.
    users
        .create_student(upb::CreateStudentRequest {
            student: Some(upb::Student {
                first_name: "A".into(),
                last_name: "B".into(),
                school_class: "1a".into(),
                group_id: Some(foxes.id),
                ..Default::default()
            }),
        })
        .await
        .expect("pupil");
    let status = assert_code(edu.delete_group(pb::DeleteGroupRequest { id: foxes.id }).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("GROUP_HAS_STUDENTS"));
    let mut conn = app.db.conn().await;
    fixtures::insert_returning_id(
        &mut conn,
        &format!(
            "WITH r AS (INSERT INTO facilities.rooms (name) VALUES ('R') RETURNING id) \
             INSERT INTO active.groups (room_id, education_group_id, start_time, end_time) \
             SELECT r.id, {}, now() - interval '1 hour', now() FROM r RETURNING id",
            owls.id
        ),
    )
    .await;
    let status = assert_code(edu.delete_group(pb::DeleteGroupRequest { id: owls.id }).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("GROUP_HAS_SESSIONS"));
    app.stop().await;
}

#[tokio::test]
async fn group_teachers_are_added_and_removed() {
    let Env { app, mut edu, mut users, .. } = env().await;
    let (_, anna) = teacher(&mut users, "Anna").await;
    let foxes = group(&mut edu, "Füchse", vec![]).await;
    let added = edu
        .add_group_teacher(pb::AddGroupTeacherRequest { group_id: foxes.id, teacher_id: anna })
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(added.teacher_ids, [anna]);
    assert_code(
        edu.add_group_teacher(pb::AddGroupTeacherRequest { group_id: foxes.id, teacher_id: anna }).await,
        Code::AlreadyExists,
    );
    assert_invalid(
        edu.add_group_teacher(pb::AddGroupTeacherRequest { group_id: foxes.id, teacher_id: 999 }).await,
        &["teacher_id"],
    );
    assert_code(
        edu.add_group_teacher(pb::AddGroupTeacherRequest { group_id: 999, teacher_id: anna }).await,
        Code::NotFound,
    );
    assert_invalid(
        edu.add_group_teacher(pb::AddGroupTeacherRequest { group_id: 0, teacher_id: 0 }).await,
        &["group_id", "teacher_id"],
    );
    let removed = edu
        .remove_group_teacher(pb::RemoveGroupTeacherRequest { group_id: foxes.id, teacher_id: anna })
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert!(removed.teacher_ids.is_empty());
    assert_code(
        edu.remove_group_teacher(pb::RemoveGroupTeacherRequest { group_id: foxes.id, teacher_id: anna }).await,
        Code::NotFound,
    );
    app.stop().await;
}

#[tokio::test]
async fn group_and_substitution_lists_paginate_with_true_totals() {
    let Env { app, mut edu, mut users, .. } = env().await;
    let (sven, _) = teacher(&mut users, "Sven").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(group(&mut edu, &format!("Gruppe {i}"), vec![]).await.id);
    }
    for (i, g) in ids.iter().enumerate() {
        let offset = (i as i64) * 2;
        edu.create_substitution(substitution(*g, sven, offset, offset)).await.expect("substitution");
    }
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = edu
            .list_groups(pb::ListGroupsRequest { page_size: 2, page_token: token, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_size, 5);
        seen.extend(page.groups.into_iter().map(|g| g.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = edu
            .list_substitutions(pb::ListSubstitutionsRequest {
                page_size: 2,
                page_token: token,
                substitute_staff_id: Some(sven),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_size, 5);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_invalid(
        edu.list_groups(pb::ListGroupsRequest { page_size: 501, ..Default::default() }).await,
        &["page_size"],
    );
    app.stop().await;
}
