//! `config.v1 GetDatabaseStats` (`phoenix_config::db_stats`, `phoenix db stats`): after rows
//! are written and updated in `active`, the figures show every Phoenix schema with its size,
//! the `active` tables with live and dead tuples and their size, the bloat estimate of an
//! analyzed table, unused indexes (and constraint indexes never as unused), the caller's own
//! connection under its role, no replicas; a bad schema is InvalidArgument, staff are refused.

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use pb::config_service_client::ConfigServiceClient;
use phoenix_common::domain::Domain;
use phoenix_proto::config::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{mint_token, role_permissions};
use phoenix_tests::fixtures;
use phoenix_tests::grpc::assert_invalid;
use tonic::Code;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

async fn stats(
    c: &mut ConfigServiceClient<phoenix_tests::auth::TestChannel>,
    schema: &str,
) -> pb::GetDatabaseStatsResponse {
    c.get_database_stats(pb::GetDatabaseStatsRequest { schema: schema.into() }).await.expect("stats").into_inner()
}

#[tokio::test]
async fn db_stats_show_schemas_active_tables_dead_tuples_bloat_unused_indexes_and_connections() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    {
        // 20 ended sessions, each updated once (20 dead tuples: below autovacuum's threshold of 50,
        // so they stay), then the table analyzed for the bloat estimate. The connection ends
        // here, which flushes its statistics.
        let mut conn = app.db.conn().await;
        let room = fixtures::room(&mut conn, "Raum S", None).await;
        let activity = fixtures::activity(&mut conn, "Lesen", 30).await;
        diesel::sql_query(format!(
            "INSERT INTO active.groups (room_id, activity_id, start_time, end_time)
             SELECT {room}, {activity}, now() - (n || ' days')::interval, now() - (n || ' days')::interval + interval '1 hour'
               FROM generate_series(1, 20) n"
        ))
        .execute(&mut conn)
        .await
        .expect("sessions");
        diesel::sql_query("UPDATE active.groups SET timeout_minutes = 45").execute(&mut conn).await.expect("update");
        diesel::sql_query("ANALYZE active.groups").execute(&mut conn).await.expect("analyze");
    }
    let role = {
        let mut conn = app.db.conn().await;
        diesel::sql_query("SELECT current_user::text AS name").get_result::<Name>(&mut conn).await.expect("role").name
    };

    let mut c = ConfigServiceClient::new(app.test_channel(Domain::Config).await);
    // The writer's statistics reach the shared counters when its backend exits: poll briefly.
    let mut s = stats(&mut c, "").await;
    for _ in 0..50 {
        let groups = s.tables.iter().find(|t| t.table == "groups");
        if groups.is_some_and(|g| g.dead_tuples >= 20 && g.live_tuples >= 20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        s = stats(&mut c, "").await;
    }

    assert_eq!(s.schema, "active", "the default detailed schema");
    assert!(s.database_bytes > 0);
    let names: Vec<&str> = s.schemas.iter().map(|r| r.schema.as_str()).collect();
    for schema in ["active", "activities", "audit", "auth", "config", "education", "facilities", "feedback", "iot"]
        .into_iter()
        .chain(["meta", "public", "schedule", "users"])
    {
        assert!(names.contains(&schema), "schema {schema} missing from {names:?}");
    }
    let active = s.schemas.iter().find(|r| r.schema == "active").expect("active");
    assert!(active.tables >= 5 && active.total_bytes > 0 && active.index_bytes > 0, "{active:?}");
    assert!(active.total_bytes >= active.table_bytes + active.index_bytes - 1, "{active:?}");

    assert!(s.tables.iter().all(|t| t.schema == "active"), "only active's tables are detailed");
    let groups = s.tables.iter().find(|t| t.table == "groups").expect("active.groups");
    assert!(groups.live_tuples >= 20, "{groups:?}");
    assert!(groups.dead_tuples >= 20, "the updated rows' old versions: {groups:?}");
    assert!(groups.total_bytes > 0, "{groups:?}");
    assert!(groups.last_analyze_time.is_some(), "analyzed by hand: {groups:?}");

    // The service's own role reads only the planner statistics of columns it may SELECT: the
    // estimate may be unavailable to it (docs/operations.md); sizes are there either way.
    let bloat = s.bloat.iter().find(|b| b.schema == "active" && b.table == "groups").expect("bloat of active.groups");
    assert!(bloat.real_bytes > 0 && (0.0..=100.0).contains(&bloat.bloat_percent), "{bloat:?}");
    assert!(s.bloat.iter().all(|b| names.contains(&b.schema.as_str())), "Phoenix schemas only");

    // A fresh database has scanned none of its plain indexes; primary keys are never "unused".
    let index = |name: &str| s.indexes.iter().find(|i| i.index == name).unwrap_or_else(|| panic!("index {name}"));
    let unused = index("idx_active_groups_education_group_id");
    assert!(unused.unused && unused.idx_scan == 0 && !unused.enforces_constraint, "{unused:?}");
    let pkey = index("groups_pkey");
    assert!(pkey.enforces_constraint && !pkey.unused, "{pkey:?}");
    assert!(s.indexes.iter().all(|i| i.unused == (i.idx_scan == 0 && !i.enforces_constraint)));

    // This very call's session counts under the service's role, running.
    assert!(s.connections.iter().any(|r| r.active >= 1), "{:?}", s.connections);
    let total: i32 = s.connections.iter().map(|r| r.total).sum();
    assert!(s.server_connections >= total && s.max_connections > 0);
    assert!(s.replicas.is_empty(), "the test server has no standby: {:?}", s.replicas);

    // `phoenix db stats` reads as the owner role (DATABASE_URL): the estimate of the analyzed
    // table is there, and it is a percentage.
    let mut owner = app.db.conn().await;
    let direct = phoenix_config::db_stats::collect(&mut owner, "active").await.expect("collect");
    let bloat = direct.bloat.iter().find(|b| b.schema == "active" && b.table == "groups").expect("active.groups");
    assert!(!bloat.estimate_unavailable, "analyzed, so estimated: {bloat:?}");
    assert!(bloat.real_bytes > 0 && (0.0..=100.0).contains(&bloat.bloat_percent), "{bloat:?}");
    let mine = direct.connections.iter().find(|r| r.role == role).expect("the owner role's sessions");
    assert!(mine.active >= 1, "{mine:?}");
    let text = phoenix::db_ops::render(&direct);
    for heading in ["Schemas", "Tables of active", "Table bloat", "Unused indexes", "Connections", "Replication"] {
        assert!(text.contains(heading), "{heading} missing from:\n{text}");
    }
    assert!(text.contains("idx_active_groups_education_group_id"), "{text}");

    // Another schema in detail.
    let users = stats(&mut c, "users").await;
    assert_eq!(users.schema, "users");
    assert!(users.tables.iter().any(|t| t.table == "persons") && users.tables.iter().all(|t| t.schema == "users"));
}

#[tokio::test]
async fn db_stats_refuse_an_unknown_schema_and_staff() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut admin = ConfigServiceClient::new(app.test_channel(Domain::Config).await);
    for schema in ["pg_catalog", "nope", "users; DROP TABLE x"] {
        assert_invalid(
            admin.get_database_stats(pb::GetDatabaseStatsRequest { schema: schema.into() }).await,
            &["schema"],
        );
    }

    let staff =
        phoenix_tests::auth::create_account(&app, "s@school.de", phoenix_tests::auth::PASSWORD, &["staff"], true).await;
    let token = mint_token(&app, &staff.to_string(), &["staff"], &role_permissions(&app, "staff").await).await;
    let mut as_staff = ConfigServiceClient::new(app.channel_as(Domain::Config, &token).await);
    let err = as_staff.get_database_stats(pb::GetDatabaseStatsRequest::default()).await.expect_err("staff refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("config:manage"), "{}", err.message());
}
