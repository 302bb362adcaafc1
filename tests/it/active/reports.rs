//! `ReportService` over real gRPC with real tokens against seeded November 2026 data: the
//! attendance report row by row (CSV parsed back, XLSX read back with calamine, the same
//! table), the room-utilisation report (sessions, visits, distinct pupils, peak occupancy
//! against capacity), a teacher's report holding only their own group and no sensitive
//! field, another group's report refused, bad requests named by field.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;
use phoenix_common::domain::Domain;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::report_service_client::ReportServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, request};
use phoenix_tests::school::ActiveSchool;
use tonic::Code;

type Reports = ReportServiceClient<TestChannel>;

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// One attendance day; times are UTC (Berlin is UTC+1 in November).
async fn day(conn: &mut AsyncPgConnection, student: i64, date: &str, inn: &str, out: Option<&str>, closed: bool) {
    let out = out.map_or_else(|| "NULL".to_owned(), |o| format!("'{date}T{o}Z'"));
    exec(
        conn,
        &format!(
            "INSERT INTO active.attendance (student_id, date, check_in_time, check_out_time, closed_by_system) \
             VALUES ({student}, '{date}', '{date}T{inn}Z', {out}, {closed})"
        ),
    )
    .await;
}

/// A finished session in `room` (UTC times) and its id.
async fn session(conn: &mut AsyncPgConnection, room: i64, activity: i64, from: &str, to: &str) -> i64 {
    phoenix_tests::fixtures::insert_returning_id(
        conn,
        &format!(
            "INSERT INTO active.groups (room_id, activity_id, start_time, end_time, last_activity) \
             VALUES ({room}, {activity}, '{from}Z', '{to}Z', '{to}Z') RETURNING id"
        ),
    )
    .await
}

async fn visit(conn: &mut AsyncPgConnection, student: i64, session: i64, from: &str, to: &str) {
    exec(
        conn,
        &format!(
            "INSERT INTO active.visits (student_id, active_group_id, entry_time, exit_time) \
             VALUES ({student}, {session}, '{from}Z', '{to}Z')"
        ),
    )
    .await;
}

/// Pupils 0 and 1 in Eulen (the teacher's group), 2 and 3 in Füchse, with November days,
/// a sickness, sessions and visits.
async fn seeded() -> ActiveSchool {
    let env = ActiveSchool::new(4, 2).await;
    let mut c = env.conn().await;
    let p = |i| env.pupil(i);
    // P0: three days, one closed by the system, one still open.
    day(&mut c, p(0), "2026-11-02", "06:45:00", Some("14:30:00"), false).await;
    day(&mut c, p(0), "2026-11-03", "07:10:00", Some("15:05:00"), true).await;
    day(&mut c, p(0), "2026-11-04", "06:30:00", None, false).await;
    // P1: came on the 23rd, sick since 10:00 that day (Mon): sick on 24, 25, 26, 27, 30.
    day(&mut c, p(1), "2026-11-23", "07:00:00", Some("11:00:00"), false).await;
    exec(&mut c, &format!("UPDATE users.students SET sick = true, sick_since = '2026-11-23T09:00:00Z', health_info = 'Asthma-Spray', supervisor_notes = 'geheim' WHERE id = {}", p(1))).await;
    day(&mut c, p(2), "2026-11-02", "08:00:00", Some("13:00:00"), false).await;
    // Outside the month: not counted.
    day(&mut c, p(2), "2026-10-30", "08:00:00", Some("13:00:00"), false).await;
    day(&mut c, p(0), "2026-12-01", "08:00:00", Some("13:00:00"), false).await;

    let (small, room_a, activity) = (env.school.small_room, env.school.rooms[0], env.school.activity);
    let s1 = session(&mut c, small, activity, "2026-11-02T07:00:00", "2026-11-02T11:00:00").await;
    let s2 = session(&mut c, small, activity, "2026-11-02T12:00:00", "2026-11-02T15:00:00").await;
    visit(&mut c, p(0), s1, "2026-11-02T07:10:00", "2026-11-02T08:00:00").await;
    visit(&mut c, p(1), s1, "2026-11-02T07:30:00", "2026-11-02T09:00:00").await;
    visit(&mut c, p(2), s1, "2026-11-02T08:00:00", "2026-11-02T10:00:00").await;
    visit(&mut c, p(0), s2, "2026-11-02T12:10:00", "2026-11-02T13:00:00").await;
    let s3 = session(&mut c, room_a, activity, "2026-11-03T07:00:00", "2026-11-03T09:00:00").await;
    visit(&mut c, p(3), s3, "2026-11-03T07:05:00", "2026-11-03T08:00:00").await;
    // October: not in the November report.
    let s4 = session(&mut c, room_a, activity, "2026-10-30T07:00:00", "2026-10-30T09:00:00").await;
    visit(&mut c, p(3), s4, "2026-10-30T07:05:00", "2026-10-30T08:00:00").await;
    env
}

async fn reports(env: &ActiveSchool) -> Reports {
    ReportServiceClient::new(env.app.test_channel(Domain::Active).await)
}

/// The streamed file: content type, file name, bytes.
async fn fetch<F, T>(call: F) -> Result<(String, String, Vec<u8>), tonic::Status>
where
    F: std::future::Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
    T: Chunked + Send + 'static,
{
    let mut stream = call.await?.into_inner();
    let first = stream.next().await.expect("a first chunk")?.chunk();
    let (content_type, filename, mut bytes) = (first.content_type, first.filename, first.data);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?.chunk();
        assert!(chunk.filename.is_empty() && chunk.content_type.is_empty(), "name and type in the first chunk only");
        bytes.extend(chunk.data);
    }
    Ok((content_type, filename, bytes))
}

/// A report stream's message: one chunk of the file.
trait Chunked {
    fn chunk(self) -> pb::ReportChunk;
}

impl Chunked for pb::AttendanceReportResponse {
    fn chunk(self) -> pb::ReportChunk {
        self.chunk.expect("every message carries a chunk")
    }
}

impl Chunked for pb::RoomReportResponse {
    fn chunk(self) -> pb::ReportChunk {
        self.chunk.expect("every message carries a chunk")
    }
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes);
    r.records().map(|rec| rec.expect("csv record").iter().map(str::to_owned).collect()).collect()
}

fn xlsx_rows(bytes: Vec<u8>, sheet: &str) -> Vec<Vec<String>> {
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).expect("an xlsx workbook");
    let range = book.worksheet_range(sheet).expect("the sheet");
    range
        .rows()
        .map(|row| {
            row.iter()
                .map(|c| match c {
                    Data::String(s) => s.clone(),
                    Data::Float(f) => format!("{f}"),
                    Data::Int(i) => i.to_string(),
                    Data::Empty => String::new(),
                    other => panic!("unexpected cell {other:?}"),
                })
                .collect()
        })
        .collect()
}

fn attendance_req(group: Option<i64>, format: pb::ReportFormat) -> pb::AttendanceReportRequest {
    pb::AttendanceReportRequest { month: "2026-11".into(), education_group_id: group, format: format as i32 }
}

fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter().map(|r| r.iter().map(|s| (*s).to_owned()).collect()).collect()
}

const ATTENDANCE_HEADER: &[&str] = &[
    "row",
    "group_id",
    "group",
    "student_id",
    "first_name",
    "last_name",
    "school_class",
    "pupils",
    "days_present",
    "first_arrival",
    "last_leave",
    "closed_by_system_days",
    "sick_days",
];

/// The admin's November report, every row.
fn expected_attendance(env: &ActiveSchool) -> Vec<Vec<String>> {
    let (g, o) = (env.group.to_string(), env.other_group.to_string());
    let p: Vec<String> = (0..4).map(|i| env.pupil(i).to_string()).collect();
    strs(&[
        ATTENDANCE_HEADER,
        &["pupil", &g, "Eulen", &p[0], "Kind0", "Test0", "2a", "", "3", "07:30", "16:05", "1", "0"],
        &["pupil", &g, "Eulen", &p[1], "Kind1", "Test1", "2a", "", "1", "08:00", "12:00", "0", "5"],
        &["group", &g, "Eulen", "", "", "", "", "2", "4", "07:30", "16:05", "1", "5"],
        &["pupil", &o, "Füchse", &p[2], "Kind2", "Test2", "2a", "", "1", "09:00", "14:00", "0", "0"],
        &["pupil", &o, "Füchse", &p[3], "Kind3", "Test3", "2a", "", "0", "", "", "0", "0"],
        &["group", &o, "Füchse", "", "", "", "", "2", "1", "09:00", "14:00", "0", "0"],
    ])
}

#[tokio::test]
async fn attendance_report_as_csv_holds_every_pupil_and_group_row_of_the_month() {
    let env = seeded().await;
    let mut api = reports(&env).await;
    let (ct, name, bytes) =
        fetch(api.attendance_report(request(As::Admin, attendance_req(None, pb::ReportFormat::Csv)))).await.unwrap();
    assert_eq!((ct.as_str(), name.as_str()), ("text/csv; charset=utf-8", "attendance-2026-11.csv"));
    assert_eq!(csv_rows(&bytes), expected_attendance(&env));
    env.app.stop().await;
}

#[tokio::test]
async fn attendance_report_as_xlsx_reads_back_as_the_same_table() {
    let env = seeded().await;
    let mut api = reports(&env).await;
    let (ct, name, bytes) =
        fetch(api.attendance_report(request(As::Admin, attendance_req(None, pb::ReportFormat::Xlsx)))).await.unwrap();
    assert_eq!(ct, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert_eq!(name, "attendance-2026-11.xlsx");
    assert_eq!(xlsx_rows(bytes, "Attendance"), expected_attendance(&env));
    env.app.stop().await;
}

#[tokio::test]
async fn a_teacher_gets_only_their_group_and_no_sensitive_field() {
    let env = seeded().await;
    let mut api = reports(&env).await;
    let (_, _, bytes) =
        fetch(api.attendance_report(request(As::Staff(env.teacher), attendance_req(None, pb::ReportFormat::Csv))))
            .await
            .unwrap();
    let all = expected_attendance(&env);
    assert_eq!(csv_rows(&bytes), all[..4].to_vec(), "header, the two Eulen pupils and the Eulen total");
    let text = String::from_utf8(bytes).unwrap();
    for absent in ["Füchse", "Kind2", "Kind3", "Asthma", "geheim", &env.school.pupils[0].tag, "birthday", "health"] {
        assert!(!text.contains(absent), "{absent:?} in the teacher's report:\n{text}");
    }
    // Their own group by id: the same rows.
    let (_, name, own) = fetch(
        api.attendance_report(request(As::Staff(env.teacher), attendance_req(Some(env.group), pb::ReportFormat::Csv))),
    )
    .await
    .unwrap();
    assert_eq!(name, format!("attendance-2026-11-group-{}.csv", env.group));
    assert_eq!(csv_rows(&own), all[..4].to_vec());
    // Staff without groups: the header only.
    let (_, _, none) =
        fetch(api.attendance_report(request(As::Staff(env.stranger), attendance_req(None, pb::ReportFormat::Csv))))
            .await
            .unwrap();
    assert_eq!(csv_rows(&none), all[..1].to_vec());
    env.app.stop().await;
}

#[tokio::test]
async fn another_groups_report_is_permission_denied() {
    let env = seeded().await;
    let mut api = reports(&env).await;
    let got = fetch(api.attendance_report(request(
        As::Staff(env.teacher),
        attendance_req(Some(env.other_group), pb::ReportFormat::Xlsx),
    )))
    .await;
    let status = assert_code(got, Code::PermissionDenied);
    assert!(status.message().contains(&env.other_group.to_string()), "{}", status.message());
    env.app.stop().await;
}

#[tokio::test]
async fn bad_report_requests_name_every_field() {
    let env = seeded().await;
    let mut api = reports(&env).await;
    let bad = pb::AttendanceReportRequest { month: "2026-13".into(), education_group_id: Some(0), format: 9 };
    assert_invalid(
        fetch(api.attendance_report(request(As::Admin, bad))).await,
        &["month", "education_group_id", "format"],
    );
    let bad = pb::RoomReportRequest { month: "Nov".into(), room_id: Some(-1), format: 0 };
    assert_invalid(fetch(api.room_report(request(As::Admin, bad))).await, &["month", "room_id"]);
    let unknown = attendance_req(Some(999_999), pb::ReportFormat::Csv);
    assert_code(fetch(api.attendance_report(request(As::Admin, unknown))).await, Code::NotFound);
    env.app.stop().await;
}

#[tokio::test]
async fn room_report_counts_sessions_visits_pupils_and_peak_against_capacity() {
    let env = seeded().await;
    let mut api = reports(&env).await;
    let (small, room_a) = (env.school.small_room.to_string(), env.school.rooms[0].to_string());
    let header: &[&str] = &[
        "room_id",
        "room",
        "date",
        "sessions",
        "visits",
        "distinct_pupils",
        "peak_occupancy",
        "capacity",
        "peak_percent_of_capacity",
    ];
    let want = strs(&[
        header,
        // Klein: P0 leaves at 09:00 local as P2 enters, so at most two at once; P0 comes back.
        &[&small, "Klein", "2026-11-02", "2", "4", "3", "2", "2", "100"],
        &[&room_a, "Raum A", "2026-11-03", "1", "1", "1", "1", "", ""],
    ]);
    let req = |format: pb::ReportFormat| pb::RoomReportRequest {
        month: "2026-11".into(),
        room_id: None,
        format: format as i32,
    };
    let (ct, name, csv) = fetch(api.room_report(request(As::Admin, req(pb::ReportFormat::Csv)))).await.unwrap();
    assert_eq!((ct.as_str(), name.as_str()), ("text/csv; charset=utf-8", "rooms-2026-11.csv"));
    assert_eq!(csv_rows(&csv), want);
    let (_, name, xlsx) = fetch(api.room_report(request(As::Admin, req(pb::ReportFormat::Xlsx)))).await.unwrap();
    assert_eq!(name, "rooms-2026-11.xlsx");
    assert_eq!(xlsx_rows(xlsx, "Rooms"), want);
    // Counts only, no pupil: a teacher gets the same rooms.
    let (_, _, teacher) =
        fetch(api.room_report(request(As::Staff(env.teacher), req(pb::ReportFormat::Csv)))).await.unwrap();
    assert_eq!(csv_rows(&teacher), want);
    // One room.
    let one = pb::RoomReportRequest { month: "2026-11".into(), room_id: Some(env.school.rooms[0]), format: 1 };
    let (_, _, one) = fetch(api.room_report(request(As::Admin, one))).await.unwrap();
    assert_eq!(csv_rows(&one), vec![want[0].clone(), want[2].clone()]);
    env.app.stop().await;
}

/// `phoenix report attendance|rooms --month … --format … --out FILE`: the same tables as the
/// RPC, written to the file, as the administration (every group); a bad month or format is
/// refused before anything is read.
#[tokio::test]
async fn the_cli_writes_the_same_reports_to_a_file() {
    use phoenix::report::{Kind, write};
    let env = seeded().await;
    let (pool, tz) = (&env.app.context.pool, env.app.config.timezone);
    let dir = std::env::temp_dir().join(format!("phoenix-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let csv = dir.join("attendance.csv");
    let line = write(pool, tz, Kind::Attendance, "2026-11", None, "csv", &csv).await.expect("attendance csv");
    assert!(line.starts_with(&format!("Wrote {}", csv.display())) && line.contains("attendance-2026-11.csv"), "{line}");
    assert_eq!(csv_rows(&std::fs::read(&csv).unwrap()), expected_attendance(&env));

    let xlsx = dir.join("room.xlsx");
    let room = env.school.rooms[0];
    write(pool, tz, Kind::Rooms, "2026-11", Some(room), "xlsx", &xlsx).await.expect("rooms xlsx");
    let rows = xlsx_rows(std::fs::read(&xlsx).unwrap(), "Rooms");
    assert_eq!(rows.len(), 2, "the header and Raum A's one day: {rows:?}");
    assert_eq!(rows[1][..6], strs(&[&[&room.to_string(), "Raum A", "2026-11-03", "1", "1", "1"]])[0][..]);

    let bad = dir.join("never.csv");
    let err = write(pool, tz, Kind::Attendance, "11/2026", None, "pdf", &bad).await.unwrap_err().to_string();
    assert!(err.contains("--month must be YYYY-MM") && err.contains("csv or xlsx"), "{err}");
    assert!(!bad.exists(), "nothing written");
    std::fs::remove_dir_all(&dir).ok();
    env.app.stop().await;
}
