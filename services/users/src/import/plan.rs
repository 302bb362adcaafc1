//! Checked rows + the database → the plan: which pupils, guardians, numbers, links and cards
//! to create or change, the counts, and the problems that only the database can tell
//! (unknown group, card taken, ambiguous pupil, e-mail of another guardian). The matching
//! rules are docs/import.md "Matching"; running the plan of a file that was just applied
//! finds nothing to do.

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel_async::AsyncPgConnection;
use phoenix_common::Result;

use super::parse::{GuardianInput, ParsedFile, PupilField, PupilRow};
use super::{Counts, Problem, ProblemCode, repo, sort_problems};
use crate::repo::guardians::{GuardianFields, GuardianRow, LinkFields, LinkRow, PhoneFields, PhoneRow};
use crate::repo::students::StudentRow;
use crate::repo::{Person, PersonFields, StudentFields};

/// A pupil of the plan: one that exists, or the n-th new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StudentRef {
    Existing { student_id: i64, person_id: i64 },
    New(usize),
}

/// A guardian of the plan: one that exists, or the n-th new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardianRef {
    Existing(i64),
    New(usize),
}

/// A new pupil: their person and student row.
#[derive(Debug, Clone)]
pub struct NewStudent {
    pub person: PersonFields,
    pub student: StudentFields,
}

/// Changes to an existing pupil.
#[derive(Debug, Clone)]
pub struct StudentUpdate {
    pub student_id: i64,
    pub person_id: i64,
    pub person: Option<PersonFields>,
    pub student: Option<StudentFields>,
}

/// What to write, in the order `apply` writes it.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub counts: Counts,
    pub problems: Vec<Problem>,
    pub new_students: Vec<NewStudent>,
    pub student_updates: Vec<StudentUpdate>,
    /// Cards to create (active, unassigned) before they are assigned.
    pub new_cards: Vec<String>,
    /// (pupil, tag): the pupil's card becomes this one (their previous card goes back to the pool).
    pub card_assignments: Vec<(StudentRef, String)>,
    pub new_guardians: Vec<GuardianFields>,
    pub guardian_updates: BTreeMap<i64, GuardianFields>,
    pub new_phones: Vec<(GuardianRef, PhoneFields)>,
    pub new_links: Vec<(StudentRef, GuardianRef, LinkFields)>,
    pub link_updates: BTreeMap<i64, LinkFields>,
}

fn lower(s: &str) -> String {
    s.trim().to_lowercase()
}

fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

type Names = (String, String);

/// The database as the plan needs it, indexed.
struct Snapshot {
    students_by_name: HashMap<Names, Vec<(StudentRow, Person)>>,
    groups: HashMap<String, i64>,
    cards: HashMap<String, (bool, Option<i64>)>,
    guardians: HashMap<i64, GuardianRow>,
    guardian_by_email: HashMap<String, i64>,
    guardians_by_name: HashMap<Names, Vec<i64>>,
    phones: HashMap<i64, Vec<PhoneRow>>,
    links: HashMap<i64, Vec<LinkRow>>,
}

impl Snapshot {
    async fn load(conn: &mut AsyncPgConnection, rows: &[PupilRow]) -> Result<Self> {
        let mut students_by_name: HashMap<Names, Vec<(StudentRow, Person)>> = HashMap::new();
        for (s, p) in repo::active_students(conn).await? {
            students_by_name.entry((lower(&p.first_name), lower(&p.last_name))).or_default().push((s, p));
        }
        let groups = repo::groups(conn).await?.into_iter().map(|(id, name)| (lower(&name), id)).collect();
        let mut tags: Vec<String> = rows.iter().filter_map(|r| r.tag.clone()).collect();
        tags.sort();
        tags.dedup();
        let cards = repo::cards(conn, &tags).await?.into_iter().map(|(t, a, h)| (t, (a, h))).collect();
        let mut guardians = HashMap::new();
        let mut guardian_by_email = HashMap::new();
        let mut guardians_by_name: HashMap<Names, Vec<i64>> = HashMap::new();
        for g in repo::all_guardians(conn).await? {
            if let Some(e) = &g.email {
                guardian_by_email.insert(lower(e), g.id);
            }
            guardians_by_name.entry((lower(&g.first_name), lower(&g.last_name))).or_default().push(g.id);
            guardians.insert(g.id, g);
        }
        let mut phones: HashMap<i64, Vec<PhoneRow>> = HashMap::new();
        for p in repo::all_phones(conn).await? {
            phones.entry(p.guardian_id).or_default().push(p);
        }
        let mut links: HashMap<i64, Vec<LinkRow>> = HashMap::new();
        for l in repo::all_links(conn).await? {
            links.entry(l.student_id).or_default().push(l);
        }
        Ok(Snapshot { students_by_name, groups, cards, guardians, guardian_by_email, guardians_by_name, phones, links })
    }
}

/// The plan's state while it walks the rows.
#[derive(Default)]
struct Walk {
    plan: Plan,
    /// Pupils of the file so far by names: (row, birthday).
    file_students: HashMap<Names, Vec<(u32, Option<chrono::NaiveDate>)>>,
    matched: HashMap<i64, u32>,
    tags: HashMap<String, u32>,
    /// Guardians of the file so far by e-mail: (guardian, names, row).
    guardian_emails: HashMap<String, (GuardianRef, Names, u32)>,
    /// Guardians of the file so far by names and a phone number's digits.
    guardian_phones: HashMap<(String, String, String), GuardianRef>,
    /// Numbers (digits) each guardian has or will have.
    numbers: HashMap<GuardianRef, HashSet<String>>,
    /// Guardians that have or will have a primary number, and their count of numbers.
    primary_phone: HashSet<GuardianRef>,
    phone_count: HashMap<GuardianRef, i32>,
    links: HashSet<(StudentRef, GuardianRef)>,
    primary_link: HashSet<StudentRef>,
}

/// Plans `parsed` against the database (read only).
pub async fn plan(conn: &mut AsyncPgConnection, parsed: ParsedFile) -> Result<Plan> {
    let db = Snapshot::load(conn, &parsed.rows).await?;
    let mut w = Walk::default();
    w.plan.problems = parsed.problems;
    for row in &parsed.rows {
        w.plan.counts.rows += 1;
        w.row(&db, row);
    }
    sort_problems(&mut w.plan.problems);
    Ok(w.plan)
}

impl Walk {
    fn problem(&mut self, row: u32, column: &str, code: ProblemCode, message: impl Into<String>) {
        self.plan.problems.push(Problem::at(row, column, code, message));
    }

    fn row(&mut self, db: &Snapshot, row: &PupilRow) {
        let (Some(first), Some(last)) = (&row.first_name, &row.last_name) else { return };
        let names = (lower(first), lower(last));
        let earlier = self.file_students.get(&names).and_then(|seen| {
            seen.iter().find(|(_, b)| b.is_none() || row.birthday.is_none() || *b == row.birthday).map(|(r, _)| *r)
        });
        if let Some(r) = earlier {
            self.problem(row.row, "", ProblemCode::DuplicateStudent, format!("the same pupil as row {r}"));
            return;
        }
        self.file_students.entry(names.clone()).or_default().push((row.row, row.birthday));

        let group_id = match &row.group {
            None => None,
            Some(g) => match db.groups.get(&lower(g)) {
                Some(id) => Some(*id),
                None => {
                    self.problem(
                        row.row,
                        &row.header(PupilField::Group),
                        ProblemCode::UnknownGroup,
                        format!("no group named {g:?}; create it first or correct the name"),
                    );
                    None
                }
            },
        };

        let candidates = db.students_by_name.get(&names).map(Vec::as_slice).unwrap_or_default();
        let matched: Vec<&(StudentRow, Person)> = match row.birthday {
            Some(b) => {
                let exact: Vec<_> = candidates.iter().filter(|(_, p)| p.birthday == Some(b)).collect();
                if exact.is_empty() { candidates.iter().filter(|(_, p)| p.birthday.is_none()).collect() } else { exact }
            }
            None => candidates.iter().collect(),
        };
        if matched.len() > 1 {
            let hint = if row.birthday.is_some() { "" } else { "; give the birthday to tell them apart" };
            self.problem(
                row.row,
                "",
                ProblemCode::AmbiguousStudent,
                format!("{} active pupils have these names{hint}", matched.len()),
            );
            return;
        }

        let student = match matched.first() {
            Some((s, p)) => {
                if let Some(r) = self.matched.insert(s.id, row.row) {
                    self.problem(row.row, "", ProblemCode::DuplicateStudent, format!("the same pupil as row {r}"));
                    return;
                }
                let person = PersonFields {
                    first_name: first.clone(),
                    last_name: last.clone(),
                    birthday: row.birthday.or(p.birthday),
                    account_id: p.account_id,
                };
                let stored = s.fields();
                let mut fields = stored.clone();
                if let Some(c) = &row.school_class {
                    fields.school_class = c.clone();
                }
                if group_id.is_some() {
                    fields.group_id = group_id;
                }
                if row.health_info.is_some() {
                    fields.health_info = row.health_info.clone();
                }
                if row.extra_info.is_some() {
                    fields.extra_info = row.extra_info.clone();
                }
                if row.pickup_status.is_some() {
                    fields.pickup_status = row.pickup_status.clone();
                }
                if let Some(b) = row.bus {
                    fields.bus = b;
                }
                let person_changed = person != p.fields();
                let student_changed = fields != stored;
                let student_ref = StudentRef::Existing { student_id: s.id, person_id: p.id };
                let card_changed = self.card(db, row, student_ref, Some(p));
                if person_changed || student_changed {
                    self.plan.student_updates.push(StudentUpdate {
                        student_id: s.id,
                        person_id: p.id,
                        person: person_changed.then_some(person),
                        student: student_changed.then_some(fields),
                    });
                }
                if person_changed || student_changed || card_changed {
                    self.plan.counts.students_updated += 1;
                } else {
                    self.plan.counts.students_unchanged += 1;
                }
                student_ref
            }
            None => {
                let student_ref = StudentRef::New(self.plan.new_students.len());
                self.plan.new_students.push(NewStudent {
                    person: PersonFields {
                        first_name: first.clone(),
                        last_name: last.clone(),
                        birthday: row.birthday,
                        account_id: None,
                    },
                    student: StudentFields {
                        school_class: row.school_class.clone().unwrap_or_default(),
                        group_id,
                        extra_info: row.extra_info.clone(),
                        supervisor_notes: None,
                        health_info: row.health_info.clone(),
                        pickup_status: row.pickup_status.clone(),
                        bus: row.bus.unwrap_or(false),
                        sick: false,
                        sick_since: None,
                    },
                });
                self.plan.counts.students_created += 1;
                self.card(db, row, student_ref, None);
                student_ref
            }
        };

        let mut resolved: Vec<(u8, GuardianRef)> = Vec::new();
        for g in &row.guardians {
            let Some(gref) = self.guardian(db, row.row, student, g) else { continue };
            if let Some((slot, _)) = resolved.iter().find(|(_, r)| *r == gref) {
                self.problem(
                    row.row,
                    &g.first_name_column,
                    ProblemCode::DuplicateGuardian,
                    format!("guardian {} is the same person as guardian {slot}", g.slot),
                );
                continue;
            }
            resolved.push((g.slot, gref));
            self.phones(db, gref, g);
            self.link(db, student, gref, g);
        }
    }

    /// Plans the row's card for `student` (holding `person`'s card now); whether it changes.
    fn card(&mut self, db: &Snapshot, row: &PupilRow, student: StudentRef, person: Option<&Person>) -> bool {
        let Some(tag) = &row.tag else { return false };
        let column = row.header(PupilField::Tag);
        if let Some(r) = self.tags.insert(tag.clone(), row.row) {
            self.problem(row.row, &column, ProblemCode::DuplicateTag, format!("the same card as row {r}"));
            return false;
        }
        let person_id = person.map(|p| p.id);
        match db.cards.get(tag) {
            Some((false, _)) => {
                self.problem(row.row, &column, ProblemCode::TagInactive, "the card is deactivated; activate it first");
                false
            }
            Some((true, Some(holder))) if Some(*holder) == person_id => false,
            Some((true, Some(_))) => {
                self.problem(
                    row.row,
                    &column,
                    ProblemCode::TagAssigned,
                    "the card is already assigned to another person; unassign it first",
                );
                false
            }
            Some((true, None)) => {
                self.plan.card_assignments.push((student, tag.clone()));
                self.plan.counts.cards_assigned += 1;
                true
            }
            None => {
                self.plan.new_cards.push(tag.clone());
                self.plan.card_assignments.push((student, tag.clone()));
                self.plan.counts.cards_created += 1;
                self.plan.counts.cards_assigned += 1;
                true
            }
        }
    }

    /// Finds or plans the guardian of `g` (docs/import.md "Matching"); `None` after a problem.
    fn guardian(&mut self, db: &Snapshot, row: u32, student: StudentRef, g: &GuardianInput) -> Option<GuardianRef> {
        let names = (lower(&g.first_name), lower(&g.last_name));
        let linked_by_name =
            || -> Option<i64> {
                let StudentRef::Existing { student_id, .. } = student else { return None };
                db.links.get(&student_id)?.iter().map(|l| l.guardian_id).find(|id| {
                    db.guardians.get(id).is_some_and(|x| (lower(&x.first_name), lower(&x.last_name)) == names)
                })
            };
        let numbers: Vec<String> = [&g.mobile, &g.phone].into_iter().flatten().map(|p| digits(p)).collect();
        let found = if let Some(email) = &g.email {
            if let Some((gref, other, r)) = self.guardian_emails.get(email) {
                if *other != names {
                    let r = *r;
                    self.problem(
                        row,
                        &g.email_column,
                        ProblemCode::EmailConflict,
                        format!("the same e-mail as a guardian with another name in row {r}"),
                    );
                    return None;
                }
                Some(*gref)
            } else if let Some(id) = db.guardian_by_email.get(email) {
                let stored = &db.guardians[id];
                if (lower(&stored.first_name), lower(&stored.last_name)) != names {
                    self.problem(
                        row,
                        &g.email_column,
                        ProblemCode::EmailConflict,
                        "this e-mail belongs to a guardian with another name; correct the e-mail or the names",
                    );
                    return None;
                }
                Some(GuardianRef::Existing(*id))
            } else {
                linked_by_name().map(GuardianRef::Existing)
            }
        } else {
            linked_by_name().map(GuardianRef::Existing).or_else(|| {
                numbers.iter().find_map(|n| {
                    if let Some(r) = self.guardian_phones.get(&(names.0.clone(), names.1.clone(), n.clone())) {
                        return Some(*r);
                    }
                    let same_names = db.guardians_by_name.get(&names)?;
                    let mut with_number = same_names.iter().filter(|id| {
                        db.phones.get(id).is_some_and(|ps| ps.iter().any(|p| digits(&p.phone_number) == *n))
                    });
                    match (with_number.next(), with_number.next()) {
                        (Some(id), None) => Some(GuardianRef::Existing(*id)),
                        _ => None,
                    }
                })
            })
        };
        let gref = match found {
            Some(GuardianRef::Existing(id)) => {
                let stored = &db.guardians[&id];
                let mut fields = self.plan.guardian_updates.get(&id).cloned().unwrap_or_else(|| stored.fields());
                fields.first_name = g.first_name.clone();
                fields.last_name = g.last_name.clone();
                if g.email.is_some() {
                    fields.email = g.email.clone();
                }
                if fields != stored.fields() && !self.plan.guardian_updates.contains_key(&id) {
                    self.plan.counts.guardians_updated += 1;
                }
                if fields != stored.fields() {
                    self.plan.guardian_updates.insert(id, fields);
                }
                GuardianRef::Existing(id)
            }
            Some(new) => new,
            None => {
                let gref = GuardianRef::New(self.plan.new_guardians.len());
                self.plan.new_guardians.push(GuardianFields {
                    first_name: g.first_name.clone(),
                    last_name: g.last_name.clone(),
                    email: g.email.clone(),
                    preferred_contact_method: "phone".into(),
                    language_preference: "de".into(),
                    ..Default::default()
                });
                self.plan.counts.guardians_created += 1;
                gref
            }
        };
        if let Some(email) = &g.email {
            self.guardian_emails.entry(email.clone()).or_insert((gref, names.clone(), row));
        }
        for n in numbers {
            self.guardian_phones.entry((names.0.clone(), names.1.clone(), n)).or_insert(gref);
        }
        Some(gref)
    }

    /// Plans the numbers of `g` that `gref` does not have yet.
    fn phones(&mut self, db: &Snapshot, gref: GuardianRef, g: &GuardianInput) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.numbers.entry(gref) {
            let stored = match gref {
                GuardianRef::Existing(id) => db.phones.get(&id).map(Vec::as_slice).unwrap_or_default(),
                GuardianRef::New(_) => &[],
            };
            e.insert(stored.iter().map(|p| digits(&p.phone_number)).collect());
            self.phone_count.insert(gref, i32::try_from(stored.len()).unwrap_or(i32::MAX));
            if stored.iter().any(|p| p.is_primary) {
                self.primary_phone.insert(gref);
            }
        }
        for (number, kind) in [(&g.mobile, "mobile"), (&g.phone, "home")] {
            let Some(number) = number else { continue };
            if !self.numbers.entry(gref).or_default().insert(digits(number)) {
                continue;
            }
            let count = self.phone_count.entry(gref).or_default();
            *count += 1;
            let is_primary = self.primary_phone.insert(gref);
            self.plan.new_phones.push((
                gref,
                PhoneFields {
                    phone_number: number.clone(),
                    phone_type: kind.into(),
                    label: None,
                    is_primary,
                    priority: *count,
                },
            ));
            self.plan.counts.phone_numbers_created += 1;
        }
    }

    /// Plans the link of `student` and `gref`, or the changes to the existing one.
    fn link(&mut self, db: &Snapshot, student: StudentRef, gref: GuardianRef, g: &GuardianInput) {
        if !self.links.insert((student, gref)) {
            return;
        }
        let stored_links = match student {
            StudentRef::Existing { student_id, .. } => db.links.get(&student_id).map(Vec::as_slice).unwrap_or_default(),
            StudentRef::New(_) => &[],
        };
        if stored_links.iter().any(|l| l.is_primary) {
            self.primary_link.insert(student);
        }
        if let GuardianRef::Existing(gid) = gref
            && let Some(link) = stored_links.iter().find(|l| l.guardian_id == gid)
        {
            let mut fields = link.fields();
            if let Some(r) = g.relationship {
                fields.relationship_type = r.into();
            }
            if let Some(p) = g.can_pickup {
                fields.can_pickup = p;
            }
            if fields != link.fields() {
                self.plan.link_updates.insert(link.id, fields);
                self.plan.counts.links_updated += 1;
            }
            return;
        }
        let is_primary = g.slot == 1 && self.primary_link.insert(student);
        self.plan.new_links.push((
            student,
            gref,
            LinkFields {
                relationship_type: g.relationship.unwrap_or("parent").into(),
                is_primary,
                is_emergency_contact: false,
                can_pickup: g.can_pickup.unwrap_or(false),
                pickup_notes: None,
                emergency_priority: i32::from(g.slot),
            },
        ));
        self.plan.counts.links_created += 1;
    }
}
