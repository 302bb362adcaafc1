//! `phoenix.activities.v1` beyond enrollment, with real staff tokens: listing with
//! filters, pagination and true totals, and the activities available to a student.

use phoenix_proto::activities::v1 as pb;
use phoenix_tests::grpc::{assert_code, assert_invalid};
use tonic::Code;

use super::helpers::*;

#[tokio::test]
async fn list_filters_paginate_with_true_totals() {
    let mut e = env().await;
    let (lead, other) = (e.staff("Lead").await, e.staff("Other").await);
    let room = e.room("Aula").await;
    let (sport, musik) = (e.category("Sport").await, e.category("Musik").await);
    let mut ids = Vec::new();
    for (name, category_id, is_open, planned_room_id, sups) in [
        ("Fußball", sport, true, room, vec![lead]),
        ("Basketball", sport, false, 0, vec![other, lead]),
        ("Chor", musik, true, room, vec![other]),
        ("Flöte 50%", musik, true, 0, vec![]),
        ("Handball", sport, true, 0, vec![lead]),
    ] {
        let a = pb::Activity {
            name: name.into(),
            max_participants: 5,
            is_open,
            category_id,
            planned_room_id,
            ..Default::default()
        };
        let r =
            e.c.create_activity(pb::CreateActivityRequest { activity: Some(a), supervisor_staff_ids: sups })
                .await
                .unwrap();
        ids.push(r.into_inner().activity.unwrap().id);
    }
    let list = async |c: &mut Client, r: pb::ListActivitiesRequest| {
        let r = c.list_activities(r).await.unwrap().into_inner();
        (r.activities.iter().map(|a| a.id).collect::<Vec<_>>(), r.total_size, r.next_page_token)
    };
    let all = list(&mut e.c, pb::ListActivitiesRequest::default()).await;
    assert_eq!((all.0.clone(), all.1, all.2.as_str()), (ids.clone(), 5, ""));
    let cases: Vec<(pb::ListActivitiesRequest, Vec<i64>)> = vec![
        (pb::ListActivitiesRequest { category_id: sport, ..Default::default() }, vec![ids[0], ids[1], ids[4]]),
        (pb::ListActivitiesRequest { is_open: Some(false), ..Default::default() }, vec![ids[1]]),
        (pb::ListActivitiesRequest { is_open: Some(true), ..Default::default() }, vec![ids[0], ids[2], ids[3], ids[4]]),
        (pb::ListActivitiesRequest { planned_room_id: room, ..Default::default() }, vec![ids[0], ids[2]]),
        (pb::ListActivitiesRequest { supervisor_staff_id: lead, ..Default::default() }, vec![ids[0], ids[1], ids[4]]),
        (
            pb::ListActivitiesRequest { name_contains: "BALL".into(), ..Default::default() },
            vec![ids[0], ids[1], ids[4]],
        ),
        (pb::ListActivitiesRequest { name_contains: "50%".into(), ..Default::default() }, vec![ids[3]]),
        (pb::ListActivitiesRequest { name_contains: "%".into(), ..Default::default() }, vec![ids[3]]),
        (
            pb::ListActivitiesRequest {
                category_id: sport,
                is_open: Some(true),
                supervisor_staff_id: lead,
                ..Default::default()
            },
            vec![ids[0], ids[4]],
        ),
    ];
    for (req, want) in cases {
        let got = list(&mut e.c, req.clone()).await;
        assert_eq!((got.0, got.1), (want.clone(), want.len() as i32), "{req:?}");
    }

    // Pages of two with the true total; a token only fits its own filters.
    let sports = |page_token: String| pb::ListActivitiesRequest {
        category_id: sport,
        page_size: 2,
        page_token,
        ..Default::default()
    };
    let p1 = list(&mut e.c, sports(String::new())).await;
    assert_eq!((p1.0.clone(), p1.1), (vec![ids[0], ids[1]], 3));
    let p2 = list(&mut e.c, sports(p1.2.clone())).await;
    assert_eq!((p2.0, p2.1, p2.2.as_str()), (vec![ids[4]], 3, ""));
    let wrong = pb::ListActivitiesRequest { category_id: musik, page_size: 2, page_token: p1.2, ..Default::default() };
    assert_invalid(e.c.list_activities(wrong).await, &["page_token"]);
    assert_invalid(
        e.c.list_activities(pb::ListActivitiesRequest {
            category_id: -1,
            planned_room_id: -1,
            supervisor_staff_id: -1,
            page_size: 501,
            ..Default::default()
        })
        .await,
        &["category_id", "planned_room_id", "supervisor_staff_id", "page_size"],
    );
    // Each listed activity carries its sub-resources.
    let r = e.c.list_activities(pb::ListActivitiesRequest { supervisor_staff_id: other, ..Default::default() }).await;
    let basketball = r.unwrap().into_inner().activities.into_iter().find(|a| a.id == ids[1]).unwrap();
    assert_eq!(basketball.supervisors, [sup(other, true), sup(lead, false)]);
}

#[tokio::test]
async fn available_activities_are_open_not_full_and_not_joined_yet() {
    let mut e = env().await;
    let kids = e.students(2).await;
    let sport = e.category("Sport").await;
    let mut make = async |name: &str, max: i32| {
        let a = pb::Activity {
            name: name.into(),
            max_participants: max,
            is_open: true,
            category_id: sport,
            ..Default::default()
        };
        let a =
            e.c.create_activity(pb::CreateActivityRequest { activity: Some(a), supervisor_staff_ids: vec![] }).await;
        a.unwrap().into_inner().activity.unwrap().id
    };
    let open = make("Offen", 5).await;
    let full = make("Voll", 1).await;
    let joined = make("Dabei", 5).await;
    let closed = make("Zu", 5).await;
    let open2 = make("Auch offen", 5).await;
    e.c.enroll_student(pb::EnrollStudentRequest { activity_id: full, student_id: kids[1] }).await.unwrap();
    e.c.enroll_student(pb::EnrollStudentRequest { activity_id: joined, student_id: kids[0] }).await.unwrap();
    let close = pb::Activity { id: closed, is_open: false, ..Default::default() };
    e.c.update_activity(update(close, &["is_open"])).await.unwrap();

    let req = |student_id: i64, page_size: i32, page_token: String| pb::ListAvailableActivitiesRequest {
        student_id,
        page_size,
        page_token,
    };
    let r = e.c.list_available_activities(req(kids[0], 0, String::new())).await.unwrap().into_inner();
    let got: Vec<i64> = r.activities.iter().map(|a| a.id).collect();
    assert_eq!((got, r.total_size), (vec![open, open2], 2));
    let p1 = e.c.list_available_activities(req(kids[0], 1, String::new())).await.unwrap().into_inner();
    assert_eq!((p1.activities[0].id, p1.total_size), (open, 2));
    let p2 = e.c.list_available_activities(req(kids[0], 1, p1.next_page_token)).await.unwrap().into_inner();
    assert_eq!((p2.activities[0].id, p2.next_page_token.as_str()), (open2, ""));
    // The other pupil has "Dabei" but not the full one.
    let r = e.c.list_available_activities(req(kids[1], 0, String::new())).await.unwrap().into_inner();
    assert_eq!(r.activities.iter().map(|a| a.id).collect::<Vec<_>>(), [open, joined, open2]);
    assert_code(e.c.list_available_activities(req(999_999, 0, String::new())).await, Code::NotFound);
    assert_invalid(e.c.list_available_activities(req(0, 0, String::new())).await, &["student_id"]);
}
