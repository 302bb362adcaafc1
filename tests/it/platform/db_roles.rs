//! One PostgreSQL role per domain (docs/database.md): working as each domain's role (and the
//! gateway's), no INSERT, UPDATE or DELETE reaches another domain's schema, nobody but the
//! audit domain reads `audit` and nobody but auth reads a credential column; each role has
//! full DML on its own schema (tables created later too) and exactly the documented
//! cross-schema writes; a served domain's pool works as its role, and a login that is not a
//! member of a role fails at start-up naming it, and the migration login becomes a member of
//! every role (roles are on by default; the whole suite runs with them on).

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection as _};
use phoenix_common::db::PoolOptions;
use phoenix_common::db_roles::{self, GATEWAY_ROLE, RoleLogin};
use phoenix_common::domain::Domain;
use phoenix_tests::{TestApp, TestDb};

/// One table of each domain's schema with an `id` column: the probe of "another schema".
const PROBES: [(Domain, &str); 11] = [
    (Domain::Auth, "auth.roles"),
    (Domain::Users, "users.rfid_cards"),
    (Domain::Education, "education.groups"),
    (Domain::Facilities, "facilities.rooms"),
    (Domain::Activities, "activities.categories"),
    (Domain::Active, "active.groups"),
    (Domain::Schedule, "schedule.timeframes"),
    (Domain::Iot, "iot.devices"),
    (Domain::Feedback, "feedback.entries"),
    (Domain::Config, "config.settings"),
    (Domain::Audit, "audit.data_exports"),
];

const AUDIT_TABLES: [&str; 5] =
    ["audit.auth_events", "audit.data_changes", "audit.data_deletions", "audit.data_exports", "audit.data_imports"];

/// Columns only the auth domain reads.
const CREDENTIALS: [(&str, &str); 6] = [
    ("auth.accounts", "password_hash"),
    ("auth.accounts", "pin_hash"),
    ("auth.tokens", "token_hash"),
    ("auth.signing_keys", "private_key_encrypted"),
    ("auth.service_clients", "secret_hash"),
    ("auth.password_reset_tokens", "token_hash"),
];

/// Runs `sql` as `role` in a transaction that is rolled back; the error text on failure.
async fn as_role(conn: &mut AsyncPgConnection, role: &str, sql: &str) -> Result<(), String> {
    let result = conn.batch_execute(&format!("BEGIN; SET LOCAL ROLE \"{role}\"; {sql}")).await;
    conn.batch_execute("ROLLBACK").await.expect("rollback");
    result.map_err(|e| e.to_string())
}

fn assert_denied(result: Result<(), String>, role: &str, sql: &str) {
    match result {
        Err(e) if e.contains("permission denied") => {}
        Err(e) => panic!("{role}: `{sql}` failed, but not for want of a privilege: {e}"),
        Ok(()) => panic!("{role}: `{sql}` was allowed"),
    }
}

fn every_role() -> Vec<(Option<Domain>, String)> {
    let mut roles: Vec<_> = Domain::ALL.iter().map(|&d| (Some(d), db_roles::role(d))).collect();
    roles.push((None, GATEWAY_ROLE.to_owned()));
    roles
}

#[tokio::test]
async fn no_domain_role_can_insert_update_or_delete_in_another_domains_schema() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    for (own, role) in every_role() {
        for (domain, table) in PROBES {
            if own == Some(domain) {
                continue;
            }
            for sql in [
                format!("INSERT INTO {table} DEFAULT VALUES"),
                format!("UPDATE {table} SET id = id WHERE false"),
                format!("DELETE FROM {table} WHERE false"),
            ] {
                assert_denied(as_role(&mut conn, &role, &sql).await, &role, &sql);
            }
        }
    }
}

#[tokio::test]
async fn only_the_audit_domain_reads_audit_and_only_auth_reads_credentials() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    for (own, role) in every_role() {
        for table in AUDIT_TABLES {
            let sql = format!("SELECT * FROM {table} LIMIT 0");
            let result = as_role(&mut conn, &role, &sql).await;
            if own == Some(Domain::Audit) {
                result.unwrap_or_else(|e| panic!("{role}: `{sql}`: {e}"));
            } else {
                assert_denied(result, &role, &sql);
            }
        }
        for (table, column) in CREDENTIALS {
            let sql = format!("SELECT {column} FROM {table} LIMIT 0");
            let result = as_role(&mut conn, &role, &sql).await;
            if own == Some(Domain::Auth) {
                result.unwrap_or_else(|e| panic!("{role}: `{sql}`: {e}"));
            } else {
                assert_denied(result, &role, &sql);
            }
        }
    }
}

#[derive(QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Tables of `schema` on which `role` lacks one of SELECT, INSERT, UPDATE, DELETE.
async fn tables_without_full_dml(conn: &mut AsyncPgConnection, schema: &str, role: &str) -> Vec<String> {
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
           AND NOT (has_table_privilege($2, c.oid, 'SELECT') AND has_table_privilege($2, c.oid, 'INSERT') \
                AND has_table_privilege($2, c.oid, 'UPDATE') AND has_table_privilege($2, c.oid, 'DELETE')) \
         ORDER BY 1",
    )
    .bind::<Text, _>(schema)
    .bind::<Text, _>(role)
    .load(conn)
    .await
    .expect("privileges");
    rows.into_iter().map(|r| r.name).collect()
}

#[tokio::test]
async fn each_domain_role_has_full_dml_on_its_own_schema_also_on_tables_created_later() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    for domain in Domain::ALL {
        let (schema, role) = (domain.name(), db_roles::role(domain));
        assert_eq!(tables_without_full_dml(&mut conn, schema, &role).await, Vec::<String>::new(), "{role}");
        // A table a later migration adds (as the migration role) follows by default privileges.
        conn.batch_execute(&format!(
            "CREATE TABLE {schema}.later_table (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, note text)"
        ))
        .await
        .expect("create table");
        as_role(&mut conn, &role, &format!("INSERT INTO {schema}.later_table (note) VALUES ('x') RETURNING id"))
            .await
            .unwrap_or_else(|e| panic!("{role}: insert into a later table: {e}"));
        for (other, _) in PROBES.iter().filter(|(d, _)| *d != domain) {
            let other = db_roles::role(*other);
            let sql = format!("INSERT INTO {schema}.later_table (note) VALUES ('x')");
            assert_denied(as_role(&mut conn, &other, &sql).await, &other, &sql);
        }
        conn.batch_execute(&format!("DROP TABLE {schema}.later_table")).await.expect("drop table");
    }
}

#[tokio::test]
async fn the_documented_cross_schema_writes_are_allowed_and_nothing_next_to_them() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let allowed: &[(&str, &str)] = &[
        // Staff invitation acceptance creates the person, staff and teacher rows.
        ("phoenix_auth", "INSERT INTO users.persons (first_name, last_name) VALUES ('a', 'b') RETURNING id"),
        ("phoenix_auth", "UPDATE users.guardians SET account_id = account_id WHERE false"),
        ("phoenix_auth", "INSERT INTO audit.auth_events (account_id, event_type, success) VALUES (1, 'login', true)"),
        // Corrections record their change.
        ("phoenix_active", "SELECT id FROM users.students WHERE false FOR NO KEY UPDATE"),
        // The retention purge deletes expired active rows and audits them.
        ("phoenix_config", "DELETE FROM active.visits WHERE false"),
        ("phoenix_config", "DELETE FROM active.scan_receipts WHERE false"),
        ("phoenix_config", "DELETE FROM active.presence_events WHERE false"),
        // GDPR erasure deletes the person (cascading) and orphaned guardians.
        ("phoenix_audit", "SELECT id FROM users.students WHERE false FOR UPDATE"),
        ("phoenix_audit", "DELETE FROM users.persons WHERE false"),
        ("phoenix_audit", "DELETE FROM users.guardians WHERE false"),
        // Feedback locks the pupils and readers it refers to.
        ("phoenix_feedback", "SELECT id FROM iot.devices WHERE false FOR KEY SHARE"),
        // The gateway records readers seen.
        ("phoenix_gateway", "UPDATE iot.devices SET last_seen = now(), offline_since = NULL WHERE false"),
        // Every domain's jobs record their runs.
        ("phoenix_iot", "DELETE FROM config.job_runs WHERE false"),
    ];
    for (role, sql) in allowed {
        as_role(&mut conn, role, sql).await.unwrap_or_else(|e| panic!("{role}: `{sql}`: {e}"));
    }
    let refused: &[(&str, &str)] = &[
        ("phoenix_auth", "UPDATE users.persons SET first_name = 'x' WHERE false"),
        ("phoenix_auth", "DELETE FROM users.persons WHERE false"),
        ("phoenix_auth", "UPDATE users.guardians SET email = NULL WHERE false"),
        ("phoenix_active", "UPDATE users.students SET sick = true WHERE false"),
        ("phoenix_config", "DELETE FROM active.attendance WHERE false"),
        ("phoenix_config", "UPDATE active.visits SET exit_time = now() WHERE false"),
        ("phoenix_audit", "DELETE FROM users.rfid_cards WHERE false"),
        ("phoenix_audit", "UPDATE users.persons SET first_name = 'x' WHERE false"),
        ("phoenix_gateway", "UPDATE iot.devices SET key_version = 2 WHERE false"),
        ("phoenix_gateway", "SELECT * FROM users.students LIMIT 0"),
        ("phoenix_users", "SELECT * FROM auth.roles LIMIT 0"),
    ];
    for (role, sql) in refused {
        assert_denied(as_role(&mut conn, role, sql).await, role, sql);
    }
}

#[derive(QueryableByName, Debug)]
struct Who {
    #[diesel(sql_type = Text)]
    current: String,
    #[diesel(sql_type = Text)]
    session: String,
}

async fn who(pool: &phoenix_common::db::DbPool) -> Who {
    let mut conn = pool.get().await.expect("connection");
    diesel::sql_query("SELECT current_user::text AS current, session_user::text AS session")
        .get_result(&mut *conn)
        .await
        .expect("current_user")
}

#[tokio::test]
async fn every_served_domain_works_as_its_own_role() {
    let app = TestApp::spawn_with(&Domain::ALL, |c| c.db_roles = true).await;
    for domain in Domain::ALL {
        let pool = app.context.pool_for(domain);
        assert_eq!(who(&pool).await.current, db_roles::role(domain), "{domain}");
        // The session settings come with the role: no JIT for OLTP statements.
        #[derive(QueryableByName)]
        struct Jit {
            #[diesel(sql_type = Text)]
            jit: String,
        }
        let mut conn = pool.get().await.expect("connection");
        let jit: Jit = diesel::sql_query("SELECT current_setting('jit') AS jit").get_result(&mut *conn).await.unwrap();
        assert_eq!(jit.jit, "off", "{domain}");
    }
}

#[tokio::test]
async fn a_login_reaches_the_roles_it_is_a_member_of_and_fails_at_start_up_naming_any_other() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let login = format!("phoenix_login_{}", uuid::Uuid::new_v4().simple());
    let password = uuid::Uuid::new_v4().simple().to_string();
    conn.batch_execute(&format!("CREATE ROLE {login} LOGIN PASSWORD '{password}'; GRANT phoenix_iot TO {login}"))
        .await
        .expect("create login");
    let url = db_roles::with_login(db.url(), &login, &password);
    let options = PoolOptions { max_size: 1, ..PoolOptions::default() };
    let pool = db_roles::connect(&RoleLogin { role: "phoenix_iot".into(), url: url.clone() }, options)
        .await
        .expect("a member reaches its role");
    let w = who(&pool).await;
    assert_eq!((w.current.as_str(), w.session.as_str()), ("phoenix_iot", login.as_str()));
    drop(pool);
    let err = db_roles::connect(&RoleLogin { role: "phoenix_auth".into(), url }, options)
        .await
        .expect_err("not a member of phoenix_auth");
    assert!(err.to_string().contains("phoenix_auth"), "{err}");
    conn.batch_execute(&format!("DROP ROLE {login}")).await.ok();
}

/// With roles on by default, a single-login install (the migration login serving too) must
/// reach every domain role: migration `2026-12-11-000001` makes a non-superuser migration
/// login (CREATEROLE) a member of each, and before it that login is refused naming the role.
#[tokio::test]
async fn the_migration_login_becomes_a_member_of_every_domain_role() {
    const UP: &str =
        include_str!("../../../diesel_migrations/2026-12-11-000001_domain_roles_for_the_migration_login/up.sql");
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let login = format!("phoenix_migrator_{}", uuid::Uuid::new_v4().simple());
    let password = uuid::Uuid::new_v4().simple().to_string();
    conn.batch_execute(&format!("CREATE ROLE {login} LOGIN CREATEROLE PASSWORD '{password}'")).await.expect("login");
    let url = db_roles::with_login(db.url(), &login, &password);
    let options = PoolOptions { max_size: 1, ..PoolOptions::default() };
    let reach = |role: String| {
        let login = RoleLogin { role, url: url.clone() };
        async move { db_roles::connect(&login, options).await }
    };
    let err = reach(db_roles::role(Domain::Active)).await.expect_err("not a member yet");
    assert!(err.to_string().contains("phoenix_active"), "{err}");

    // The migration as that login would run it (current_user = the login).
    conn.batch_execute(&format!("SET ROLE {login}; {UP} RESET ROLE;")).await.expect("the migration as the login");
    for (_, role) in every_role() {
        let pool = reach(role.clone()).await.unwrap_or_else(|e| panic!("{role}: {e}"));
        let w = who(&pool).await;
        assert_eq!((w.current.as_str(), w.session.as_str()), (role.as_str(), login.as_str()));
    }
    // Run again (a re-applied migration): nothing to do, no error.
    conn.batch_execute(&format!("SET ROLE {login}; {UP} RESET ROLE;")).await.expect("idempotent");
    // The superuser the suite migrates as is left alone.
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let su: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = current_user",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(su.n, 0, "no membership granted to a superuser");
    for (_, role) in every_role() {
        conn.batch_execute(&format!("REVOKE {role} FROM {login}")).await.ok();
    }
    conn.batch_execute(&format!("DROP ROLE {login}")).await.ok();
}
