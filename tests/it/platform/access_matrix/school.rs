//! The school of the access matrix and how each RPC of `MATRIX` is called and its answer
//! classified as an [`Outcome`] (strictly: a partly redacted record is no outcome).

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_proto::active::v1 as apb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::active::v1::correction_service_client::CorrectionServiceClient;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_proto::active::v1::report_service_client::ReportServiceClient;
use phoenix_proto::activities::v1 as actpb;
use phoenix_proto::activities::v1::activities_service_client::ActivitiesServiceClient;
use phoenix_proto::audit::v1 as aupb;
use phoenix_proto::audit::v1::audit_service_client::AuditServiceClient;
use phoenix_proto::education::v1 as epb;
use phoenix_proto::education::v1::education_service_client::EducationServiceClient;
use phoenix_proto::users::v1 as upb;
use phoenix_proto::users::v1::family_service_client::FamilyServiceClient;
use phoenix_proto::users::v1::import_service_client::ImportServiceClient;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::{PASSWORD, TestChannel, admin_token, bearer, create_account, mint_token, role_permissions};
use phoenix_tests::grpc::mask;
use phoenix_tests::{TestApp, fixtures, school};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::{Outcome, Role};
use Outcome::{Done, Full, Hidden, Own, Redacted};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn one_id(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Id>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).id
}

/// The school and a token per role.
pub struct School {
    pub app: TestApp,
    /// Admin operations that set up and restore state (an admin's [`TestChannel`]).
    ops: ActiveServiceClient<TestChannel>,
    tokens: Vec<(Role, String)>,
    users: Channel,
    active: Channel,
    education: Channel,
    audit: Channel,
    activities: Channel,
    p1: i64,
    p1_person: i64,
    p1_tag: String,
    p2: i64,
    g1: i64,
    s1_teacher: i64,
    ga1: i64,
    link1: i64,
    rooms: [i64; 3],
    sessions: [i64; 2],
    activity: i64,
    supervisor: i64,
    erased: usize,
}

/// A new account with the seeded role `role` and a token carrying that role's permissions.
async fn account(app: &TestApp, name: &str, role: &str) -> (i64, String) {
    let email = format!("{name}-{}@test.example", uuid::Uuid::new_v4().simple());
    let id = create_account(app, &email, PASSWORD, &[role], true).await;
    let token = mint_token(app, &id.to_string(), &[role], &role_permissions(app, role).await).await;
    (id, token)
}

impl School {
    pub async fn new() -> Self {
        let app =
            TestApp::spawn(&[Domain::Users, Domain::Education, Domain::Activities, Domain::Active, Domain::Audit])
                .await;
        let mut conn = app.db.conn().await;
        let g1 = fixtures::group(&mut conn, "G1 Eulen").await;
        let g2 = fixtures::group(&mut conn, "G2 Füchse").await;
        let s1 = fixtures::staff(&mut conn, "Sina", "Eins").await;
        let s2 = fixtures::staff(&mut conn, "Sven", "Zwei").await;
        let s1_teacher = fixtures::teacher(&mut conn, s1).await;
        let s2_teacher = fixtures::teacher(&mut conn, s2).await;
        fixtures::group_teacher(&mut conn, g1, s1_teacher).await;
        fixtures::group_teacher(&mut conn, g2, s2_teacher).await;
        let supervisor = fixtures::staff(&mut conn, "Vera", "Aufsicht").await;
        let p1_tag = fixtures::tag(1);
        let p1 = fixtures::student(&mut conn, "Mia", "Muster", &p1_tag).await;
        let p2 = fixtures::student(&mut conn, "Ben", "Beispiel", &fixtures::tag(2)).await;
        for (p, g) in [(p1, g1), (p2, g2)] {
            exec(
                &mut conn,
                &format!(
                    "UPDATE users.students SET group_id = {g}, health_info = 'Asthma', extra_info = 'Brille', \
                     supervisor_notes = 'ruhig' WHERE id = {p}"
                ),
            )
            .await;
            exec(
                &mut conn,
                &format!(
                    "UPDATE users.persons SET birthday = '2017-05-01' WHERE id = \
                     (SELECT person_id FROM users.students WHERE id = {p})"
                ),
            )
            .await;
        }
        let p1_person = one_id(&mut conn, &format!("SELECT person_id AS id FROM users.students WHERE id = {p1}")).await;
        let ga1 = fixtures::guardian_of(&mut conn, p1, "Petra", "Muster", true).await;
        let ga2 = fixtures::guardian_of(&mut conn, p2, "Olaf", "Beispiel", true).await;
        let link1 = one_id(
            &mut conn,
            &format!("SELECT id FROM users.student_guardians WHERE student_id = {p1} AND guardian_id = {ga1}"),
        )
        .await;

        let (_, admin) = admin_token(&app).await;
        let s1_token = phoenix_tests::auth::staff_token(&app, s1).await;
        let s2_token = phoenix_tests::auth::staff_token(&app, s2).await;
        let (_, guest) = account(&app, "guest", "guest").await;
        let (a1, a1_token) = account(&app, "petra", "guardian").await;
        let (a2, a2_token) = account(&app, "olaf", "guardian").await;
        exec(&mut conn, &format!("UPDATE users.guardians SET account_id = {a1} WHERE id = {ga1}")).await;
        exec(&mut conn, &format!("UPDATE users.guardians SET account_id = {a2} WHERE id = {ga2}")).await;

        let r1 = fixtures::room(&mut conn, "Raum 1", None).await;
        let r2 = fixtures::room(&mut conn, "Raum 2", None).await;
        let r3 = fixtures::room(&mut conn, "Raum 3", None).await;
        let activity = fixtures::activity(&mut conn, "Freispiel", 30).await;
        // P1 and P2 are enrolled in it (the enrollment lists).
        for p in [p1, p2] {
            exec(
                &mut conn,
                &format!(
                    "INSERT INTO activities.enrollments (student_id, activity_id, enrollment_date) \
                     VALUES ({p}, {activity}, CURRENT_DATE)"
                ),
            )
            .await;
        }
        let mut ops = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
        let sess1 = school::start_session(&mut ops, r1, activity, supervisor).await;
        let sess2 = school::start_session(&mut ops, r2, activity, supervisor).await;
        let mut s = Self {
            users: app.channel(Domain::Users).await,
            active: app.channel(Domain::Active).await,
            education: app.channel(Domain::Education).await,
            audit: app.channel(Domain::Audit).await,
            activities: app.channel(Domain::Activities).await,
            app,
            ops,
            tokens: vec![
                (Role::Admin, admin),
                (Role::GroupStaff, s1_token),
                (Role::OtherStaff, s2_token),
                (Role::Guest, guest),
                (Role::Guardian, a1_token),
                (Role::OtherGuardian, a2_token),
            ],
            p1,
            p1_person,
            p1_tag,
            p2,
            g1,
            s1_teacher,
            ga1,
            link1,
            rooms: [r1, r2, r3],
            sessions: [sess1, sess2],
            activity,
            supervisor,
            erased: 0,
        };
        s.check_in(p1, sess1).await.expect("P1 into R1");
        s.check_in(p2, sess2).await.expect("P2 into R2");
        s
    }

    /// `message` as `role` sends it: with the role's token, or none.
    fn req<T>(&self, role: Role, message: T) -> Request<T> {
        match self.tokens.iter().find(|(r, _)| *r == role) {
            Some((_, token)) => bearer(message, token),
            None => Request::new(message),
        }
    }

    /// The children of the role's guardian record (none for other roles).
    fn children(&self, role: Role) -> Vec<i64> {
        match role {
            Role::Guardian => vec![self.p1],
            Role::OtherGuardian => vec![self.p2],
            _ => Vec::new(),
        }
    }

    fn users(&self) -> UsersServiceClient<Channel> {
        UsersServiceClient::new(self.users.clone())
    }

    fn family(&self) -> FamilyServiceClient<Channel> {
        FamilyServiceClient::new(self.users.clone())
    }

    fn active(&self) -> ActiveServiceClient<Channel> {
        ActiveServiceClient::new(self.active.clone())
    }

    fn presence(&self) -> PresenceServiceClient<Channel> {
        PresenceServiceClient::new(self.active.clone())
    }

    async fn check_in(&mut self, student_id: i64, session_id: i64) -> Result<(), Status> {
        let req = apb::CheckInStudentRequest { student_id, session_id, transfer: false };
        self.ops.check_in_student(req).await.map(|_| ())
    }

    async fn check_out(&mut self, student_id: i64) -> Result<(), Status> {
        self.ops.check_out_student(apb::CheckOutStudentRequest { student_id }).await.map(|_| ())
    }

    /// P1's open visit.
    async fn open_visit(&self) -> i64 {
        let sql = format!("SELECT id FROM active.visits WHERE student_id = {} AND exit_time IS NULL", self.p1);
        one_id(&mut self.app.db.conn().await, &sql).await
    }

    /// When P1's open visit began.
    async fn open_visit_entry(&self) -> chrono::DateTime<chrono::Utc> {
        #[derive(QueryableByName)]
        struct Entry {
            #[diesel(sql_type = diesel::sql_types::Timestamptz)]
            entry_time: chrono::DateTime<chrono::Utc>,
        }
        let sql = format!("SELECT entry_time FROM active.visits WHERE student_id = {} AND exit_time IS NULL", self.p1);
        let mut conn = self.app.db.conn().await;
        diesel::sql_query(&sql).get_result::<Entry>(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).entry_time
    }

    /// An import file (docs/import.md) holding P1 exactly as the school has them.
    fn p1_import_file(&self) -> upb::StudentImportFile {
        let csv = format!(
            "Vorname,Nachname,Geburtsdatum,Klasse,Gruppe,RFID\nMia,Muster,2017-05-01,2a,G1 Eulen,{}\n",
            self.p1_tag
        );
        upb::StudentImportFile { filename: "p1.csv".into(), content: csv.into_bytes() }
    }

    /// Calls `rpc` as `role` and says what came back; `Err` describes an answer that is none
    /// of the [`Outcome`]s (a partly redacted record, an unexpected code).
    pub async fn call(&mut self, rpc: &str, role: Role) -> Result<Outcome, String> {
        let p1 = self.p1;
        let [r1, r2, r3] = self.rooms;
        let [sess1, _] = self.sessions;
        match rpc {
            "users.GetStudent" => {
                let reply = self.users().get_student(self.req(role, upb::GetStudentRequest { id: p1 })).await;
                student(&reply.map_err(status)?.into_inner().student.ok_or("no student")?)
            }
            "users.ListStudents" => {
                let req = upb::ListStudentsRequest { page_size: 500, ..Default::default() };
                let list = self.users().list_students(self.req(role, req)).await.map_err(status)?.into_inner();
                student(list.students.iter().find(|s| s.id == p1).ok_or("P1 not listed")?)
            }
            "users.UpdateStudent" => {
                let s = upb::Student { id: p1, school_class: "2a".into(), ..Default::default() };
                let req = upb::UpdateStudentRequest { student: Some(s), update_mask: mask(&["school_class"]) };
                self.users().update_student(self.req(role, req)).await.map_err(status)?;
                Ok(Done)
            }
            "users.GetPickupSchedule" => {
                let req = upb::GetPickupScheduleRequest { student_id: p1 };
                self.users().get_pickup_schedule(self.req(role, req)).await.map_err(status)?;
                Ok(Full)
            }
            "users.SetPickupSchedule" => {
                let entry = upb::PickupScheduleEntry { weekday: 1, pickup_time: "15:30".into(), notes: None };
                let req = upb::SetPickupScheduleRequest { student_id: p1, schedules: vec![entry] };
                self.users().set_pickup_schedule(self.req(role, req)).await.map_err(status)?;
                Ok(Done)
            }
            "users.GetPrivacyConsent" => {
                let req = upb::GetPrivacyConsentRequest { student_id: p1 };
                let c = self.users().get_privacy_consent(self.req(role, req)).await.map_err(status)?.into_inner();
                if c.consent.is_some_and(|c| c.student_id == p1) { Ok(Full) } else { Err("no consent of P1".into()) }
            }
            "users.UpsertPrivacyConsent" => {
                let consent = upb::PrivacyConsent {
                    student_id: p1,
                    policy_version: "1.0".into(),
                    accepted: true,
                    data_retention_days: 30,
                    ..Default::default()
                };
                let req = upb::UpsertPrivacyConsentRequest { consent: Some(consent) };
                self.users().upsert_privacy_consent(self.req(role, req)).await.map_err(status)?;
                Ok(Done)
            }
            "users.ListStudentGuardians" => {
                let req = upb::ListStudentGuardiansRequest { student_id: Some(p1), guardian_id: None };
                let links = self.users().list_student_guardians(self.req(role, req)).await.map_err(status)?;
                let ids: Vec<i64> = links.into_inner().links.iter().map(|l| l.guardian_id).collect();
                if ids == [self.ga1] { Ok(Full) } else { Err(format!("guardians {ids:?}, want [GA1]")) }
            }
            "users.GetGuardian" => {
                let req = upb::GetGuardianRequest { id: self.ga1 };
                let g = self.users().get_guardian(self.req(role, req)).await.map_err(status)?.into_inner();
                guardian(&g.guardian.ok_or("no guardian")?)
            }
            "users.UpdateStudentGuardian" => {
                let link = upb::StudentGuardian { id: self.link1, can_pickup: true, ..Default::default() };
                let req = upb::UpdateStudentGuardianRequest { link: Some(link), update_mask: mask(&["can_pickup"]) };
                self.users().update_student_guardian(self.req(role, req)).await.map_err(status)?;
                Ok(Done)
            }
            "users.ListPersons(tag_id)" => {
                let req = upb::ListPersonsRequest { tag_id: Some(self.p1_tag.clone()), ..Default::default() };
                let list = self.users().list_persons(self.req(role, req)).await.map_err(status)?.into_inner();
                match list.persons.as_slice() {
                    [] if list.total_size == 0 => Ok(Hidden),
                    [p] if p.id == self.p1_person && p.tag_id.is_some() && p.birthday.is_some() => Ok(Full),
                    other => Err(format!("persons {other:?}, total {}", list.total_size)),
                }
            }
            "users.GetRfidCard" => {
                let req = upb::GetRfidCardRequest { tag_id: self.p1_tag.clone() };
                let card = self.users().get_rfid_card(self.req(role, req)).await.map_err(status)?.into_inner();
                match card.card.ok_or("no card")?.person_id {
                    Some(p) if p == self.p1_person => Ok(Full),
                    None => Ok(Hidden),
                    Some(p) => Err(format!("holder {p}, want P1's person")),
                }
            }
            "users.PreviewStudentImport" => {
                let req = upb::PreviewStudentImportRequest { file: Some(self.p1_import_file()) };
                let mut import = ImportServiceClient::new(self.users.clone());
                let got = import.preview_student_import(self.req(role, req)).await.map_err(status)?.into_inner();
                match got.counts {
                    Some(c) if got.problems.is_empty() && (c.rows, c.students_unchanged) == (1, 1) => Ok(Full),
                    other => Err(format!("preview of P1 as P1 is: {other:?}, problems {:?}", got.problems)),
                }
            }
            "users.CommitStudentImport" => {
                let req = upb::CommitStudentImportRequest { file: Some(self.p1_import_file()) };
                let mut import = ImportServiceClient::new(self.users.clone());
                let got = import.commit_student_import(self.req(role, req)).await.map_err(status)?.into_inner();
                match got.counts {
                    Some(c) if (c.rows, c.students_unchanged) == (1, 1) => Ok(Done),
                    other => Err(format!("commit of P1 as P1 is: {other:?}")),
                }
            }
            "active.GetPresenceBoard" => {
                let req = apb::GetPresenceBoardRequest {};
                let board = self.presence().get_presence_board(self.req(role, req)).await.map_err(status)?.into_inner();
                let mut seen: Vec<i64> =
                    board.rooms.iter().flat_map(|r| r.pupils.iter().map(|p| p.student_id)).collect();
                seen.sort_unstable();
                let r1_tile = board.rooms.iter().find(|r| r.room_id == r1);
                let children = self.children(role);
                if board.counts.is_none() {
                    let supervisors = board.rooms.iter().any(|r| !r.supervisors.is_empty());
                    return if seen == children && !children.is_empty() && !supervisors {
                        Ok(Own)
                    } else {
                        Err(format!(
                            "family board with pupils {seen:?} (children {children:?}), supervisors {supervisors}"
                        ))
                    };
                }
                match r1_tile {
                    Some(t) if t.pupils.iter().any(|p| p.student_id == p1) && !t.pupils_redacted => Ok(Full),
                    Some(t) if t.pupils.is_empty() && t.pupils_redacted && t.pupil_count == 1 => Ok(Redacted),
                    other => Err(format!("R1 on the board: {other:?}")),
                }
            }
            "active.WatchPresence" => self.watch(role).await,
            "active.GetStudentPresence" => {
                let req = apb::GetStudentPresenceRequest { student_id: p1 };
                let p = self.active().get_student_presence(self.req(role, req)).await.map_err(status)?.into_inner();
                let p = p.presence.ok_or("no presence")?;
                match (p.full_access, p.room_id, p.since.is_some(), p.today_visits.is_empty()) {
                    (true, Some(r), true, false) if r == r1 => Ok(Full),
                    (false, None, false, true) => Ok(Redacted),
                    _ => Err(format!("presence {p:?}")),
                }
            }
            "active.GetVisit" => {
                let req = apb::GetVisitRequest { id: self.open_visit().await };
                let v = self.active().get_visit(self.req(role, req)).await.map_err(status)?.into_inner();
                if v.visit.is_some_and(|v| v.student_id == p1) { Ok(Full) } else { Err("not P1's visit".into()) }
            }
            "active.ListVisits(student_id)" => {
                let req = apb::ListVisitsRequest { student_id: Some(p1), ..Default::default() };
                let list = self.active().list_visits(self.req(role, req)).await.map_err(status)?.into_inner();
                match (list.visits.len(), list.total_size) {
                    (0, 0) => Ok(Hidden),
                    (n, _) if n > 0 && list.visits.iter().all(|v| v.student_id == p1) => Ok(Full),
                    _ => Err(format!("visits {:?}", list.visits)),
                }
            }
            "active.GetAttendance" => {
                let req = apb::GetAttendanceRequest { student_id: p1, date: String::new() };
                let a = self.active().get_attendance(self.req(role, req)).await.map_err(status)?.into_inner();
                if a.attendance.is_some_and(|a| a.student_id == p1) { Ok(Full) } else { Err("not P1's day".into()) }
            }
            "active.ListAttendance(education_group_id)" => {
                let req = apb::ListAttendanceRequest { education_group_id: Some(self.g1), ..Default::default() };
                let list = self.active().list_attendance(self.req(role, req)).await.map_err(status)?.into_inner();
                let ids: Vec<i64> = list.attendance.iter().map(|a| a.student_id).collect();
                if ids == [p1] { Ok(Full) } else { Err(format!("attendance of {ids:?}, want [P1]")) }
            }
            "active.AttendanceReport(education_group_id)" => {
                let month = chrono::Utc::now().format("%Y-%m").to_string();
                let format = apb::ReportFormat::Csv as i32;
                let req = apb::AttendanceReportRequest { month, education_group_id: Some(self.g1), format };
                let mut reports = ReportServiceClient::new(self.active.clone());
                let mut file = reports.attendance_report(self.req(role, req)).await.map_err(status)?.into_inner();
                let mut bytes = Vec::new();
                while let Some(message) = file.message().await.map_err(status)? {
                    bytes.extend(message.chunk.map(|c| c.data).unwrap_or_default());
                }
                let text = String::from_utf8_lossy(&bytes);
                let pupils: Vec<String> = text
                    .lines()
                    .filter(|l| l.starts_with("pupil,"))
                    .filter_map(|l| l.split(',').nth(3))
                    .map(str::to_owned)
                    .collect();
                if pupils == [p1.to_string()] { Ok(Full) } else { Err(format!("report rows of {pupils:?}, want [P1]")) }
            }
            "active.CheckInStudent" => {
                self.check_out(p1).await.map_err(|e| format!("setup: check P1 out: {e:?}"))?;
                let req = apb::CheckInStudentRequest { student_id: p1, session_id: sess1, transfer: false };
                let got = self.active().check_in_student(self.req(role, req)).await;
                if got.is_err() {
                    self.check_in(p1, sess1).await.map_err(|e| format!("restore: check P1 in: {e:?}"))?;
                }
                got.map_err(status)?;
                Ok(Done)
            }
            "active.CheckOutStudent" => {
                let req = apb::CheckOutStudentRequest { student_id: p1 };
                let got = self.active().check_out_student(self.req(role, req)).await;
                if got.is_ok() {
                    self.check_in(p1, sess1).await.map_err(|e| format!("restore: check P1 in: {e:?}"))?;
                }
                got.map_err(status)?;
                Ok(Done)
            }
            "active.EndSession" => {
                let session = school::start_session(&mut self.ops, r3, self.activity, self.supervisor).await;
                let got = self.active().end_session(self.req(role, apb::EndSessionRequest { id: session })).await;
                if got.is_err() {
                    self.ops.end_session(apb::EndSessionRequest { id: session }).await.expect("end the spare session");
                }
                got.map_err(status)?;
                Ok(Done)
            }
            "active.CorrectVisit" => {
                // P1's open visit, its entry time "corrected" to what it is: nothing moves.
                let visit = self.open_visit().await;
                let entry = self.open_visit_entry().await;
                let req = apb::CorrectVisitRequest {
                    visit_id: visit,
                    entry_time: Some(phoenix_common::time::to_timestamp(entry)),
                    reason: "access matrix".into(),
                    ..Default::default()
                };
                let mut corrections = CorrectionServiceClient::new(self.active.clone());
                corrections.correct_visit(self.req(role, req)).await.map_err(status)?;
                Ok(Done)
            }
            "active.CheckInAt" => {
                // P1 into R2 as of now (closing the R1 visit), then back into R1.
                let req = apb::CheckInAtRequest {
                    student_id: p1,
                    room_id: r2,
                    at: Some(phoenix_common::time::to_timestamp(chrono::Utc::now())),
                    reason: "access matrix".into(),
                };
                let mut corrections = CorrectionServiceClient::new(self.active.clone());
                let got = corrections.check_in_at(self.req(role, req)).await;
                if got.is_ok() {
                    let back = apb::CheckInStudentRequest { student_id: p1, session_id: sess1, transfer: true };
                    self.ops.check_in_student(back).await.map_err(|e| format!("restore: P1 into R1: {e:?}"))?;
                }
                got.map_err(status)?;
                Ok(Done)
            }
            "activities.ListActivityEnrollments" => {
                let req = actpb::ListActivityEnrollmentsRequest { activity_id: self.activity, ..Default::default() };
                let mut activities = ActivitiesServiceClient::new(self.activities.clone());
                let list =
                    activities.list_activity_enrollments(self.req(role, req)).await.map_err(status)?.into_inner();
                let counted = usize::try_from(list.total_size).ok() == Some(list.enrollments.len());
                match list.enrollments.iter().find(|e| e.student_id == p1) {
                    None if counted => Ok(Hidden),
                    Some(e) if counted && e.display_name == "Mia M." => Ok(Full),
                    _ => Err(format!("enrolled {:?}, total {}", list.enrollments, list.total_size)),
                }
            }
            "activities.ListStudentEnrollments" => {
                let req = actpb::ListStudentEnrollmentsRequest { student_id: p1 };
                let mut activities = ActivitiesServiceClient::new(self.activities.clone());
                let list = activities.list_student_enrollments(self.req(role, req)).await.map_err(status)?.into_inner();
                let ids: Vec<i64> = list.enrollments.iter().map(|e| e.activity_id).collect();
                match ids.as_slice() {
                    [] => Ok(Hidden),
                    [a] if *a == self.activity => Ok(Full),
                    other => Err(format!("activities {other:?}")),
                }
            }
            "family.ListMyChildren" => {
                let req = upb::ListMyChildrenRequest {};
                let list = self.family().list_my_children(self.req(role, req)).await.map_err(status)?.into_inner();
                let ids: Vec<i64> = list.children.iter().map(|c| c.student_id).collect();
                let children = self.children(role);
                if ids == children { Ok(Own) } else { Err(format!("children {ids:?}, want {children:?}")) }
            }
            "family.GetChildPresence" => {
                let req = upb::GetChildPresenceRequest { student_id: p1 };
                let p = self.family().get_child_presence(self.req(role, req)).await.map_err(status)?.into_inner();
                let p = p.presence.ok_or("no presence")?;
                let in_room = p.state == upb::ChildPresenceState::InRoom as i32 && p.room_name == "Raum 1";
                if p.student_id == p1 && in_room { Ok(Full) } else { Err(format!("presence {p:?}")) }
            }
            "family.GetChildConsent" => {
                let req = upb::GetChildConsentRequest { student_id: p1 };
                let c = self.family().get_child_consent(self.req(role, req)).await.map_err(status)?.into_inner();
                if c.consent.is_some_and(|c| c.student_id == p1) { Ok(Full) } else { Err("no consent of P1".into()) }
            }
            "family.GetChildPickupSchedule" => {
                let req = upb::GetChildPickupScheduleRequest { student_id: p1 };
                self.family().get_child_pickup_schedule(self.req(role, req)).await.map_err(status)?;
                Ok(Full)
            }
            "audit.ExportStudentData" => {
                let req = aupb::ExportStudentDataRequest { student_id: p1 };
                let mut audit = AuditServiceClient::new(self.audit.clone());
                let doc = audit.export_student_data(self.req(role, req)).await.map_err(status)?.into_inner();
                if doc.document_json.contains("Asthma") { Ok(Full) } else { Err("export without P1's health".into()) }
            }
            "audit.EraseStudent" => {
                // A throw-away pupil of G1 (P1 stays for the other cases).
                self.erased += 1;
                let mut conn = self.app.db.conn().await;
                let tag = fixtures::tag(100 + self.erased);
                let victim = fixtures::student(&mut conn, "Ida", "Weg", &tag).await;
                exec(&mut conn, &format!("UPDATE users.students SET group_id = {} WHERE id = {victim}", self.g1)).await;
                let req = aupb::EraseStudentRequest { student_id: victim, reason: "access matrix".into() };
                let mut audit = AuditServiceClient::new(self.audit.clone());
                audit.erase_student(self.req(role, req)).await.map_err(status)?;
                Ok(Done)
            }
            "education.UpdateGroup(teacher_ids)" => {
                let group = epb::Group { id: self.g1, teacher_ids: vec![self.s1_teacher], ..Default::default() };
                let req = epb::UpdateGroupRequest { group: Some(group), update_mask: mask(&["teacher_ids"]) };
                let mut education = EducationServiceClient::new(self.education.clone());
                education.update_group(self.req(role, req)).await.map_err(status)?;
                Ok(Done)
            }
            other => {
                let _ = r2;
                Err(format!("no call for {other:?} in School::call"))
            }
        }
    }

    /// `WatchPresence` as `role` while P1 leaves R1, P2 leaves R2, P1 returns, P2 returns:
    /// what the first two pupil events say.
    async fn watch(&mut self, role: Role) -> Result<Outcome, String> {
        let p1 = self.p1;
        let [r1, r2, _] = self.rooms;
        let [sess1, sess2] = self.sessions;
        let req = self.req(role, apb::WatchPresenceRequest { cursor: String::new(), alerts: false });
        let mut stream = self.presence().watch_presence(req).await.map_err(status)?.into_inner();
        let moves = [self.check_out(p1).await, self.check_out(self.p2).await];
        let back = [self.check_in(p1, sess1).await, self.check_in(self.p2, sess2).await];
        for m in moves.into_iter().chain(back) {
            m.map_err(|e| format!("moving the pupils: {e:?}"))?;
        }
        let mut events = Vec::new();
        while events.len() < 2 {
            let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .map_err(|_| format!("no pupil event within 10 s; got {events:?}"))?
                .map_err(|e| format!("stream ended: {e:?}"))?
                .ok_or("stream closed")?;
            let event = next.event.ok_or("no event")?;
            let pupil_kind = [apb::PresenceEventKind::CheckedIn, apb::PresenceEventKind::CheckedOut]
                .iter()
                .any(|k| *k as i32 == event.kind);
            if pupil_kind {
                events.push((event.room_id, event.pupil.map(|p| p.student_id), event.counts.is_some()));
            }
        }
        let children = self.children(role);
        match events.as_slice() {
            [(Some(a), Some(p), true), (Some(b), _, true)] if *a == r1 && *p == p1 && *b == r2 => Ok(Full),
            [(Some(a), None, true), (Some(b), _, true)] if *a == r1 && *b == r2 => Ok(Redacted),
            [(_, Some(x), false), (_, Some(y), false)] if children == [*x] && children == [*y] => Ok(Own),
            other => Err(format!("events (room, pupil, counts) {other:?}")),
        }
    }
}

/// A refusal as an [`Outcome`]; any other failure is unexpected.
fn status(s: Status) -> String {
    match s.code() {
        Code::NotFound => "=NotFound".into(),
        Code::PermissionDenied => "=PermissionDenied".into(),
        Code::Unauthenticated => "=Unauthenticated".into(),
        code => format!("{code:?}: {}", s.message()),
    }
}

/// Full or redacted, from the sensitive fields and `has_full_access` (all present, or all absent).
fn student(s: &upb::Student) -> Result<Outcome, String> {
    let sensitive = [
        ("birthday", s.birthday.is_some()),
        ("health_info", s.health_info.is_some()),
        ("extra_info", s.extra_info.is_some()),
        ("supervisor_notes", s.supervisor_notes.is_some()),
        ("tag_id", s.tag_id.is_some()),
        ("guardian_contacts", s.guardian_contacts.is_some()),
        ("sick", s.sick.is_some()),
    ];
    match (s.has_full_access, sensitive.iter().all(|f| f.1), sensitive.iter().all(|f| !f.1)) {
        (true, true, _) => Ok(Full),
        (false, _, true) => Ok(Redacted),
        _ => Err(format!("has_full_access {} with present fields {sensitive:?}", s.has_full_access)),
    }
}

/// Full or redacted guardian contact data.
fn guardian(g: &upb::Guardian) -> Result<Outcome, String> {
    let contact = [g.email.is_some(), !g.phone_numbers.is_empty(), g.account_id.is_some()];
    match (g.has_full_access, contact) {
        (true, [true, true, true]) => Ok(Full),
        (false, [false, false, false]) => Ok(Redacted),
        _ => Err(format!("has_full_access {} with (email, phones, account) {contact:?}", g.has_full_access)),
    }
}
