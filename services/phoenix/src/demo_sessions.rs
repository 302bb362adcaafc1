//! Running room sessions for the demo school, so that `phoenix dev` + `phoenix reader-sim`
//! show check-in, transfer and check-out at once: Raum 101 (reader-01), Raum 102 (reader-02)
//! and the Turnhalle (reader-07). Started through the active domain's own `StartSession`
//! logic; rooms that already have a running session are left alone.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_active::validate::StartSession;
use phoenix_common::db::DbPool;
use phoenix_db::schema::{education, facilities, users};

/// (room, education group) of the demo sessions.
const DEMO_SESSIONS: &[(&str, &str)] = &[("Raum 101", "Füchse"), ("Raum 102", "Eulen"), ("Turnhalle", "Igel")];

/// Starts the demo sessions that are not running; returns how many were started.
pub async fn open_demo_sessions(pool: &DbPool, timezone: chrono_tz::Tz) -> anyhow::Result<usize> {
    let mut conn = pool.get().await.map_err(|e| anyhow::anyhow!("database unavailable: {e}"))?;
    let staff: Vec<i64> =
        users::staff::table.order(users::staff::id).select(users::staff::id).limit(1).load(&mut conn).await?;
    if staff.is_empty() {
        return Ok(0);
    }
    let mut started = 0;
    for (room, group) in DEMO_SESSIONS {
        let room_id: Option<i64> = facilities::rooms::table
            .filter(facilities::rooms::name.eq(room))
            .select(facilities::rooms::id)
            .first(&mut conn)
            .await
            .optional()?;
        let group_id: Option<i64> = education::groups::table
            .filter(education::groups::name.eq(group))
            .select(education::groups::id)
            .first(&mut conn)
            .await
            .optional()?;
        let (Some(room_id), Some(group_id)) = (room_id, group_id) else { continue };
        let cmd = StartSession {
            room_id,
            activity_id: None,
            education_group_id: Some(group_id),
            supervisors: staff.clone(),
            force: false,
            timeout_minutes: phoenix_active::validate::DEFAULT_TIMEOUT_MINUTES,
        };
        match phoenix_active::sessions::start(
            &mut conn,
            cmd,
            phoenix_active::scope::SessionControl::SYSTEM,
            timezone,
            Utc::now(),
        )
        .await
        {
            Ok(_) => started += 1,
            Err(phoenix_common::Error::FailedPrecondition { .. }) => {}
            Err(e) => return Err(anyhow::anyhow!("cannot start the demo session in {room}: {e}")),
        }
    }
    Ok(started)
}
