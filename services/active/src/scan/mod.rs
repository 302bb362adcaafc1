//! `ProcessScan`: behaviour.md "One scan, step by step", all in one transaction — one call of
//! the database function `active.process_scan` (migration `2026-12-12-000001_active_process_scan`
//! writes the steps out and says why they live there: one round trip per scan instead of ~20,
//! issue 17).
//!
//! 1. Idempotency: claim `(device, scan_id)` (a transaction advisory lock; the receipt is
//!    written with the Result, migration `2026-12-14-000001`); a repeat returns the stored
//!    Result with `duplicate = true` and changes nothing.
//! 2. Device unknown → `unknown_device` (no receipt: it needs a device row); not active →
//!    `device_inactive`.
//! 3. Freshness window → `stale_scan`.
//! 4. Tag → `unknown_tag` / `tag_inactive` / `not_a_student`; then the pupil's row is locked
//!    so that two readers scanning one pupil serialise.
//! 5. Order: a later state change of this pupil exists → `superseded`, nothing changed. A
//!    scan is ordered by its `scanned_at`, corrected for the reader's clock error when its
//!    own receipts show one; a manual change by its server time (its presence event).
//!    docs/faults.md "Ordering and clock skew".
//! 6. Room reader: toggle check-in / check-out / transfer, capacity → `room_full`; the first
//!    scan of the day opens attendance.
//! 7. Entrance reader: open or close the day's attendance; before the daily check-out time a
//!    pickup time more than 15 minutes away → `pickup_not_allowed`.
//! 8. The presence event and `NOTIFY phoenix_presence` with its id, delivered when the
//!    transaction commits.
//!
//! Every outcome, rejections included, is stored in the receipt and re-sent on repeats. What
//! stays here is what the database need not do: the tag's normalisation and the settings.
//!
//! [`process`] applies one scan in its own transaction, [`process_batch`] several in one
//! (`active.process_scans`); `ProcessScan` goes through [`batch::ScanCommitter`], which
//! batches the scans that queue up while a commit runs (group commit).

pub mod batch;

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::settings::LiveSettings;
use phoenix_common::{Error, Result};
use phoenix_reader_protocol::{ScanResult, normalize_tag};

use crate::repo;

/// How far in the future a reader's clock may be (behaviour.md step 3).
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(5 * 60);

/// Settings of one scan: read from the live settings when the scan starts
/// ([`ScanSettings::live`]), so a change through `ConfigService` applies to the next scan and
/// one scan's transaction sees one consistent set.
#[derive(Debug, Clone, Copy)]
pub struct ScanSettings {
    /// Oldest accepted `scanned_at` (`scan.max_age_minutes`; `PHOENIX_SCAN_MAX_AGE` gives its
    /// first default).
    pub max_age: Duration,
    /// Latest accepted `scanned_at` ahead of the server clock.
    pub max_ahead: Duration,
    /// The school's time zone (business date of attendance).
    pub timezone: chrono_tz::Tz,
    /// Local time from which every pupil may go home through the entrance reader
    /// (`attendance.daily_checkout_time`); before it, a pupil with a pickup time today waits.
    pub daily_checkout_time: chrono::NaiveTime,
}

impl ScanSettings {
    /// The settings a scan starting now runs with.
    pub fn live(settings: &LiveSettings) -> Self {
        Self {
            max_age: settings.scan_max_age(),
            max_ahead: MAX_CLOCK_AHEAD,
            timezone: settings.time_zone(),
            daily_checkout_time: settings.daily_checkout_time(),
        }
    }
}

/// A scan whose signature the gateway verified.
#[derive(Debug, Clone)]
pub struct ScanCommand {
    pub device_id: String,
    pub scan_id: String,
    pub tag: String,
    pub scanned_at: DateTime<Utc>,
}

/// Applies one scan exactly once and returns its Result (see the module docs).
pub async fn process(
    conn: &mut AsyncPgConnection,
    settings: ScanSettings,
    cmd: ScanCommand,
    now: DateTime<Utc>,
) -> Result<ScanResult> {
    let call = repo::ScanCall {
        device_id: &cmd.device_id,
        scan_id: &cmd.scan_id,
        tag: normalize_tag(&cmd.tag),
        scanned_at: cmd.scanned_at,
        now,
        max_age: chrono::Duration::from_std(settings.max_age).map_err(anyhow::Error::from)?,
        max_ahead: chrono::Duration::from_std(settings.max_ahead).map_err(anyhow::Error::from)?,
        timezone: settings.timezone.name(),
        daily_checkout_time: settings.daily_checkout_time,
    };
    // An explicit transaction, though the call is one statement: in autocommit PostgreSQL
    // commits at the protocol's Sync, after the row is on its way, and a client takes the row
    // as success; a connection ended in between (a fast shutdown) would leave a Result for a
    // scan that was rolled back. Waiting for COMMIT's answer makes a Result mean committed.
    let result = conn
        .transaction::<_, Error, _>(async move |c| {
            repo::process_scan(c, call).await.map_err(|e| match e {
                // The pupil lock makes this unreachable for scans; a writer that skipped it lost a race.
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    Error::Aborted("the pupil was checked in concurrently; retry the scan".into())
                }
                other => other.into(),
            })
        })
        .await?;
    read_result(result)
}

/// Applies `cmds` in one transaction, in order, each exactly as [`process`] would right after
/// the one before it, and returns their Results in that order. Any failure rolls the whole
/// batch back (there is no savepoint per scan): the caller then applies each on its own.
pub async fn process_batch(
    conn: &mut AsyncPgConnection,
    settings: ScanSettings,
    cmds: &[ScanCommand],
    now: DateTime<Utc>,
) -> Result<Vec<ScanResult>> {
    let call = repo::ScansCall {
        device_ids: cmds.iter().map(|c| c.device_id.as_str()).collect(),
        scan_ids: cmds.iter().map(|c| c.scan_id.as_str()).collect(),
        tags: cmds.iter().map(|c| normalize_tag(&c.tag)).collect(),
        scanned_at: cmds.iter().map(|c| c.scanned_at).collect(),
        now,
        max_age: chrono::Duration::from_std(settings.max_age).map_err(anyhow::Error::from)?,
        max_ahead: chrono::Duration::from_std(settings.max_ahead).map_err(anyhow::Error::from)?,
        timezone: settings.timezone.name(),
        daily_checkout_time: settings.daily_checkout_time,
    };
    let results = conn.transaction::<_, Error, _>(async move |c| Ok(repo::process_scans(c, call).await?)).await?;
    if results.len() != cmds.len() {
        return Err(anyhow::anyhow!("{} results for {} scans", results.len(), cmds.len()).into());
    }
    results.into_iter().map(read_result).collect()
}

/// A Result as `active.process_scan` returned it; `None` (which the function never returns:
/// every path ends in a Result) is a broken invariant, answered as internal.
fn read_result(result: Option<serde_json::Value>) -> Result<ScanResult> {
    let result = result.ok_or_else(|| anyhow::anyhow!("active.process_scan returned no Result"))?;
    Ok(serde_json::from_value(result).map_err(|e| anyhow::anyhow!("scan result is unreadable: {e}"))?)
}
