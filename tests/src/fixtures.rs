//! Test data written straight into a test's database: rows owned by other domains than the
//! one under test (rooms, pupils with cards, staff, activities, groups, substitutions, …),
//! so a test of one service does not depend on another service. Each returns the new id.

use diesel::QueryableByName;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::{activities, education, facilities, iot, users};

/// A room; `capacity` `None` = unlimited.
pub async fn room(conn: &mut AsyncPgConnection, name: &str, capacity: Option<i32>) -> i64 {
    diesel::insert_into(facilities::rooms::table)
        .values((facilities::rooms::name.eq(name), facilities::rooms::capacity.eq(capacity)))
        .returning(facilities::rooms::id)
        .get_result(conn)
        .await
        .expect("insert room")
}

/// An RFID card (`tag` already normalised).
pub async fn card(conn: &mut AsyncPgConnection, tag: &str, active: bool) {
    diesel::insert_into(users::rfid_cards::table)
        .values((users::rfid_cards::id.eq(tag), users::rfid_cards::active.eq(active)))
        .execute(conn)
        .await
        .expect("insert card");
}

/// A person, optionally holding the card `tag` (which must exist).
pub async fn person(conn: &mut AsyncPgConnection, first: &str, last: &str, tag: Option<&str>) -> i64 {
    diesel::insert_into(users::persons::table)
        .values((
            users::persons::first_name.eq(first),
            users::persons::last_name.eq(last),
            users::persons::tag_id.eq(tag),
        ))
        .returning(users::persons::id)
        .get_result(conn)
        .await
        .expect("insert person")
}

/// A pupil with an active card `tag` (normalised form); returns the student id.
pub async fn student(conn: &mut AsyncPgConnection, first: &str, last: &str, tag: &str) -> i64 {
    card(conn, tag, true).await;
    let person = person(conn, first, last, Some(tag)).await;
    diesel::insert_into(users::students::table)
        .values((users::students::person_id.eq(person), users::students::school_class.eq("2a")))
        .returning(users::students::id)
        .get_result(conn)
        .await
        .expect("insert student")
}

/// A staff member; returns the staff id.
pub async fn staff(conn: &mut AsyncPgConnection, first: &str, last: &str) -> i64 {
    let person = person(conn, first, last, None).await;
    diesel::insert_into(users::staff::table)
        .values(users::staff::person_id.eq(person))
        .returning(users::staff::id)
        .get_result(conn)
        .await
        .expect("insert staff")
}

/// An activity in the seeded category `Spiele`.
pub async fn activity(conn: &mut AsyncPgConnection, name: &str, max_participants: i32) -> i64 {
    let category: i64 = activities::categories::table
        .filter(activities::categories::name.eq("Spiele"))
        .select(activities::categories::id)
        .first(conn)
        .await
        .expect("seeded category");
    diesel::insert_into(activities::activities::table)
        .values((
            activities::activities::name.eq(name),
            activities::activities::max_participants.eq(max_participants),
            activities::activities::category_id.eq(category),
        ))
        .returning(activities::activities::id)
        .get_result(conn)
        .await
        .expect("insert activity")
}

/// An education (OGS) group.
pub async fn education_group(conn: &mut AsyncPgConnection, name: &str) -> i64 {
    diesel::insert_into(education::groups::table)
        .values(education::groups::name.eq(name))
        .returning(education::groups::id)
        .get_result(conn)
        .await
        .expect("insert group")
}

/// A valid, distinct card UID for pupil number `i` of a test (14 hex digits).
pub fn tag(i: usize) -> String {
    format!("04{:012X}", 0x00C0_FFEE_0000_u64 + i as u64)
}

/// A reader row (`kind` `room` or `entrance`) with key version 1; returns `iot.devices.id`.
/// Its key is `derive_device_key(TEST_DEVICE_KEY_SECRET, device_id, 1)`.
pub async fn device(conn: &mut AsyncPgConnection, device_id: &str, kind: &str, room_id: Option<i64>) -> i64 {
    diesel::insert_into(iot::devices::table)
        .values((
            iot::devices::device_id.eq(device_id),
            iot::devices::device_type.eq("rfid_reader"),
            iot::devices::kind.eq(kind),
            iot::devices::room_id.eq(room_id),
        ))
        .returning(iot::devices::id)
        .get_result(conn)
        .await
        .expect("insert device")
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Runs `sql` (which must `RETURNING id`) and returns the id.
pub async fn insert_returning_id(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Id>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).id
}

/// `n` pupils (persons named `Kind 1` … `Kind n`, class `3b`, no card); ids ascending.
pub async fn students(conn: &mut AsyncPgConnection, n: usize) -> Vec<i64> {
    let rows: Vec<Id> = diesel::sql_query(format!(
        "WITH p AS (INSERT INTO users.persons (first_name, last_name)
                    SELECT 'Kind', g::text FROM generate_series(1, {n}) g RETURNING id)
         INSERT INTO users.students (person_id, school_class) SELECT id, '3b' FROM p RETURNING id"
    ))
    .load(conn)
    .await
    .expect("insert students");
    let mut ids: Vec<i64> = rows.into_iter().map(|r| r.id).collect();
    ids.sort();
    ids
}

/// An education group.
pub async fn group(conn: &mut AsyncPgConnection, name: &str) -> i64 {
    insert_returning_id(conn, &format!("INSERT INTO education.groups (name) VALUES ('{name}') RETURNING id")).await
}

/// A teacher record for staff member `staff_id`; returns the teacher id.
pub async fn teacher(conn: &mut AsyncPgConnection, staff_id: i64) -> i64 {
    insert_returning_id(conn, &format!("INSERT INTO users.teachers (staff_id) VALUES ({staff_id}) RETURNING id")).await
}

/// Makes teacher `teacher_id` a leader of `group_id`.
pub async fn group_teacher(conn: &mut AsyncPgConnection, group_id: i64, teacher_id: i64) -> i64 {
    insert_returning_id(
        conn,
        &format!(
            "INSERT INTO education.group_teacher (group_id, teacher_id) VALUES ({group_id}, {teacher_id}) RETURNING id"
        ),
    )
    .await
}

/// A substitution of `group_id` by `substitute_staff_id` from `start` to `end` (SQL date
/// expressions such as `CURRENT_DATE`).
pub async fn substitution(
    conn: &mut AsyncPgConnection,
    group_id: i64,
    substitute_staff_id: i64,
    start: &str,
    end: &str,
) -> i64 {
    insert_returning_id(
        conn,
        &format!(
            "INSERT INTO education.group_substitution (group_id, substitute_staff_id, start_date, end_date) \
             VALUES ({group_id}, {substitute_staff_id}, {start}, {end}) RETURNING id"
        ),
    )
    .await
}

/// A login account.
pub async fn account(conn: &mut AsyncPgConnection, email: &str) -> i64 {
    insert_returning_id(conn, &format!("INSERT INTO auth.accounts (email) VALUES ('{email}') RETURNING id")).await
}

/// A guardian linked to `student_id` with one phone number.
pub async fn guardian_of(conn: &mut AsyncPgConnection, student_id: i64, first: &str, last: &str, primary: bool) -> i64 {
    let g = insert_returning_id(
        conn,
        &format!(
            "INSERT INTO users.guardians (first_name, last_name, email) VALUES ('{first}', '{last}', \
             '{}@example.org') RETURNING id",
            first.to_lowercase()
        ),
    )
    .await;
    insert_returning_id(
        conn,
        &format!(
            "INSERT INTO users.student_guardians (student_id, guardian_id, relationship_type, is_primary) \
             VALUES ({student_id}, {g}, 'parent', {primary}) RETURNING id"
        ),
    )
    .await;
    insert_returning_id(
        conn,
        &format!("INSERT INTO users.guardian_phone_numbers (guardian_id, phone_number) VALUES ({g}, '+49 30 1234') RETURNING id"),
    )
    .await;
    g
}
