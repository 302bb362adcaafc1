//! Shared helpers of the `EducationService` tests: the environment, and staff, rooms,
//! groups, substitutions and my groups; staff, rooms and pupils are created through the
//! users and facilities services.

use phoenix_common::domain::Domain;
use phoenix_proto::education::v1 as pb;
use phoenix_proto::education::v1::education_service_client::EducationServiceClient;
use phoenix_proto::facilities::v1 as fpb;
use phoenix_proto::facilities::v1::facilities_service_client::FacilitiesServiceClient;
use phoenix_proto::users::v1 as upb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, request};

pub(super) type Client = EducationServiceClient<TestChannel>;

pub(super) struct Env {
    pub(super) app: TestApp,
    pub(super) edu: Client,
    pub(super) users: UsersServiceClient<TestChannel>,
    pub(super) rooms: FacilitiesServiceClient<TestChannel>,
}

pub(super) async fn env() -> Env {
    let app = TestApp::spawn(&[Domain::Education, Domain::Users, Domain::Facilities]).await;
    let edu = EducationServiceClient::new(app.test_channel(Domain::Education).await);
    let users = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    let rooms = FacilitiesServiceClient::new(app.test_channel(Domain::Facilities).await);
    Env { app, edu, users, rooms }
}

/// (staff id, teacher id)
pub(super) async fn teacher(users: &mut UsersServiceClient<TestChannel>, first: &str) -> (i64, i64) {
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

pub(super) async fn room(rooms: &mut FacilitiesServiceClient<TestChannel>, name: &str) -> i64 {
    rooms
        .create_room(fpb::CreateRoomRequest { room: Some(fpb::Room { name: name.into(), ..Default::default() }) })
        .await
        .expect("create room")
        .into_inner()
        .room
        .expect("room")
        .id
}

pub(super) async fn group(edu: &mut Client, name: &str, teacher_ids: Vec<i64>) -> pb::Group {
    edu.create_group(pb::CreateGroupRequest {
        group: Some(pb::Group { name: name.into(), teacher_ids, ..Default::default() }),
    })
    .await
    .expect("create group")
    .into_inner()
    .group
    .expect("group")
}

pub(super) fn day(offset: i64) -> String {
    (phoenix_common::time::business_today() + chrono::Duration::days(offset)).format("%Y-%m-%d").to_string()
}

pub(super) fn substitution(group_id: i64, substitute: i64, start: i64, end: i64) -> pb::CreateSubstitutionRequest {
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

pub(super) async fn my_groups(edu: &mut Client, staff: i64) -> Vec<(String, i32, Option<i64>)> {
    edu.list_my_groups(request(As::Staff(staff), pb::ListMyGroupsRequest {}))
        .await
        .expect("my groups")
        .into_inner()
        .groups
        .into_iter()
        .map(|g| (g.group.map(|g| g.name).unwrap_or_default(), g.role, g.substitution_id))
        .collect()
}
