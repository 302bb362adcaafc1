//! The restore drill (`phoenix backup` / `phoenix restore`, `phoenix::backup`,
//! docs/operations.md): a school's data backed up, schema `users` destroyed with
//! `DROP SCHEMA … CASCADE` (which also drops every other schema's foreign keys into it) and
//! restored — every row back, every cross-schema foreign key there again with the same
//! definition, validated and enforced; the whole database restored into a fresh one and one
//! schema restored from that whole archive; a restore over a newer (or older) migration
//! version, with a damaged archive, or one that would orphan rows is refused and changes
//! nothing. Needs the PostgreSQL client tools (pg_dump, pg_restore, psql).

use std::collections::BTreeMap;
use std::path::PathBuf;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix::backup::{self, RestoreOptions, Tools};
use phoenix_tests::{TestDb, fixtures, require_tool};

const INSTALL: &str = "apt-get install -y postgresql-client-15 (scripts/test installs it)";

fn tools() -> Option<Tools> {
    if let Ok(t) = Tools::find() {
        return Some(t);
    }
    for program in ["pg_dump", "pg_restore", "psql"] {
        require_tool(program, program, INSTALL)?;
    }
    Some(Tools::find().expect("client tools on PATH"))
}

/// A directory for one test's archives, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("phoenix-backup-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
}

/// Every table of the Phoenix schemas (and the migration ledger) → its row count and a hash of
/// all its rows in a stable order: equal maps mean every row is back, byte for byte.
async fn contents(conn: &mut AsyncPgConnection) -> BTreeMap<String, String> {
    let tables: Vec<Named> = diesel::sql_query(
        "SELECT format('%I.%I', schemaname, tablename) AS name, '' AS value FROM pg_tables
          WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .load(conn)
    .await
    .expect("tables");
    let mut out = BTreeMap::new();
    for t in tables {
        let sql = format!(
            "SELECT '{0}' AS name, count(*)::text || ':' || coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '')
               AS value FROM {0} r",
            t.name
        );
        let row: Named = diesel::sql_query(&sql).get_result(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        out.insert(row.name, row.value);
    }
    out
}

/// Every foreign key that touches `schema` (from it, or into it from another schema; `None`:
/// every foreign key) → its table, definition and whether it is validated.
async fn foreign_keys(conn: &mut AsyncPgConnection, schema: Option<&str>) -> BTreeMap<String, String> {
    let rows: Vec<Named> = diesel::sql_query(
        "SELECT format('%s %s', con.conrelid::regclass, con.conname) AS name,
                pg_get_constraintdef(con.oid) || CASE WHEN con.convalidated THEN ' [valid]' ELSE ' [NOT VALID]' END AS value
           FROM pg_constraint con
           JOIN pg_class sc ON sc.oid = con.conrelid JOIN pg_class tc ON tc.oid = con.confrelid
          WHERE con.contype = 'f' AND con.conparentid = 0
            AND ($1 = '' OR sc.relnamespace = $1::regnamespace OR tc.relnamespace = $1::regnamespace)",
    )
    .bind::<Text, _>(schema.unwrap_or(""))
    .load(conn)
    .await
    .expect("foreign keys");
    rows.into_iter().map(|r| (r.name, r.value)).collect()
}

/// A small school: pupils with guardians, staff with an account, a room, an activity, a
/// session with visits (active → users), a device.
async fn seed(conn: &mut AsyncPgConnection) -> Vec<i64> {
    let students = fixtures::students(conn, 8).await;
    for (i, s) in students.iter().take(3).enumerate() {
        fixtures::guardian_of(conn, *s, &format!("Elter{i}"), "Test", true).await;
    }
    fixtures::staff(conn, "Frau", "Lehrer").await;
    fixtures::account(conn, "drill@school.de").await;
    let room = fixtures::room(conn, "Raum D", Some(30)).await;
    let activity = fixtures::activity(conn, "Basteln", 20).await;
    fixtures::device(conn, "reader-d", "room", Some(room)).await;
    let session = fixtures::insert_returning_id(
        conn,
        &format!(
            "INSERT INTO active.groups (room_id, activity_id, start_time)
             VALUES ({room}, {activity}, now() - interval '2 hours') RETURNING id"
        ),
    )
    .await;
    for s in &students {
        exec(
            conn,
            &format!(
                "INSERT INTO active.visits (student_id, active_group_id, entry_time, exit_time)
                 VALUES ({s}, {session}, now() - interval '90 minutes', now() - interval '30 minutes')"
            ),
        )
        .await;
    }
    students
}

fn assert_all_valid(fks: &BTreeMap<String, String>) {
    let invalid: Vec<_> = fks.iter().filter(|(_, d)| !d.ends_with("[valid]")).collect();
    assert!(invalid.is_empty(), "foreign keys not validated: {invalid:?}");
}

#[tokio::test]
async fn backup_restore_drill_brings_a_dropped_schema_back_with_every_row_and_foreign_key() {
    let Some(tools) = tools() else { return };
    let scratch = Scratch::new();
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    seed(&mut conn).await;
    let before = contents(&mut conn).await;
    let fks_before = foreign_keys(&mut conn, Some("users")).await;
    let inbound = fks_before.keys().filter(|k| !k.starts_with("users.")).count();
    assert!(inbound >= 10, "other schemas point into users: {fks_before:?}");
    assert_all_valid(&fks_before);

    let archive = scratch.file("users.dump");
    let manifest = backup::backup(db.url(), &tools, Some("users"), &archive).await.expect("backup users");
    assert_eq!(manifest.schema.as_deref(), Some("users"));
    assert!(backup::manifest_path(&archive).is_file() && manifest.archive_bytes > 0);
    assert!(!manifest.migrations.is_empty());
    let recorded =
        manifest.foreign_keys.iter().filter(|f| f.references_schema == "users" && f.schema != "users").count();
    assert_eq!(recorded, inbound, "the manifest knows every foreign key into users");

    // Disaster: the schema is gone, and with it (CASCADE) every foreign key into it.
    exec(&mut conn, "DROP SCHEMA users CASCADE").await;
    let left = foreign_keys(&mut conn, None).await;
    assert!(left.keys().all(|k| !fks_before.contains_key(k)), "CASCADE dropped the foreign keys into users");

    let report = backup::restore(db.url(), &tools, &archive, &RestoreOptions::default()).await.expect("restore users");
    assert_eq!(report.schema.as_deref(), Some("users"));
    assert_eq!(report.foreign_keys_restored.len(), inbound);

    let mut conn = db.conn().await;
    assert_eq!(contents(&mut conn).await, before, "every row of every schema as before");
    let fks_after = foreign_keys(&mut conn, Some("users")).await;
    assert_eq!(fks_after, fks_before, "the same foreign keys, same definitions, all validated");
    // Enforced again: an orphan visit is refused; identities continue after the restored rows.
    let orphan = diesel::sql_query(
        "INSERT INTO active.visits (student_id, active_group_id) SELECT 999999, id FROM active.groups LIMIT 1",
    )
    .execute(&mut conn)
    .await;
    assert!(orphan.is_err_and(|e| e.to_string().contains("fk_active_visits_student_id")));
    fixtures::students(&mut conn, 1).await;
    // The planner has statistics of the restored tables again.
    let analyzed = count(
        &mut conn,
        "SELECT count(*) AS n FROM pg_stat_user_tables WHERE schemaname = 'users' AND last_analyze IS NULL",
    )
    .await;
    assert_eq!(analyzed, 0, "every restored table analyzed");
}

#[tokio::test]
async fn backup_restore_whole_database_into_a_fresh_one_and_one_schema_from_it() {
    let Some(tools) = tools() else { return };
    let scratch = Scratch::new();
    let source = TestDb::new().await;
    let mut conn = source.conn().await;
    seed(&mut conn).await;
    let before = contents(&mut conn).await;
    let fks = foreign_keys(&mut conn, None).await;

    let archive = scratch.file("all.dump");
    let manifest = backup::backup(source.url(), &tools, None, &archive).await.expect("backup all");
    assert_eq!(manifest.schema, None);

    // A fresh, empty database (no migrations): everything comes from the archive.
    let fresh = TestDb::empty().await;
    backup::restore(fresh.url(), &tools, &archive, &RestoreOptions::default()).await.expect("restore all");
    let mut restored = fresh.conn().await;
    assert_eq!(contents(&mut restored).await, before, "every table, the migration ledger included");
    let restored_fks = foreign_keys(&mut restored, None).await;
    assert_eq!(restored_fks, fks);
    assert_all_valid(&restored_fks);
    let in_public = count(
        &mut restored,
        "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
          WHERE ns.nspname = 'public' AND c.relkind = 'r' AND c.relname <> '__diesel_schema_migrations'",
    )
    .await;
    assert_eq!(in_public, 0, "nothing but the migration ledger in public");

    // One schema out of the whole archive, into the restored copy.
    exec(&mut restored, "DROP SCHEMA facilities CASCADE").await;
    let options = RestoreOptions { schema: Some("facilities".into()), ..RestoreOptions::default() };
    let report = backup::restore(fresh.url(), &tools, &archive, &options).await.expect("restore facilities");
    assert!(!report.foreign_keys_restored.is_empty(), "rooms are referenced from active, iot, …");
    let mut restored = fresh.conn().await;
    assert_eq!(contents(&mut restored).await, before);
    assert_eq!(foreign_keys(&mut restored, None).await, fks);

    // A whole restore over the source itself (same migrations): replaced, identical.
    backup::restore(source.url(), &tools, &archive, &RestoreOptions::default()).await.expect("restore over itself");
    let mut conn = source.conn().await;
    assert_eq!(contents(&mut conn).await, before);
}

fn refused(result: anyhow::Result<backup::RestoreReport>, why: &str) {
    let err = result.expect_err("the restore must be refused");
    assert!(format!("{err:#}").contains(why), "expected {why:?} in: {err:#}");
}

#[tokio::test]
async fn backup_restore_refuses_other_migration_versions_damaged_archives_and_orphans() {
    let Some(tools) = tools() else { return };
    let scratch = Scratch::new();
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    seed(&mut conn).await;
    let users = scratch.file("users.dump");
    backup::backup(db.url(), &tools, Some("users"), &users).await.expect("backup users");
    let all = scratch.file("all.dump");
    backup::backup(db.url(), &tools, None, &all).await.expect("backup all");

    // Changed after the backup: a refused restore must leave it so.
    exec(&mut conn, "UPDATE users.persons SET first_name = 'Nachher'").await;
    let after = contents(&mut conn).await;

    // The database is migrated further than the backups.
    exec(&mut conn, "INSERT INTO public.__diesel_schema_migrations (version) VALUES ('29991231000000')").await;
    let one = RestoreOptions::default();
    refused(backup::restore(db.url(), &tools, &users, &one).await, "newer migration version (29991231000000");
    refused(backup::restore(db.url(), &tools, &all, &one).await, "newer migration version");
    let from_all = RestoreOptions { schema: Some("users".into()), ..RestoreOptions::default() };
    refused(backup::restore(db.url(), &tools, &all, &from_all).await, "newer migration version");
    exec(&mut conn, "DELETE FROM public.__diesel_schema_migrations WHERE version = '29991231000000'").await;

    // The backup is newer than the database (one schema needs exactly its migrations).
    let newest: Named =
        diesel::sql_query("SELECT 'v' AS name, max(version)::text AS value FROM public.__diesel_schema_migrations")
            .get_result(&mut conn)
            .await
            .expect("newest");
    exec(&mut conn, &format!("DELETE FROM public.__diesel_schema_migrations WHERE version = '{}'", newest.value)).await;
    refused(backup::restore(db.url(), &tools, &users, &one).await, "migrate up");
    exec(&mut conn, &format!("INSERT INTO public.__diesel_schema_migrations (version) VALUES ('{}')", newest.value))
        .await;

    // A damaged archive, a missing manifest, a schema the archive lacks, meta alone.
    let damaged = scratch.file("damaged.dump");
    let mut bytes = std::fs::read(&users).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&damaged, bytes).expect("write");
    std::fs::copy(backup::manifest_path(&users), backup::manifest_path(&damaged)).expect("copy manifest");
    refused(backup::restore(db.url(), &tools, &damaged, &one).await, "does not match its manifest");
    let bare = scratch.file("bare.dump");
    std::fs::copy(&users, &bare).expect("copy");
    refused(backup::restore(db.url(), &tools, &bare, &one).await, "manifest");
    let other = RestoreOptions { schema: Some("active".into()), ..RestoreOptions::default() };
    refused(backup::restore(db.url(), &tools, &users, &other).await, "holds schema users only");
    let meta = RestoreOptions { schema: Some("meta".into()), ..RestoreOptions::default() };
    refused(backup::restore(db.url(), &tools, &all, &meta).await, "only with the whole database");

    // Rows of other schemas that point at pupils the backup does not have: the foreign keys
    // cannot be validated, so the whole restore rolls back.
    let newcomer = fixtures::students(&mut conn, 1).await[0];
    exec(
        &mut conn,
        &format!(
            "INSERT INTO active.visits (student_id, active_group_id) SELECT {newcomer}, id FROM active.groups LIMIT 1"
        ),
    )
    .await;
    let after_newcomer = contents(&mut conn).await;
    assert_ne!(after_newcomer, after);
    refused(backup::restore(db.url(), &tools, &users, &one).await, "rolled back");

    let mut conn = db.conn().await;
    let before_update = count(&mut conn, "SELECT count(*) AS n FROM users.persons WHERE first_name <> 'Nachher'").await;
    assert_eq!(before_update, 1, "only the newcomer; nothing of the backup was restored");
    assert_eq!(contents(&mut conn).await, after_newcomer, "the database is exactly as before every refusal");
    assert_all_valid(&foreign_keys(&mut conn, None).await);
}
