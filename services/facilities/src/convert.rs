//! Rows → proto messages.

use phoenix_common::time::to_timestamp;
use phoenix_proto::facilities::v1 as pb;

use crate::repo::{Building, Location, Occupancy, Room};

/// A room with its live occupancy.
pub fn room(r: Room, occupancy: Occupancy) -> pb::Room {
    pb::Room {
        id: r.id,
        name: r.name,
        building_id: r.building_id,
        location_id: r.location_id,
        floor: r.floor,
        capacity: r.capacity,
        category: r.category,
        color: r.color,
        occupancy: Some(pb::RoomOccupancy {
            occupied: occupancy.occupied,
            student_count: i32::try_from(occupancy.student_count).unwrap_or(i32::MAX),
        }),
        create_time: Some(to_timestamp(r.created_at)),
        update_time: Some(to_timestamp(r.updated_at)),
    }
}

/// A building.
pub fn building(b: Building) -> pb::Building {
    pb::Building {
        id: b.id,
        name: b.name,
        address: b.address,
        create_time: Some(to_timestamp(b.created_at)),
        update_time: Some(to_timestamp(b.updated_at)),
    }
}

/// A location.
pub fn location(l: Location) -> pb::Location {
    pb::Location {
        id: l.id,
        building_id: l.building_id,
        name: l.name,
        description: l.description,
        create_time: Some(to_timestamp(l.created_at)),
        update_time: Some(to_timestamp(l.updated_at)),
    }
}
