//! Guardians, phone numbers and student ↔ guardian links of `phoenix.users.v1.UsersService`
//! over real gRPC against a real database, and access to guardians following their children.

use phoenix_proto::users::v1 as pb;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, mask, request};
use tonic::Code;

use super::guardian_helpers::*;

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
