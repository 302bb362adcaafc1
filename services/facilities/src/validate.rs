//! Requests → typed commands, before any I/O (reference §6 "Room"). Every violation names
//! the request field (`room.capacity`), all are reported at once.

use phoenix_common::page::PageRequest;
use phoenix_common::validate::{collect, mask_paths, optional_id, optional_text, required_id, required_text};
use phoenix_common::{Error, FieldViolations, Result};
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
fn apply_room(room: &pb::Room, paths: &[&str], fields: &mut RoomFields, v: &mut FieldViolations) {
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
    let room = req.room.ok_or_else(|| Error::invalid("room", "is required"))?;
    let mut v = FieldViolations::default();
    let mut fields = RoomFields::default();
    apply_room(&room, ROOM_FIELDS, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// A masked update of one resource: its id, and how to change the stored fields.
#[derive(Debug)]
pub struct Update<M> {
    /// The addressed resource.
    pub id: i64,
    /// The request's resource message.
    pub message: M,
    /// Validated mask paths.
    pub paths: Vec<&'static str>,
}

/// UpdateRoom → id + mask (the fields are validated against the stored row in [`Update::apply_room`]).
pub fn update_room(req: pb::UpdateRoomRequest) -> Result<Update<pb::Room>> {
    let room = req.room.ok_or_else(|| Error::invalid("room", "is required"))?;
    let mut v = FieldViolations::default();
    let id = required_id("room.id", room.id, &mut v);
    let paths = collect(mask_paths(req.update_mask.as_ref(), ROOM_FIELDS), &mut v);
    v.into_result()?;
    Ok(Update { id, message: room, paths: paths.unwrap_or_default() })
}

impl Update<pb::Room> {
    /// The stored fields with the masked changes applied, or the violations.
    pub fn apply_room(&self, mut fields: RoomFields) -> Result<RoomFields> {
        let mut v = FieldViolations::default();
        apply_room(&self.message, &self.paths, &mut fields, &mut v);
        v.into_result()?;
        Ok(fields)
    }
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
    let page = collect(PageRequest::parse("rooms", &format!("{filter:?}"), req.page_size, &req.page_token), &mut v);
    v.into_result()?;
    Ok((filter, page.ok_or_else(|| Error::invalid("page_token", "invalid"))?))
}

/// An id addressing a resource (`Get*` / `Delete*`).
pub fn id(field: &str, id: i64) -> Result<i64> {
    let mut v = FieldViolations::default();
    required_id(field, id, &mut v);
    v.into_result()?;
    Ok(id)
}

fn apply_building(b: &pb::Building, paths: &[&str], fields: &mut BuildingFields, v: &mut FieldViolations) {
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
    let b = req.building.ok_or_else(|| Error::invalid("building", "is required"))?;
    let mut v = FieldViolations::default();
    let mut fields = BuildingFields::default();
    apply_building(&b, BUILDING_FIELDS, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// UpdateBuilding → id + mask.
pub fn update_building(req: pb::UpdateBuildingRequest) -> Result<Update<pb::Building>> {
    let b = req.building.ok_or_else(|| Error::invalid("building", "is required"))?;
    let mut v = FieldViolations::default();
    let id = required_id("building.id", b.id, &mut v);
    let paths = collect(mask_paths(req.update_mask.as_ref(), BUILDING_FIELDS), &mut v);
    v.into_result()?;
    Ok(Update { id, message: b, paths: paths.unwrap_or_default() })
}

impl Update<pb::Building> {
    /// The stored fields with the masked changes applied.
    pub fn apply_building(&self, mut fields: BuildingFields) -> Result<BuildingFields> {
        let mut v = FieldViolations::default();
        apply_building(&self.message, &self.paths, &mut fields, &mut v);
        v.into_result()?;
        Ok(fields)
    }
}

fn apply_location(l: &pb::Location, paths: &[&str], fields: &mut LocationFields, v: &mut FieldViolations) {
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
    let l = req.location.ok_or_else(|| Error::invalid("location", "is required"))?;
    let mut v = FieldViolations::default();
    let mut fields = LocationFields::default();
    apply_location(&l, LOCATION_FIELDS, &mut fields, &mut v);
    v.into_result()?;
    Ok(fields)
}

/// UpdateLocation → id + mask.
pub fn update_location(req: pb::UpdateLocationRequest) -> Result<Update<pb::Location>> {
    let l = req.location.ok_or_else(|| Error::invalid("location", "is required"))?;
    let mut v = FieldViolations::default();
    let id = required_id("location.id", l.id, &mut v);
    let paths = collect(mask_paths(req.update_mask.as_ref(), LOCATION_FIELDS), &mut v);
    v.into_result()?;
    Ok(Update { id, message: l, paths: paths.unwrap_or_default() })
}

impl Update<pb::Location> {
    /// The stored fields with the masked changes applied.
    pub fn apply_location(&self, mut fields: LocationFields) -> Result<LocationFields> {
        let mut v = FieldViolations::default();
        apply_location(&self.message, &self.paths, &mut fields, &mut v);
        v.into_result()?;
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(err: Error) -> Vec<String> {
        match err {
            Error::InvalidArgument(v) => v.iter().map(|(f, _)| f.to_owned()).collect(),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

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
        let f = u.apply_room(stored).unwrap();
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
