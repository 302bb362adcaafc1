//! `phoenix.education.v1.EducationService` over real gRPC against a real database: substitutions —
//! round trips, date and reference rules, and overlaps.

use phoenix_proto::education::v1 as pb;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{assert_code, assert_invalid, mask, reason};
use tonic::Code;

use super::helpers::*;

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
