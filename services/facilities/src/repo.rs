//! Diesel queries of the `facilities` schema (plus read-only joins into `active` for live
//! occupancy). No proto types here; writers run inside the caller's transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::convert::{like_contains, like_exact};
use phoenix_common::{Error, Result};
use phoenix_db::schema::active;
use phoenix_db::schema::facilities::{buildings, locations, rooms};

use crate::error;

/// A `facilities.rooms` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = rooms, check_for_backend(Pg))]
pub struct Room {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Building, if any.
    pub building_id: Option<i64>,
    /// Location, if any.
    pub location_id: Option<i64>,
    /// Floor.
    pub floor: Option<i32>,
    /// `None` = unlimited.
    pub capacity: Option<i32>,
    /// Free-text category.
    pub category: Option<String>,
    /// `#RGB` / `#RRGGBB`.
    pub color: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a room (insert, or full write-back after a masked update).
#[derive(Debug, Clone, Default, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = rooms, treat_none_as_null = true)]
pub struct RoomFields {
    /// Unique, trimmed name.
    pub name: String,
    /// Building, if any.
    pub building_id: Option<i64>,
    /// Location, if any.
    pub location_id: Option<i64>,
    /// Floor.
    pub floor: Option<i32>,
    /// `None` = unlimited.
    pub capacity: Option<i32>,
    /// Free-text category.
    pub category: Option<String>,
    /// Normalised colour.
    pub color: Option<String>,
}

impl Room {
    /// The writable part of the row.
    pub fn fields(&self) -> RoomFields {
        RoomFields {
            name: self.name.clone(),
            building_id: self.building_id,
            location_id: self.location_id,
            floor: self.floor,
            capacity: self.capacity,
            category: self.category.clone(),
            color: self.color.clone(),
        }
    }
}

/// Filters of a room listing; every set field must match. Its `Debug` form fingerprints
/// page tokens.
#[derive(Debug, Clone, Default)]
pub struct RoomFilter {
    /// Exact building.
    pub building_id: Option<i64>,
    /// Exact location.
    pub location_id: Option<i64>,
    /// Category, case-insensitive.
    pub category: Option<String>,
    /// Part of the name, case-insensitive.
    pub name_contains: Option<String>,
    /// Capacity at least this (unlimited rooms match).
    pub min_capacity: Option<i32>,
}

/// Live occupancy of one room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// A session is running in the room.
    pub occupied: bool,
    /// Pupils checked in to its running sessions.
    pub student_count: i64,
}

fn filtered_rooms(f: &RoomFilter) -> rooms::BoxedQuery<'static, Pg> {
    let mut q = rooms::table.into_boxed();
    if let Some(b) = f.building_id {
        q = q.filter(rooms::building_id.eq(b));
    }
    if let Some(l) = f.location_id {
        q = q.filter(rooms::location_id.eq(l));
    }
    if let Some(c) = &f.category {
        // ILIKE without wildcards = case-insensitive equality.
        q = q.filter(rooms::category.ilike(like_exact(c)));
    }
    if let Some(n) = &f.name_contains {
        q = q.filter(rooms::name.ilike(like_contains(n)));
    }
    if let Some(min) = f.min_capacity {
        q = q.filter(rooms::capacity.is_null().or(rooms::capacity.ge(min)));
    }
    q
}

/// Inserts a room.
pub async fn insert_room(conn: &mut AsyncPgConnection, fields: &RoomFields) -> Result<Room> {
    diesel::insert_into(rooms::table)
        .values(fields)
        .returning(Room::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| error::room_write(e, &fields.name))
}

/// One room.
pub async fn find_room(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Room>> {
    Ok(rooms::table.find(id).select(Room::as_select()).first(conn).await.optional()?)
}

/// One room, locked until the transaction ends (read-modify-write).
pub async fn lock_room(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Room>> {
    Ok(rooms::table.find(id).select(Room::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes every writable column of room `id`.
pub async fn write_room(conn: &mut AsyncPgConnection, id: i64, fields: &RoomFields) -> Result<Room> {
    diesel::update(rooms::table.find(id))
        .set(fields)
        .returning(Room::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| error::room_write(e, &fields.name))
}

/// Deletes room `id`; returns whether it existed.
pub async fn delete_room(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(rooms::table.find(id)).execute(conn).await.map_err(|e| error::room_delete(e, id))? > 0)
}

/// One page of rooms matching `filter` with ids above `after`, by id.
pub async fn list_rooms(
    conn: &mut AsyncPgConnection,
    filter: &RoomFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Room>> {
    Ok(filtered_rooms(filter)
        .filter(rooms::id.gt(after.unwrap_or(0)))
        .order(rooms::id)
        .limit(limit)
        .select(Room::as_select())
        .load(conn)
        .await?)
}

/// Number of rooms matching `filter`.
pub async fn count_rooms(conn: &mut AsyncPgConnection, filter: &RoomFilter) -> Result<i64> {
    Ok(filtered_rooms(filter).count().get_result(conn).await?)
}

/// Live occupancy of `room_ids` (rooms without a running session are absent).
pub async fn occupancy(conn: &mut AsyncPgConnection, room_ids: &[i64]) -> Result<HashMap<i64, Occupancy>> {
    use active::{groups as ag, visits as av};
    let mut out = HashMap::new();
    if room_ids.is_empty() {
        return Ok(out);
    }
    let occupied: Vec<i64> = ag::table
        .filter(ag::room_id.eq_any(room_ids))
        .filter(ag::end_time.is_null())
        .select(ag::room_id)
        .distinct()
        .load(conn)
        .await?;
    for id in occupied {
        out.insert(id, Occupancy { occupied: true, student_count: 0 });
    }
    let counts: Vec<(i64, i64)> = av::table
        .inner_join(ag::table)
        .filter(ag::room_id.eq_any(room_ids))
        .filter(ag::end_time.is_null())
        .filter(av::exit_time.is_null())
        .group_by(ag::room_id)
        .select((ag::room_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    for (id, n) in counts {
        out.entry(id).or_default().student_count = n;
    }
    Ok(out)
}

/// Distinct categories in use, sorted.
pub async fn room_categories(conn: &mut AsyncPgConnection) -> Result<Vec<String>> {
    let cats: Vec<Option<String>> = rooms::table
        .filter(rooms::category.is_not_null())
        .select(rooms::category)
        .distinct()
        .order(rooms::category)
        .load(conn)
        .await?;
    Ok(cats.into_iter().flatten().collect())
}

/// Checks that the room's building and location exist and agree; a location inside a
/// building puts the room into that building when no building is given.
pub async fn resolve_room_refs(conn: &mut AsyncPgConnection, fields: &mut RoomFields) -> Result<()> {
    if let Some(b) = fields.building_id
        && find_building(conn, b).await?.is_none()
    {
        return Err(Error::invalid("room.building_id", format!("building {b} does not exist")));
    }
    if let Some(l) = fields.location_id {
        let Some(location) = find_location(conn, l).await? else {
            return Err(Error::invalid("room.location_id", format!("location {l} does not exist")));
        };
        match (location.building_id, fields.building_id) {
            (Some(lb), None) => fields.building_id = Some(lb),
            (Some(lb), Some(b)) if lb != b => {
                return Err(Error::invalid(
                    "room.location_id",
                    format!("location {l} belongs to building {lb}, not to building {b}"),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `facilities.buildings` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = buildings, check_for_backend(Pg))]
pub struct Building {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a building.
#[derive(Debug, Clone, Default, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = buildings, treat_none_as_null = true)]
pub struct BuildingFields {
    /// Unique, trimmed name.
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
}

impl Building {
    /// The writable part of the row.
    pub fn fields(&self) -> BuildingFields {
        BuildingFields { name: self.name.clone(), address: self.address.clone() }
    }
}

/// Inserts a building.
pub async fn insert_building(conn: &mut AsyncPgConnection, fields: &BuildingFields) -> Result<Building> {
    diesel::insert_into(buildings::table)
        .values(fields)
        .returning(Building::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| error::building_write(e, &fields.name))
}

/// One building.
pub async fn find_building(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Building>> {
    Ok(buildings::table.find(id).select(Building::as_select()).first(conn).await.optional()?)
}

/// One building, locked until the transaction ends.
pub async fn lock_building(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Building>> {
    Ok(buildings::table.find(id).select(Building::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes every writable column of building `id`.
pub async fn write_building(conn: &mut AsyncPgConnection, id: i64, fields: &BuildingFields) -> Result<Building> {
    diesel::update(buildings::table.find(id))
        .set(fields)
        .returning(Building::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| error::building_write(e, &fields.name))
}

/// Deletes building `id`; returns whether it existed.
pub async fn delete_building(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(buildings::table.find(id)).execute(conn).await.map_err(|e| error::building_delete(e, id))? > 0)
}

/// One page of buildings by id.
pub async fn list_buildings(conn: &mut AsyncPgConnection, after: Option<i64>, limit: i64) -> Result<Vec<Building>> {
    Ok(buildings::table
        .filter(buildings::id.gt(after.unwrap_or(0)))
        .order(buildings::id)
        .limit(limit)
        .select(Building::as_select())
        .load(conn)
        .await?)
}

/// Number of buildings.
pub async fn count_buildings(conn: &mut AsyncPgConnection) -> Result<i64> {
    Ok(buildings::table.count().get_result(conn).await?)
}

/// A `facilities.locations` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = locations, check_for_backend(Pg))]
pub struct Location {
    /// Primary key.
    pub id: i64,
    /// Building, if any.
    pub building_id: Option<i64>,
    /// Name, unique within the building.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The writable columns of a location.
#[derive(Debug, Clone, Default, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = locations, treat_none_as_null = true)]
pub struct LocationFields {
    /// Building, if any.
    pub building_id: Option<i64>,
    /// Trimmed name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
}

impl Location {
    /// The writable part of the row.
    pub fn fields(&self) -> LocationFields {
        LocationFields { building_id: self.building_id, name: self.name.clone(), description: self.description.clone() }
    }
}

/// Checks that a location's building exists (`location.building_id` names it otherwise).
pub async fn check_location_building(conn: &mut AsyncPgConnection, building_id: Option<i64>) -> Result<()> {
    if let Some(b) = building_id
        && find_building(conn, b).await?.is_none()
    {
        return Err(Error::invalid("location.building_id", format!("building {b} does not exist")));
    }
    Ok(())
}

/// Inserts a location.
pub async fn insert_location(conn: &mut AsyncPgConnection, fields: &LocationFields) -> Result<Location> {
    diesel::insert_into(locations::table)
        .values(fields)
        .returning(Location::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| error::location_write(e, &fields.name))
}

/// One location.
pub async fn find_location(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Location>> {
    Ok(locations::table.find(id).select(Location::as_select()).first(conn).await.optional()?)
}

/// One location, locked until the transaction ends.
pub async fn lock_location(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Location>> {
    Ok(locations::table.find(id).select(Location::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes every writable column of location `id`.
pub async fn write_location(conn: &mut AsyncPgConnection, id: i64, fields: &LocationFields) -> Result<Location> {
    diesel::update(locations::table.find(id))
        .set(fields)
        .returning(Location::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| error::location_write(e, &fields.name))
}

/// Moves the rooms of `location_id` into `building_id` (when a location changes building).
pub async fn move_location_rooms(
    conn: &mut AsyncPgConnection,
    location_id: i64,
    building_id: Option<i64>,
) -> Result<usize> {
    Ok(diesel::update(rooms::table.filter(rooms::location_id.eq(location_id)))
        .set(rooms::building_id.eq(building_id))
        .execute(conn)
        .await?)
}

/// Deletes location `id`; returns whether it existed.
pub async fn delete_location(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(locations::table.find(id)).execute(conn).await? > 0)
}

/// One page of locations (optionally of one building) by id.
pub async fn list_locations(
    conn: &mut AsyncPgConnection,
    building_id: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Location>> {
    let mut q = locations::table.into_boxed();
    if let Some(b) = building_id {
        q = q.filter(locations::building_id.eq(b));
    }
    Ok(q.filter(locations::id.gt(after.unwrap_or(0)))
        .order(locations::id)
        .limit(limit)
        .select(Location::as_select())
        .load(conn)
        .await?)
}

/// Number of locations (optionally of one building).
pub async fn count_locations(conn: &mut AsyncPgConnection, building_id: Option<i64>) -> Result<i64> {
    let mut q = locations::table.into_boxed();
    if let Some(b) = building_id {
        q = q.filter(locations::building_id.eq(b));
    }
    Ok(q.count().get_result(conn).await?)
}
