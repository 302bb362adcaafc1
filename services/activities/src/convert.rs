//! Rows → proto messages, loading the sub-resources of a whole page at once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use phoenix_common::Error;
use phoenix_common::time::BUSINESS_TZ;
use phoenix_proto::activities::v1 as pb;

use crate::repo::{self, ActivityRow, CategoryRow, ScheduleRow};

pub(crate) fn category(row: CategoryRow) -> pb::Category {
    pb::Category {
        id: row.id,
        name: row.name,
        description: row.description.unwrap_or_default(),
        color: row.color.unwrap_or_default(),
    }
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&BUSINESS_TZ).format("%H:%M").to_string()
}

pub(crate) fn schedule(row: ScheduleRow) -> pb::ActivitySchedule {
    pb::ActivitySchedule {
        id: row.id,
        activity_id: row.activity_id,
        weekday: i32::from(row.weekday),
        timeframe_id: row.timeframe_id.unwrap_or(0),
        start_time: row.start.map(local).unwrap_or_default(),
        end_time: row.end.map(local).unwrap_or_default(),
    }
}

pub(crate) fn supervisors(rows: Vec<(i64, bool)>) -> Vec<pb::Supervisor> {
    rows.into_iter().map(|(staff_id, is_primary)| pb::Supervisor { staff_id, is_primary }).collect()
}

/// The activities of `rows` with supervisors, schedules and enrollment counts (three
/// queries for the whole page).
pub(crate) async fn activities(
    conn: &mut AsyncPgConnection,
    rows: Vec<ActivityRow>,
) -> Result<Vec<pb::Activity>, Error> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut sups = repo::supervisors_by_activity(conn, &ids).await?;
    let counts = repo::enrollment_counts(conn, &ids).await?;
    let mut scheds: HashMap<i64, Vec<pb::ActivitySchedule>> = HashMap::new();
    for s in repo::schedules_of(conn, &ids).await? {
        scheds.entry(s.activity_id).or_default().push(schedule(s));
    }
    Ok(rows
        .into_iter()
        .map(|row| pb::Activity {
            id: row.id,
            name: row.name,
            max_participants: row.max_participants,
            is_open: row.is_open,
            category_id: row.category_id,
            planned_room_id: row.planned_room_id.unwrap_or(0),
            created_by_staff_id: row.created_by,
            supervisors: supervisors(sups.remove(&row.id).unwrap_or_default()),
            enrolled_count: i32::try_from(counts.get(&row.id).copied().unwrap_or(0)).unwrap_or(i32::MAX),
            schedules: scheds.remove(&row.id).unwrap_or_default(),
        })
        .collect())
}

/// One activity with its sub-resources.
pub(crate) async fn activity(conn: &mut AsyncPgConnection, row: ActivityRow) -> Result<pb::Activity, Error> {
    let id = row.id;
    activities(conn, vec![row])
        .await?
        .pop()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("activity {id} vanished while converting")))
}
