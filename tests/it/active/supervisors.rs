//! Session supervisors over real gRPC with real tokens: join, leave, claim, replace, the
//! unclaimed list, and the `supervisors_changed` events they write.

use phoenix_proto::active::v1 as pb;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, reason, request};
use tonic::Code;

use phoenix_tests::school::{ActiveSchool, count, events};

/// `(staff, role, ended)` of a session's supervisors, in row order.
fn supervisors(s: &pb::Session) -> Vec<(i64, pb::SupervisorRole, bool)> {
    s.supervisors.iter().map(|x| (x.staff_id, x.role(), !x.end_date.is_empty())).collect()
}

fn current(s: &pb::Session) -> Vec<(i64, pb::SupervisorRole)> {
    s.supervisors.iter().filter(|x| x.end_date.is_empty()).map(|x| (x.staff_id, x.role())).collect()
}

#[tokio::test]
async fn staff_join_leave_and_claim_sessions() {
    let mut env = ActiveSchool::new(0, 0).await;
    let session = env.session(env.school.rooms[0]).await;
    let lead = env.school.staff;
    let helper = env.stranger;
    let third = fixtures::staff(&mut env.conn().await, "Dora", "Dritte").await;
    let c = &mut env.client;

    // Join as assistant; a second join is refused.
    let joined = c
        .join_session(request(
            As::Staff(helper),
            pb::JoinSessionRequest { session_id: session, role: pb::SupervisorRole::Assistant as i32 },
        ))
        .await
        .expect("join")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(current(&joined), [(lead, pb::SupervisorRole::Supervisor), (helper, pb::SupervisorRole::Assistant)]);
    let again = c
        .join_session(request(
            As::Staff(helper),
            pb::JoinSessionRequest { session_id: session, role: pb::SupervisorRole::Supervisor as i32 },
        ))
        .await;
    assert_eq!(reason(&assert_code(again, Code::FailedPrecondition)).as_deref(), Some("ALREADY_SUPERVISING"));
    assert_invalid(c.join_session(pb::JoinSessionRequest { session_id: 0, role: 0 }).await, &["session_id", "role"]);
    // The admin of the test channel has no staff record: it cannot join *as* staff.
    let admin = c
        .join_session(pb::JoinSessionRequest { session_id: session, role: pb::SupervisorRole::Supervisor as i32 })
        .await;
    assert!(assert_code(admin, Code::PermissionDenied).message().contains("staff record"));
    assert_code(
        c.join_session(request(
            As::Staff(helper),
            pb::JoinSessionRequest { session_id: 999_999, role: pb::SupervisorRole::Supervisor as i32 },
        ))
        .await,
        Code::NotFound,
    );

    // Leave: one's own; a second time there is nothing to leave.
    let left = c
        .leave_session(request(As::Staff(helper), pb::LeaveSessionRequest { session_id: session, staff_id: None }))
        .await
        .expect("leave")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(current(&left), [(lead, pb::SupervisorRole::Supervisor)]);
    assert!(supervisors(&left).contains(&(helper, pb::SupervisorRole::Assistant, true)), "history kept");
    let again = c
        .leave_session(request(As::Staff(helper), pb::LeaveSessionRequest { session_id: session, staff_id: None }))
        .await;
    assert_eq!(reason(&assert_code(again, Code::FailedPrecondition)).as_deref(), Some("NOT_SUPERVISING"));
    // Someone else's supervision needs groups:assign, which staff lack and admins hold.
    let other = c
        .leave_session(request(
            As::Staff(helper),
            pb::LeaveSessionRequest { session_id: session, staff_id: Some(lead) },
        ))
        .await;
    assert!(assert_code(other, Code::PermissionDenied).message().contains("groups:assign"));
    let emptied = c
        .leave_session(pb::LeaveSessionRequest { session_id: session, staff_id: Some(lead) })
        .await
        .expect("admin ends the lead's supervision")
        .into_inner()
        .session
        .expect("session");
    assert!(current(&emptied).is_empty());
    assert!(emptied.running, "a session without supervisors keeps running");

    // Unclaimed now: listed, and claimable once.
    let other_session = {
        let room = env.school.rooms[1];
        env.session(room).await
    };
    let c = &mut env.client;
    let unclaimed = c
        .list_sessions(pb::ListSessionsRequest { unclaimed: true, ..Default::default() })
        .await
        .expect("unclaimed")
        .into_inner();
    assert_eq!((unclaimed.total_size, unclaimed.sessions[0].id), (1, session));
    let claimed = c
        .claim_session(request(As::Staff(third), pb::ClaimSessionRequest { session_id: session }))
        .await
        .expect("claim")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(current(&claimed), [(third, pb::SupervisorRole::Supervisor)]);
    let late = c.claim_session(request(As::Staff(helper), pb::ClaimSessionRequest { session_id: session })).await;
    let late = assert_code(late, Code::FailedPrecondition);
    assert_eq!(reason(&late).as_deref(), Some("SESSION_CLAIMED"));
    let by_admin = c.claim_session(pb::ClaimSessionRequest { session_id: other_session }).await;
    assert_code(by_admin, Code::PermissionDenied);
    let none = c
        .list_sessions(pb::ListSessionsRequest { unclaimed: true, ..Default::default() })
        .await
        .expect("unclaimed")
        .into_inner();
    assert_eq!(none.total_size, 0);
    let mine = c
        .list_sessions(pb::ListSessionsRequest { supervisor_staff_id: Some(third), ..Default::default() })
        .await
        .expect("by supervisor")
        .into_inner();
    assert_eq!(mine.sessions.iter().map(|s| s.id).collect::<Vec<_>>(), [session]);
    assert_invalid(
        c.list_sessions(pb::ListSessionsRequest {
            unclaimed: true,
            state: pb::SessionState::Ended as i32,
            ..Default::default()
        })
        .await,
        &["unclaimed"],
    );

    // Ended sessions take no supervisors.
    c.end_session(pb::EndSessionRequest { id: session }).await.expect("end");
    let join = c
        .join_session(request(
            As::Staff(helper),
            pb::JoinSessionRequest { session_id: session, role: pb::SupervisorRole::Supervisor as i32 },
        ))
        .await;
    assert_eq!(reason(&assert_code(join, Code::FailedPrecondition)).as_deref(), Some("SESSION_ENDED"));
    let claim = c.claim_session(request(As::Staff(helper), pb::ClaimSessionRequest { session_id: session })).await;
    assert_eq!(reason(&assert_code(claim, Code::FailedPrecondition)).as_deref(), Some("SESSION_ENDED"));

    // Every change logged one event, in its transaction: join, leave, leave (admin), claim.
    let mut conn = env.conn().await;
    let logged = events(&mut conn, &["supervisors_changed"]).await;
    let room = Some(env.school.rooms[0]);
    assert_eq!(logged, vec![("supervisors_changed".to_owned(), None, Some(session), room, None); 4]);
    let open_rows = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM active.group_supervisors WHERE active_group_id = {session} AND end_date IS NULL"
        ),
    )
    .await;
    assert_eq!(open_rows, 0, "ending the session ended the claim");
}

#[tokio::test]
async fn supervisors_are_replaced_as_a_set() {
    let mut env = ActiveSchool::new(0, 0).await;
    let session = env.session(env.school.rooms[0]).await;
    let (lead, helper) = (env.school.staff, env.stranger);
    let c = &mut env.client;
    let set = |list: &[(i64, pb::SupervisorRole)]| pb::UpdateSessionSupervisorsRequest {
        session_id: session,
        supervisors: list.iter().map(|(s, r)| pb::SupervisorAssignment { staff_id: *s, role: *r as i32 }).collect(),
    };
    use pb::SupervisorRole::{Assistant, Supervisor};

    let first = c
        .update_session_supervisors(set(&[(lead, Supervisor), (helper, Assistant)]))
        .await
        .expect("add an assistant")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(current(&first), [(lead, Supervisor), (helper, Assistant)]);
    assert_eq!(first.supervisors.len(), 2, "the lead's row is kept, not replaced");
    let second = c
        .update_session_supervisors(set(&[(helper, Supervisor)]))
        .await
        .expect("swap")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(current(&second), [(helper, Supervisor)]);
    assert_eq!(
        supervisors(&second),
        [(lead, Supervisor, true), (helper, Assistant, true), (helper, Supervisor, false)]
    );
    // Unchanged: no event.
    c.update_session_supervisors(set(&[(helper, Supervisor)])).await.expect("no-op");

    assert_invalid(c.update_session_supervisors(set(&[])).await, &["supervisors"]);
    assert_invalid(
        c.update_session_supervisors(set(&[(helper, Supervisor), (helper, Assistant)])).await,
        &["supervisors[1].staff_id"],
    );
    assert_invalid(
        c.update_session_supervisors(pb::UpdateSessionSupervisorsRequest {
            session_id: 0,
            supervisors: vec![pb::SupervisorAssignment { staff_id: -1, role: 0 }],
        })
        .await,
        &["session_id", "supervisors[0].staff_id", "supervisors[0].role"],
    );
    assert_invalid(
        c.update_session_supervisors(set(&[(helper + 1000, Supervisor)])).await,
        &["supervisors[0].staff_id"],
    );
    // Staff lack groups:assign.
    let denied = c.update_session_supervisors(request(As::Staff(helper), set(&[(helper, Supervisor)]))).await;
    assert!(assert_code(denied, Code::PermissionDenied).message().contains("groups:assign"));

    let mut conn = env.conn().await;
    assert_eq!(events(&mut conn, &["supervisors_changed"]).await.len(), 2);
}
