//! Raw-SQL set-up of rows owned by *other* domains than the one under test (a test of the
//! users service needs a group and a substitution to exist, without depending on the
//! education service). Each returns the new row's id.

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Runs `sql` (which must `RETURNING id`) and returns the id.
pub async fn insert_returning_id(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Id>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).id
}

/// An education group.
pub async fn group(conn: &mut AsyncPgConnection, name: &str) -> i64 {
    insert_returning_id(conn, &format!("INSERT INTO education.groups (name) VALUES ('{name}') RETURNING id")).await
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
