//! Alerts on the presence board and the stream (docs/presence.md "Alerts"): a pupil expected
//! today who has not arrived by `presence.alert_not_arrived_by`, a pupil in transit for
//! `presence.alert_transit_minutes` or more, a pupil still present
//! `presence.alert_pickup_grace_minutes` after today's pickup time.
//!
//! [`school`] computes every alert of the school in ONE query at an explicit `now` (tests
//! and the board pass their instant; nothing here reads the clock). [`visible`] keeps those
//! the caller has full access to ([`Access::sees_student`]); the family view (a guardian)
//! gets none. [`Feed`], one per process, re-computes the school's set when the hub
//! broadcasts a batch (a pupil arrived, entered or left a room) and every
//! [`PresenceSettings::alert_every`] (a threshold passes without any event), only while a
//! stream has asked for alerts; each such stream filters the shared set for its caller and
//! sends an ALERTS event when its own set changes ([`Watch`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Date, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_common::db::DbPool;
use phoenix_common::settings::{LiveSettings, keys, registry};
use phoenix_common::time::business_date_in;
use phoenix_reader_protocol::display_name;
use tokio::sync::{broadcast, watch};

use super::PresenceSettings;
use super::board::{Access, View};
use super::hub::Hub;
use super::limits::Limits;
use crate::calendar;

/// Why a pupil needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    NotArrived,
    LongInTransit,
    PastPickup,
}

impl AlertKind {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "not_arrived" => Some(Self::NotArrived),
            "long_in_transit" => Some(Self::LongInTransit),
            "past_pickup" => Some(Self::PastPickup),
            _ => None,
        }
    }
}

/// One alert about one pupil.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub student_id: i64,
    /// The pupil's education group (who may see the alert).
    pub group_id: Option<i64>,
    pub display_name: String,
    /// NotArrived: the arrival deadline; LongInTransit: when the pupil left their last room
    /// (or arrived); PastPickup: today's pickup time.
    pub since: DateTime<Utc>,
    /// LongInTransit: the room last left; PastPickup: the room the pupil is in.
    pub room_id: Option<i64>,
    pub room_name: String,
}

/// The thresholds, read live from the school settings (or the registry defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub timezone: chrono_tz::Tz,
    /// Local time by which a pupil expected today should have arrived.
    pub not_arrived_by: NaiveTime,
    /// In transit this long or longer is an alert.
    pub transit_limit: chrono::Duration,
    /// Present this long after today's pickup time is an alert.
    pub pickup_grace: chrono::Duration,
}

impl Rules {
    /// The current settings.
    pub fn of(settings: &LiveSettings) -> Self {
        Self {
            timezone: settings.time_zone(),
            not_arrived_by: settings.alert_not_arrived_by(),
            transit_limit: settings.alert_transit_limit(),
            pickup_grace: settings.alert_pickup_grace(),
        }
    }

    /// The registry defaults in `timezone` (a server built without live settings).
    pub fn defaults(timezone: chrono_tz::Tz) -> Self {
        let default = |key: &str| registry::lookup(key).map(|d| d.default).unwrap_or_default();
        let minutes = |key: &str| chrono::Duration::minutes(default(key).parse().unwrap_or(15));
        Self {
            timezone,
            not_arrived_by: NaiveTime::parse_from_str(default(keys::ALERT_NOT_ARRIVED_BY), "%H:%M")
                .unwrap_or(NaiveTime::MIN),
            transit_limit: minutes(keys::ALERT_TRANSIT_MINUTES),
            pickup_grace: minutes(keys::ALERT_PICKUP_GRACE_MINUTES),
        }
    }

    /// The rules of a presence server: live when it has settings.
    pub fn of_presence(settings: &PresenceSettings) -> Self {
        match &settings.live {
            Some(live) => Self::of(live),
            None => Self::defaults(settings.timezone),
        }
    }
}

#[derive(QueryableByName)]
struct AlertRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    student_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    group_id: Option<i64>,
    #[diesel(sql_type = Text)]
    first_name: String,
    #[diesel(sql_type = Text)]
    last_name: String,
    #[diesel(sql_type = Timestamptz)]
    since: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    room_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    room_name: Option<String>,
}

/// Every alert of the school at `now`, in one query: by kind, then oldest first.
///
/// - "expected today": a pickup exception for today with a time, else a pickup schedule for
///   today's weekday, else a class schedule of the pupil's group on today's weekday; a pickup
///   exception for today without a time ("not coming") means not expected. Not arrived: no
///   attendance today, not marked sick, active.
/// - in transit: attendance today still open, no open visit in a running session (the
///   board's `in_transit`); since the later of the arrival and the end of the last visit
///   that started today.
/// - past pickup: today's pickup time (exception, else schedule) passed by the grace, and
///   the attendance is still open (in a room or in transit).
pub async fn school(conn: &mut AsyncPgConnection, now: DateTime<Utc>, rules: &Rules) -> Result<Vec<Alert>> {
    let today: NaiveDate = business_date_in(now, rules.timezone);
    let weekday = i16::try_from(today.weekday().number_from_monday()).unwrap_or(1);
    let deadline = calendar::at_local(today, rules.not_arrived_by, rules.timezone);
    let rows: Vec<AlertRow> = diesel::sql_query(
        "WITH pupils AS ( \
             SELECT st.id AS student_id, st.group_id, st.sick, p.first_name, p.last_name \
             FROM users.students st JOIN users.persons p ON p.id = st.person_id \
             WHERE st.deactivated_at IS NULL \
         ), pickup AS ( \
             SELECT e.student_id, e.pickup_time FROM schedule.student_pickup_exceptions e \
             WHERE e.exception_date = $1 \
             UNION ALL \
             SELECT s.student_id, s.pickup_time FROM schedule.student_pickup_schedules s \
             WHERE s.weekday = $2 AND NOT EXISTS ( \
                 SELECT 1 FROM schedule.student_pickup_exceptions e \
                 WHERE e.student_id = s.student_id AND e.exception_date = $1) \
         ), today AS ( \
             SELECT a.student_id, a.check_in_time, a.check_out_time \
             FROM active.attendance a WHERE a.date = $1 \
         ), in_room AS ( \
             SELECT DISTINCT ON (v.student_id) v.student_id, g.room_id \
             FROM active.visits v JOIN active.groups g ON g.id = v.active_group_id AND g.end_time IS NULL \
             WHERE v.exit_time IS NULL \
             ORDER BY v.student_id, v.entry_time DESC \
         ), last_left AS ( \
             SELECT DISTINCT ON (v.student_id) v.student_id, g.room_id, \
                    COALESCE(v.exit_time, g.end_time) AS left_at \
             FROM active.visits v JOIN active.groups g ON g.id = v.active_group_id \
             WHERE v.entry_time >= $5 AND (v.exit_time IS NOT NULL OR g.end_time IS NOT NULL) \
             ORDER BY v.student_id, COALESCE(v.exit_time, g.end_time) DESC \
         ), alerts AS ( \
             SELECT 'not_arrived' AS kind, pu.student_id, $4 AS since, NULL::bigint AS room_id \
             FROM pupils pu LEFT JOIN pickup pk ON pk.student_id = pu.student_id \
             WHERE $3 >= $4 AND NOT pu.sick \
               AND NOT EXISTS (SELECT 1 FROM today t WHERE t.student_id = pu.student_id) \
               AND (pk.pickup_time IS NOT NULL \
                    OR (pk.student_id IS NULL AND EXISTS ( \
                        SELECT 1 FROM schedule.class_schedules c \
                        WHERE c.group_id = pu.group_id AND c.weekday = $2))) \
             UNION ALL \
             SELECT 'long_in_transit', pu.student_id, \
                    GREATEST(t.check_in_time, ll.left_at), ll.room_id \
             FROM pupils pu JOIN today t ON t.student_id = pu.student_id AND t.check_out_time IS NULL \
             LEFT JOIN in_room r ON r.student_id = pu.student_id \
             LEFT JOIN last_left ll ON ll.student_id = pu.student_id \
             WHERE r.student_id IS NULL AND GREATEST(t.check_in_time, ll.left_at) <= $6 \
             UNION ALL \
             SELECT 'past_pickup', pu.student_id, ($1 + pk.pickup_time) AT TIME ZONE $8, r.room_id \
             FROM pupils pu JOIN pickup pk ON pk.student_id = pu.student_id AND pk.pickup_time IS NOT NULL \
             JOIN today t ON t.student_id = pu.student_id AND t.check_out_time IS NULL \
             LEFT JOIN in_room r ON r.student_id = pu.student_id \
             WHERE ($1 + pk.pickup_time) AT TIME ZONE $8 <= $7 \
         ) \
         SELECT x.kind, x.student_id, pu.group_id, pu.first_name, pu.last_name, x.since, x.room_id, \
                rm.name AS room_name \
         FROM alerts x JOIN pupils pu ON pu.student_id = x.student_id \
         LEFT JOIN facilities.rooms rm ON rm.id = x.room_id \
         ORDER BY x.kind, x.since, x.student_id",
    )
    .bind::<Date, _>(today)
    .bind::<SmallInt, _>(weekday)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(deadline)
    .bind::<Timestamptz, _>(calendar::day_start(today, rules.timezone))
    .bind::<Timestamptz, _>(now - rules.transit_limit)
    .bind::<Timestamptz, _>(now - rules.pickup_grace)
    .bind::<Text, _>(rules.timezone.name())
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(Alert {
                kind: AlertKind::parse(&r.kind)?,
                student_id: r.student_id,
                group_id: r.group_id,
                display_name: display_name(&r.first_name, &r.last_name),
                since: r.since,
                room_id: r.room_id,
                room_name: r.room_name.unwrap_or_default(),
            })
        })
        .collect())
}

/// Whether `access` may see `alert`: about a pupil it has full access to (their group is the
/// caller's, or the caller supervises the room of the alert); never in the family view.
pub fn sees(access: &Access, alert: &Alert) -> bool {
    access.view() == View::School && access.sees_student(alert.student_id, alert.group_id, None, [alert.room_id, None])
}

/// The alerts `access` may see ([`sees`]).
pub fn visible(alerts: &[Alert], access: &Access) -> Vec<Alert> {
    alerts.iter().filter(|a| sees(access, a)).cloned().collect()
}

/// The school's alerts, shared by the streams of one process that asked for them.
#[derive(Debug, Clone)]
pub struct Feed {
    sender: Arc<watch::Sender<Arc<Vec<Alert>>>>,
}

/// Shortest pause between two computations (a burst of scans costs one query per pause).
const MIN_GAP: Duration = Duration::from_secs(1);

impl Feed {
    /// Starts the process's feed on `hub`'s batches (stops with the hub's shutdown).
    pub fn start(pool: DbPool, settings: PresenceSettings, hub: &Hub, limits: Arc<Limits>) -> Self {
        let (sender, _) = watch::channel(Arc::new(Vec::new()));
        let sender = Arc::new(sender);
        let feed = Self { sender: sender.clone() };
        let live = hub.subscribe_internal();
        let shutdown = hub.shutdown().clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = run(pool, settings, sender, live, limits) => {}
            }
        });
        feed
    }

    /// A stream's view of the feed, starting from `now` (computed for it by the caller).
    pub fn watch(&self, sent: Vec<Alert>) -> Watch {
        let mut rx = self.sender.subscribe();
        rx.mark_unchanged();
        Watch { rx, sent }
    }
}

async fn run(
    pool: DbPool,
    settings: PresenceSettings,
    sender: Arc<watch::Sender<Arc<Vec<Alert>>>>,
    mut live: broadcast::Receiver<Arc<super::hub::Batch>>,
    limits: Arc<Limits>,
) {
    let mut tick = tokio::time::interval(settings.alert_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            batch = live.recv() => {
                if matches!(batch, Err(broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
        }
        // Everything broadcast until now is covered by this computation.
        while !matches!(
            live.try_recv(),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
        ) {}
        if sender.receiver_count() == 0 {
            continue;
        }
        let rules = Rules::of_presence(&settings);
        let computed = async {
            let mut conn = limits.conn(&pool).await?;
            school(&mut conn, Utc::now(), &rules).await
        }
        .await;
        match computed {
            Ok(alerts) => {
                sender.send_if_modified(|current| {
                    if **current == alerts {
                        return false;
                    }
                    *current = Arc::new(alerts);
                    true
                });
            }
            Err(e) => tracing::warn!(error = %e, "presence alerts: computing failed; keeping the last set"),
        }
        tokio::time::sleep(MIN_GAP).await;
    }
}

/// One stream's alerts: the shared feed and what this stream last sent.
#[derive(Debug)]
pub struct Watch {
    rx: watch::Receiver<Arc<Vec<Alert>>>,
    sent: Vec<Alert>,
}

impl Watch {
    /// Resolves when the school's set changed (never, once the feed is gone).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The set last sent.
    pub fn sent(&self) -> &[Alert] {
        &self.sent
    }

    /// The caller's set when it differs from the one last sent (and records it as sent).
    pub fn next(&mut self, access: &Access) -> Option<Vec<Alert>> {
        let mine = visible(&self.rx.borrow_and_update(), access);
        if mine == self.sent {
            return None;
        }
        self.sent = mine.clone();
        Some(mine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_common::access::Caller;

    fn alert(student: i64, group: Option<i64>, room: Option<i64>) -> Alert {
        Alert {
            kind: AlertKind::LongInTransit,
            student_id: student,
            group_id: group,
            display_name: "Kind K.".into(),
            since: DateTime::UNIX_EPOCH,
            room_id: room,
            room_name: String::new(),
        }
    }

    #[test]
    fn staff_see_alerts_of_their_groups_and_supervised_rooms_guardians_none() {
        let all = [alert(1, Some(3), None), alert(2, Some(4), Some(7)), alert(3, None, None)];
        let teacher = Access { caller: Caller::staff(1), my_groups: vec![3], supervised: vec![], children: None };
        assert_eq!(visible(&all, &teacher).iter().map(|a| a.student_id).collect::<Vec<_>>(), [1]);
        let supervisor =
            Access { caller: Caller::staff(2), my_groups: vec![], supervised: vec![(9, 7)], children: None };
        assert_eq!(visible(&all, &supervisor).iter().map(|a| a.student_id).collect::<Vec<_>>(), [2]);
        let admin = Access { caller: Caller::ADMIN, my_groups: vec![], supervised: vec![], children: None };
        assert_eq!(visible(&all, &admin).len(), 3);
        let guardian = Access {
            caller: Caller { account_id: Some(5), staff_id: None, is_admin: false },
            my_groups: vec![],
            supervised: vec![],
            children: Some(vec![1, 2, 3]),
        };
        assert!(visible(&all, &guardian).is_empty(), "not even about their own children");
    }

    #[test]
    fn the_registry_defaults_are_the_documented_ones() {
        let r = Rules::defaults(chrono_tz::Europe::Berlin);
        assert_eq!(r.not_arrived_by, NaiveTime::from_hms_opt(9, 0, 0).expect("time"));
        assert_eq!((r.transit_limit.num_minutes(), r.pickup_grace.num_minutes()), (15, 15));
    }
}
