//! Combined groups over real gRPC: create, get, list (filters, pages, true totals), end,
//! add and remove sessions, the one-running-combination rule (also under a race).

use phoenix_proto::active::v1 as pb;
use phoenix_tests::grpc::{assert_code, assert_invalid, reason};
use tonic::Code;

use phoenix_tests::school::{ActiveSchool, count};

fn create(name: &str, room: i64, sessions: &[i64]) -> pb::CreateCombinedGroupRequest {
    pb::CreateCombinedGroupRequest {
        name: name.into(),
        room_id: room,
        session_ids: sessions.to_vec(),
        notes: "  Turnhalle gesperrt  ".into(),
    }
}

#[tokio::test]
async fn combined_groups_round_trip_and_keep_sessions_in_one_running_combination() {
    let mut env = ActiveSchool::new(0, 0).await;
    let rooms = env.school.rooms.clone();
    let (a, b, c3) = (env.session(rooms[0]).await, env.session(rooms[1]).await, env.session(rooms[2]).await);
    let ended = env.session(rooms[3]).await;
    let c = &mut env.client;
    c.end_session(pb::EndSessionRequest { id: ended }).await.expect("end");

    let first = c
        .create_combined_group(create("  Nachmittag ", rooms[0], &[b, a]))
        .await
        .expect("create")
        .into_inner()
        .combined_group
        .expect("combined group");
    assert_eq!((first.name.as_str(), first.room_id, first.room_name.as_str()), ("Nachmittag", rooms[0], "Raum A"));
    assert_eq!(first.notes, "Turnhalle gesperrt");
    assert_eq!(first.session_ids, [a.min(b), a.max(b)]);
    assert!(first.running && first.end_time.is_none() && first.start_time.is_some());
    assert_eq!(first.created_by_staff_id, None, "the admin has no staff record");

    // b is taken; an ended session never joins.
    let taken = c.create_combined_group(create("Zweite", rooms[1], &[b])).await;
    assert_eq!(reason(&assert_code(taken, Code::FailedPrecondition)).as_deref(), Some("SESSION_COMBINED"));
    let old = c.create_combined_group(create("Alt", rooms[1], &[ended])).await;
    assert_eq!(reason(&assert_code(old, Code::FailedPrecondition)).as_deref(), Some("SESSION_ENDED"));

    // Add and remove.
    let add = |session| pb::AddSessionToCombinedGroupRequest { combined_group_id: first.id, session_id: session };
    let remove =
        |session| pb::RemoveSessionFromCombinedGroupRequest { combined_group_id: first.id, session_id: session };
    let grown = c.add_session_to_combined_group(add(c3)).await.expect("add").into_inner().combined_group.expect("cg");
    assert_eq!(grown.session_ids.len(), 3);
    assert_code(c.add_session_to_combined_group(add(c3)).await, Code::AlreadyExists);
    let ended_add = c.add_session_to_combined_group(add(ended)).await;
    assert_eq!(reason(&assert_code(ended_add, Code::FailedPrecondition)).as_deref(), Some("SESSION_ENDED"));
    assert_invalid(c.add_session_to_combined_group(add(987_654)).await, &["session_id"]);
    let shrunk =
        c.remove_session_from_combined_group(remove(b)).await.expect("remove").into_inner().combined_group.expect("cg");
    assert!(!shrunk.session_ids.contains(&b));
    let gone = c.remove_session_from_combined_group(remove(b)).await;
    assert_eq!(reason(&assert_code(gone, Code::FailedPrecondition)).as_deref(), Some("NOT_IN_COMBINATION"));
    // Free again: b may join another combination.
    let second = c
        .create_combined_group(create("Zweite", rooms[1], &[b]))
        .await
        .expect("b is free")
        .into_inner()
        .combined_group
        .expect("cg");

    // Get and list.
    let got = c.get_combined_group(pb::GetCombinedGroupRequest { id: first.id }).await.expect("get").into_inner();
    assert_eq!(got.combined_group.expect("cg").session_ids, shrunk.session_ids);
    assert_code(c.get_combined_group(pb::GetCombinedGroupRequest { id: 424_242 }).await, Code::NotFound);
    let all = c.list_combined_groups(pb::ListCombinedGroupsRequest::default()).await.expect("list").into_inner();
    assert_eq!(all.total_size, 2);
    assert_eq!(all.combined_groups.iter().map(|g| g.id).collect::<Vec<_>>(), [second.id, first.id], "newest first");
    let page = c
        .list_combined_groups(pb::ListCombinedGroupsRequest { page_size: 1, ..Default::default() })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!((page.combined_groups.len(), page.total_size), (1, 2));
    let rest = c
        .list_combined_groups(pb::ListCombinedGroupsRequest {
            page_size: 1,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!((rest.combined_groups[0].id, rest.total_size, rest.next_page_token.as_str()), (first.id, 2, ""));
    assert_invalid(
        c.list_combined_groups(pb::ListCombinedGroupsRequest {
            page_size: 1,
            page_token: page.next_page_token,
            room_id: Some(rooms[0]),
            ..Default::default()
        })
        .await,
        &["page_token"],
    );
    let with_b = c
        .list_combined_groups(pb::ListCombinedGroupsRequest { session_id: Some(b), ..Default::default() })
        .await
        .expect("by session")
        .into_inner();
    assert_eq!(with_b.combined_groups.iter().map(|g| g.id).collect::<Vec<_>>(), [second.id]);

    // End: once; an ended combination changes no more.
    let done = c.end_combined_group(pb::EndCombinedGroupRequest { id: first.id }).await.expect("end").into_inner();
    let done = done.combined_group.expect("cg");
    assert!(!done.running && done.end_time.is_some());
    for status in [
        c.end_combined_group(pb::EndCombinedGroupRequest { id: first.id }).await.map(drop),
        c.add_session_to_combined_group(add(b)).await.map(drop),
        c.remove_session_from_combined_group(remove(a)).await.map(drop),
    ] {
        assert_eq!(reason(&assert_code(status, Code::FailedPrecondition)).as_deref(), Some("COMBINATION_ENDED"));
    }
    let running = c
        .list_combined_groups(pb::ListCombinedGroupsRequest {
            state: pb::SessionState::Running as i32,
            ..Default::default()
        })
        .await
        .expect("running")
        .into_inner();
    assert_eq!((running.total_size, running.combined_groups[0].id), (1, second.id));
    // a is free once its combination ended.
    c.add_session_to_combined_group(pb::AddSessionToCombinedGroupRequest {
        combined_group_id: second.id,
        session_id: a,
    })
    .await
    .expect("a joins the running one");

    let mut conn = env.conn().await;
    let stored = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM active.combined_groups WHERE id = {} AND name = 'Nachmittag' \
             AND room_id = {} AND notes = 'Turnhalle gesperrt' AND end_time IS NOT NULL",
            first.id, rooms[0]
        ),
    )
    .await;
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn combined_group_requests_are_validated() {
    let mut env = ActiveSchool::new(0, 0).await;
    let room = env.school.rooms[0];
    let s = env.session(room).await;
    let c = &mut env.client;
    assert_invalid(
        c.create_combined_group(pb::CreateCombinedGroupRequest::default()).await,
        &["name", "room_id", "session_ids"],
    );
    assert_invalid(
        c.create_combined_group(pb::CreateCombinedGroupRequest {
            name: "x".repeat(101),
            room_id: room,
            session_ids: vec![s, s, 0],
            notes: "n".repeat(1001),
        })
        .await,
        &["name", "session_ids[1]", "session_ids[2]", "notes"],
    );
    assert_invalid(c.create_combined_group(create("Ä", 55_555, &[s])).await, &["room_id"]);
    assert_invalid(c.create_combined_group(create("Ä", room, &[s + 100])).await, &["session_ids[0]"]);
    assert_invalid(
        c.add_session_to_combined_group(pb::AddSessionToCombinedGroupRequest::default()).await,
        &["combined_group_id", "session_id"],
    );
    assert_code(c.end_combined_group(pb::EndCombinedGroupRequest { id: 31_337 }).await, Code::NotFound);
    assert_invalid(
        c.list_combined_groups(pb::ListCombinedGroupsRequest { state: 7, page_size: 501, ..Default::default() }).await,
        &["state", "page_size"],
    );
    let name_100 = "é".repeat(100);
    let ok = c.create_combined_group(create(&name_100, room, &[s])).await.expect("100 characters fit");
    assert_eq!(ok.into_inner().combined_group.expect("cg").name, name_100);
}

#[tokio::test]
async fn racing_combinations_take_a_session_once() {
    let mut env = ActiveSchool::new(0, 0).await;
    let room = env.school.rooms[0];
    for round in 0..10 {
        let s = env.session(env.school.rooms[round % 4]).await;
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let mut c = env.client.clone();
                tokio::spawn(async move { c.create_combined_group(create(&format!("R{round}-{i}"), room, &[s])).await })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.expect("join") {
                Ok(_) => won += 1,
                Err(status) => assert_eq!(reason(&status).as_deref(), Some("SESSION_COMBINED"), "{status:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one combination gets the session");
        env.client.end_session(pb::EndSessionRequest { id: s }).await.expect("end");
    }
    let mut conn = env.conn().await;
    let doubled = count(
        &mut conn,
        "SELECT count(*) AS n FROM (SELECT active_group_id FROM active.group_mappings \
         GROUP BY active_group_id HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(doubled, 0);
}
