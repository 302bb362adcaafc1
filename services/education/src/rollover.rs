//! The school-year rollover (docs/reports.md "School-year rollover"): a mapping table of
//! education groups, old → new, applied to every active pupil of each old group at once, and
//! old → nothing for the leavers, who are deactivated the way `users` deactivates a pupil
//! (`users.students.deactivated_at`, their RFID card back to the pool; their visits and
//! attendance stay until the retention purge removes them, docs/privacy).
//!
//! **Simultaneous.** Who moves is decided from the state before the rollover, so `1a → 2a`
//! and `2a → 3a` in one table move the old 1a to 2a and the old 2a to 3a (nobody moves
//! twice). A pupil's `school_class` follows the group when it spelled the old group's name.
//!
//! **One transaction, audited.** The pupils are locked (`FOR UPDATE`), every pupil changed
//! gets one `audit.data_changes` row (entity `student`; `student_moved` with group and class
//! before and after, or `student_archived`), and the whole table applies or nothing does.
//! The dry run computes the same plan in the same way and writes nothing.

use std::collections::HashMap;

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use phoenix_common::error::FieldViolations;
use phoenix_common::{Error, Result};
use phoenix_proto::education::v1 as pb;

/// The audit reason when the request gives none.
pub const DEFAULT_REASON: &str = "school-year rollover";

/// One row of the table: group `from` → group `to`, or → nobody (`None`: leavers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRow {
    pub from: String,
    pub to: Option<String>,
}

/// A validated `Rollover` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollover {
    pub rows: Vec<MappingRow>,
    pub dry_run: bool,
    pub reason: String,
}

/// `RolloverRequest` → command: every row needs a `from`, no `from` twice, a reason of at
/// most 500 characters; all bad fields at once, named by row (`mapping[2].from`).
pub fn validate(req: pb::RolloverRequest) -> Result<Rollover> {
    let mut v = FieldViolations::default();
    if req.mapping.is_empty() {
        v.add("mapping", "must hold at least one row (old group → new group, or → nothing for leavers)");
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(req.mapping.len());
    for (i, m) in req.mapping.into_iter().enumerate() {
        let from = m.from.trim().to_owned();
        let to = Some(m.to.trim().to_owned()).filter(|t| !t.is_empty());
        if from.is_empty() {
            v.add(format!("mapping[{i}].from"), "must name an education group");
        } else if let Some(first) = seen.insert(from.clone(), i) {
            v.add(format!("mapping[{i}].from"), format!("group {from:?} is already mapped in mapping[{first}]"));
        }
        if to.as_deref() == Some(from.as_str()) && !from.is_empty() {
            v.add(format!("mapping[{i}].to"), "maps a group to itself; leave the group out instead");
        }
        rows.push(MappingRow { from, to });
    }
    let reason = Some(req.reason.trim().to_owned()).filter(|r| !r.is_empty()).unwrap_or_else(|| DEFAULT_REASON.into());
    if reason.chars().count() > 500 {
        v.add("reason", "must be at most 500 characters");
    }
    v.into_result()?;
    Ok(Rollover { rows, dry_run: req.dry_run, reason })
}

/// What happened (or, in a dry run, would happen) to one mapping row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    pub from: String,
    pub from_group_id: i64,
    pub to: Option<String>,
    pub to_group_id: Option<i64>,
    /// The active pupils of `from`, by id.
    pub student_ids: Vec<i64>,
    /// The leavers holding a card (0 for a move).
    pub cards: i64,
}

/// The whole rollover's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub dry_run: bool,
    pub groups: Vec<GroupPlan>,
    pub moved: i64,
    pub archived: i64,
    pub cards_released: i64,
    pub audit_rows: i64,
}

#[derive(QueryableByName)]
struct Group {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Pupil {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    group_id: i64,
    #[diesel(sql_type = Bool)]
    has_card: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs (or dry-runs) the rollover in one transaction; `changed_by` is the audit's
/// `account:<id>` or `system`.
pub async fn run(conn: &mut AsyncPgConnection, cmd: &Rollover, changed_by: &str) -> Result<Outcome> {
    conn.transaction::<_, Error, _>(async |c| {
        let groups = resolve(c, &cmd.rows).await?;
        let from_ids: Vec<i64> = cmd.rows.iter().map(|r| groups[&r.from]).collect();
        let pupils: Vec<Pupil> = diesel::sql_query(
            "SELECT st.id, st.group_id, (p.tag_id IS NOT NULL) AS has_card \
             FROM users.students st JOIN users.persons p ON p.id = st.person_id \
             WHERE st.group_id = ANY($1) AND st.deactivated_at IS NULL \
             ORDER BY st.id FOR UPDATE OF st",
        )
        .bind::<Array<BigInt>, _>(from_ids)
        .load(c)
        .await?;
        let mut out = Outcome {
            dry_run: cmd.dry_run,
            groups: Vec::new(),
            moved: 0,
            archived: 0,
            cards_released: 0,
            audit_rows: 0,
        };
        for row in &cmd.rows {
            let from_group_id = groups[&row.from];
            let of_group: Vec<&Pupil> = pupils.iter().filter(|p| p.group_id == from_group_id).collect();
            let plan = GroupPlan {
                from: row.from.clone(),
                from_group_id,
                to: row.to.clone(),
                to_group_id: row.to.as_ref().map(|t| groups[t]),
                student_ids: of_group.iter().map(|p| p.id).collect(),
                cards: if row.to.is_none() { len(of_group.iter().filter(|p| p.has_card).count()) } else { 0 },
            };
            let n = len(plan.student_ids.len());
            match plan.to_group_id {
                Some(_) => out.moved += n,
                None => {
                    out.archived += n;
                    out.cards_released += plan.cards;
                }
            }
            out.groups.push(plan);
        }
        if cmd.dry_run {
            return Ok(out);
        }
        for plan in &out.groups {
            if plan.student_ids.is_empty() {
                continue;
            }
            out.audit_rows += match (plan.to_group_id, &plan.to) {
                (Some(to_id), Some(to)) => move_pupils(c, plan, to_id, to, &cmd.reason, changed_by).await?,
                _ => archive_pupils(c, plan, &cmd.reason, changed_by).await?,
            };
        }
        Ok(out)
    })
    .await
}

fn len(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Group ids by name for every `from` and `to`; `InvalidArgument` naming each row whose
/// group does not exist.
async fn resolve(conn: &mut AsyncPgConnection, rows: &[MappingRow]) -> Result<HashMap<String, i64>> {
    let names: Vec<String> = rows.iter().flat_map(|r| std::iter::once(r.from.clone()).chain(r.to.clone())).collect();
    let found: Vec<Group> = diesel::sql_query("SELECT id, name FROM education.groups WHERE name = ANY($1)")
        .bind::<Array<Text>, _>(names)
        .load(conn)
        .await?;
    let groups: HashMap<String, i64> = found.into_iter().map(|g| (g.name, g.id)).collect();
    let mut v = FieldViolations::default();
    for (i, r) in rows.iter().enumerate() {
        if !groups.contains_key(&r.from) {
            v.add(format!("mapping[{i}].from"), format!("no education group named {:?}", r.from));
        }
        if let Some(to) = &r.to
            && !groups.contains_key(to)
        {
            v.add(format!("mapping[{i}].to"), format!("no education group named {to:?}"));
        }
    }
    v.into_result()?;
    Ok(groups)
}

async fn move_pupils(
    conn: &mut AsyncPgConnection,
    plan: &GroupPlan,
    to_id: i64,
    to: &str,
    reason: &str,
    changed_by: &str,
) -> Result<i64> {
    let audited = diesel::sql_query(
        "INSERT INTO audit.data_changes \
           (entity_type, entity_id, student_id, action, old_values, new_values, reason, changed_by) \
         SELECT 'student', st.id, st.id, 'student_moved', \
                jsonb_build_object('group_id', st.group_id, 'school_class', st.school_class), \
                jsonb_build_object('group_id', $1::bigint, 'school_class', \
                    CASE WHEN st.school_class = $2 THEN $3 ELSE st.school_class END), \
                $4, $5 \
         FROM users.students st WHERE st.id = ANY($6)",
    )
    .bind::<BigInt, _>(to_id)
    .bind::<Text, _>(&plan.from)
    .bind::<Text, _>(to)
    .bind::<Text, _>(reason)
    .bind::<Text, _>(changed_by)
    .bind::<Array<BigInt>, _>(&plan.student_ids)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE users.students SET group_id = $1, \
                school_class = CASE WHEN school_class = $2 THEN $3 ELSE school_class END, updated_at = now() \
         WHERE id = ANY($4)",
    )
    .bind::<BigInt, _>(to_id)
    .bind::<Text, _>(&plan.from)
    .bind::<Text, _>(to)
    .bind::<Array<BigInt>, _>(&plan.student_ids)
    .execute(conn)
    .await?;
    Ok(len(audited))
}

async fn archive_pupils(conn: &mut AsyncPgConnection, plan: &GroupPlan, reason: &str, changed_by: &str) -> Result<i64> {
    let audited = diesel::sql_query(
        "INSERT INTO audit.data_changes \
           (entity_type, entity_id, student_id, action, old_values, new_values, reason, changed_by) \
         SELECT 'student', st.id, st.id, 'student_archived', \
                jsonb_build_object('active', true, 'group_id', st.group_id, 'card', p.tag_id IS NOT NULL), \
                jsonb_build_object('active', false, 'group_id', st.group_id, 'card', false), \
                $1, $2 \
         FROM users.students st JOIN users.persons p ON p.id = st.person_id WHERE st.id = ANY($3)",
    )
    .bind::<Text, _>(reason)
    .bind::<Text, _>(changed_by)
    .bind::<Array<BigInt>, _>(&plan.student_ids)
    .execute(conn)
    .await?;
    diesel::sql_query("UPDATE users.students SET deactivated_at = now(), updated_at = now() WHERE id = ANY($1)")
        .bind::<Array<BigInt>, _>(&plan.student_ids)
        .execute(conn)
        .await?;
    // A pupil who left holds no card: it goes back to the pool (as users' deactivation does).
    let released: Count = diesel::sql_query(
        "WITH r AS (UPDATE users.persons SET tag_id = NULL, updated_at = now() \
                    WHERE id IN (SELECT person_id FROM users.students WHERE id = ANY($1)) AND tag_id IS NOT NULL \
                    RETURNING id) SELECT count(*) AS n FROM r",
    )
    .bind::<Array<BigInt>, _>(&plan.student_ids)
    .get_result(conn)
    .await?;
    debug_assert_eq!(released.n, plan.cards);
    Ok(len(audited))
}

/// The outcome as the proto answer.
pub fn to_pb(o: Outcome) -> pb::RolloverResponse {
    let n = |x: i64| i32::try_from(x).unwrap_or(i32::MAX);
    pb::RolloverResponse {
        dry_run: o.dry_run,
        students_moved: n(o.moved),
        students_archived: n(o.archived),
        cards_released: n(o.cards_released),
        audit_rows: n(o.audit_rows),
        groups: o
            .groups
            .into_iter()
            .map(|g| pb::RolloverGroupResult {
                from: g.from,
                from_group_id: g.from_group_id,
                to: g.to.unwrap_or_default(),
                to_group_id: g.to_group_id,
                student_ids: g.student_ids,
            })
            .collect(),
    }
}

/// Parses a mapping file: one row per line, `old,new` (CSV, an optional `from,to` header),
/// `old→new` or `old->new`; an empty new side means leavers (`4a,` or `4a→`). Blank lines and
/// lines starting with `#` are skipped. `Err` names the line.
pub fn parse_mapping(text: &str) -> std::result::Result<Vec<MappingRow>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (from, to) = line
            .split_once('→')
            .or_else(|| line.split_once("->"))
            .or_else(|| line.split_once(','))
            .or_else(|| line.split_once(';'))
            .ok_or_else(|| format!("line {}: expected `old,new` or `old→new` (empty new: leavers)", n + 1))?;
        let (from, to) = (from.trim().trim_matches('"'), to.trim().trim_matches('"'));
        if rows.is_empty() && from.eq_ignore_ascii_case("from") && to.eq_ignore_ascii_case("to") {
            continue;
        }
        rows.push(MappingRow { from: from.to_owned(), to: Some(to.to_owned()).filter(|t| !t.is_empty()) });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(rows: &[(&str, &str)]) -> pb::RolloverRequest {
        pb::RolloverRequest {
            mapping: rows.iter().map(|(f, t)| pb::RolloverMapping { from: (*f).into(), to: (*t).into() }).collect(),
            dry_run: true,
            reason: String::new(),
        }
    }

    #[test]
    fn mapping_files_in_every_spelling() {
        let rows = parse_mapping("from,to\n1a,2a\n2a→3a\n# comment\n\n3a->4a\n4a,\n").unwrap();
        let got: Vec<(&str, Option<&str>)> = rows.iter().map(|r| (r.from.as_str(), r.to.as_deref())).collect();
        assert_eq!(got, [("1a", Some("2a")), ("2a", Some("3a")), ("3a", Some("4a")), ("4a", None)]);
        assert!(parse_mapping("1a 2a").unwrap_err().contains("line 1"));
    }

    #[test]
    fn every_bad_row_is_named() {
        let Err(Error::InvalidArgument(v)) = validate(req(&[("1a", "2a"), ("", "x"), ("1a", "3a"), ("5a", "5a")]))
        else {
            panic!("accepted")
        };
        let fields: Vec<&str> = v.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["mapping[1].from", "mapping[2].from", "mapping[3].to"]);
        assert!(validate(req(&[])).is_err());
        let ok = validate(req(&[("4a", "")])).unwrap();
        assert_eq!((ok.rows[0].to.clone(), ok.reason.as_str()), (None, DEFAULT_REASON));
    }
}
