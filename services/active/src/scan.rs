//! `ProcessScan`: behaviour.md "One scan, step by step", all in one transaction.
//!
//! 1. Idempotency: claim the receipt `(device, scan_id)`; a repeat returns the stored Result
//!    with `duplicate = true` and changes nothing.
//! 2. Device unknown → `unknown_device` (no receipt: it needs a device row); not active →
//!    `device_inactive`.
//! 3. Freshness window → `stale_scan`.
//! 4. Tag → `unknown_tag` / `tag_inactive` / `not_a_student`; then the pupil's row is locked
//!    so that two readers scanning one pupil serialise.
//! 5. Order: a later state change of this pupil exists → `superseded`, nothing changed. A
//!    scan is ordered by its `scanned_at`, corrected for the reader's clock error when its
//!    own receipts show one ([`order_time`]); a manual change by its server time (its
//!    presence event). docs/faults.md "Ordering and clock skew".
//! 6. Room reader: toggle check-in / check-out / transfer, capacity → `room_full`; the first
//!    scan of the day opens attendance.
//! 7. Entrance reader: open or close the day's attendance.
//! 8. `NOTIFY phoenix_presence` with ids only, delivered when the transaction commits.
//!
//! Every outcome, rejections included, is stored in the receipt and re-sent on repeats.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::settings::LiveSettings;
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};
use phoenix_reader_protocol::{Code, Outcome, ResultRoom, ResultStudent, ScanResult, display_name, normalize_tag};

use crate::events::{self, ChangeKind, PresenceChange};
use crate::repo::{self, ReceiptOutcome, ScanDevice};

/// How far in the future a reader's clock may be (behaviour.md step 3).
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(5 * 60);

/// A reader clock error up to this is taken as it is: a scan is ordered by its `scanned_at`.
pub const CLOCK_SKEW_BOUND: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// How long a reader's receipts must span before its clock error is learnt from them: a
/// clock is wrong all day, a buffer replayed after an outage arrives in one burst.
pub const CLOCK_EVIDENCE_SPAN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The time a scan is ordered by among the pupil's presence changes.
///
/// `history` is the reader's receipts of the scan window: the smallest `received_at −
/// scanned_at` and the first `received_at`. Delays (network, queues, outages, offline
/// buffers) only ever add to that difference, so its smallest value, the current scan's
/// included, is the reader's clock error (minus the shortest delay). When the receipts span
/// at least [`CLOCK_EVIDENCE_SPAN`] and the error exceeds [`CLOCK_SKEW_BOUND`], the scan is
/// ordered at `scanned_at` corrected by it (never later than `now`); otherwise at
/// `scanned_at`, so a replayed older scan stays older.
pub fn order_time(
    scanned_at: DateTime<Utc>,
    now: DateTime<Utc>,
    history: Option<(chrono::TimeDelta, DateTime<Utc>)>,
) -> DateTime<Utc> {
    let Some((min_lag, first_received)) = history else { return scanned_at };
    if now - first_received < CLOCK_EVIDENCE_SPAN {
        return scanned_at;
    }
    let lag = min_lag.min(now - scanned_at);
    if lag.abs() > CLOCK_SKEW_BOUND { scanned_at + lag } else { scanned_at }
}

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

/// How early before the pickup time a guardian may collect the pupil at the entrance.
pub const PICKUP_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Whether a present pupil may leave through the entrance at local time `local` (behaviour.md
/// step 7): from the daily check-out time on always; before it, unless their pickup rule for
/// the day (exception, else weekly schedule) names a pickup time more than [`PICKUP_GRACE`]
/// later — a pupil who is collected at 16:00 does not walk out alone at 14:00.
pub fn may_leave(
    local: chrono::NaiveTime,
    daily_checkout: chrono::NaiveTime,
    pickup: Option<chrono::NaiveTime>,
) -> bool {
    local >= daily_checkout || pickup.is_none_or(|p| local >= p - PICKUP_GRACE)
}

/// A scan whose signature the gateway verified.
#[derive(Debug, Clone)]
pub struct ScanCommand {
    pub device_id: String,
    pub scan_id: String,
    pub tag: String,
    pub scanned_at: DateTime<Utc>,
}

struct Decision {
    result: ScanResult,
    student: Option<i64>,
    event: Option<PresenceChange>,
    /// The order time, when it differs from `scanned_at` (stored in the receipt's `result`).
    ordered_at: Option<DateTime<Utc>>,
}

impl Decision {
    fn rejected(scan_id: &str, code: Code) -> Self {
        Self { result: ScanResult::rejected(scan_id, code), student: None, event: None, ordered_at: None }
    }

    fn with(mut self, student: Option<&ResultStudent>, room: Option<&ResultRoom>) -> Self {
        self.student = student.map(|s| s.id);
        self.result.student = student.cloned();
        self.result.room = room.cloned();
        self
    }
}

fn applied(
    scan_id: &str,
    outcome: Outcome,
    message: String,
    student: &ResultStudent,
    room: Option<&ResultRoom>,
    event: PresenceChange,
) -> Decision {
    Decision {
        result: ScanResult {
            scan_id: scan_id.to_owned(),
            outcome,
            code: Code::Ok,
            message,
            student: Some(student.clone()),
            room: room.cloned(),
            duplicate: false,
        },
        student: Some(student.id),
        event: Some(event),
        ordered_at: None,
    }
}

/// Applies one scan exactly once and returns its Result (see the module docs).
pub async fn process(
    conn: &mut AsyncPgConnection,
    settings: ScanSettings,
    cmd: ScanCommand,
    now: DateTime<Utc>,
) -> Result<ScanResult> {
    conn.transaction::<_, Error, _>(async move |conn| {
        let Some(device) = repo::scan_device(conn, &cmd.device_id).await? else {
            return Ok(ScanResult::rejected(cmd.scan_id.clone(), Code::UnknownDevice));
        };
        let Some(receipt) = repo::claim_receipt(conn, device.id, &cmd.scan_id).await? else {
            let stored = repo::stored_result(conn, device.id, &cmd.scan_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("receipt of a claimed scan is missing"))?;
            let mut result: ScanResult =
                serde_json::from_value(stored).map_err(|e| anyhow::anyhow!("stored scan result is unreadable: {e}"))?;
            result.duplicate = true;
            return Ok(result);
        };
        let decision = decide(conn, settings, &device, &cmd, now).await?;
        let mut result_json = serde_json::to_value(&decision.result).map_err(anyhow::Error::from)?;
        if let (Some(at), Some(fields)) = (decision.ordered_at, result_json.as_object_mut()) {
            // Read by `repo::newer_state_change`; ignored when the Result is sent again.
            fields.insert("ordered_at".into(), serde_json::Value::String(at.to_rfc3339()));
        }
        repo::finish_receipt(
            conn,
            receipt,
            ReceiptOutcome {
                student_id: decision.student,
                scanned_at: cmd.scanned_at,
                outcome: decision.result.outcome.as_str(),
                code: decision.result.code.as_str(),
                result: result_json,
            },
        )
        .await?;
        if let Some(event) = &decision.event {
            events::record(conn, *event).await?;
        }
        Ok(decision.result)
    })
    .await
}

async fn decide(
    conn: &mut AsyncPgConnection,
    settings: ScanSettings,
    device: &ScanDevice,
    cmd: &ScanCommand,
    now: DateTime<Utc>,
) -> Result<Decision> {
    let scan_id = cmd.scan_id.as_str();
    if device.status != "active" {
        return Ok(Decision::rejected(scan_id, Code::DeviceInactive));
    }
    let max_age = chrono::Duration::from_std(settings.max_age).map_err(anyhow::Error::from)?;
    let max_ahead = chrono::Duration::from_std(settings.max_ahead).map_err(anyhow::Error::from)?;
    if cmd.scanned_at < now - max_age || cmd.scanned_at > now + max_ahead {
        return Ok(Decision::rejected(scan_id, Code::StaleScan));
    }

    let Some(tag) = normalize_tag(&cmd.tag) else {
        return Ok(Decision::rejected(scan_id, Code::UnknownTag));
    };
    let Some((card_active, student, first, last)) = repo::card_holder(conn, &tag).await? else {
        return Ok(Decision::rejected(scan_id, Code::UnknownTag));
    };
    if !card_active {
        return Ok(Decision::rejected(scan_id, Code::TagInactive));
    }
    let (student, first, last) = match (student, first, last) {
        (Some(s), Some(f), Some(l)) => (s, f, l),
        // A card in the catalogue that nobody holds is not a known card.
        (_, None, _) => return Ok(Decision::rejected(scan_id, Code::UnknownTag)),
        _ => return Ok(Decision::rejected(scan_id, Code::NotAStudent)),
    };
    let who = ResultStudent { id: student, display_name: display_name(&first, &last) };

    repo::lock_student(conn, student).await?;
    let history = repo::clock_lag(conn, device.id, now - max_age)
        .await?
        .map(|(ms, first)| (chrono::TimeDelta::milliseconds(ms), first));
    let at = order_time(cmd.scanned_at, now, history);
    let order = repo::ScanOrder { device: device.id, scanned_at: cmd.scanned_at, ordered_at: at };
    let mut decision = if repo::newer_state_change(conn, student, order).await? {
        Decision::rejected(scan_id, Code::Superseded).with(Some(&who), None)
    } else {
        match device.kind.as_str() {
            "entrance" => entrance_scan(conn, settings, device, cmd, &who, at).await?,
            _ => room_scan(conn, settings, device, cmd, &who, at, now).await?,
        }
    };
    decision.ordered_at = (at != cmd.scanned_at).then_some(at);
    Ok(decision)
}

async fn room_scan(
    conn: &mut AsyncPgConnection,
    settings: ScanSettings,
    device: &ScanDevice,
    cmd: &ScanCommand,
    who: &ResultStudent,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Decision> {
    let scan_id = cmd.scan_id.as_str();
    let no_session =
        |room: Option<&ResultRoom>| Decision::rejected(scan_id, Code::NoActiveSession).with(Some(who), room);
    let Some(room_id) = device.room_id else { return Ok(no_session(None)) };
    let Some((room_name, capacity)) = repo::room(conn, room_id).await? else { return Ok(no_session(None)) };
    let room = ResultRoom { id: room_id, name: room_name };
    let Some(session) = repo::lock_running_session_for_scan(conn, room_id).await? else {
        return Ok(no_session(Some(&room)));
    };
    let open = repo::open_visit(conn, who.id).await?;

    if let Some(visit) = open.as_ref().filter(|v| v.session_id == session.id) {
        repo::close_visit(conn, visit.id, at).await?;
        repo::touch_session(conn, session.id, now).await?;
        let event = PresenceChange::student(ChangeKind::CheckedOut, who.id).at(session.id, room.id);
        return Ok(applied(
            scan_id,
            Outcome::CheckedOut,
            format!("Ausgecheckt: {}", room.name),
            who,
            Some(&room),
            event,
        ));
    }

    // Capacity before anything changes (behaviour.md step 6): the room (NULL = unlimited,
    // 0 = closed) and the session's activity. The session row lock makes the count exact.
    let inside = repo::count_open_visits(conn, session.id).await?;
    let full = |message: &str| {
        let mut d = Decision::rejected(scan_id, Code::RoomFull).with(Some(who), Some(&room));
        d.result.message = message.to_owned();
        d
    };
    if capacity.is_some_and(|c| inside >= i64::from(c)) {
        return Ok(full("Raum ist voll"));
    }
    if let Some(activity) = session.activity_id
        && let Some(max) = repo::max_participants(conn, activity).await?
        && inside >= i64::from(max)
    {
        return Ok(full("Aktivität ist voll"));
    }

    if let Some(previous) = &open {
        repo::close_visit(conn, previous.id, at).await?;
    }
    // A replayed scan older than the session counts from the session's start.
    let entry = at.max(session.start_time);
    repo::insert_visit(conn, who.id, session.id, entry).await.map_err(|e| match e {
        // The pupil lock makes this unreachable for scans; a writer that skipped it lost a race.
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            Error::Aborted("the pupil was checked in concurrently; retry the scan".into())
        }
        other => other.into(),
    })?;
    repo::open_attendance(conn, who.id, business_date_in(at, settings.timezone), at, device.id).await?;
    repo::touch_session(conn, session.id, now).await?;

    let (outcome, verb) = match open {
        Some(_) => (Outcome::Transferred, "Gewechselt"),
        None => (Outcome::CheckedIn, "Eingecheckt"),
    };
    let kind = if open.is_some() { ChangeKind::Transferred } else { ChangeKind::CheckedIn };
    let event =
        PresenceChange::student(kind, who.id).at(session.id, room.id).from_room(open.as_ref().map(|v| v.room_id));
    Ok(applied(scan_id, outcome, format!("{verb}: {}", room.name), who, Some(&room), event))
}

async fn entrance_scan(
    conn: &mut AsyncPgConnection,
    settings: ScanSettings,
    device: &ScanDevice,
    cmd: &ScanCommand,
    who: &ResultStudent,
    at: DateTime<Utc>,
) -> Result<Decision> {
    let scan_id = cmd.scan_id.as_str();
    let date = business_date_in(at, settings.timezone);
    match repo::attendance_of(conn, who.id, date).await? {
        Some(present) if present.check_out_time.is_none() => {
            let local = at.with_timezone(&settings.timezone).time();
            if local < settings.daily_checkout_time
                && !may_leave(local, settings.daily_checkout_time, repo::pickup_time_on(conn, who.id, date).await?)
            {
                return Ok(Decision::rejected(scan_id, Code::PickupNotAllowed).with(Some(who), None));
            }
            // Going home: close any open visit and the day's attendance.
            let open = repo::open_visit(conn, who.id).await?;
            if let Some(visit) = &open {
                repo::close_visit(conn, visit.id, at).await?;
            }
            repo::close_attendance(conn, present.id, at, device.id).await?;
            let event =
                PresenceChange::student(ChangeKind::GoneHome, who.id).from_room(open.as_ref().map(|v| v.room_id));
            Ok(applied(scan_id, Outcome::CheckedOut, "Auf Wiedersehen!".into(), who, None, event))
        }
        _ => {
            repo::open_attendance(conn, who.id, date, at, device.id).await?;
            let event = PresenceChange::student(ChangeKind::Arrived, who.id);
            Ok(applied(scan_id, Outcome::CheckedIn, "Willkommen!".into(), who, None, event))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> chrono::NaiveTime {
        chrono::NaiveTime::from_hms_opt(h, m, 0).expect("time")
    }

    #[test]
    fn students_leave_from_the_daily_checkout_time_or_shortly_before_their_pickup() {
        let daily = t(15, 0);
        assert!(may_leave(t(10, 0), daily, None), "no pickup rule: free to go");
        assert!(!may_leave(t(10, 0), daily, Some(t(14, 0))), "collected at 14:00");
        assert!(!may_leave(t(13, 44), daily, Some(t(14, 0))));
        assert!(may_leave(t(13, 45), daily, Some(t(14, 0))), "15 minutes early is fine");
        assert!(may_leave(t(15, 0), daily, Some(t(17, 0))), "after the daily time, always");
        assert!(!may_leave(t(14, 59), daily, Some(t(17, 0))));
    }

    #[test]
    fn scans_are_ordered_by_their_reader_clock_unless_its_receipts_show_a_wrong_clock() {
        use chrono::TimeDelta as D;
        let now = Utc::now();
        let old = now - D::minutes(30);
        assert_eq!(order_time(old, now, None), old, "a reader without receipts: a replay stays old");
        let burst = Some((D::minutes(25), now - D::seconds(20)));
        assert_eq!(order_time(old, now, burst), old, "a burst of replays is no evidence");
        let live = Some((D::milliseconds(40), now - D::hours(3)));
        assert_eq!(order_time(old, now, live), old, "a right clock: an old re-send stays old");
        let behind = Some((D::minutes(10) + D::milliseconds(40), now - D::hours(3)));
        let stamped = now - D::minutes(10);
        assert_eq!(order_time(stamped, now, behind), now, "10 min behind: ordered when received");
        assert_eq!(
            order_time(stamped - D::minutes(5), now, behind),
            now - D::minutes(5) + D::milliseconds(40),
            "a re-send of the slow reader keeps its place"
        );
        let ahead = Some((-D::minutes(4), now - D::hours(1)));
        assert_eq!(order_time(now + D::minutes(4), now, ahead), now);
        let slight = Some((D::seconds(90), now - D::hours(1)));
        assert_eq!(order_time(now - D::seconds(90), now, slight), now - D::seconds(90), "within the bound");
    }
}
