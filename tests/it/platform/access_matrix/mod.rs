//! Who may see and change what (issue #12): every role × every RPC that returns or changes
//! pupil data, against one school, with real tokens — the *resource* rules (whose pupil,
//! whose group, whose child), not only the permissions. [`MATRIX`] is the one list of cases:
//! a row per RPC, a column per [`Role`]; adding a case is one line. `docs/access.md` holds
//! the same table, and [`docs_access_md_is_the_matrix`] fails with a diff when they differ
//! (`PHOENIX_UPDATE_DOCS=1` rewrites the table in the document from [`MATRIX`]).
//!
//! The school: groups G1 and G2; pupil P1 in G1 (birthday, health, notes, card T1; guardian
//! record GA1 linked to login A1) and P2 in G2 (guardian GA2, login A2); staff S1 leads G1,
//! S2 leads G2; V (no column) supervises the running sessions in rooms R1 (P1 inside) and R2
//! (P2 inside); a guest account; an admin. Every case is about P1 (or P1's group, guardian
//! link, card, open visit); a writing case puts the school back as it was afterwards (or
//! acts on a throw-away session or pupil). The school and the call of each RPC: [`school`].

mod school;

use school::School;

/// Who calls, relative to pupil P1. The order is the column order of `docs/access.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    /// S1: leads P1's group G1.
    GroupStaff,
    /// S2: staff, leads G2 only.
    OtherStaff,
    Guest,
    /// A1: the login of P1's guardian record.
    Guardian,
    /// A2: the login of P2's guardian record.
    OtherGuardian,
    NoToken,
}

const ROLES: [Role; 7] =
    [Role::Admin, Role::GroupStaff, Role::OtherStaff, Role::Guest, Role::Guardian, Role::OtherGuardian, Role::NoToken];

impl Role {
    /// The column heading in `docs/access.md`.
    fn heading(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::GroupStaff => "staff of the pupil's group",
            Role::OtherStaff => "other staff",
            Role::Guest => "guest",
            Role::Guardian => "guardian of the child",
            Role::OtherGuardian => "other guardian",
            Role::NoToken => "no token",
        }
    }
}

/// What comes back (docs/access.md "Outcomes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// OK with every field of P1.
    Full,
    /// OK, P1's sensitive fields absent (or P1 shown without identity).
    Redacted,
    /// OK, the caller's own children only (none for an account without a guardian record).
    Own,
    /// OK, but P1 is not in the answer (a tag lookup finds nobody, a list leaves P1 out).
    Hidden,
    /// OK: the change was made.
    Done,
    NotFound,
    Denied,
    Unauth,
}

use Outcome::{Denied, Done, Full, Hidden, NotFound, Own, Redacted, Unauth};

impl Outcome {
    /// The word in `docs/access.md`.
    fn word(self) -> &'static str {
        match self {
            Full => "full",
            Redacted => "redacted",
            Own => "own",
            Hidden => "hidden",
            Done => "ok",
            NotFound => "NotFound",
            Denied => "PermissionDenied",
            Unauth => "Unauthenticated",
        }
    }
}

/// The matrix: RPC → what each role of [`ROLES`] gets. One line per RPC.
#[rustfmt::skip]
const MATRIX: &[(&str, [Outcome; 7])] = &[
    //                                           admin     S1        S2        guest     A1        A2        none
    ("users.GetStudent",                        [Full,     Full,     Redacted, Redacted, Denied,   Denied,   Unauth]),
    ("users.ListStudents",                      [Full,     Full,     Redacted, Redacted, Denied,   Denied,   Unauth]),
    ("users.UpdateStudent",                     [Done,     Done,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("users.GetPickupSchedule",                 [Full,     Full,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("users.SetPickupSchedule",                 [Done,     Done,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("users.GetPrivacyConsent",                 [Full,     Full,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("users.UpsertPrivacyConsent",              [Done,     Done,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("users.ListStudentGuardians",              [Full,     Full,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("users.GetGuardian",                       [Full,     Full,     Redacted, Redacted, Denied,   Denied,   Unauth]),
    ("users.UpdateStudentGuardian",             [Done,     Done,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("users.ListPersons(tag_id)",               [Full,     Full,     Hidden,   Hidden,   Denied,   Denied,   Unauth]),
    ("users.GetRfidCard",                       [Full,     Full,     Hidden,   Hidden,   Denied,   Denied,   Unauth]),
    ("users.PreviewStudentImport",              [Full,     Denied,   Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("users.CommitStudentImport",               [Done,     Denied,   Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.GetPresenceBoard",                 [Full,     Full,     Redacted, Denied,   Own,      Own,      Unauth]),
    ("active.WatchPresence",                    [Full,     Full,     Redacted, Denied,   Own,      Own,      Unauth]),
    ("active.GetStudentPresence",               [Full,     Full,     Redacted, Denied,   Denied,   Denied,   Unauth]),
    ("active.GetVisit",                         [Full,     Full,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.ListVisits(student_id)",           [Full,     Full,     Hidden,   Denied,   Denied,   Denied,   Unauth]),
    ("active.GetAttendance",                    [Full,     Full,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.ListAttendance(education_group_id)", [Full,   Full,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.AttendanceReport(education_group_id)", [Full, Full,   Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.CheckInStudent",                   [Done,     Done,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.CheckOutStudent",                  [Done,     Done,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.EndSession",                       [Done,     Denied,   Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.CorrectVisit",                     [Done,     Done,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("active.CheckInAt",                        [Done,     Done,     Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("activities.ListActivityEnrollments",      [Full,     Full,     Hidden,   Denied,   Denied,   Denied,   Unauth]),
    ("activities.ListStudentEnrollments",       [Full,     Full,     Hidden,   Denied,   Denied,   Denied,   Unauth]),
    ("family.ListMyChildren",                   [Own,      Denied,   Denied,   Denied,   Own,      Own,      Unauth]),
    ("family.GetChildPresence",                 [NotFound, Denied,   Denied,   Denied,   Full,     NotFound, Unauth]),
    ("family.GetChildConsent",                  [NotFound, Denied,   Denied,   Denied,   Full,     NotFound, Unauth]),
    ("family.GetChildPickupSchedule",           [NotFound, Denied,   Denied,   Denied,   Full,     NotFound, Unauth]),
    ("audit.ExportStudentData",                 [Full,     Denied,   Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("audit.EraseStudent",                      [Done,     Denied,   Denied,   Denied,   Denied,   Denied,   Unauth]),
    ("education.UpdateGroup(teacher_ids)",      [Done,     Denied,   Denied,   Denied,   Denied,   Denied,   Unauth]),
];

const DOC: &str = "docs/access.md";
const BEGIN: &str = "<!-- access-matrix: generated from tests/it/platform/access_matrix/mod.rs MATRIX -->";
const END: &str = "<!-- /access-matrix -->";

/// The markdown table of [`MATRIX`], as `docs/access.md` must hold it between [`BEGIN`] and
/// [`END`].
fn matrix_table() -> String {
    let mut out = String::new();
    let head: Vec<&str> = ROLES.iter().map(|r| r.heading()).collect();
    out.push_str(&format!("| RPC | {} |\n", head.join(" | ")));
    out.push_str(&format!("|---|{}\n", "---|".repeat(ROLES.len())));
    for (rpc, outcomes) in MATRIX {
        let cells: Vec<&str> = outcomes.iter().map(|o| o.word()).collect();
        out.push_str(&format!("| `{rpc}` | {} |\n", cells.join(" | ")));
    }
    out
}

#[test]
fn docs_access_md_is_the_matrix() {
    let path = phoenix_tests::workspace_root().join(DOC);
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {DOC}: {e}"));
    let start = doc.find(BEGIN).unwrap_or_else(|| panic!("{DOC} has no line {BEGIN}"));
    let body_start = start + BEGIN.len() + 1;
    let end = doc[body_start..].find(END).map(|i| body_start + i).unwrap_or_else(|| panic!("{DOC} has no {END}"));
    let in_doc = &doc[body_start..end];
    let want = matrix_table();
    if in_doc == want {
        return;
    }
    if std::env::var_os("PHOENIX_UPDATE_DOCS").is_some() {
        let updated = format!("{}{want}{}", &doc[..body_start], &doc[end..]);
        std::fs::write(&path, updated).unwrap_or_else(|e| panic!("write {DOC}: {e}"));
        return;
    }
    // Row by row: the RPC named, the doc's cells and the test's.
    let rows =
        |t: &str| -> Vec<String> { t.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect() };
    let (doc_rows, want_rows) = (rows(in_doc), rows(&want));
    let mut diff = String::new();
    for r in &doc_rows {
        if !want_rows.contains(r) {
            diff.push_str(&format!("- {r}\n"));
        }
    }
    for r in &want_rows {
        if !doc_rows.contains(r) {
            diff.push_str(&format!("+ {r}\n"));
        }
    }
    if diff.is_empty() {
        diff.push_str("(same rows, other order or spacing)\n");
    }
    panic!(
        "{DOC}'s access matrix differs from MATRIX in {} (- doc, + test):\n{diff}\
         Fix the one that is wrong; PHOENIX_UPDATE_DOCS=1 rewrites the document's table from MATRIX.",
        file!()
    );
}

#[tokio::test]
async fn every_role_gets_exactly_what_docs_access_md_says() {
    let mut school = School::new().await;
    let mut failures = Vec::new();
    let mut cases = 0;
    for (rpc, outcomes) in MATRIX {
        for (role, want) in ROLES.iter().zip(outcomes) {
            cases += 1;
            let got = school.call(rpc, *role).await;
            let got_word = match &got {
                Ok(o) => o.word().to_owned(),
                Err(e) => e.strip_prefix('=').map(str::to_owned).unwrap_or_else(|| format!("unexpected: {e}")),
            };
            if got_word != want.word() {
                failures.push(format!("{rpc} as {}: want {}, got {got_word}", role.heading(), want.word()));
            }
        }
    }
    assert_eq!(cases, MATRIX.len() * ROLES.len());
    assert!(failures.is_empty(), "{} of {cases} cases differ:\n{}", failures.len(), failures.join("\n"));
    school.app.stop().await;
}
