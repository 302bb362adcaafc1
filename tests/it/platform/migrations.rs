//! The data model as migrated: up/down/up, schemas, nothing in `public`, FK indexes.

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use phoenix_db::{MIGRATIONS, MigrationCommand, migrate};
use phoenix_tests::TestDb;

const SCHEMAS: [&str; 12] = [
    "auth",
    "users",
    "education",
    "facilities",
    "activities",
    "active",
    "schedule",
    "iot",
    "feedback",
    "config",
    "audit",
    "meta",
];

#[derive(QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

async fn names(db: &TestDb, sql: &str) -> Vec<String> {
    let mut conn = db.conn().await;
    let rows: Vec<Name> = diesel::sql_query(sql).load(&mut conn).await.expect(sql);
    rows.into_iter().map(|r| r.name).collect()
}

const OUR_SCHEMAS_SQL: &str = "SELECT nspname AS name FROM pg_namespace \
     WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\\_%' ORDER BY 1";

const PUBLIC_RELATIONS_SQL: &str = "SELECT c.relname::text AS name FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1";

#[tokio::test]
async fn migrations_run_up_down_to_zero_and_up_again() {
    let db = TestDb::empty().await;
    let total = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .expect("embedded migrations")
        .len();
    assert!(total >= 2, "expected the schema migration and domain migrations, found {total}");

    let up = migrate(db.url(), MigrationCommand::Up).await.expect("first up");
    assert_eq!(up.iter().filter(|m| m.applied).count(), total, "all applied after up");
    assert_eq!(names(&db, OUR_SCHEMAS_SQL).await, sorted(&SCHEMAS));

    let down = migrate(db.url(), MigrationCommand::DownAll).await.expect("down to zero");
    assert!(down.iter().all(|m| !m.applied), "none applied after down: {down:?}");
    assert!(names(&db, OUR_SCHEMAS_SQL).await.is_empty(), "every schema dropped by the down migrations");
    assert_eq!(
        names(&db, PUBLIC_RELATIONS_SQL).await,
        diesel_bookkeeping(),
        "down migrations leave nothing behind in public"
    );

    let again = migrate(db.url(), MigrationCommand::Up).await.expect("second up");
    assert_eq!(again.iter().filter(|m| m.applied).count(), total);
    assert_eq!(names(&db, OUR_SCHEMAS_SQL).await, sorted(&SCHEMAS));
}

#[tokio::test]
async fn stepwise_down_reverts_one_migration_at_a_time() {
    let db = TestDb::new().await;
    let before = migrate(db.url(), MigrationCommand::Status).await.expect("status");
    let applied = before.iter().filter(|m| m.applied).count();
    let after = migrate(db.url(), MigrationCommand::Down(1)).await.expect("down 1");
    assert_eq!(after.iter().filter(|m| m.applied).count(), applied - 1);
    let newest = before.last().expect("at least one migration");
    assert!(!after.iter().any(|m| m.name == newest.name && m.applied), "the newest one was reverted");
    let redo = migrate(db.url(), MigrationCommand::Up).await.expect("up again");
    assert_eq!(redo.iter().filter(|m| m.applied).count(), applied);
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn diesel_bookkeeping() -> Vec<String> {
    // The one relation allowed in `public`, plus its primary-key index.
    vec!["__diesel_schema_migrations".into(), "__diesel_schema_migrations_pkey".into()]
}

#[tokio::test]
async fn public_schema_holds_only_diesel_bookkeeping() {
    let db = TestDb::new().await;
    assert_eq!(names(&db, PUBLIC_RELATIONS_SQL).await, diesel_bookkeeping());
    let functions = names(
        &db,
        "SELECT p.proname::text AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'public' ORDER BY 1",
    )
    .await;
    assert!(functions.is_empty(), "functions in public: {functions:?}");
    let types = names(
        &db,
        "SELECT t.typname::text AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0 ORDER BY 1",
    )
    .await;
    assert!(types.is_empty(), "custom types in public: {types:?}");
}

#[tokio::test]
async fn every_domain_schema_has_tables() {
    let db = TestDb::new().await;
    let with_tables = names(
        &db,
        "SELECT DISTINCT table_schema::text AS name FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('public', 'pg_catalog', 'information_schema') ORDER BY 1",
    )
    .await;
    let domains: Vec<&str> = SCHEMAS.iter().copied().filter(|s| *s != "meta").collect();
    assert_eq!(with_tables, sorted(&domains), "meta holds functions only; every other schema holds tables");
}

#[tokio::test]
async fn every_foreign_key_column_leads_an_index() {
    let db = TestDb::new().await;
    // For each FK, its first column must be the first column of some index on the table
    // (a primary key or unique index counts).
    let unindexed = names(
        &db,
        "SELECT format('%s.%s (%s) column %s', n.nspname, t.relname, c.conname, a.attname) AS name \
         FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
         WHERE c.contype = 'f' AND NOT EXISTS ( \
             SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1]) \
         ORDER BY 1",
    )
    .await;
    assert!(unindexed.is_empty(), "foreign keys without a leading index:\n  {}", unindexed.join("\n  "));
    let fk_count = names(&db, "SELECT conname::text AS name FROM pg_constraint WHERE contype = 'f'").await.len();
    assert!(fk_count > 50, "the data model has its cross-schema foreign keys (found {fk_count})");
}

#[tokio::test]
async fn audit_rows_cannot_be_changed() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    diesel::sql_query(
        "INSERT INTO audit.data_deletions (entity_type, entity_id, deletion_type, deleted_by) \
         VALUES ('student', 1, 'manual', 'system')",
    )
    .execute(&mut conn)
    .await
    .expect("insert audit row");
    let update = diesel::sql_query("UPDATE audit.data_deletions SET records_deleted = 5").execute(&mut conn).await;
    assert!(update.is_err(), "audit rows are append-only (update)");
    let delete = diesel::sql_query("DELETE FROM audit.data_deletions").execute(&mut conn).await;
    assert!(delete.is_err(), "audit rows are append-only (delete)");
}

#[tokio::test]
async fn seed_data_is_present_and_idempotent() {
    let db = TestDb::new().await;
    let roles = names(&db, "SELECT name FROM auth.roles WHERE is_system ORDER BY 1").await;
    assert_eq!(roles, ["admin", "guardian", "guest", "staff"]);
    let admin = names(
        &db,
        "SELECT p.name FROM auth.role_permissions rp JOIN auth.roles r ON r.id = rp.role_id \
         JOIN auth.permissions p ON p.id = rp.permission_id WHERE r.name = 'admin'",
    )
    .await;
    assert_eq!(admin, ["*:*"]);
    let guardian = names(
        &db,
        "SELECT p.name FROM auth.role_permissions rp JOIN auth.roles r ON r.id = rp.role_id \
         JOIN auth.permissions p ON p.id = rp.permission_id WHERE r.name = 'guardian' ORDER BY 1",
    )
    .await;
    assert_eq!(guardian, ["family:read", "presence:read"], "a guardian holds nothing of the staff API");
    let device = names(&db, "SELECT device_type AS name FROM iot.devices WHERE device_id = 'WEB-MANUAL-001'").await;
    assert_eq!(device, ["virtual"]);
    // The seed is declarative: running its SQL again over seeded data changes nothing.
    let seed_dir = std::fs::read_dir(phoenix_tests::workspace_root().join("diesel_migrations"))
        .expect("migrations dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("seed"))
        .max()
        .expect("a seed migration");
    let seed_sql = std::fs::read_to_string(seed_dir.join("up.sql")).expect("seed up.sql");
    let counts_sql = "SELECT format('%s roles, %s permissions, %s grants, %s categories, %s devices, %s settings', \
         (SELECT count(*) FROM auth.roles), (SELECT count(*) FROM auth.permissions), \
         (SELECT count(*) FROM auth.role_permissions), (SELECT count(*) FROM activities.categories), \
         (SELECT count(*) FROM iot.devices), (SELECT count(*) FROM config.settings)) AS name";
    let before = names(&db, counts_sql).await;
    let mut conn = db.conn().await;
    diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, &seed_sql).await.expect("seed runs twice");
    assert_eq!(names(&db, counts_sql).await, before);
}
