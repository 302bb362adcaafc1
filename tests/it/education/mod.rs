//! `phoenix.education.v1.EducationService` over real gRPC against a real database: groups,
//! group teachers, substitutions (date and overlap rules), transfers, my groups; staff,
//! rooms and pupils are created through the users and facilities services.

mod escalation;

use phoenix_common::domain::Domain;
use phoenix_proto::education::v1 as pb;
use phoenix_proto::education::v1::education_service_client::EducationServiceClient;
use phoenix_proto::facilities::v1 as fpb;
use phoenix_proto::facilities::v1::facilities_service_client::FacilitiesServiceClient;
use phoenix_proto::users::v1 as upb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason, request};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

type Client = EducationServiceClient<TestChannel>;

struct Env {
    app: TestApp,
    edu: Client,
    users: UsersServiceClient<TestChannel>,
    rooms: FacilitiesServiceClient<TestChannel>,
}

async fn env() -> Env {
    let app = TestApp::spawn(&[Domain::Education, Domain::Users, Domain::Facilities]).await;
    let edu = EducationServiceClient::new(app.test_channel(Domain::Education).await);
    let users = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    let rooms = FacilitiesServiceClient::new(app.test_channel(Domain::Facilities).await);
    Env { app, edu, users, rooms }
}

/// (staff id, teacher id)
async fn teacher(users: &mut UsersServiceClient<TestChannel>, first: &str) -> (i64, i64) {
    let s = users
        .create_staff(upb::CreateStaffRequest {
            staff: Some(upb::Staff {
                first_name: first.into(),
                last_name: "Team".into(),
                is_teacher: true,
                ..Default::default()
            }),
        })
        .await
        .expect("create teacher")
        .into_inner()
        .staff
        .expect("staff");
    (s.id, s.teacher_id.expect("teacher record"))
}

async fn room(rooms: &mut FacilitiesServiceClient<TestChannel>, name: &str) -> i64 {
    rooms
        .create_room(fpb::CreateRoomRequest { room: Some(fpb::Room { name: name.into(), ..Default::default() }) })
        .await
        .expect("create room")
        .into_inner()
        .room
        .expect("room")
        .id
}

async fn group(edu: &mut Client, name: &str, teacher_ids: Vec<i64>) -> pb::Group {
    edu.create_group(pb::CreateGroupRequest {
        group: Some(pb::Group { name: name.into(), teacher_ids, ..Default::default() }),
    })
    .await
    .expect("create group")
    .into_inner()
    .group
    .expect("group")
}

fn day(offset: i64) -> String {
    (phoenix_common::time::business_today() + chrono::Duration::days(offset)).format("%Y-%m-%d").to_string()
}

fn substitution(group_id: i64, substitute: i64, start: i64, end: i64) -> pb::CreateSubstitutionRequest {
    pb::CreateSubstitutionRequest {
        substitution: Some(pb::Substitution {
            group_id,
            substitute_staff_id: substitute,
            start_date: day(start),
            end_date: day(end),
            ..Default::default()
        }),
    }
}

async fn my_groups(edu: &mut Client, staff: i64) -> Vec<(String, i32, Option<i64>)> {
    edu.list_my_groups(request(As::Staff(staff), pb::ListMyGroupsRequest {}))
        .await
        .expect("my groups")
        .into_inner()
        .groups
        .into_iter()
        .map(|g| (g.group.map(|g| g.name).unwrap_or_default(), g.role, g.substitution_id))
        .collect()
}

// ---- groups -------------------------------------------------------------------------------

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

// ---- substitutions ------------------------------------------------------------------------

#[tokio::test]
async fn substitution_create_get_list_update_delete_round_trip() {
    let Env { app, mut edu, mut users, .. } = env().await;
    let (anna_staff, anna) = teacher(&mut users, "Anna").await;
    let (sven, _) = teacher(&mut users, "Sven").await;
    let foxes = group(&mut edu, "Füchse", vec![anna]).await;
    let created = edu
        .create_substitution(pb::CreateSubstitutionRequest {
            substitution: Some(pb::Substitution {
                group_id: foxes.id,
                regular_staff_id: Some(anna_staff),
                substitute_staff_id: sven,
                start_date: day(0),
                end_date: day(2),
                reason: Some("Fortbildung".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .substitution
        .unwrap();
    assert_eq!((created.duration_days, created.active, created.group_name.as_str()), (3, true, "Füchse"));
    assert_eq!(created.kind, pb::SubstitutionKind::Substitution as i32);
    let got = edu.get_substitution(pb::GetSubstitutionRequest { id: created.id }).await.unwrap().into_inner();
    assert_eq!(got.substitution.as_ref(), Some(&created));

    let list = |r: pb::ListSubstitutionsRequest| {
        let mut c = edu.clone();
        async move { c.list_substitutions(r).await.unwrap().into_inner().total_size }
    };
    assert_eq!(list(pb::ListSubstitutionsRequest { group_id: Some(foxes.id), ..Default::default() }).await, 1);
    assert_eq!(list(pb::ListSubstitutionsRequest { active_on: Some(day(2)), ..Default::default() }).await, 1);
    assert_eq!(list(pb::ListSubstitutionsRequest { active_on: Some(day(3)), ..Default::default() }).await, 0);
    assert_eq!(list(pb::ListSubstitutionsRequest { kind: Some(2), ..Default::default() }).await, 0);
    assert_invalid(
        edu.list_substitutions(pb::ListSubstitutionsRequest { kind: Some(0), ..Default::default() }).await,
        &["kind"],
    );
    assert_invalid(
        edu.list_substitutions(pb::ListSubstitutionsRequest { active_on: Some("morgen".into()), ..Default::default() })
            .await,
        &["active_on"],
    );

    let extended = edu
        .update_substitution(pb::UpdateSubstitutionRequest {
            substitution: Some(pb::Substitution { id: created.id, end_date: day(4), ..Default::default() }),
            update_mask: mask(&["end_date"]),
        })
        .await
        .unwrap()
        .into_inner()
        .substitution
        .unwrap();
    assert_eq!(
        (extended.end_date, extended.duration_days, extended.reason.as_deref()),
        (day(4), 5, Some("Fortbildung"))
    );

    edu.delete_substitution(pb::DeleteSubstitutionRequest { id: created.id }).await.expect("delete");
    assert_code(edu.get_substitution(pb::GetSubstitutionRequest { id: created.id }).await, Code::NotFound);
    assert_code(edu.delete_substitution(pb::DeleteSubstitutionRequest { id: created.id }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn substitution_date_and_reference_rules_name_the_field() {
    let Env { app, mut edu, mut users, .. } = env().await;
    let (sven, _) = teacher(&mut users, "Sven").await;
    let foxes = group(&mut edu, "Füchse", vec![]).await;
    assert_invalid(edu.create_substitution(substitution(foxes.id, sven, -1, 1)).await, &["substitution.start_date"]);
    assert_invalid(edu.create_substitution(substitution(foxes.id, sven, 2, 1)).await, &["substitution.end_date"]);
    let mut bad_dates = substitution(foxes.id, sven, 0, 0);
    if let Some(s) = bad_dates.substitution.as_mut() {
        s.start_date = "heute".into();
        s.end_date = String::new();
    }
    assert_invalid(edu.create_substitution(bad_dates).await, &["substitution.start_date", "substitution.end_date"]);
    let mut same = substitution(foxes.id, sven, 0, 0);
    if let Some(s) = same.substitution.as_mut() {
        s.regular_staff_id = Some(sven);
    }
    assert_invalid(edu.create_substitution(same).await, &["substitution.substitute_staff_id"]);
    assert_invalid(
        edu.create_substitution(substitution(0, 0, 0, 0)).await,
        &["substitution.group_id", "substitution.substitute_staff_id"],
    );
    // Missing referenced rows are the request's fault (the original answered 500).
    assert_invalid(edu.create_substitution(substitution(999, sven, 0, 0)).await, &["substitution.group_id"]);
    assert_invalid(
        edu.create_substitution(substitution(foxes.id, 999, 0, 0)).await,
        &["substitution.substitute_staff_id"],
    );
    let mut ghost_regular = substitution(foxes.id, sven, 0, 0);
    if let Some(s) = ghost_regular.substitution.as_mut() {
        s.regular_staff_id = Some(999);
    }
    assert_invalid(edu.create_substitution(ghost_regular).await, &["substitution.regular_staff_id"]);

    // A substitution that already ended is history and stays as it was.
    let mut conn = app.db.conn().await;
    let past = fixtures::substitution(&mut conn, foxes.id, sven, "CURRENT_DATE - 10", "CURRENT_DATE - 5").await;
    let status = assert_code(
        edu.update_substitution(pb::UpdateSubstitutionRequest {
            substitution: Some(pb::Substitution { id: past, reason: Some("x".into()), ..Default::default() }),
            update_mask: mask(&["reason"]),
        })
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("SUBSTITUTION_ENDED"));
    assert_code(
        edu.update_substitution(pb::UpdateSubstitutionRequest {
            substitution: Some(pb::Substitution { id: 999, ..Default::default() }),
            update_mask: mask(&["reason"]),
        })
        .await,
        Code::NotFound,
    );
    app.stop().await;
}

#[tokio::test]
async fn overlapping_substitutions_are_duplicates_or_a_busy_substitute() {
    let Env { app, mut edu, mut users, .. } = env().await;
    let (sven, _) = teacher(&mut users, "Sven").await;
    let foxes = group(&mut edu, "Füchse", vec![]).await;
    let owls = group(&mut edu, "Eulen", vec![]).await;
    let first =
        edu.create_substitution(substitution(foxes.id, sven, 1, 3)).await.unwrap().into_inner().substitution.unwrap();
    // Same group, same substitute, overlapping: a duplicate.
    assert_code(edu.create_substitution(substitution(foxes.id, sven, 3, 5)).await, Code::AlreadyExists);
    // Another group in that period: the substitute is busy.
    let status =
        assert_code(edu.create_substitution(substitution(owls.id, sven, 0, 1)).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("SUBSTITUTE_BUSY"));
    // Adjacent periods are fine.
    let later =
        edu.create_substitution(substitution(owls.id, sven, 4, 6)).await.unwrap().into_inner().substitution.unwrap();
    // Moving a substitution into an overlap is refused the same way; its own period is not an overlap.
    let status = assert_code(
        edu.update_substitution(pb::UpdateSubstitutionRequest {
            substitution: Some(pb::Substitution { id: later.id, start_date: day(3), ..Default::default() }),
            update_mask: mask(&["start_date"]),
        })
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("SUBSTITUTE_BUSY"));
    edu.update_substitution(pb::UpdateSubstitutionRequest {
        substitution: Some(pb::Substitution { id: first.id, end_date: day(2), ..Default::default() }),
        update_mask: mask(&["end_date"]),
    })
    .await
    .expect("shrinking within its own period");
    app.stop().await;
}

// ---- transfers and my groups --------------------------------------------------------------

#[tokio::test]
async fn a_leader_hands_a_group_over_for_today_and_takes_it_back() {
    let Env { app, mut edu, mut users, .. } = env().await;
    let (anna_staff, anna) = teacher(&mut users, "Anna").await;
    let (bert_staff, _) = teacher(&mut users, "Bert").await;
    let (carl_staff, carl) = teacher(&mut users, "Carl").await;
    let foxes = group(&mut edu, "Füchse", vec![anna]).await;
    let owls = group(&mut edu, "Eulen", vec![carl]).await;
    let pupil = users
        .create_student(upb::CreateStudentRequest {
            student: Some(upb::Student {
                first_name: "Mia".into(),
                last_name: "M".into(),
                school_class: "1a".into(),
                group_id: Some(foxes.id),
                health_info: Some("Asthma".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .student
        .unwrap();
    let bert_sees = |users: &mut UsersServiceClient<TestChannel>| {
        let mut u = users.clone();
        async move {
            u.get_student(request(As::Staff(bert_staff), upb::GetStudentRequest { id: pupil.id }))
                .await
                .unwrap()
                .into_inner()
                .student
                .unwrap()
                .has_full_access
        }
    };
    assert!(!bert_sees(&mut users).await);

    let transfer = edu
        .transfer_group(request(
            As::Staff(anna_staff),
            pb::TransferGroupRequest { group_id: foxes.id, target_staff_id: bert_staff },
        ))
        .await
        .unwrap()
        .into_inner()
        .transfer
        .unwrap();
    assert_eq!(transfer.kind, pb::SubstitutionKind::Transfer as i32);
    assert_eq!((transfer.start_date.clone(), transfer.end_date.clone(), transfer.active), (day(0), day(0), true));
    assert_eq!((transfer.regular_staff_id, transfer.reason.as_deref()), (None, Some("Gruppenübergabe")));
    assert_eq!(
        my_groups(&mut edu, bert_staff).await,
        [("Füchse".to_owned(), pb::MyGroupRole::Substitute as i32, Some(transfer.id))]
    );
    assert!(bert_sees(&mut users).await, "the transfer gives Bert full access to the group's pupils today");

    // The rules around it.
    let t = |caller: As, group_id: i64, target: i64| {
        let mut e = edu.clone();
        async move {
            e.transfer_group(request(caller, pb::TransferGroupRequest { group_id, target_staff_id: target })).await
        }
    };
    assert_code(t(As::Staff(anna_staff), foxes.id, bert_staff).await, Code::AlreadyExists);
    assert_code(t(As::Staff(carl_staff), foxes.id, bert_staff).await, Code::PermissionDenied);
    assert_code(t(As::Admin, foxes.id, bert_staff).await, Code::PermissionDenied);
    assert_invalid(t(As::Staff(anna_staff), foxes.id, anna_staff).await, &["target_staff_id"]);
    assert_invalid(t(As::Staff(anna_staff), foxes.id, 999).await, &["target_staff_id"]);
    assert_invalid(t(As::Staff(anna_staff), 0, 0).await, &["group_id", "target_staff_id"]);
    assert_code(t(As::Staff(anna_staff), 999, bert_staff).await, Code::NotFound);
    let status = assert_code(t(As::Staff(carl_staff), owls.id, bert_staff).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("SUBSTITUTE_BUSY"), "Bert already has the foxes today");

    // Only a leader cancels, only transfers, only of that group.
    let planned = edu
        .create_substitution(substitution(foxes.id, carl_staff, 1, 1))
        .await
        .unwrap()
        .into_inner()
        .substitution
        .unwrap();
    let cancel = |caller: As, group_id: i64, substitution_id: i64| {
        let mut e = edu.clone();
        async move { e.cancel_transfer(request(caller, pb::CancelTransferRequest { group_id, substitution_id })).await }
    };
    assert_code(cancel(As::Staff(carl_staff), foxes.id, transfer.id).await, Code::PermissionDenied);
    assert_code(cancel(As::Staff(carl_staff), owls.id, transfer.id).await, Code::NotFound);
    let status = assert_code(cancel(As::Staff(anna_staff), foxes.id, planned.id).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("NOT_A_TRANSFER"));
    cancel(As::Staff(anna_staff), foxes.id, transfer.id).await.expect("leader cancels");
    assert!(my_groups(&mut edu, bert_staff).await.is_empty());
    assert!(!bert_sees(&mut users).await);
    app.stop().await;
}

#[tokio::test]
async fn my_groups_are_led_plus_substituted_today_each_once() {
    let Env { app, mut edu, mut users, .. } = env().await;
    let (anna_staff, anna) = teacher(&mut users, "Anna").await;
    let (sven, _) = teacher(&mut users, "Sven").await;
    let foxes = group(&mut edu, "Füchse", vec![anna]).await;
    let owls = group(&mut edu, "Eulen", vec![]).await;
    let bears = group(&mut edu, "Bären", vec![]).await;
    // Anna leads the foxes and substitutes the owls today; a substitution of her own group
    // does not list it twice; Sven's cover of the bears starts tomorrow.
    let today = edu
        .create_substitution(substitution(owls.id, anna_staff, 0, 0))
        .await
        .unwrap()
        .into_inner()
        .substitution
        .unwrap();
    let mut conn = app.db.conn().await;
    fixtures::substitution(&mut conn, foxes.id, anna_staff, "CURRENT_DATE - 1", "CURRENT_DATE + 1").await;
    edu.create_substitution(substitution(bears.id, sven, 1, 1)).await.expect("tomorrow");

    assert_eq!(
        my_groups(&mut edu, anna_staff).await,
        [
            ("Füchse".to_owned(), pb::MyGroupRole::Leader as i32, None),
            ("Eulen".to_owned(), pb::MyGroupRole::Substitute as i32, Some(today.id)),
        ]
    );
    assert!(my_groups(&mut edu, sven).await.is_empty(), "tomorrow's cover is not today's group");
    let status = assert_code(edu.list_my_groups(pb::ListMyGroupsRequest {}).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("NOT_STAFF"));
    app.stop().await;
}
