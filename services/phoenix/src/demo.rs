//! The demo school `phoenix dev` loads into an empty database: one building, rooms with
//! readers, education groups with teachers, staff, and about 200 pupils with RFID cards.
//! Deterministic, so screenshots and walkthroughs match from machine to machine.

use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use phoenix_common::access::Caller;
use phoenix_common::db::DbPool;
use phoenix_db::schema::iot;
use phoenix_proto::education::v1 as epb;
use phoenix_proto::facilities::v1 as fpb;
use phoenix_proto::users::v1 as upb;
use {phoenix_education as education, phoenix_facilities as facilities, phoenix_users as users};

/// Number of pupils in the demo school.
pub const DEMO_STUDENTS: usize = 200;

const FIRST_NAMES: &[&str] = &[
    "Emma", "Noah", "Mia", "Leon", "Hanna", "Paul", "Lina", "Ben", "Emilia", "Finn", "Marie", "Elias", "Lea", "Felix",
    "Sophie", "Jonas", "Clara", "Luis", "Ida", "Henry",
];
const LAST_NAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
];
/// (room name, capacity, category, colour); `None` capacity = unlimited (the schoolyard).
const ROOMS: &[(&str, Option<i32>, &str, &str)] = &[
    ("Raum 101", Some(25), "Gruppenraum", "#4F86C6"),
    ("Raum 102", Some(25), "Gruppenraum", "#6BAA75"),
    ("Raum 103", Some(25), "Gruppenraum", "#E0A458"),
    ("Raum 104", Some(25), "Gruppenraum", "#C05746"),
    ("Raum 201", Some(25), "Gruppenraum", "#7D5BA6"),
    ("Raum 202", Some(25), "Gruppenraum", "#3E8989"),
    ("Turnhalle", Some(40), "Sport", "#2E5266"),
    ("Kunstraum", Some(18), "Kreativ", "#D4A5A5"),
    ("Musikraum", Some(20), "Musik", "#9FB4C7"),
    ("Mensa", Some(120), "Mensa", "#F2C14E"),
    ("Bibliothek", Some(15), "Lernen", "#5D737E"),
    ("Schulhof", None, "Draußen", "#8CB369"),
];
const GROUPS: &[&str] = &["Füchse", "Eulen", "Igel", "Bären", "Dachse", "Otter"];
const CLASSES: &[&str] = &["1a", "1b", "2a", "2b", "3a", "3b", "4a", "4b"];

/// Deterministic demo card UID for pupil `i` (7 bytes, like a MIFARE card).
pub fn demo_tag(i: usize) -> String {
    format!("04{:012X}", 0xA1B2_0000_u64 + (i as u64) * 7919)
}

/// Loads the demo school unless the database already has pupils. Returns whether it loaded.
/// All or nothing: one transaction; each building, room, staff member, group and pupil is
/// created by its service's own validation and operation (nested as savepoints), so demo
/// data obeys the same rules as data entered over gRPC. Only the readers are inserted
/// directly: the iot service is not part of this crate set yet.
pub async fn seed_if_empty(pool: &DbPool) -> anyhow::Result<bool> {
    let mut conn = pool.get().await.map_err(|e| anyhow::anyhow!("database unavailable: {e}"))?;
    conn.transaction::<bool, anyhow::Error, _>(async move |conn| {
        // Serialise concurrent starters on the same database.
        diesel::sql_query("SELECT pg_advisory_xact_lock(7345001)").execute(conn).await?;
        let pupils: i64 = phoenix_db::schema::users::students::table.count().get_result(conn).await?;
        if pupils > 0 {
            return Ok(false);
        }

        let building = facilities::service::create_building(
            conn,
            facilities::validate::create_building(fpb::CreateBuildingRequest {
                building: Some(fpb::Building {
                    name: "Hauptgebäude".into(),
                    address: Some("Schulstraße 1".into()),
                    ..Default::default()
                }),
            })?,
        )
        .await?;
        let mut room_ids = Vec::new();
        for (i, (name, capacity, category, color)) in ROOMS.iter().enumerate() {
            let fields = facilities::validate::create_room(fpb::CreateRoomRequest {
                room: Some(fpb::Room {
                    name: (*name).into(),
                    building_id: Some(building.id),
                    floor: Some(if name.starts_with("Raum 2") { 1 } else { 0 }),
                    capacity: *capacity,
                    category: Some((*category).into()),
                    color: Some((*color).into()),
                    ..Default::default()
                }),
            })?;
            let id = facilities::service::create_room(conn, fields).await?.id;
            room_ids.push(id);
            // One reader at each room door.
            diesel::insert_into(iot::devices::table)
                .values((
                    iot::devices::device_id.eq(format!("reader-{:02}", i + 1)),
                    iot::devices::device_type.eq("rfid_reader"),
                    iot::devices::name.eq(Some(format!("Leser {name}"))),
                    iot::devices::room_id.eq(Some(id)),
                    iot::devices::kind.eq("room"),
                ))
                .execute(conn)
                .await?;
        }
        diesel::insert_into(iot::devices::table)
            .values((
                iot::devices::device_id.eq("entrance-01"),
                iot::devices::device_type.eq("rfid_reader"),
                iot::devices::name.eq(Some("Leser Haupteingang")),
                iot::devices::kind.eq("entrance"),
            ))
            .execute(conn)
            .await?;

        // Staff: one teacher per group plus two more supervisors.
        let mut teacher_ids = Vec::new();
        for i in 0..GROUPS.len() + 2 {
            let new = users::validate::create_staff(upb::CreateStaffRequest {
                staff: Some(upb::Staff {
                    first_name: FIRST_NAMES[(i * 7 + 3) % FIRST_NAMES.len()].into(),
                    last_name: format!("{} (Team)", LAST_NAMES[(i * 5 + 2) % LAST_NAMES.len()]),
                    is_teacher: true,
                    role: Some("Erzieher:in".into()),
                    ..Default::default()
                }),
            })?;
            let staff = users::staff::create_staff(conn, new).await?;
            teacher_ids.push(staff.teacher.map(|t| t.id).ok_or_else(|| anyhow::anyhow!("teacher record missing"))?);
        }

        let mut group_ids = Vec::new();
        for (i, name) in GROUPS.iter().enumerate() {
            let new = education::validate::create_group(epb::CreateGroupRequest {
                group: Some(epb::Group {
                    name: (*name).into(),
                    room_id: Some(room_ids[i]),
                    teacher_ids: vec![teacher_ids[i]],
                    ..Default::default()
                }),
            })?;
            group_ids.push(education::service::create_group(conn, new).await?.group.id);
        }

        for i in 0..DEMO_STUDENTS {
            let birthday =
                chrono::NaiveDate::from_ymd_opt(2016 + (i % 4) as i32, 1 + (i % 12) as u32, 1 + (i % 28) as u32);
            let new = users::validate::create_student(upb::CreateStudentRequest {
                student: Some(upb::Student {
                    first_name: FIRST_NAMES[i % FIRST_NAMES.len()].into(),
                    last_name: LAST_NAMES[(i / FIRST_NAMES.len() + i) % LAST_NAMES.len()].into(),
                    birthday: birthday.map(|b| b.format("%Y-%m-%d").to_string()),
                    school_class: CLASSES[i % CLASSES.len()].into(),
                    group_id: Some(group_ids[i % group_ids.len()]),
                    tag_id: Some(demo_tag(i)),
                    ..Default::default()
                }),
            })?;
            users::students::create_student(conn, Caller::ADMIN, new).await?;
        }
        Ok(true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_tags_are_valid_normalised_uids_and_unique() {
        let tags: std::collections::HashSet<_> = (0..DEMO_STUDENTS).map(demo_tag).collect();
        assert_eq!(tags.len(), DEMO_STUDENTS);
        for t in &tags {
            assert!(
                (8..=64).contains(&t.len()) && t.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
                "{t}"
            );
        }
    }
}
