//! The demo school `phoenix dev` loads into an empty database: one building, rooms with
//! readers, education groups with teachers, staff, and about 200 pupils with RFID cards.
//! Deterministic, so screenshots and walkthroughs match from machine to machine.

use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use phoenix_common::db::DbPool;
use phoenix_db::schema::{education, facilities, iot, users};

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
/// All or nothing: one transaction.
pub async fn seed_if_empty(pool: &DbPool) -> anyhow::Result<bool> {
    let mut conn = pool.get().await.map_err(|e| anyhow::anyhow!("database unavailable: {e}"))?;
    conn.transaction::<bool, anyhow::Error, _>(async move |conn| {
        // Serialise concurrent starters on the same database.
        diesel::sql_query("SELECT pg_advisory_xact_lock(7345001)").execute(conn).await?;
        let pupils: i64 = users::students::table.count().get_result(conn).await?;
        if pupils > 0 {
            return Ok(false);
        }

        let building: i64 = diesel::insert_into(facilities::buildings::table)
            .values((
                facilities::buildings::name.eq("Hauptgebäude"),
                facilities::buildings::address.eq("Schulstraße 1"),
            ))
            .returning(facilities::buildings::id)
            .get_result(conn)
            .await?;
        let mut room_ids = Vec::new();
        for (i, (name, capacity, category, color)) in ROOMS.iter().enumerate() {
            let id: i64 = diesel::insert_into(facilities::rooms::table)
                .values((
                    facilities::rooms::name.eq(name),
                    facilities::rooms::building_id.eq(Some(building)),
                    facilities::rooms::floor.eq(Some(if name.starts_with("Raum 2") { 1 } else { 0 })),
                    facilities::rooms::capacity.eq(capacity),
                    facilities::rooms::category.eq(Some(category)),
                    facilities::rooms::color.eq(Some(color)),
                ))
                .returning(facilities::rooms::id)
                .get_result(conn)
                .await?;
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
            let person: i64 = diesel::insert_into(users::persons::table)
                .values((
                    users::persons::first_name.eq(FIRST_NAMES[(i * 7 + 3) % FIRST_NAMES.len()]),
                    users::persons::last_name.eq(format!("{} (Team)", LAST_NAMES[(i * 5 + 2) % LAST_NAMES.len()])),
                ))
                .returning(users::persons::id)
                .get_result(conn)
                .await?;
            let staff: i64 = diesel::insert_into(users::staff::table)
                .values(users::staff::person_id.eq(person))
                .returning(users::staff::id)
                .get_result(conn)
                .await?;
            let teacher: i64 = diesel::insert_into(users::teachers::table)
                .values((users::teachers::staff_id.eq(staff), users::teachers::role.eq(Some("Erzieher:in"))))
                .returning(users::teachers::id)
                .get_result(conn)
                .await?;
            teacher_ids.push(teacher);
        }

        let mut group_ids = Vec::new();
        for (i, name) in GROUPS.iter().enumerate() {
            let group: i64 = diesel::insert_into(education::groups::table)
                .values((education::groups::name.eq(name), education::groups::room_id.eq(Some(room_ids[i]))))
                .returning(education::groups::id)
                .get_result(conn)
                .await?;
            diesel::insert_into(education::group_teacher::table)
                .values((
                    education::group_teacher::group_id.eq(group),
                    education::group_teacher::teacher_id.eq(teacher_ids[i]),
                ))
                .execute(conn)
                .await?;
            group_ids.push(group);
        }

        for i in 0..DEMO_STUDENTS {
            let tag = demo_tag(i);
            diesel::insert_into(users::rfid_cards::table).values(users::rfid_cards::id.eq(&tag)).execute(conn).await?;
            let birthday =
                chrono::NaiveDate::from_ymd_opt(2016 + (i % 4) as i32, 1 + (i % 12) as u32, 1 + (i % 28) as u32);
            let person: i64 = diesel::insert_into(users::persons::table)
                .values((
                    users::persons::first_name.eq(FIRST_NAMES[i % FIRST_NAMES.len()]),
                    users::persons::last_name.eq(LAST_NAMES[(i / FIRST_NAMES.len() + i) % LAST_NAMES.len()]),
                    users::persons::birthday.eq(birthday),
                    users::persons::tag_id.eq(Some(&tag)),
                ))
                .returning(users::persons::id)
                .get_result(conn)
                .await?;
            diesel::insert_into(users::students::table)
                .values((
                    users::students::person_id.eq(person),
                    users::students::school_class.eq(CLASSES[i % CLASSES.len()]),
                    users::students::group_id.eq(Some(group_ids[i % group_ids.len()])),
                ))
                .execute(conn)
                .await?;
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
