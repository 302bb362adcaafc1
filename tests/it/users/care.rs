//! Privacy consents and pickup data (schedules, exceptions, notes) of
//! `phoenix.users.v1.UsersService` over real gRPC against a real database.

use phoenix_proto::users::v1 as pb;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason, request};
use tonic::Code;

use super::guardian_helpers::*;

#[tokio::test]
async fn privacy_consent_default_upsert_by_version_and_rules() {
    let School { app, mut client, pupil, other, teacher, .. } = school().await;
    let reader = client.clone();
    let get = move |caller: As| {
        let mut c = reader.clone();
        async move { c.get_privacy_consent(request(caller, pb::GetPrivacyConsentRequest { student_id: pupil.id })).await }
    };
    let default = get(As::Admin).await.unwrap().into_inner().consent.unwrap();
    assert_eq!(
        (
            default.id,
            default.policy_version.as_str(),
            default.accepted,
            default.renewal_required,
            default.data_retention_days
        ),
        (None, "1.0", false, true, 30)
    );

    let upsert = |accepted: bool, retention: i32| pb::UpsertPrivacyConsentRequest {
        consent: Some(pb::PrivacyConsent {
            student_id: pupil.id,
            policy_version: "2.0".into(),
            accepted,
            duration_days: Some(365),
            data_retention_days: retention,
            details_json: Some(r#"{"signed_by":"Petra"}"#.into()),
            ..Default::default()
        }),
    };
    let stored = client.upsert_privacy_consent(upsert(true, 14)).await.unwrap().into_inner().consent.unwrap();
    assert!(stored.id.is_some() && stored.accepted && !stored.renewal_required);
    let accepted_at = stored.accept_time.expect("accept time");
    let expires = stored.expire_time.expect("expire time");
    assert_eq!(expires.seconds - accepted_at.seconds, 365 * 86_400);
    assert_eq!(get(As::Staff(teacher)).await.unwrap().into_inner().consent.unwrap(), stored);

    // The same version again updates that row and keeps the first acceptance time.
    let again = client.upsert_privacy_consent(upsert(true, 7)).await.unwrap().into_inner().consent.unwrap();
    assert_eq!((again.id, again.accept_time, again.data_retention_days), (stored.id, Some(accepted_at), 7));

    for bad in [0, 32] {
        assert_invalid(client.upsert_privacy_consent(upsert(true, bad)).await, &["consent.data_retention_days"]);
    }
    let mut no_version = upsert(true, 7);
    if let Some(c) = no_version.consent.as_mut() {
        c.policy_version = " ".into();
        c.details_json = Some("[1]".into());
    }
    assert_invalid(
        client.upsert_privacy_consent(no_version).await,
        &["consent.policy_version", "consent.details_json"],
    );
    assert_code(get(As::Staff(other)).await, Code::PermissionDenied);
    assert_code(
        client.upsert_privacy_consent(request(As::Staff(other), upsert(true, 7))).await,
        Code::PermissionDenied,
    );
    let mut ghost = upsert(true, 7);
    if let Some(c) = ghost.consent.as_mut() {
        c.student_id = 999;
    }
    assert_code(client.upsert_privacy_consent(ghost).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn pickup_schedule_exceptions_and_notes() {
    let School { app, mut client, pupil, other, teacher, .. } = school().await;
    let entry = |weekday: i32, time: &str| pb::PickupScheduleEntry { weekday, pickup_time: time.into(), notes: None };
    let set = client
        .set_pickup_schedule(request(
            As::Staff(teacher),
            pb::SetPickupScheduleRequest {
                student_id: pupil.id,
                schedules: vec![entry(5, "13:00"), entry(1, "15:30")],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.schedules.iter().map(|s| s.weekday).collect::<Vec<_>>(), [1, 5]);
    // Setting again replaces the week.
    client
        .set_pickup_schedule(pb::SetPickupScheduleRequest { student_id: pupil.id, schedules: vec![entry(2, "14:00")] })
        .await
        .expect("replace");
    assert_invalid(
        client
            .set_pickup_schedule(pb::SetPickupScheduleRequest {
                student_id: pupil.id,
                schedules: vec![entry(6, "14:00")],
            })
            .await,
        &["schedules[0].weekday"],
    );
    assert_invalid(
        client.set_pickup_schedule(pb::SetPickupScheduleRequest { student_id: pupil.id, schedules: vec![] }).await,
        &["schedules"],
    );
    assert_code(
        client
            .set_pickup_schedule(pb::SetPickupScheduleRequest { student_id: 999, schedules: vec![entry(1, "14:00")] })
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .set_pickup_schedule(request(
                As::Staff(other),
                pb::SetPickupScheduleRequest { student_id: pupil.id, schedules: vec![entry(1, "14:00")] },
            ))
            .await,
        Code::PermissionDenied,
    );

    let exception = |date: &str| pb::CreatePickupExceptionRequest {
        exception: Some(pb::PickupException {
            student_id: pupil.id,
            exception_date: date.into(),
            pickup_time: Some("12:00".into()),
            reason: Some("Arzttermin".into()),
            ..Default::default()
        }),
    };
    let ex = client.create_pickup_exception(exception("2026-12-01")).await.unwrap().into_inner().exception.unwrap();
    assert_eq!((ex.pickup_time.as_deref(), ex.reason.as_deref()), (Some("12:00"), Some("Arzttermin")));
    assert_code(client.create_pickup_exception(exception("2026-12-01")).await, Code::AlreadyExists);
    let mut ghost = exception("2026-12-02");
    if let Some(e) = ghost.exception.as_mut() {
        e.student_id = 999;
    }
    assert_invalid(client.create_pickup_exception(ghost).await, &["exception.student_id"]);
    let absent = client
        .update_pickup_exception(pb::UpdatePickupExceptionRequest {
            exception: Some(pb::PickupException { id: ex.id, pickup_time: None, ..Default::default() }),
            update_mask: mask(&["pickup_time"]),
        })
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    assert_eq!(absent.pickup_time, None, "no pickup time = not picked up that day");

    let note = client
        .create_pickup_note(pb::CreatePickupNoteRequest {
            note: Some(pb::PickupNote {
                student_id: pupil.id,
                note_date: "2026-12-01".into(),
                content: "Oma holt ab".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .note
        .unwrap();
    assert_invalid(
        client
            .update_pickup_note(pb::UpdatePickupNoteRequest {
                note: Some(pb::PickupNote { id: note.id, content: " ".into(), ..Default::default() }),
                update_mask: mask(&["content"]),
            })
            .await,
        &["note.content"],
    );
    let all =
        client.get_pickup_schedule(pb::GetPickupScheduleRequest { student_id: pupil.id }).await.unwrap().into_inner();
    assert_eq!(all.schedules, vec![entry(2, "14:00")]);
    assert_eq!((all.exceptions.len(), all.notes[0].content.as_str()), (1, "Oma holt ab"));

    assert_code(
        client.delete_pickup_note(request(As::Staff(other), pb::DeletePickupNoteRequest { id: note.id })).await,
        Code::PermissionDenied,
    );
    client.delete_pickup_note(pb::DeletePickupNoteRequest { id: note.id }).await.expect("delete note");
    client.delete_pickup_exception(pb::DeletePickupExceptionRequest { id: ex.id }).await.expect("delete exception");
    assert_code(client.delete_pickup_exception(pb::DeletePickupExceptionRequest { id: ex.id }).await, Code::NotFound);
    let all =
        client.get_pickup_schedule(pb::GetPickupScheduleRequest { student_id: pupil.id }).await.unwrap().into_inner();
    assert!(all.exceptions.is_empty() && all.notes.is_empty());
    let status = assert_code(
        client.unassign_rfid_card(pb::UnassignRfidCardRequest { person_id: pupil.person_id }).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("NO_CARD"));
    app.stop().await;
}
