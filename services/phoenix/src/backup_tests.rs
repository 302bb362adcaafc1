//! Unit tests of `backup.rs`: URL handling, TOC selection, the migration-version rule.

use super::*;

#[test]
fn passwords_leave_the_url() {
    let u = ConnUrl::parse("postgres://app:s%40cret@db:5432/phoenix?sslmode=require");
    assert_eq!(u.without_password, "postgres://app@db:5432/phoenix?sslmode=require");
    assert_eq!(u.password.as_deref(), Some("s@cret"));
    let u = ConnUrl::parse("postgres://postgres@127.0.0.1:5/x");
    assert_eq!(u.without_password, "postgres://postgres@127.0.0.1:5/x");
    assert_eq!(u.password, None);
}

#[test]
fn a_schemas_toc_entries_are_its_own_and_its_schema_entries() {
    let list = "\
;\n; Archive created at 2026-12-02\n;\n\
7; 2615 17997 SCHEMA - users postgres\n\
11; 2615 18001 SCHEMA - active postgres\n\
4589; 0 0 COMMENT - SCHEMA users postgres\n\
4590; 0 0 ACL - SCHEMA users postgres\n\
4591; 0 0 ACL - SCHEMA active postgres\n\
250; 1259 18287 TABLE users persons postgres\n\
4464; 0 18287 TABLE DATA users persons postgres\n\
4245; 2606 19118 FK CONSTRAINT active attendance fk_active_attendance_student_id postgres\n\
4300; 2606 19119 FK CONSTRAINT users students fk_users_students_person_id postgres\n\
4400; 0 0 SEQUENCE SET users persons_id_seq postgres\n";
    let picked = select_schema_entries(list, "users");
    let ids: Vec<&str> = picked.lines().map(|l| l.split(';').next().unwrap_or_default()).collect();
    assert_eq!(ids, ["7", "4589", "4590", "250", "4464", "4300", "4400"]);
}

fn manifest(migrations: &[&str]) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        created_at: Utc::now(),
        schema: None,
        archive: "a.dump".into(),
        archive_sha256: String::new(),
        archive_bytes: 0,
        server_version: "15".into(),
        migrations: migrations.iter().map(|s| s.to_string()).collect(),
        foreign_keys: Vec::new(),
    }
}

#[test]
fn versions_one_schema_needs_the_same_the_whole_database_none_newer() {
    let m = manifest(&["1", "2"]);
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(version_conflict(&m, &v(&["1", "2"]), false), None);
    assert!(
        version_conflict(&m, &v(&["1", "2", "3"]), false).is_some_and(|w| w.contains("newer migration version (3"))
    );
    assert!(version_conflict(&m, &v(&["1"]), false).is_some_and(|w| w.contains("migrate up")));
    assert_eq!(version_conflict(&m, &v(&[]), true), None);
    assert_eq!(version_conflict(&m, &v(&["1"]), true), None);
    assert!(version_conflict(&m, &v(&["1", "2", "3"]), true).is_some());
}
