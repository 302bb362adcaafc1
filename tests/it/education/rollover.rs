//! `RolloverService` over real gRPC with real tokens: the dry run answers the exact plan and
//! changes nothing; the commit moves every active pupil of each old group at once (1a → 2a
//! and 2a → 3a in one table), archives the leavers (deactivated, card back to the pool) with
//! one audit row per pupil; an unknown group is InvalidArgument naming the row and changes
//! nothing; staff are refused.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_proto::education::v1 as pb;
use phoenix_proto::education::v1::rollover_service_client::RolloverServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, request};
use serde_json::{Value, json};
use tonic::Code;

struct School {
    app: TestApp,
    api: RolloverServiceClient<TestChannel>,
    groups: [i64; 4],
    /// a, b in 1a; c in 2a; d in 4a (a leaver with a card); e in 3a; f in 1a, deactivated.
    pupils: [i64; 6],
    staff: i64,
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn school() -> School {
    let app = TestApp::spawn(&[Domain::Education]).await;
    let api = RolloverServiceClient::new(app.test_channel(Domain::Education).await);
    let mut c = app.db.conn().await;
    let mut groups = [0; 4];
    for (i, name) in ["1a", "2a", "3a", "4a"].iter().enumerate() {
        groups[i] = fixtures::group(&mut c, name).await;
    }
    let mut pupils = [0; 6];
    for (i, (class, group)) in [("1a", 0), ("1a", 0), ("2a", 1), ("4a", 3), ("3a", 2), ("1a", 0)].iter().enumerate() {
        let id = fixtures::student(&mut c, &format!("Kind{i}"), "Roll", &fixtures::tag(100 + i)).await;
        exec(
            &mut c,
            &format!(
                "UPDATE users.students SET school_class = '{class}', group_id = {} WHERE id = {id}",
                groups[*group]
            ),
        )
        .await;
        pupils[i] = id;
    }
    // b's class is spelled differently from the group: it stays.
    exec(&mut c, &format!("UPDATE users.students SET school_class = 'Klasse 1' WHERE id = {}", pupils[1])).await;
    exec(&mut c, &format!("UPDATE users.students SET deactivated_at = now() WHERE id = {}", pupils[5])).await;
    let staff = fixtures::staff(&mut c, "Tina", "Lehrerin").await;
    School { app, api, groups, pupils, staff }
}

fn mapping(rows: &[(&str, &str)], dry_run: bool) -> pb::RolloverRequest {
    pb::RolloverRequest {
        mapping: rows.iter().map(|(f, t)| pb::RolloverMapping { from: (*f).into(), to: (*t).into() }).collect(),
        dry_run,
        reason: String::new(),
    }
}

const TABLE: &[(&str, &str)] = &[("1a", "2a"), ("2a", "3a"), ("4a", "")];

#[derive(QueryableByName, Debug, PartialEq, Eq, Clone)]
struct StudentState {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    group_id: Option<i64>,
    #[diesel(sql_type = Text)]
    school_class: String,
    #[diesel(sql_type = Bool)]
    active: bool,
    #[diesel(sql_type = Nullable<Text>)]
    tag_id: Option<String>,
}

async fn students(conn: &mut AsyncPgConnection) -> Vec<StudentState> {
    diesel::sql_query(
        "SELECT st.id, st.group_id, st.school_class, st.deactivated_at IS NULL AS active, p.tag_id \
         FROM users.students st JOIN users.persons p ON p.id = st.person_id ORDER BY st.id",
    )
    .load(conn)
    .await
    .expect("students")
}

#[derive(QueryableByName, Debug)]
struct Audit {
    #[diesel(sql_type = Text)]
    entity_type: String,
    #[diesel(sql_type = BigInt)]
    entity_id: i64,
    #[diesel(sql_type = BigInt)]
    student_id: i64,
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = Jsonb)]
    old_values: Value,
    #[diesel(sql_type = Jsonb)]
    new_values: Value,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Text)]
    changed_by: String,
}

async fn audit(conn: &mut AsyncPgConnection) -> Vec<Audit> {
    diesel::sql_query(
        "SELECT entity_type, entity_id, student_id, action, old_values, new_values, reason, changed_by \
         FROM audit.data_changes ORDER BY student_id",
    )
    .load(conn)
    .await
    .expect("audit rows")
}

fn plan(s: &School) -> Vec<pb::RolloverGroupResult> {
    let [g1, g2, g3, g4] = s.groups;
    let p = s.pupils;
    vec![
        pb::RolloverGroupResult {
            from: "1a".into(),
            from_group_id: g1,
            to: "2a".into(),
            to_group_id: Some(g2),
            student_ids: vec![p[0], p[1]],
        },
        pb::RolloverGroupResult {
            from: "2a".into(),
            from_group_id: g2,
            to: "3a".into(),
            to_group_id: Some(g3),
            student_ids: vec![p[2]],
        },
        pb::RolloverGroupResult {
            from: "4a".into(),
            from_group_id: g4,
            to: String::new(),
            to_group_id: None,
            student_ids: vec![p[3]],
        },
    ]
}

#[tokio::test]
async fn dry_run_reports_the_exact_plan_and_changes_nothing() {
    let mut s = school().await;
    let mut c = s.app.db.conn().await;
    let before = students(&mut c).await;
    let got = s.api.rollover(request(As::Admin, mapping(TABLE, true))).await.unwrap().into_inner();
    assert_eq!(
        got,
        pb::RolloverResponse {
            dry_run: true,
            groups: plan(&s),
            students_moved: 3,
            students_archived: 1,
            cards_released: 1,
            audit_rows: 0,
        }
    );
    assert_eq!(students(&mut c).await, before, "a dry run changes no pupil");
    assert!(audit(&mut c).await.is_empty(), "and writes no audit row");
    s.app.stop().await;
}

#[tokio::test]
async fn commit_moves_pupils_at_once_archives_leavers_and_audits_each() {
    let mut s = school().await;
    let mut c = s.app.db.conn().await;
    let before = students(&mut c).await;
    let got = s.api.rollover(request(As::Admin, mapping(TABLE, false))).await.unwrap().into_inner();
    assert_eq!(
        got,
        pb::RolloverResponse {
            dry_run: false,
            groups: plan(&s),
            students_moved: 3,
            students_archived: 1,
            cards_released: 1,
            audit_rows: 4
        }
    );
    let [_, g2, g3, g4] = s.groups;
    let p = s.pupils;
    let mut want = before.clone();
    want[0].group_id = Some(g2);
    want[0].school_class = "2a".into();
    want[1].group_id = Some(g2); // class "Klasse 1" stays
    want[2].group_id = Some(g3);
    want[2].school_class = "3a".into();
    want[3].active = false;
    want[3].tag_id = None;
    assert_eq!(students(&mut c).await, want, "e (3a, unmapped) and f (deactivated) unchanged");

    let rows = audit(&mut c).await;
    assert_eq!(rows.len(), 4);
    let by = &rows[0].changed_by;
    assert!(by.starts_with("account:") && by[8..].parse::<i64>().is_ok(), "{by}");
    let (g1, _) = (s.groups[0], ());
    let expect = [
        (
            p[0],
            "student_moved",
            json!({"group_id": g1, "school_class": "1a"}),
            json!({"group_id": g2, "school_class": "2a"}),
        ),
        (
            p[1],
            "student_moved",
            json!({"group_id": g1, "school_class": "Klasse 1"}),
            json!({"group_id": g2, "school_class": "Klasse 1"}),
        ),
        (
            p[2],
            "student_moved",
            json!({"group_id": s.groups[1], "school_class": "2a"}),
            json!({"group_id": g3, "school_class": "3a"}),
        ),
        (
            p[3],
            "student_archived",
            json!({"active": true, "group_id": g4, "card": true}),
            json!({"active": false, "group_id": g4, "card": false}),
        ),
    ];
    for (row, (student, action, old, new)) in rows.iter().zip(expect) {
        assert_eq!(
            (
                row.entity_type.as_str(),
                row.entity_id,
                row.student_id,
                row.action.as_str(),
                &row.old_values,
                &row.new_values
            ),
            ("student", student, student, action, &old, &new)
        );
        assert_eq!((row.reason.as_str(), &row.changed_by), ("school-year rollover", by));
    }
    // The leaver's card is back in the pool, still active.
    let free: i64 = phoenix_tests::school::count(
        &mut c,
        &format!("SELECT count(*) AS n FROM users.rfid_cards WHERE id = '{}' AND active", fixtures::tag(103)),
    )
    .await;
    assert_eq!(free, 1);
    s.app.stop().await;
}

#[tokio::test]
async fn an_unknown_group_is_invalid_argument_naming_the_row_and_changes_nothing() {
    let mut s = school().await;
    let mut c = s.app.db.conn().await;
    let before = students(&mut c).await;
    let got = s.api.rollover(request(As::Admin, mapping(&[("1a", "2a"), ("9z", "3a"), ("2a", "5x")], false))).await;
    let status = assert_code(got, Code::InvalidArgument);
    assert!(status.message().contains("9z") || format!("{status:?}").contains("9z"), "{status:?}");
    assert_invalid(
        s.api.rollover(request(As::Admin, mapping(&[("1a", "2a"), ("9z", "3a"), ("2a", "5x")], false))).await,
        &["mapping[1].from", "mapping[2].to"],
    );
    assert_invalid(
        s.api.rollover(request(As::Admin, mapping(&[("1a", "2a"), ("1a", "3a")], true))).await,
        &["mapping[1].from"],
    );
    assert_invalid(s.api.rollover(request(As::Admin, mapping(&[], true))).await, &["mapping"]);
    assert_eq!(students(&mut c).await, before);
    assert!(audit(&mut c).await.is_empty());
    s.app.stop().await;
}

#[tokio::test]
async fn staff_may_not_roll_over() {
    let mut s = school().await;
    let got = s.api.rollover(request(As::Staff(s.staff), mapping(TABLE, true))).await;
    let status = assert_code(got, Code::PermissionDenied);
    assert!(status.message().contains("groups:rollover"), "{}", status.message());
    s.app.stop().await;
}

/// `phoenix rollover --mapping FILE [--dry-run]`: the same plan from a mapping file (header,
/// arrows, an empty target for leavers), the dry run changing nothing, the commit audited as
/// the system; a file that is not a mapping is refused naming its line.
#[tokio::test]
async fn the_cli_rolls_over_from_a_mapping_file_after_a_dry_run() {
    let s = school().await;
    let mut c = s.app.db.conn().await;
    let dir = std::env::temp_dir().join(format!("phoenix-rollover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mapping.csv");
    std::fs::write(&file, "from,to\n1a→2a\n# the fourth year leaves\n2a,3a\n4a,\n").unwrap();
    let pool = &s.app.context.pool;
    let before = students(&mut c).await;

    let dry = phoenix::report::rollover(pool, &file, true, None).await.expect("dry run");
    assert!(
        dry.starts_with("Dry run, nothing changed: 3 pupils moved, 1 archived, 1 cards released, 0 audit rows"),
        "{dry}"
    );
    assert!(dry.contains("\"4a\" → (leavers: deactivated): 1 pupils"), "{dry}");
    assert_eq!(students(&mut c).await, before, "the dry run changed no pupil");

    let done = phoenix::report::rollover(pool, &file, false, Some("Schuljahr 2027/28".into())).await.expect("commit");
    assert!(done.starts_with("Rolled over: 3 pupils moved, 1 archived, 1 cards released, 4 audit rows"), "{done}");
    let after = students(&mut c).await;
    assert_eq!(after[0].group_id, Some(s.groups[1]), "1a → 2a");
    assert_eq!(after[2].group_id, Some(s.groups[2]), "2a → 3a");
    assert!(!after[3].active, "the leaver is archived");
    let rows = audit(&mut c).await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.changed_by == "system"), "{rows:?}");

    std::fs::write(&file, "1a 2a\n").unwrap();
    let err = phoenix::report::rollover(pool, &file, true, None).await.unwrap_err().to_string();
    assert!(err.contains("mapping.csv") && err.contains("line 1"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
    s.app.stop().await;
}
