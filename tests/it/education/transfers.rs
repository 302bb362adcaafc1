//! `phoenix.education.v1.EducationService` over real gRPC against a real database: transfers and
//! my groups (led plus substituted today).

use phoenix_proto::education::v1 as pb;
use phoenix_proto::users::v1 as upb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, reason, request};
use tonic::Code;

use super::helpers::*;

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
