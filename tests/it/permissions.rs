//! Every RPC of every implemented service declares exactly one permission, and that
//! permission exists in the seeded catalogue (so the shared auth layer can enforce it).

use std::collections::BTreeSet;

use diesel::QueryDsl as _;
use diesel_async::RunQueryDsl as _;
use phoenix_db::schema::auth;
use phoenix_tests::TestDb;
use prost::Message as _;

/// (fully qualified service, its permission table).
fn tables() -> Vec<(&'static str, &'static [(&'static str, &'static str)])> {
    vec![
        ("phoenix.facilities.v1.FacilitiesService", phoenix_facilities::service::METHOD_PERMISSIONS),
        ("phoenix.users.v1.UsersService", phoenix_users::service::METHOD_PERMISSIONS),
        ("phoenix.education.v1.EducationService", phoenix_education::service::METHOD_PERMISSIONS),
    ]
}

fn rpc_paths(service: &str) -> BTreeSet<String> {
    let fds = prost_types::FileDescriptorSet::decode(phoenix_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let (package, name) = service.rsplit_once('.').expect("qualified name");
    fds.file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.service.iter())
        .filter(|s| s.name() == name)
        .flat_map(|s| s.method.iter().map(|m| format!("/{service}/{}", m.name())))
        .collect()
}

#[test]
fn every_rpc_has_exactly_one_permission_entry() {
    for (service, table) in tables() {
        let declared: Vec<&str> = table.iter().map(|(m, _)| *m).collect();
        let unique: BTreeSet<String> = declared.iter().map(|m| m.to_string()).collect();
        assert_eq!(unique.len(), declared.len(), "{service}: a method is listed twice");
        let rpcs = rpc_paths(service);
        assert!(!rpcs.is_empty(), "{service} has no methods in the descriptor set");
        assert_eq!(unique, rpcs, "{service}: permission table and proto methods differ");
    }
}

#[tokio::test]
async fn every_declared_permission_is_seeded() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let seeded: BTreeSet<String> = auth::permissions::table
        .select(auth::permissions::name)
        .load::<String>(&mut conn)
        .await
        .expect("permissions")
        .into_iter()
        .collect();
    for (service, table) in tables() {
        for (method, permission) in table {
            assert!(seeded.contains(*permission), "{service}: {method} needs {permission:?}, which is not seeded");
        }
    }
}
