//! Who may combine sessions (docs/access.md, the EndSession rule for every session
//! concerned): staff holding the combined-group permissions cannot merge someone else's
//! session into theirs, or theirs into someone else's combination, to see those pupils.

use phoenix_common::domain::Domain;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_tests::auth::{mint_token, role_permissions, staff_token};
use phoenix_tests::grpc::{As, assert_code, request};
use phoenix_tests::school::{ActiveSchool, count, start_session};
use tonic::Code;

fn combine(room: i64, sessions: &[i64]) -> pb::CreateCombinedGroupRequest {
    pb::CreateCombinedGroupRequest {
        name: "Zusammen".into(),
        room_id: room,
        session_ids: sessions.to_vec(),
        notes: String::new(),
    }
}

#[tokio::test]
async fn combining_other_peoples_sessions_is_refused() {
    // Pupil 0 is in the teacher's group and checked in to session `a` (school.staff's).
    let mut env = ActiveSchool::new(1, 1).await;
    let rooms = env.school.rooms.clone();
    let (a, b) = (env.session(rooms[0]).await, env.session(rooms[1]).await);
    let (activity, stranger, staff) = (env.school.activity, env.stranger, env.school.staff);
    let mine = start_session(&mut env.client, rooms[2], activity, stranger).await;
    let p = env.pupil(0);
    env.client
        .check_in_student(pb::CheckInStudentRequest { student_id: p, session_id: a, transfer: false })
        .await
        .expect("check in");

    // The stranger, staff with every combined-group permission (groups:create added to the
    // staff role's), supervises only `mine`.
    staff_token(&env.app, stranger).await;
    let mut conn = env.conn().await;
    let account = count(
        &mut conn,
        &format!(
            "SELECT p.account_id AS n FROM users.staff s JOIN users.persons p ON p.id = s.person_id \
             WHERE s.id = {stranger}"
        ),
    )
    .await;
    let mut permissions = role_permissions(&env.app, "staff").await;
    permissions.push("groups:create".into());
    let token = mint_token(&env.app, &account.to_string(), &["staff"], &permissions).await;
    let mut attacker = ActiveServiceClient::new(env.app.channel_as(Domain::Active, &token).await);

    // 1. Create a combination of their session with someone else's.
    let denied =
        assert_code(attacker.create_combined_group(combine(rooms[2], &[mine, a])).await, Code::PermissionDenied);
    assert!(denied.message().contains("sessions:manage"), "{}", denied.message());
    // 2. Add their session to a running combination of others' sessions.
    let c = &mut env.client;
    let combo = c
        .create_combined_group(combine(rooms[0], &[a, b]))
        .await
        .expect("the admin combines a and b")
        .into_inner()
        .combined_group
        .expect("cg");
    let add = pb::AddSessionToCombinedGroupRequest { combined_group_id: combo.id, session_id: mine };
    assert_code(attacker.add_session_to_combined_group(add).await, Code::PermissionDenied);
    // Nothing joined, so the pupil of `a` stays out of the stranger's sight.
    let mappings =
        count(&mut conn, &format!("SELECT count(*) AS n FROM active.group_mappings WHERE active_group_id = {mine}"))
            .await;
    assert_eq!(mappings, 0);
    let out = attacker.check_out_student(pb::CheckOutStudentRequest { student_id: p }).await;
    assert_code(out, Code::PermissionDenied);
    // 3. End or take apart the combination of others.
    assert_code(
        attacker.end_combined_group(pb::EndCombinedGroupRequest { id: combo.id }).await,
        Code::PermissionDenied,
    );
    let remove =
        |session| pb::RemoveSessionFromCombinedGroupRequest { combined_group_id: combo.id, session_id: session };
    assert_code(attacker.remove_session_from_combined_group(remove(a)).await, Code::PermissionDenied);

    // Allowed: the supervisor of both sessions takes one out and ends the combination; the
    // stranger combines only what they supervise.
    let c = &mut env.client;
    c.remove_session_from_combined_group(request(As::Staff(staff), remove(b))).await.expect("own session out");
    c.end_combined_group(request(As::Staff(staff), pb::EndCombinedGroupRequest { id: combo.id }))
        .await
        .expect("supervisor of every session ends it");
    attacker.create_combined_group(combine(rooms[2], &[mine])).await.expect("own session");
    // Someone else's session may join a combination only through its supervisor and the
    // combination's: here an admin (sessions:manage).
    let own = env
        .client
        .list_combined_groups(pb::ListCombinedGroupsRequest { session_id: Some(mine), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .combined_groups;
    let add = pb::AddSessionToCombinedGroupRequest { combined_group_id: own[0].id, session_id: a };
    assert_code(attacker.add_session_to_combined_group(add).await, Code::PermissionDenied);
    env.client.add_session_to_combined_group(add).await.expect("sessions:manage");
}
