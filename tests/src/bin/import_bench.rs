//! `import-bench`: the pupil import (docs/import.md) of a generated file, timed (not a test).
//! Starts the users service on a fresh database (the harness's PostgreSQL), makes a CSV of
//! N pupils (default 2,000) in 20 groups, each with a card and two guardians with e-mail and
//! two numbers (siblings share them every tenth pupil), then times over real gRPC as an
//! admin: the preview, the commit, and the preview and commit of the same file again
//! (everything unchanged).
//!
//! ```text
//! cargo run --release -p phoenix-tests --bin import-bench
//! BENCH_PUPILS=5000 cargo run --release -p phoenix-tests --bin import-bench
//! ```

use std::time::Instant;

use phoenix_common::domain::Domain;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::import_service_client::ImportServiceClient;
use phoenix_tests::{TestApp, fixtures};

fn csv(pupils: usize) -> String {
    let mut out = String::from(
        "Vorname,Nachname,Geburtsdatum,Klasse,Gruppe,RFID,Elternteil 1 Vorname,Elternteil 1 Nachname,\
         Elternteil 1 E-Mail,Elternteil 1 Mobil,Elternteil 1 Telefon,Elternteil 2 Vorname,Elternteil 2 Nachname,\
         Elternteil 2 E-Mail,Elternteil 2 Mobil,Elternteil 2 Telefon\n",
    );
    for i in 0..pupils {
        let family = if i % 10 == 1 { i - 1 } else { i };
        out.push_str(&format!(
            "Kind{i},Familie{family},20{:02}-{:02}-{:02},{}a,Gruppe {},{},Mutter{family},Familie{family},\
             m{family}@example.org,0171 {family:07},030 {family:07},Vater{family},Familie{family},\
             v{family}@example.org,0172 {family:07},040 {family:07}\n",
            14 + i % 6,
            1 + i % 12,
            1 + i % 28,
            1 + i % 4,
            i % 20,
            fixtures::tag(i),
        ));
    }
    out
}

#[tokio::main]
async fn main() {
    let pupils: usize = std::env::var("BENCH_PUPILS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let app = TestApp::spawn(&[Domain::Users]).await;
    let mut conn = app.db.conn().await;
    for g in 0..20 {
        fixtures::group(&mut conn, &format!("Gruppe {g}")).await;
    }
    let content = csv(pupils).into_bytes();
    println!("import-bench: {pupils} pupils, {} bytes of CSV", content.len());
    let mut client = ImportServiceClient::new(app.test_channel(Domain::Users).await);
    let file = || Some(pb::StudentImportFile { filename: "bench.csv".into(), content: content.clone() });
    for round in ["first import", "same file again"] {
        let t = Instant::now();
        let preview = client
            .preview_student_import(pb::PreviewStudentImportRequest { file: file() })
            .await
            .expect("preview")
            .into_inner();
        let preview_time = t.elapsed();
        assert!(preview.problems.is_empty(), "problems: {:?}", &preview.problems[..preview.problems.len().min(5)]);
        let t = Instant::now();
        let done = client
            .commit_student_import(pb::CommitStudentImportRequest { file: file() })
            .await
            .expect("commit")
            .into_inner();
        let commit_time = t.elapsed();
        println!(
            "{round}: preview {preview_time:.2?}, commit {commit_time:.2?}; counts {:?}",
            done.counts.unwrap_or_default()
        );
    }
    app.stop().await;
}
