//! Group commit of reader scans (`phoenix_active::scan::batch`, docs/performance.md): the
//! scans that queue behind a running commit are applied together in one transaction, in the
//! order they arrived (a transfer after a check-in, a repeat answered `duplicate`), and a scan
//! that fails inside a batch fails alone: the batch is rolled back and the others are applied
//! one transaction each, nothing of the failing one written.
//!
//! Copies of one scan in two transactions at once apply once: the second waits for the
//! first's commit and is answered from its receipt.
//!
//! The committer under test is a second one on the test's database (one committer task); a
//! test transaction holding a pupil's row lock keeps its first batch from committing until
//! the scans behind it have queued.

use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection as _};
use phoenix_active::scan::ScanCommand;
use phoenix_active::scan::batch::ScanCommitter;
use phoenix_common::db::{self, PoolOptions};
use phoenix_common::settings::LiveSettings;
use phoenix_reader_protocol::{Code, Outcome, ScanResult};
use phoenix_tests::school::{ActiveSchool, count, open_visit_room};

fn scan(device: &str, scan_id: &str, tag: &str) -> ScanCommand {
    ScanCommand { device_id: device.into(), scan_id: scan_id.into(), tag: tag.into(), scanned_at: Utc::now() }
}

/// A committer with one committer task on the school's database.
async fn committer(env: &ActiveSchool) -> ScanCommitter {
    let url = env.app.db.url();
    let pool = db::connect(url, PoolOptions::default()).await.expect("pool");
    ScanCommitter::start(pool, LiveSettings::defaults_only(&phoenix_tests::app::test_config(url)), 1, 16)
}

/// Holds pupil `student`'s row lock until the returned connection commits.
async fn hold_pupil(env: &ActiveSchool, student: i64) -> AsyncPgConnection {
    let mut conn = env.conn().await;
    conn.batch_execute(&format!("BEGIN; SELECT 1 FROM users.students WHERE id = {student} FOR UPDATE"))
        .await
        .expect("lock the pupil");
    conn
}

/// Sends `cmd`, whose pupil [`hold_pupil`] locked, and returns once the committer waits for
/// that lock (a session of the test's database waits on a lock): the committer is busy.
async fn blocked_first(
    env: &ActiveSchool,
    committer: &ScanCommitter,
    cmd: ScanCommand,
) -> tokio::task::JoinHandle<phoenix_common::Result<ScanResult>> {
    let c = committer.clone();
    let answer = tokio::spawn(async move { c.process(cmd).await });
    lock_waiters(env, 1).await;
    answer
}

/// Returns once `n` sessions of the test's database wait on a lock.
async fn lock_waiters(env: &ActiveSchool, n: i64) {
    let mut conn = env.conn().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let waiting =
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    while count(&mut conn, waiting).await < n {
        assert!(tokio::time::Instant::now() < deadline, "{n} sessions never waited on a lock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `scans` to `committer` in this order, each queued before the next is sent; the
/// committer is busy, so all of them wait in its queue.
async fn queue(
    committer: &ScanCommitter,
    scans: Vec<ScanCommand>,
) -> Vec<tokio::task::JoinHandle<phoenix_common::Result<ScanResult>>> {
    let mut answers = Vec::new();
    for (i, cmd) in scans.into_iter().enumerate() {
        let c = committer.clone();
        answers.push(tokio::spawn(async move { c.process(cmd).await }));
        wait_until(|| committer.queued() == i + 1).await;
    }
    answers
}

async fn wait_until(done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "the scans did not queue");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Transactions the receipts of `scan_ids` were written in (a transaction's receipts share
/// its `now()`).
async fn transactions(conn: &mut AsyncPgConnection, scan_ids: &[&str]) -> i64 {
    let list = scan_ids.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",");
    count(conn, &format!("SELECT count(DISTINCT received_at) AS n FROM active.scan_receipts WHERE scan_id IN ({list})"))
        .await
}

#[tokio::test]
async fn scans_queued_behind_a_commit_are_applied_together_in_the_order_they_came() {
    let mut env = ActiveSchool::new(8, 0).await;
    let rooms = env.school.rooms.clone();
    env.session(rooms[0]).await;
    env.session(rooms[1]).await;
    let (a, b) = (env.school.readers[0].clone(), env.school.readers[1].clone());
    let tags: Vec<String> = env.school.pupils.iter().map(|p| p.tag.clone()).collect();
    let committer = committer(&env).await;

    let mut lock = hold_pupil(&env, env.pupil(7)).await;
    let blocked = blocked_first(&env, &committer, scan(&a, "first", &tags[7])).await;
    let mut scans = vec![scan(&a, "in-a", &tags[0]), scan(&b, "to-b", &tags[0]), scan(&a, "in-a", &tags[0])];
    scans.extend((1..6).map(|i| scan(&a, &format!("pupil-{i}"), &tags[i])));
    let answers = queue(&committer, scans).await;
    lock.batch_execute("COMMIT").await.expect("release the pupil");

    let first = blocked.await.expect("task").expect("the first scan");
    assert_eq!((first.outcome, first.code), (Outcome::CheckedIn, Code::Ok));
    let mut results = Vec::new();
    for answer in answers {
        results.push(answer.await.expect("task").expect("a Result"));
    }
    let got: Vec<(&str, Outcome, bool)> =
        results.iter().map(|r| (r.scan_id.as_str(), r.outcome, r.duplicate)).collect();
    assert_eq!(
        got[..3],
        [
            ("in-a", Outcome::CheckedIn, false),
            ("to-b", Outcome::Transferred, false),
            ("in-a", Outcome::CheckedIn, true)
        ],
        "in arrival order: the check-in, the transfer after it, the repeat answered from its receipt"
    );
    assert!(results[3..].iter().all(|r| r.outcome == Outcome::CheckedIn && r.code == Code::Ok), "{results:?}");

    let mut conn = env.conn().await;
    let batched = ["in-a", "to-b", "pupil-1", "pupil-2", "pupil-3", "pupil-4", "pupil-5"];
    assert_eq!(transactions(&mut conn, &batched).await, 1, "the queued scans committed in one transaction");
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM active.scan_receipts").await, 8, "one receipt per scan");
    assert_eq!(open_visit_room(&mut conn, env.pupil(0)).await, Some(rooms[1]));
    let events = count(
        &mut conn,
        "SELECT count(*) AS n FROM active.presence_events WHERE kind IN ('checked_in', 'transferred')",
    )
    .await;
    assert_eq!(events, 8, "one presence event per applied scan, the repeat none");
}

#[tokio::test]
async fn a_scan_that_fails_in_a_batch_fails_alone_and_the_others_are_applied() {
    let mut env = ActiveSchool::new(6, 0).await;
    let rooms = env.school.rooms.clone();
    env.session(rooms[0]).await;
    let a = env.school.readers[0].clone();
    let tags: Vec<String> = env.school.pupils.iter().map(|p| p.tag.clone()).collect();
    let doomed = env.pupil(2);
    // A fault for one pupil: the presence event of its scan cannot be written.
    let mut conn = env.conn().await;
    conn.batch_execute(&format!(
        "CREATE FUNCTION active.injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.student_id = {doomed} THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER injected_fault BEFORE INSERT ON active.presence_events \
             FOR EACH ROW EXECUTE FUNCTION active.injected_fault()"
    ))
    .await
    .expect("the fault");
    let committer = committer(&env).await;

    let mut lock = hold_pupil(&env, env.pupil(5)).await;
    let blocked = blocked_first(&env, &committer, scan(&a, "first", &tags[5])).await;
    let answers = queue(&committer, (0..5).map(|i| scan(&a, &format!("pupil-{i}"), &tags[i])).collect()).await;
    lock.batch_execute("COMMIT").await.expect("release the pupil");

    blocked.await.expect("task").expect("the first scan");
    let mut outcomes = Vec::new();
    for answer in answers {
        outcomes.push(answer.await.expect("task").map(|r| r.outcome));
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 2 {
            assert!(outcome.is_err(), "the failing scan is answered with its error: {outcome:?}");
        } else {
            assert_eq!(outcome.as_ref().ok(), Some(&Outcome::CheckedIn), "scan {i} is applied");
        }
    }
    let receipts =
        count(&mut conn, "SELECT count(*) AS n FROM active.scan_receipts WHERE scan_id LIKE 'pupil-%'").await;
    assert_eq!(receipts, 4, "no receipt of the failing scan");
    assert_eq!(open_visit_room(&mut conn, doomed).await, None, "nothing of the failing scan written");
    for i in [0, 1, 3, 4] {
        assert_eq!(open_visit_room(&mut conn, env.pupil(i)).await, Some(rooms[0]), "pupil {i} checked in");
    }
    let applied = ["pupil-0", "pupil-1", "pupil-3", "pupil-4"];
    assert_eq!(transactions(&mut conn, &applied).await, 4, "after the failed batch, one transaction each");
}

#[tokio::test]
async fn copies_of_one_scan_in_two_transactions_at_once_apply_once() {
    let mut env = ActiveSchool::new(2, 0).await;
    let rooms = env.school.rooms.clone();
    env.session(rooms[0]).await;
    let a = env.school.readers[0].clone();
    let tag = env.school.pupils[0].tag.clone();
    let (one, two) = (committer(&env).await, committer(&env).await);

    let mut lock = hold_pupil(&env, env.pupil(0)).await;
    let first = blocked_first(&env, &one, scan(&a, "twice", &tag)).await;
    // The copy, in the other committer's transaction, waits for the first copy's.
    let copy = scan(&a, "twice", &tag);
    let second = tokio::spawn(async move { two.process(copy).await });
    lock_waiters(&env, 2).await;
    lock.batch_execute("COMMIT").await.expect("release the pupil");

    let first = first.await.expect("task").expect("the first copy");
    let second = second.await.expect("task").expect("the second copy");
    assert_eq!((first.outcome, first.code, first.duplicate), (Outcome::CheckedIn, Code::Ok, false));
    assert!(second.duplicate, "the second copy is answered from the first one's receipt: {second:?}");
    assert_eq!(ScanResult { duplicate: false, ..second }, first, "the same Result");
    let mut conn = env.conn().await;
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM active.scan_receipts").await, 1, "one receipt");
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM active.visits").await, 1, "one visit");
    let events = count(&mut conn, "SELECT count(*) AS n FROM active.presence_events WHERE kind = 'checked_in'").await;
    assert_eq!(events, 1, "one presence event");
}
