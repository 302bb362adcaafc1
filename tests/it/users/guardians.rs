//! Guardians, phone numbers, student ↔ guardian links, privacy consents and pickup data of
//! `phoenix.users.v1.UsersService` over real gRPC against a real database.

use phoenix_common::domain::Domain;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, reason, request};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

type Client = UsersServiceClient<TestChannel>;

/// A school: `teacher` leads the group of `pupil`; `other` leads another group; `helper`
/// is staff without a group.
struct School {
    app: TestApp,
    client: Client,
    pupil: pb::Student,
    teacher: i64,
    other: i64,
    helper: i64,
}

async fn staff(client: &mut Client, first: &str, teacher: bool) -> pb::Staff {
    client
        .create_staff(pb::CreateStaffRequest {
            staff: Some(pb::Staff {
                first_name: first.into(),
                last_name: "Team".into(),
                is_teacher: teacher,
                ..Default::default()
            }),
        })
        .await
        .expect("create staff")
        .into_inner()
        .staff
        .expect("staff")
}

async fn school() -> School {
    let app = TestApp::spawn(&[Domain::Users]).await;
    let mut client = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    let mut conn = app.db.conn().await;
    let foxes = fixtures::group(&mut conn, "Füchse").await;
    let owls = fixtures::group(&mut conn, "Eulen").await;
    let teacher = staff(&mut client, "Tina", true).await;
    let other = staff(&mut client, "Olga", true).await;
    let helper = staff(&mut client, "Hugo", false).await;
    fixtures::group_teacher(&mut conn, foxes, teacher.teacher_id.expect("teacher")).await;
    fixtures::group_teacher(&mut conn, owls, other.teacher_id.expect("teacher")).await;
    let pupil = client
        .create_student(pb::CreateStudentRequest {
            student: Some(pb::Student {
                first_name: "Mia".into(),
                last_name: "Muster".into(),
                school_class: "2a".into(),
                group_id: Some(foxes),
                ..Default::default()
            }),
        })
        .await
        .expect("pupil")
        .into_inner()
        .student
        .expect("student");
    School { app, client, pupil, teacher: teacher.id, other: other.id, helper: helper.id }
}

fn guardian(first: &str, email: Option<&str>) -> pb::Guardian {
    pb::Guardian {
        first_name: first.into(),
        last_name: "Muster".into(),
        email: email.map(Into::into),
        address_city: Some("Berlin".into()),
        ..Default::default()
    }
}

async fn create_guardian(client: &mut Client, g: pb::Guardian) -> pb::Guardian {
    client
        .create_guardian(pb::CreateGuardianRequest { guardian: Some(g) })
        .await
        .expect("create guardian")
        .into_inner()
        .guardian
        .expect("guardian")
}

fn phone(number: &str, primary: bool) -> pb::GuardianPhoneNumber {
    pb::GuardianPhoneNumber { phone_number: number.into(), is_primary: primary, ..Default::default() }
}

fn link(student_id: i64, guardian_id: i64, primary: bool) -> pb::LinkGuardianRequest {
    pb::LinkGuardianRequest {
        link: Some(pb::StudentGuardian {
            student_id,
            guardian_id,
            relationship_type: pb::RelationshipType::Parent as i32,
            is_primary: primary,
            can_pickup: true,
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn guardian_and_phone_number_round_trip() {
    let School { app, mut client, pupil, .. } = school().await;
    let created = create_guardian(&mut client, guardian(" Petra ", Some(" Petra.Muster@Example.org "))).await;
    assert_eq!((created.first_name.as_str(), created.email.as_deref()), ("Petra", Some("petra.muster@example.org")));
    assert_eq!(created.preferred_contact_method, Some(pb::ContactMethod::Phone as i32), "default contact method");
    assert_eq!(created.language_preference.as_deref(), Some("de"));
    let got =
        client.get_guardian(pb::GetGuardianRequest { id: created.id }).await.unwrap().into_inner().guardian.unwrap();
    assert_eq!(got, created);

    // Numbers: a new primary demotes the old one; primary first in responses.
    client
        .add_guardian_phone_number(pb::AddGuardianPhoneNumberRequest {
            guardian_id: created.id,
            phone_number: Some(phone("030 1234", true)),
        })
        .await
        .expect("first number");
    let g = client
        .add_guardian_phone_number(pb::AddGuardianPhoneNumberRequest {
            guardian_id: created.id,
            phone_number: Some(pb::GuardianPhoneNumber {
                phone_type: Some(pb::PhoneType::Work as i32),
                label: Some("Büro".into()),
                ..phone("+49 (170) 555-1", true)
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .guardian
        .unwrap();
    let numbers: Vec<_> = g.phone_numbers.iter().map(|p| (p.phone_number.as_str(), p.is_primary)).collect();
    assert_eq!(numbers, [("+49 (170) 555-1", true), ("030 1234", false)]);
    assert_eq!(g.phone_numbers[1].phone_type, Some(pb::PhoneType::Mobile as i32), "default type");
    let landline = g.phone_numbers[1].id;
    let g = client
        .update_guardian_phone_number(pb::UpdateGuardianPhoneNumberRequest {
            phone_number: Some(pb::GuardianPhoneNumber { id: landline, is_primary: true, ..Default::default() }),
            update_mask: mask(&["is_primary"]),
        })
        .await
        .unwrap()
        .into_inner()
        .guardian
        .unwrap();
    assert_eq!(g.phone_numbers[0].id, landline);
    assert_eq!(g.phone_numbers.iter().filter(|p| p.is_primary).count(), 1);
    client
        .delete_guardian_phone_number(pb::DeleteGuardianPhoneNumberRequest { id: landline })
        .await
        .expect("delete number");
    assert_code(
        client.delete_guardian_phone_number(pb::DeleteGuardianPhoneNumberRequest { id: landline }).await,
        Code::NotFound,
    );

    let updated = client
        .update_guardian(pb::UpdateGuardianRequest {
            guardian: Some(pb::Guardian {
                id: created.id,
                preferred_contact_method: Some(pb::ContactMethod::Email as i32),
                address_city: None,
                ..Default::default()
            }),
            update_mask: mask(&["preferred_contact_method", "address_city"]),
        })
        .await
        .unwrap()
        .into_inner()
        .guardian
        .unwrap();
    assert_eq!(updated.preferred_contact_method, Some(pb::ContactMethod::Email as i32));
    assert_eq!((updated.address_city, updated.first_name.as_str()), (None, "Petra"));

    client.link_guardian(link(pupil.id, created.id, true)).await.expect("link");
    create_guardian(&mut client, guardian("Paul", None)).await;
    let listed = client.list_guardians(pb::ListGuardiansRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 2);
    let of_pupil = client
        .list_guardians(pb::ListGuardiansRequest { student_id: Some(pupil.id), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((of_pupil.total_size, of_pupil.guardians[0].id), (1, created.id));
    let by_name = client
        .list_guardians(pb::ListGuardiansRequest {
            name_contains: Some("paul m".into()),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_name.total_size, 1);

    client.delete_guardian(pb::DeleteGuardianRequest { id: created.id }).await.expect("delete");
    assert_code(client.get_guardian(pb::GetGuardianRequest { id: created.id }).await, Code::NotFound);
    assert_code(client.delete_guardian(pb::DeleteGuardianRequest { id: created.id }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn guardian_validation_names_each_field() {
    let School { app, mut client, .. } = school().await;
    assert_invalid(
        client.create_guardian(pb::CreateGuardianRequest { guardian: Some(pb::Guardian::default()) }).await,
        &["guardian.first_name", "guardian.last_name"],
    );
    assert_invalid(
        client
            .create_guardian(pb::CreateGuardianRequest { guardian: Some(guardian("P", Some("not-an-address"))) })
            .await,
        &["guardian.email"],
    );
    assert_invalid(
        client
            .create_guardian(pb::CreateGuardianRequest {
                guardian: Some(pb::Guardian { preferred_contact_method: Some(0), ..guardian("P", None) }),
            })
            .await,
        &["guardian.preferred_contact_method"],
    );
    let g = create_guardian(&mut client, guardian("Petra", Some("petra@example.org"))).await;
    assert_code(
        client
            .create_guardian(pb::CreateGuardianRequest { guardian: Some(guardian("Other", Some("PETRA@example.org"))) })
            .await,
        Code::AlreadyExists,
    );
    let add =
        |p: pb::GuardianPhoneNumber| pb::AddGuardianPhoneNumberRequest { guardian_id: g.id, phone_number: Some(p) };
    assert_invalid(client.add_guardian_phone_number(add(phone("12", false))).await, &["phone_number.phone_number"]);
    assert_invalid(
        client.add_guardian_phone_number(add(phone("030/1234", false))).await,
        &["phone_number.phone_number"],
    );
    assert_invalid(
        client
            .add_guardian_phone_number(add(pb::GuardianPhoneNumber { phone_type: Some(0), ..phone("0301234", false) }))
            .await,
        &["phone_number.phone_type"],
    );
    assert_invalid(
        client
            .add_guardian_phone_number(add(pb::GuardianPhoneNumber { priority: -1, ..phone("0301234", false) }))
            .await,
        &["phone_number.priority"],
    );
    assert_code(
        client
            .add_guardian_phone_number(pb::AddGuardianPhoneNumberRequest {
                guardian_id: 999,
                phone_number: Some(phone("0301234", false)),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .update_guardian(pb::UpdateGuardianRequest {
                guardian: Some(pb::Guardian { id: 999, ..guardian("X", None) }),
                update_mask: mask(&["first_name"]),
            })
            .await,
        Code::NotFound,
    );
    app.stop().await;
}

#[tokio::test]
async fn links_to_students_with_one_primary_guardian() {
    let School { app, mut client, pupil, .. } = school().await;
    let petra = create_guardian(&mut client, guardian("Petra", None)).await;
    let paul = create_guardian(&mut client, guardian("Paul", None)).await;
    client
        .add_guardian_phone_number(pb::AddGuardianPhoneNumberRequest {
            guardian_id: paul.id,
            phone_number: Some(phone("0170 1", true)),
        })
        .await
        .expect("number");
    let first = client.link_guardian(link(pupil.id, petra.id, true)).await.unwrap().into_inner().link.unwrap();
    assert_eq!((first.guardian_first_name.as_str(), first.is_primary, first.emergency_priority), ("Petra", true, 1));
    assert_code(client.link_guardian(link(pupil.id, petra.id, false)).await, Code::AlreadyExists);
    // A second primary guardian demotes the first, in the same transaction.
    let second = client.link_guardian(link(pupil.id, paul.id, true)).await.unwrap().into_inner().link.unwrap();
    let links = client
        .list_student_guardians(pb::ListStudentGuardiansRequest { student_id: Some(pupil.id), guardian_id: None })
        .await
        .unwrap()
        .into_inner()
        .links;
    assert_eq!(
        links.iter().map(|l| (l.guardian_id, l.is_primary)).collect::<Vec<_>>(),
        [(paul.id, true), (petra.id, false)]
    );

    // The student's record shows them as contacts, primary first.
    let s = client.get_student(pb::GetStudentRequest { id: pupil.id }).await.unwrap().into_inner().student.unwrap();
    let contacts = s.guardian_contacts.unwrap().contacts;
    assert_eq!(contacts.iter().map(|c| c.first_name.as_str()).collect::<Vec<_>>(), ["Paul", "Petra"]);
    assert_eq!(contacts[0].relationship_type, pb::RelationshipType::Parent as i32);
    assert_eq!(contacts[0].phone_numbers, ["0170 1"]);

    let updated = client
        .update_student_guardian(pb::UpdateStudentGuardianRequest {
            link: Some(pb::StudentGuardian {
                id: first.id,
                relationship_type: pb::RelationshipType::Guardian as i32,
                is_primary: true,
                ..Default::default()
            }),
            update_mask: mask(&["relationship_type", "is_primary"]),
        })
        .await
        .unwrap()
        .into_inner()
        .link
        .unwrap();
    assert_eq!((updated.relationship_type, updated.is_primary), (pb::RelationshipType::Guardian as i32, true));
    let by_guardian = client
        .list_student_guardians(pb::ListStudentGuardiansRequest { student_id: None, guardian_id: Some(paul.id) })
        .await
        .unwrap()
        .into_inner()
        .links;
    assert!(!by_guardian[0].is_primary, "Paul was demoted");

    assert_invalid(
        client
            .link_guardian(pb::LinkGuardianRequest {
                link: Some(pb::StudentGuardian { student_id: pupil.id, guardian_id: paul.id, ..Default::default() }),
            })
            .await,
        &["link.relationship_type"],
    );
    assert_invalid(client.link_guardian(link(999, paul.id, false)).await, &["link.student_id"]);
    let other_pupil = client
        .create_student(pb::CreateStudentRequest {
            student: Some(pb::Student {
                first_name: "B".into(),
                last_name: "B".into(),
                school_class: "1a".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .student
        .unwrap();
    assert_invalid(client.link_guardian(link(other_pupil.id, 999, false)).await, &["link.guardian_id"]);
    assert_invalid(
        client.list_student_guardians(pb::ListStudentGuardiansRequest { student_id: None, guardian_id: None }).await,
        &["student_id"],
    );

    client.unlink_guardian(pb::UnlinkGuardianRequest { id: second.id }).await.expect("unlink");
    assert_code(client.unlink_guardian(pb::UnlinkGuardianRequest { id: second.id }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn guardian_contacts_and_changes_follow_access_to_their_children() {
    let School { app, mut client, pupil, teacher, other, helper } = school().await;
    let petra = create_guardian(&mut client, guardian("Petra", Some("petra@example.org"))).await;
    client
        .add_guardian_phone_number(pb::AddGuardianPhoneNumberRequest {
            guardian_id: petra.id,
            phone_number: Some(phone("030 1", true)),
        })
        .await
        .expect("number");
    client.link_guardian(link(pupil.id, petra.id, true)).await.expect("link");

    let get = |caller: As| {
        let mut c = client.clone();
        async move {
            c.get_guardian(request(caller, pb::GetGuardianRequest { id: petra.id }))
                .await
                .unwrap()
                .into_inner()
                .guardian
                .unwrap()
        }
    };
    let full = get(As::Staff(teacher)).await;
    assert!(full.has_full_access);
    assert_eq!((full.email.as_deref(), full.phone_numbers.len()), (Some("petra@example.org"), 1));
    let limited = get(As::Staff(other)).await;
    assert!(!limited.has_full_access);
    assert_eq!((limited.email, limited.address_city, limited.phone_numbers.len()), (None, None, 0));
    assert_eq!(limited.first_name, "Petra");

    let change = |caller: As| {
        let mut c = client.clone();
        async move {
            c.update_guardian(request(
                caller,
                pb::UpdateGuardianRequest {
                    guardian: Some(pb::Guardian {
                        id: petra.id,
                        occupation: Some("Ärztin".into()),
                        ..Default::default()
                    }),
                    update_mask: mask(&["occupation"]),
                },
            ))
            .await
        }
    };
    change(As::Staff(teacher)).await.expect("the child's teacher may");
    assert_code(change(As::Staff(other)).await, Code::PermissionDenied);
    assert_code(
        client.link_guardian(request(As::Staff(other), link(pupil.id, petra.id, false))).await,
        Code::PermissionDenied,
    );
    // Creating guardians: admins and staff with groups.
    assert_code(
        client
            .create_guardian(request(
                As::Staff(helper),
                pb::CreateGuardianRequest { guardian: Some(guardian("X", None)) },
            ))
            .await,
        Code::PermissionDenied,
    );
    client
        .create_guardian(request(As::Staff(teacher), pb::CreateGuardianRequest { guardian: Some(guardian("Y", None)) }))
        .await
        .expect("a teacher with a group may");
    app.stop().await;
}

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
