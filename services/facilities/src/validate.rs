//! Requests → typed commands, before any I/O. Every violation names
//! the request field (`room.capacity`), all are reported at once.

use phoenix_common::page::PageRequest;
use phoenix_common::validate::{Update, finish, optional_id, optional_text, page, required, required_text, update};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::facilities::v1 as pb;

use crate::repo::{BuildingFields, LocationFields, RoomFields, RoomFilter};

/// Updatable fields of a room (`update_mask` paths).
pub const ROOM_FIELDS: &[&str] = &["name", "building_id", "location_id", "floor", "capacity", "category", "color"];
/// Updatable fields of a building.
pub const BUILDING_FIELDS: &[&str] = &["name", "address"];
/// Updatable fields of a location.
pub const LOCATION_FIELDS: &[&str] = &["building_id", "name", "description"];

/// Normalises a colour to `#RGB` / `#RRGGBB` upper-case; a missing `#` is added. `None` when
/// it is not a hex colour.
pub fn normalize_color(raw: &str) -> Option<String> {
    let t = raw.trim();
    let hex = t.strip_prefix('#').unwrap_or(t);
    ((hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("#{}", hex.to_ascii_uppercase()))
}

/// Applies the fields of `room` named in `paths` to `fields`, validating each.
fn set_room_fields(room: &pb::Room, paths: &[&str], fields: &mut RoomFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "name" => fields.name = required_text("room.name", &room.name, v),
            "building_id" => fields.building_id = optional_id("room.building_id", room.building_id, v),
            "location_id" => fields.location_id = optional_id("room.location_id", room.location_id, v),
            "floor" => fields.floor = room.floor,
            "capacity" => {
                if let Some(c) = room.capacity
                    && c < 0
                {
                    v.add("room.capacity", format!("must be 0 or more (leave unset for unlimited), got {c}"));
                }
                fields.capacity = room.capacity;
            }
            "category" => fields.category = optional_text(room.category.clone()),
            "color" => {
                fields.color = match optional_text(room.color.clone()) {
                    None => None,
                    Some(c) => {
                        let n = normalize_color(&c);
                        if n.is_none() {
                            v.add("room.color", format!("must be a hex colour #RGB or #RRGGBB, got {c:?}"));
                        }
                        n
                    }
                }
            }
            _ => {}
        }
    }
}

/// CreateRoom → the new row's fields.
pub fn create_room(req: pb::CreateRoomRequest) -> Result<RoomFields> {
    let room = required("room", req.room)?;
    let mut v = FieldViolations::default();
    let mut fields = RoomFields::default();
    set_room_fields(&room, ROOM_FIELDS, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// UpdateRoom → id + mask (the fields are validated against the stored row in [`apply_room`]).
pub fn update_room(req: pb::UpdateRoomRequest) -> Result<Update<pb::Room>> {
    let room = required("room", req.room)?;
    update("room.id", room.id, room, req.update_mask.as_ref(), ROOM_FIELDS)
}

/// The stored room `fields` with the masked changes of `u` applied, or the violations.
pub fn apply_room(u: &Update<pb::Room>, mut fields: RoomFields) -> Result<RoomFields> {
    let mut v = FieldViolations::default();
    set_room_fields(&u.message, &u.paths, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// ListRooms → filter + page.
pub fn list_rooms(req: pb::ListRoomsRequest) -> Result<(RoomFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = RoomFilter {
        building_id: optional_id("building_id", req.building_id, &mut v),
        location_id: optional_id("location_id", req.location_id, &mut v),
        category: optional_text(req.category),
        name_contains: optional_text(req.name_contains),
        min_capacity: req.min_capacity,
    };
    if let Some(c) = filter.min_capacity
        && c < 0
    {
        v.add("min_capacity", format!("must be 0 or more, got {c}"));
    }
    let page = page("rooms", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok((filter, page))
}

fn set_building_fields(b: &pb::Building, paths: &[&str], fields: &mut BuildingFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "name" => fields.name = required_text("building.name", &b.name, v),
            "address" => fields.address = optional_text(b.address.clone()),
            _ => {}
        }
    }
}

/// CreateBuilding → the new row's fields.
pub fn create_building(req: pb::CreateBuildingRequest) -> Result<BuildingFields> {
    let b = required("building", req.building)?;
    let mut v = FieldViolations::default();
    let mut fields = BuildingFields::default();
    set_building_fields(&b, BUILDING_FIELDS, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// UpdateBuilding → id + mask.
pub fn update_building(req: pb::UpdateBuildingRequest) -> Result<Update<pb::Building>> {
    let b = required("building", req.building)?;
    update("building.id", b.id, b, req.update_mask.as_ref(), BUILDING_FIELDS)
}

/// The stored building `fields` with the masked changes of `u` applied.
pub fn apply_building(u: &Update<pb::Building>, mut fields: BuildingFields) -> Result<BuildingFields> {
    let mut v = FieldViolations::default();
    set_building_fields(&u.message, &u.paths, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// ListBuildings → page (no filters).
pub fn list_buildings(req: pb::ListBuildingsRequest) -> Result<PageRequest> {
    PageRequest::parse("buildings", "", req.page_size, &req.page_token)
}

fn set_location_fields(l: &pb::Location, paths: &[&str], fields: &mut LocationFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "building_id" => fields.building_id = optional_id("location.building_id", l.building_id, v),
            "name" => fields.name = required_text("location.name", &l.name, v),
            "description" => fields.description = optional_text(l.description.clone()),
            _ => {}
        }
    }
}

/// CreateLocation → the new row's fields.
pub fn create_location(req: pb::CreateLocationRequest) -> Result<LocationFields> {
    let l = required("location", req.location)?;
    let mut v = FieldViolations::default();
    let mut fields = LocationFields::default();
    set_location_fields(&l, LOCATION_FIELDS, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// UpdateLocation → id + mask.
pub fn update_location(req: pb::UpdateLocationRequest) -> Result<Update<pb::Location>> {
    let l = required("location", req.location)?;
    update("location.id", l.id, l, req.update_mask.as_ref(), LOCATION_FIELDS)
}

/// The stored location `fields` with the masked changes of `u` applied.
pub fn apply_location(u: &Update<pb::Location>, mut fields: LocationFields) -> Result<LocationFields> {
    let mut v = FieldViolations::default();
    set_location_fields(&u.message, &u.paths, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// ListLocations → building filter + page.
pub fn list_locations(req: pb::ListLocationsRequest) -> Result<(Option<i64>, PageRequest)> {
    let mut v = FieldViolations::default();
    let building_id = optional_id("building_id", req.building_id, &mut v);
    let page = page("locations", &format!("{building_id:?}"), req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok((building_id, page))
}

#[cfg(test)]
mod tests {

    use phoenix_common::validate::fields_of;

    use super::*;

    #[test]
    fn colours_are_normalised_or_rejected() {
        assert_eq!(normalize_color("#abc").as_deref(), Some("#ABC"));
        assert_eq!(normalize_color("4f86c6").as_deref(), Some("#4F86C6"));
        assert_eq!(normalize_color(" #4F86C6 ").as_deref(), Some("#4F86C6"));
        for bad in ["#abcd", "red", "#12345G", "#", "##abc"] {
            assert_eq!(normalize_color(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_room_needs_a_name_and_valid_capacity_and_colour_all_reported_at_once() {
        let req = pb::CreateRoomRequest {
            room: Some(pb::Room {
                name: "  ".into(),
                capacity: Some(-1),
                color: Some("blue".into()),
                building_id: Some(0),
                ..Default::default()
            }),
        };
        assert_eq!(
            fields_of(create_room(req).unwrap_err()),
            ["room.name", "room.building_id", "room.capacity", "room.color"]
        );
    }

    #[test]
    fn unset_capacity_is_unlimited_and_zero_is_allowed() {
        let mk = |capacity| pb::CreateRoomRequest {
            room: Some(pb::Room { name: " Aula ".into(), capacity, category: Some(" ".into()), ..Default::default() }),
        };
        let f = create_room(mk(None)).unwrap();
        assert_eq!((f.name.as_str(), f.capacity, f.category), ("Aula", None, None));
        assert_eq!(create_room(mk(Some(0))).unwrap().capacity, Some(0));
    }

    #[test]
    fn masked_update_changes_only_named_fields() {
        let stored = RoomFields { name: "A".into(), capacity: Some(10), floor: Some(1), ..Default::default() };
        let req = pb::UpdateRoomRequest {
            room: Some(pb::Room { id: 3, name: "ignored".into(), capacity: None, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["capacity".into()] }),
        };
        let u = update_room(req).unwrap();
        let f = apply_room(&u, stored).unwrap();
        assert_eq!((f.name.as_str(), f.capacity, f.floor), ("A", None, Some(1)));
    }

    #[test]
    fn update_needs_an_id_and_a_known_mask() {
        let req = pb::UpdateRoomRequest {
            room: Some(pb::Room::default()),
            update_mask: Some(prost_types::FieldMask { paths: vec!["id".into()] }),
        };
        assert_eq!(fields_of(update_room(req).unwrap_err()), ["room.id", "update_mask"]);
    }
}
