//! `phoenix.users.v1.ImportService` (docs/import.md) over real gRPC against a real database:
//! the preview's exact counts and problems (each by row and column), a commit checked row by
//! row, a re-import that changes nothing, a failure that rolls everything back, XLSX = CSV,
//! the permission and the size limit. The example file is docs/examples/students.csv.

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use phoenix_common::domain::Domain;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::import_service_client::ImportServiceClient;
use phoenix_tests::auth::{TestChannel, admin_token};
use phoenix_tests::grpc::{As, assert_code, assert_invalid, request};
use phoenix_tests::{TestApp, fixtures};
use sha2::{Digest as _, Sha256};
use tonic::Code;

type Client = ImportServiceClient<TestChannel>;

const EXAMPLE: &str = "docs/examples/students.csv";

fn example() -> Vec<u8> {
    std::fs::read(phoenix_tests::workspace_root().join(EXAMPLE)).expect("read the example file")
}

/// An app with the example's groups (Eulen, Füchse) and an admin client whose account id
/// is known (for `imported_by`).
async fn app() -> (TestApp, Client, i64) {
    let app = TestApp::spawn(&[Domain::Users]).await;
    let mut conn = app.db.conn().await;
    fixtures::group(&mut conn, "Eulen").await;
    fixtures::group(&mut conn, "Füchse").await;
    let (admin, token) = admin_token(&app).await;
    let client = ImportServiceClient::new(app.channel_as(Domain::Users, &token).await);
    (app, client, admin)
}

fn file(name: &str, content: Vec<u8>) -> Option<pb::StudentImportFile> {
    Some(pb::StudentImportFile { filename: name.into(), content })
}

async fn preview(client: &mut Client, name: &str, content: Vec<u8>) -> pb::PreviewStudentImportResponse {
    client
        .preview_student_import(pb::PreviewStudentImportRequest { file: file(name, content) })
        .await
        .expect("preview")
        .into_inner()
}

async fn commit(client: &mut Client, name: &str, content: Vec<u8>) -> pb::CommitStudentImportResponse {
    client
        .commit_student_import(pb::CommitStudentImportRequest { file: file(name, content) })
        .await
        .expect("commit")
        .into_inner()
}

/// What the example file does to an empty school.
fn example_counts() -> pb::StudentImportCounts {
    pb::StudentImportCounts {
        rows: 5,
        students_created: 5,
        guardians_created: 4,
        links_created: 5,
        phone_numbers_created: 4,
        cards_created: 4,
        cards_assigned: 4,
        ..Default::default()
    }
}

/// What the example file does once it has been imported.
fn unchanged_counts() -> pb::StudentImportCounts {
    pb::StudentImportCounts { rows: 5, students_unchanged: 5, ..Default::default() }
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// The rows of `sql` (one text column `line`), in its order.
async fn lines(conn: &mut AsyncPgConnection, sql: &str) -> Vec<String> {
    diesel::sql_query(sql)
        .load::<Line>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|l| l.line)
        .collect()
}

const PUPILS: &str = "SELECT concat_ws('|', p.first_name, p.last_name, p.birthday, s.school_class, g.name, p.tag_id, \
     s.health_info, s.bus) AS line FROM users.students s JOIN users.persons p ON p.id = s.person_id \
     LEFT JOIN education.groups g ON g.id = s.group_id ORDER BY p.last_name, p.first_name";
const GUARDIANS: &str = "SELECT concat_ws('|', first_name, last_name, coalesce(email, '-'), preferred_contact_method) \
     AS line FROM users.guardians ORDER BY last_name, first_name";
const PHONES: &str = "SELECT concat_ws('|', g.first_name, n.phone_number, n.phone_type, n.is_primary, n.priority) AS line \
     FROM users.guardian_phone_numbers n JOIN users.guardians g ON g.id = n.guardian_id ORDER BY g.first_name, n.priority";
const LINKS: &str = "SELECT concat_ws('|', p.first_name, g.first_name, l.relationship_type, l.is_primary, l.can_pickup, \
     l.emergency_priority) AS line FROM users.student_guardians l JOIN users.students s ON s.id = l.student_id \
     JOIN users.persons p ON p.id = s.person_id JOIN users.guardians g ON g.id = l.guardian_id \
     ORDER BY p.first_name, g.first_name";
const CARDS: &str = "SELECT concat_ws('|', id, active) AS line FROM users.rfid_cards ORDER BY id";

/// Everything an import writes, with the change times, as text.
async fn everything(conn: &mut AsyncPgConnection) -> Vec<String> {
    let mut all = Vec::new();
    for sql in [PUPILS, GUARDIANS, PHONES, LINKS, CARDS] {
        all.extend(lines(conn, sql).await);
    }
    for table in ["persons", "students", "guardians", "guardian_phone_numbers", "student_guardians", "rfid_cards"] {
        all.extend(
            lines(
                conn,
                &format!("SELECT concat_ws('|', '{table}', id, updated_at) AS line FROM users.{table} ORDER BY id"),
            )
            .await,
        );
    }
    all
}

#[derive(QueryableByName, Debug)]
struct AuditRow {
    #[diesel(sql_type = Text)]
    entity_type: String,
    #[diesel(sql_type = Text)]
    filename: String,
    #[diesel(sql_type = Integer)]
    total_rows: i32,
    #[diesel(sql_type = Integer)]
    created_count: i32,
    #[diesel(sql_type = Integer)]
    updated_count: i32,
    #[diesel(sql_type = Integer)]
    skipped_count: i32,
    #[diesel(sql_type = Bool)]
    dry_run: bool,
    #[diesel(sql_type = Nullable<diesel::sql_types::BigInt>)]
    imported_by: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    file_sha256: Option<String>,
    #[diesel(sql_type = Text)]
    metadata: String,
    #[diesel(sql_type = Bool)]
    completed: bool,
}

async fn audit_rows(conn: &mut AsyncPgConnection) -> Vec<AuditRow> {
    diesel::sql_query(
        "SELECT entity_type, filename, total_rows, created_count, updated_count, skipped_count, dry_run, imported_by, \
         encode(file_sha256, 'hex') AS file_sha256, metadata::text AS metadata, \
         (completed_at >= started_at) AS completed FROM audit.data_imports ORDER BY id",
    )
    .load(conn)
    .await
    .expect("audit rows")
}

#[tokio::test]
async fn preview_of_the_example_file_counts_exactly_and_changes_nothing() {
    let (app, mut client, _) = app().await;
    let content = example();
    let got = preview(&mut client, "students.csv", content.clone()).await;
    assert_eq!(got.problems, []);
    assert_eq!(got.counts, Some(example_counts()));
    assert_eq!(got.format, "csv");
    assert_eq!(got.file_sha256, hex::encode(Sha256::digest(&content)));
    let mut conn = app.db.conn().await;
    assert_eq!(everything(&mut conn).await, Vec::<String>::new(), "a preview writes nothing");
    assert_eq!(audit_rows(&mut conn).await.len(), 0);
    app.stop().await;
}

/// One of each problem, a row each; the pupil in row 2 is fine.
const PROBLEMS: &str = "\
first_name,last_name,birthday,school_class,group,tag_id,guardian1_first_name,guardian1_last_name,guardian1_email,guardian1_mobile
Ada,Eins,2017-01-01,1a,Eulen,04AAAA0001,Eva,Eins,eva@example.org,0171 111
Ben,Zwei,2017-01-02,1a,Drachen,,,,,
Cem,Drei,2017-01-03,1a,Eulen,04AAAA0001,,,,
Dia,Vier,2017-01-04,1a,Eulen,04DEADBEEF,,,,
Eli,Fünf,2017-02-30,1a,Eulen,,,,,
,Sechs,2017-01-06,1a,Eulen,,,,,
Fay,Sieben,2017-01-07,1a,Eulen,,Gus,Sieben,gus-at-example.org,
Hal,Acht,2017-01-08,1a,Eulen,,Ina,Acht,,0171/abc
";

#[tokio::test]
async fn a_file_with_one_of_each_problem_names_each_by_row_and_column_and_commits_nothing() {
    let (app, mut client, _) = app().await;
    let mut conn = app.db.conn().await;
    fixtures::card(&mut conn, "04DEADBEEF", true).await;
    fixtures::person(&mut conn, "Hannes", "Hausmeister", Some("04DEADBEEF")).await;
    let before = everything(&mut conn).await;

    let got = preview(&mut client, "problems.csv", PROBLEMS.into()).await;
    let problems: Vec<(u32, &str, &str)> =
        got.problems.iter().map(|p| (p.row, p.column.as_str(), p.code.as_str())).collect();
    assert_eq!(
        problems,
        [
            (3, "group", "UNKNOWN_GROUP"),
            (4, "tag_id", "DUPLICATE_TAG"),
            (5, "tag_id", "TAG_ASSIGNED"),
            (6, "birthday", "BAD_DATE"),
            (7, "first_name", "REQUIRED"),
            (8, "guardian1_email", "BAD_EMAIL"),
            (9, "guardian1_mobile", "BAD_PHONE"),
        ]
    );
    assert!(got.problems.iter().all(|p| !p.message.is_empty()));
    assert!(got.problems[0].message.contains("Drachen"), "{:?}", got.problems[0]);
    assert!(got.problems[1].message.contains("row 2"), "{:?}", got.problems[1]);
    assert!(!got.problems[2].message.contains("Hannes"), "never names the card's holder");

    let refused = client
        .commit_student_import(pb::CommitStudentImportRequest { file: file("problems.csv", PROBLEMS.into()) })
        .await;
    assert_invalid(
        refused,
        &[
            "rows[3].group",
            "rows[4].tag_id",
            "rows[5].tag_id",
            "rows[6].birthday",
            "rows[7].first_name",
            "rows[8].guardian1_email",
            "rows[9].guardian1_mobile",
        ],
    );
    assert_eq!(everything(&mut conn).await, before, "a refused commit writes nothing");
    assert_eq!(audit_rows(&mut conn).await.len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_commit_writes_every_row_and_its_audit_record() {
    let (app, mut client, admin) = app().await;
    let content = example();
    let done = commit(&mut client, "students.csv", content.clone()).await;
    assert_eq!(done.counts, Some(example_counts()));
    assert_eq!(done.file_sha256, hex::encode(Sha256::digest(&content)));

    let mut conn = app.db.conn().await;
    assert_eq!(
        lines(&mut conn, PUPILS).await,
        [
            "Emma|Beispiel|2016-11-23|2a|Füchse|f",
            "Leo|Muster|2018-09-02|1b|Eulen|04A1B2C3D5|t",
            "Mia|Muster|2017-05-01|1a|Eulen|04A1B2C3D4|Asthma|f",
            "Noah|Schmidt|2017-02-14|2a|Füchse|04A1B2C3D6|f",
            "Lina|Weber|2016-07-30|3a|04A1B2C3D7|f",
        ]
    );
    assert_eq!(
        lines(&mut conn, GUARDIANS).await,
        [
            "Olaf|Beispiel|-|phone",
            "Petra|Muster|petra.muster@example.org|phone",
            "Tom|Muster|tom.muster@example.org|phone",
            "Anna|Schmidt|anna.schmidt@example.org|phone",
        ]
    );
    assert_eq!(
        lines(&mut conn, PHONES).await,
        [
            "Olaf|0160 5555555|mobile|t|1",
            "Petra|0171 1234567|mobile|t|1",
            "Petra|030 1234567|home|f|2",
            "Tom|0172 7654321|mobile|t|1",
        ]
    );
    assert_eq!(
        lines(&mut conn, LINKS).await,
        [
            "Emma|Olaf|parent|t|t|1",
            "Leo|Petra|parent|t|t|1",
            "Mia|Petra|parent|t|t|1",
            "Mia|Tom|parent|f|t|2",
            "Noah|Anna|relative|t|f|1",
        ]
    );
    assert_eq!(lines(&mut conn, CARDS).await, ["04A1B2C3D4|t", "04A1B2C3D5|t", "04A1B2C3D6|t", "04A1B2C3D7|t"]);

    let audit = audit_rows(&mut conn).await;
    assert_eq!(audit.len(), 1);
    let a = &audit[0];
    assert_eq!(
        (a.entity_type.as_str(), a.filename.as_str(), a.total_rows, a.created_count, a.updated_count, a.skipped_count),
        ("student", "students.csv", 5, 5, 0, 0)
    );
    assert_eq!((a.dry_run, a.imported_by, a.completed), (false, Some(admin), true));
    assert_eq!(a.file_sha256.as_deref(), Some(done.file_sha256.as_str()));
    let metadata: serde_json::Value = serde_json::from_str(&a.metadata).expect("json");
    assert_eq!(
        metadata,
        serde_json::json!({
            "format": "csv",
            "via": "rpc",
            "counts": {
                "rows": 5, "students_created": 5, "students_updated": 0, "students_unchanged": 0,
                "guardians_created": 4, "guardians_updated": 0, "links_created": 5, "links_updated": 0,
                "phone_numbers_created": 4, "cards_created": 4, "cards_assigned": 4,
            },
        })
    );
    assert!(!a.metadata.contains("Muster"), "no row contents in the audit record");
    app.stop().await;
}

#[tokio::test]
async fn importing_the_same_file_again_changes_nothing() {
    let (app, mut client, _) = app().await;
    commit(&mut client, "students.csv", example()).await;
    let mut conn = app.db.conn().await;
    let after_first = everything(&mut conn).await;

    assert_eq!(preview(&mut client, "students.csv", example()).await.counts, Some(unchanged_counts()));
    let again = commit(&mut client, "students.csv", example()).await;
    assert_eq!(again.counts, Some(unchanged_counts()));
    assert_eq!(everything(&mut conn).await, after_first, "not a row written, not an updated_at moved");

    let audit = audit_rows(&mut conn).await;
    assert_eq!(audit.len(), 2, "each commit is recorded");
    assert_eq!((audit[1].created_count, audit[1].updated_count, audit[1].skipped_count), (0, 0, 5));
    app.stop().await;
}

#[tokio::test]
async fn a_changed_row_updates_only_that_pupil_and_adds_only_the_new_number() {
    let (app, mut client, _) = app().await;
    commit(&mut client, "students.csv", example()).await;
    // Emma moves to Eulen, Olaf gets a landline; the rest stays.
    let changed = String::from_utf8(example()).expect("utf-8").replace(
        "Emma,Beispiel,2016-11-23,2a,Füchse,,,,Olaf,Beispiel,,0160 5555555,,",
        "Emma,Beispiel,2016-11-23,2a,Eulen,,,,Olaf,Beispiel,,0160 5555555,040 999,",
    );
    let done = commit(&mut client, "students-2.csv", changed.into_bytes()).await;
    assert_eq!(
        done.counts,
        Some(pb::StudentImportCounts {
            rows: 5,
            students_updated: 1,
            students_unchanged: 4,
            phone_numbers_created: 1,
            ..Default::default()
        })
    );
    let mut conn = app.db.conn().await;
    assert_eq!(lines(&mut conn, PUPILS).await[0], "Emma|Beispiel|2016-11-23|2a|Eulen|f");
    assert_eq!(lines(&mut conn, PHONES).await[..2], ["Olaf|0160 5555555|mobile|t|1", "Olaf|040 999|home|f|2"]);
    assert_eq!(lines(&mut conn, GUARDIANS).await.len(), 4, "Olaf matched by name as Emma's guardian");
    app.stop().await;
}

#[tokio::test]
async fn a_row_failing_in_the_database_rolls_back_the_whole_import() {
    let (app, mut client, _) = app().await;
    let mut conn = app.db.conn().await;
    // The last write of the import (Noah's link to Anna) fails inside the database, after
    // every pupil, card, guardian and number has been written in the same transaction.
    for sql in [
        "CREATE FUNCTION public.fail_link() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.relationship_type = 'relative' THEN RAISE EXCEPTION 'injected failure'; END IF; \
           RETURN NEW; END $$",
        "CREATE TRIGGER fail_link BEFORE INSERT ON users.student_guardians FOR EACH ROW \
           EXECUTE FUNCTION public.fail_link()",
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.expect(sql);
    }
    let failed = client
        .commit_student_import(pb::CommitStudentImportRequest { file: file("students.csv", example()) })
        .await
        .expect_err("the injected failure aborts the import");
    assert_ne!(failed.code(), Code::Ok);
    assert_eq!(everything(&mut conn).await, Vec::<String>::new(), "no pupil, guardian, number, link or card");
    assert_eq!(audit_rows(&mut conn).await.len(), 0, "no audit record");
    app.stop().await;
}

/// The example file as an XLSX workbook: the same cells as text, the birthdays as real
/// date cells (formatted DD.MM.YYYY, as German spreadsheets show them).
fn example_xlsx() -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let text = String::from_utf8(example()).expect("utf-8");
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let date = Format::new().set_num_format("dd.mm.yyyy");
    // The example has no quoted cells: a line splits at its commas.
    for (r, line) in text.lines().enumerate() {
        for (c, cell) in line.split(',').enumerate() {
            let (r, c) = (r as u32, c as u16);
            let parsed = chrono::NaiveDate::parse_from_str(cell, "%Y-%m-%d")
                .or_else(|_| chrono::NaiveDate::parse_from_str(cell, "%d.%m.%Y"));
            match parsed {
                Ok(d) if r > 0 => {
                    use chrono::Datelike as _;
                    let d = ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day() as u8).expect("date");
                    sheet.write_datetime_with_format(r, c, &d, &date).expect("date cell");
                }
                _ if cell.is_empty() => {}
                _ => {
                    sheet.write_string(r, c, cell).expect("text cell");
                }
            }
        }
    }
    book.save_to_buffer().expect("xlsx")
}

#[tokio::test]
async fn an_xlsx_file_of_the_same_content_gives_the_same_result() {
    let (app, mut client, _) = app().await;
    let xlsx = example_xlsx();
    // Detected by content, whatever the name says.
    let got = preview(&mut client, "schueler-export", xlsx.clone()).await;
    assert_eq!((got.format.as_str(), got.problems.as_slice()), ("xlsx", &[][..]));
    assert_eq!(got.counts, Some(example_counts()));

    let done = commit(&mut client, "students.xlsx", xlsx).await;
    assert_eq!(done.counts, Some(example_counts()));
    // The CSV now finds every row as it is: the two files hold the same data.
    assert_eq!(preview(&mut client, "students.csv", example()).await.counts, Some(unchanged_counts()));
    let mut conn = app.db.conn().await;
    assert_eq!(lines(&mut conn, PUPILS).await[1], "Leo|Muster|2018-09-02|1b|Eulen|04A1B2C3D5|t");
    assert!(audit_rows(&mut conn).await[0].metadata.contains("\"xlsx\""));
    app.stop().await;
}

#[tokio::test]
async fn staff_without_students_import_are_refused_both_calls() {
    let app = TestApp::spawn(&[Domain::Users]).await;
    let mut conn = app.db.conn().await;
    let staff = fixtures::staff(&mut conn, "Sina", "Eins").await;
    let mut client = ImportServiceClient::new(app.test_channel(Domain::Users).await);
    let preview = client
        .preview_student_import(request(
            As::Staff(staff),
            pb::PreviewStudentImportRequest { file: file("students.csv", example()) },
        ))
        .await;
    let status = assert_code(preview, Code::PermissionDenied);
    assert!(status.message().contains("students:import"), "{}", status.message());
    let committed = client
        .commit_student_import(request(
            As::Staff(staff),
            pb::CommitStudentImportRequest { file: file("students.csv", example()) },
        ))
        .await;
    assert_code(committed, Code::PermissionDenied);
    // (The staff member's person gets their login linked by the test channel: not a pupil.)
    assert_eq!(lines(&mut conn, PUPILS).await, Vec::<String>::new(), "nothing imported");
    assert_eq!(lines(&mut conn, GUARDIANS).await, Vec::<String>::new());
    assert_eq!(audit_rows(&mut conn).await.len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_file_over_5_mib_or_without_a_name_is_invalid() {
    let (app, mut client, _) = app().await;
    let mut big = example();
    big.resize(5 * 1024 * 1024 + 1, b'\n');
    let result = client
        .preview_student_import(pb::PreviewStudentImportRequest { file: file("students.csv", big.clone()) })
        .await;
    assert_invalid(result, &["file.content"]);
    let result = client.commit_student_import(pb::CommitStudentImportRequest { file: file("students.csv", big) }).await;
    assert_invalid(result, &["file.content"]);
    let result = client.preview_student_import(pb::PreviewStudentImportRequest { file: file("", example()) }).await;
    assert_invalid(result, &["file.filename"]);
    let result = client.preview_student_import(pb::PreviewStudentImportRequest { file: None }).await;
    assert_invalid(result, &["file"]);
    let mut conn = app.db.conn().await;
    assert_eq!(audit_rows(&mut conn).await.len(), 0);
    app.stop().await;
}
