//! Shared helpers of the guardian tests (guardians, care): a school with staff and a pupil,
//! guardians, phone numbers and links.

use phoenix_common::domain::Domain;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::{TestApp, fixtures};

pub(super) type Client = UsersServiceClient<TestChannel>;

/// A school: `teacher` leads the group of `pupil`; `other` leads another group; `helper`
/// is staff without a group.
pub(super) struct School {
    pub(super) app: TestApp,
    pub(super) client: Client,
    pub(super) pupil: pb::Student,
    pub(super) teacher: i64,
    pub(super) other: i64,
    pub(super) helper: i64,
}

pub(super) async fn staff(client: &mut Client, first: &str, teacher: bool) -> pb::Staff {
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

pub(super) async fn school() -> School {
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

pub(super) fn guardian(first: &str, email: Option<&str>) -> pb::Guardian {
    pb::Guardian {
        first_name: first.into(),
        last_name: "Muster".into(),
        email: email.map(Into::into),
        address_city: Some("Berlin".into()),
        ..Default::default()
    }
}

pub(super) async fn create_guardian(client: &mut Client, g: pb::Guardian) -> pb::Guardian {
    client
        .create_guardian(pb::CreateGuardianRequest { guardian: Some(g) })
        .await
        .expect("create guardian")
        .into_inner()
        .guardian
        .expect("guardian")
}

pub(super) fn phone(number: &str, primary: bool) -> pb::GuardianPhoneNumber {
    pb::GuardianPhoneNumber { phone_number: number.into(), is_primary: primary, ..Default::default() }
}

pub(super) fn link(student_id: i64, guardian_id: i64, primary: bool) -> pb::LinkGuardianRequest {
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
