//! `phoenix_common::db::prepared` on a real PostgreSQL: the statement is prepared once per
//! connection and reused with new values, where `sql_query` leaves no prepared statement
//! behind (it is parsed and planned on every run); a placeholder used twice binds its value
//! twice.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use phoenix_common::db::prepared;
use phoenix_tests::TestDb;

#[derive(QueryableByName)]
struct Sum {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    label: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

async fn prepared_like(conn: &mut AsyncPgConnection, pattern: &str) -> i64 {
    diesel::sql_query("SELECT count(*) AS count FROM pg_prepared_statements WHERE statement LIKE $1")
        .bind::<Text, _>(pattern)
        .get_result::<Count>(conn)
        .await
        .expect("read pg_prepared_statements")
        .count
}

const SUM: &str = "SELECT $1::int8 + $2::int8 + $1::int8 AS n, $3::text AS label";

#[tokio::test]
async fn a_prepared_statement_is_prepared_once_and_reused_with_new_values() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    for (a, b) in [(1_i64, 2_i64), (10, 20), (100, 200)] {
        let row: Sum = prepared(SUM)
            .bind::<BigInt, _>(a)
            .bind::<BigInt, _>(b)
            .bind::<Text, _>(format!("{a}+{b}"))
            .get_result(&mut conn)
            .await
            .expect("run the prepared statement");
        assert_eq!((row.n, row.label), (2 * a + b, format!("{a}+{b}")), "$1 is bound at both of its places");
    }
    assert_eq!(
        prepared_like(&mut conn, "SELECT $1::int8 + $2::int8 + $3::int8 AS n%").await,
        1,
        "one statement, reused"
    );

    for _ in 0..3 {
        let row: Sum = diesel::sql_query("SELECT $1::int8 + 1 AS n, 'unprepared' AS label")
            .bind::<BigInt, _>(1_i64)
            .get_result(&mut conn)
            .await
            .expect("run the sql_query");
        assert_eq!(row.n, 2);
    }
    assert_eq!(prepared_like(&mut conn, "%'unprepared'%").await, 0, "sql_query prepares nothing to reuse");
}
