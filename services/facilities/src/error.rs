//! Database errors of facilities writes → caller-facing errors, by constraint name. The
//! handlers check references first for clear messages; these mappings cover the races
//! (a concurrent insert of the same name, a building deleted meanwhile).

use phoenix_common::Error;
use phoenix_common::convert::violated_constraint;

/// Maps an error of a room insert or update.
pub fn room_write(err: diesel::result::Error, name: &str) -> Error {
    match violated_constraint(&err) {
        Some("uq_facilities_rooms_name") => Error::AlreadyExists(format!("a room named {name:?} already exists")),
        Some("fk_facilities_rooms_building_id") => Error::invalid("room.building_id", "no such building"),
        Some("fk_facilities_rooms_location_id") => Error::invalid("room.location_id", "no such location"),
        _ => err.into(),
    }
}

/// Maps an error of a room delete.
pub fn room_delete(err: diesel::result::Error, id: i64) -> Error {
    match violated_constraint(&err) {
        Some("fk_active_groups_room_id") => Error::precondition(
            "ROOM_IN_USE",
            format!("room {id} has room sessions on record and cannot be deleted; rename it instead"),
        ),
        _ => err.into(),
    }
}

/// Maps an error of a building insert or update.
pub fn building_write(err: diesel::result::Error, name: &str) -> Error {
    match violated_constraint(&err) {
        Some("uq_facilities_buildings_name") => {
            Error::AlreadyExists(format!("a building named {name:?} already exists"))
        }
        _ => err.into(),
    }
}

/// Maps an error of a building delete.
pub fn building_delete(err: diesel::result::Error, id: i64) -> Error {
    match violated_constraint(&err) {
        Some("fk_facilities_locations_building_id") => Error::precondition(
            "BUILDING_HAS_LOCATIONS",
            format!("building {id} still has locations; delete or move them first"),
        ),
        _ => err.into(),
    }
}

/// Maps an error of a location insert or update.
pub fn location_write(err: diesel::result::Error, name: &str) -> Error {
    match violated_constraint(&err) {
        Some("uq_facilities_locations_building_name") => {
            Error::AlreadyExists(format!("this building already has a location named {name:?}"))
        }
        Some("fk_facilities_locations_building_id") => Error::invalid("location.building_id", "no such building"),
        _ => err.into(),
    }
}
