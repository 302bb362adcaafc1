//! `phoenix.facilities.v1.FacilitiesService`: [`FacilitiesApi`], [`METHODS`] and the
//! handlers (validate → one transaction through `repo` → convert; reads use none), plus
//! [`create_room`] and [`create_building`], the operations the demo school shares with the
//! RPCs. Facilities has no resource rules: the permission is all.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{self, DbPool, ReadPool};
use phoenix_common::validate::id;
use phoenix_common::{Error, Reply, Result};
use phoenix_proto::facilities::v1 as pb;
use phoenix_proto::facilities::v1::facilities_service_server::FacilitiesService;
use tonic::{Request, Response};

use crate::repo::{self, BuildingFields, Occupancy, RoomFields};
use crate::{convert, validate};

/// The permission each RPC needs (`resource:action`, seeded in the `seed_data` migration),
/// checked by the shared auth layer before the handler runs. Rooms need `rooms:*`;
/// buildings and locations are room administration (`rooms:manage` to change them).
pub const METHODS: MethodTable = &[
    ("/phoenix.facilities.v1.FacilitiesService/CreateRoom", Requirement::Permission("rooms:create")),
    ("/phoenix.facilities.v1.FacilitiesService/GetRoom", Requirement::Permission("rooms:read")),
    ("/phoenix.facilities.v1.FacilitiesService/ListRooms", Requirement::Permission("rooms:read")),
    ("/phoenix.facilities.v1.FacilitiesService/UpdateRoom", Requirement::Permission("rooms:update")),
    ("/phoenix.facilities.v1.FacilitiesService/DeleteRoom", Requirement::Permission("rooms:delete")),
    ("/phoenix.facilities.v1.FacilitiesService/ListRoomCategories", Requirement::Permission("rooms:read")),
    ("/phoenix.facilities.v1.FacilitiesService/CreateBuilding", Requirement::Permission("rooms:manage")),
    ("/phoenix.facilities.v1.FacilitiesService/GetBuilding", Requirement::Permission("rooms:read")),
    ("/phoenix.facilities.v1.FacilitiesService/ListBuildings", Requirement::Permission("rooms:read")),
    ("/phoenix.facilities.v1.FacilitiesService/UpdateBuilding", Requirement::Permission("rooms:manage")),
    ("/phoenix.facilities.v1.FacilitiesService/DeleteBuilding", Requirement::Permission("rooms:manage")),
    ("/phoenix.facilities.v1.FacilitiesService/CreateLocation", Requirement::Permission("rooms:manage")),
    ("/phoenix.facilities.v1.FacilitiesService/GetLocation", Requirement::Permission("rooms:read")),
    ("/phoenix.facilities.v1.FacilitiesService/ListLocations", Requirement::Permission("rooms:read")),
    ("/phoenix.facilities.v1.FacilitiesService/UpdateLocation", Requirement::Permission("rooms:manage")),
    ("/phoenix.facilities.v1.FacilitiesService/DeleteLocation", Requirement::Permission("rooms:manage")),
];

/// The facilities service over a database pool.
#[derive(Clone)]
pub struct FacilitiesApi {
    pool: DbPool,
    /// The list RPCs read here (the read replica while it keeps up).
    read: ReadPool,
}

impl std::fmt::Debug for FacilitiesApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacilitiesApi").finish_non_exhaustive()
    }
}

impl FacilitiesApi {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { read: ReadPool::primary(pool.clone()), pool }
    }

    /// The list RPCs read from `read` ([`ReadPool`]).
    pub fn with_reads(self, read: ReadPool) -> Self {
        Self { read, ..self }
    }
}

/// Creates a room in one transaction (`CreateRoom` and the demo school).
pub async fn create_room(conn: &mut AsyncPgConnection, fields: RoomFields) -> Result<repo::Room> {
    conn.transaction::<_, Error, _>(async move |c| {
        let mut fields = fields;
        repo::resolve_room_refs(c, &mut fields).await?;
        repo::insert_room(c, &fields).await
    })
    .await
}

/// Creates a building in one transaction (`CreateBuilding` and the demo school).
pub async fn create_building(conn: &mut AsyncPgConnection, fields: BuildingFields) -> Result<repo::Building> {
    conn.transaction::<_, Error, _>(async move |c| repo::insert_building(c, &fields).await).await
}

#[tonic::async_trait]
impl FacilitiesService for FacilitiesApi {
    // ---- rooms ------------------------------------------------------------------------

    async fn create_room(&self, request: Request<pb::CreateRoomRequest>) -> Reply<pb::CreateRoomResponse> {
        let fields = validate::create_room(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let room = create_room(&mut conn, fields).await?;
        tracing::info!(room_id = room.id, "room created");
        Ok(Response::new(pb::CreateRoomResponse { room: Some(convert::room(room, Occupancy::default())) }))
    }

    async fn get_room(&self, request: Request<pb::GetRoomRequest>) -> Reply<pb::GetRoomResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let room = repo::find_room(&mut conn, id).await?.ok_or_else(|| Error::not_found("room", id))?;
        let occupancy = repo::occupancy(&mut conn, &[id]).await?.remove(&id).unwrap_or_default();
        Ok(Response::new(pb::GetRoomResponse { room: Some(convert::room(room, occupancy)) }))
    }

    async fn list_rooms(&self, request: Request<pb::ListRoomsRequest>) -> Reply<pb::ListRoomsResponse> {
        let (filter, page) = validate::list_rooms(request.into_inner())?;
        let mut conn = self.read.conn().await?;
        let total_size = repo::count_rooms(&mut conn, &filter).await?;
        let rows = repo::list_rooms(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut occupancy = repo::occupancy(&mut conn, &ids).await?;
        let rooms = rows
            .into_iter()
            .map(|r| {
                let o = occupancy.remove(&r.id).unwrap_or_default();
                convert::room(r, o)
            })
            .collect();
        Ok(Response::new(pb::ListRoomsResponse { rooms, next_page_token, total_size }))
    }

    async fn update_room(&self, request: Request<pb::UpdateRoomRequest>) -> Reply<pb::UpdateRoomResponse> {
        let update = validate::update_room(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let room = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::lock_room(c, update.id).await?.ok_or_else(|| Error::not_found("room", update.id))?;
                let mut fields = validate::apply_room(&update, stored.fields())?;
                repo::resolve_room_refs(c, &mut fields).await?;
                repo::write_room(c, update.id, &fields).await
            })
            .await?;
        tracing::info!(room_id = room.id, "room updated");
        let occupancy = repo::occupancy(&mut conn, &[room.id]).await?.remove(&room.id).unwrap_or_default();
        Ok(Response::new(pb::UpdateRoomResponse { room: Some(convert::room(room, occupancy)) }))
    }

    async fn delete_room(&self, request: Request<pb::DeleteRoomRequest>) -> Reply<pb::DeleteRoomResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            if repo::delete_room(c, id).await? { Ok(()) } else { Err(Error::not_found("room", id)) }
        })
        .await?;
        tracing::info!(room_id = id, "room deleted");
        Ok(Response::new(pb::DeleteRoomResponse {}))
    }

    async fn list_room_categories(
        &self,
        _request: Request<pb::ListRoomCategoriesRequest>,
    ) -> Reply<pb::ListRoomCategoriesResponse> {
        let mut conn = self.read.conn().await?;
        let categories = repo::room_categories(&mut conn).await?;
        Ok(Response::new(pb::ListRoomCategoriesResponse { categories }))
    }

    // ---- buildings --------------------------------------------------------------------

    async fn create_building(&self, request: Request<pb::CreateBuildingRequest>) -> Reply<pb::CreateBuildingResponse> {
        let fields = validate::create_building(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let building = create_building(&mut conn, fields).await?;
        tracing::info!(building_id = building.id, "building created");
        Ok(Response::new(pb::CreateBuildingResponse { building: Some(convert::building(building)) }))
    }

    async fn get_building(&self, request: Request<pb::GetBuildingRequest>) -> Reply<pb::GetBuildingResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let building = repo::find_building(&mut conn, id).await?.ok_or_else(|| Error::not_found("building", id))?;
        Ok(Response::new(pb::GetBuildingResponse { building: Some(convert::building(building)) }))
    }

    async fn list_buildings(&self, request: Request<pb::ListBuildingsRequest>) -> Reply<pb::ListBuildingsResponse> {
        let page = validate::list_buildings(request.into_inner())?;
        let mut conn = self.read.conn().await?;
        let total_size = repo::count_buildings(&mut conn).await?;
        let rows = repo::list_buildings(&mut conn, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |b| b.id.to_string());
        let buildings = rows.into_iter().map(convert::building).collect();
        Ok(Response::new(pb::ListBuildingsResponse { buildings, next_page_token, total_size }))
    }

    async fn update_building(&self, request: Request<pb::UpdateBuildingRequest>) -> Reply<pb::UpdateBuildingResponse> {
        let update = validate::update_building(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let building = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_building(c, update.id).await?.ok_or_else(|| Error::not_found("building", update.id))?;
                let fields = validate::apply_building(&update, stored.fields())?;
                repo::write_building(c, update.id, &fields).await
            })
            .await?;
        tracing::info!(building_id = building.id, "building updated");
        Ok(Response::new(pb::UpdateBuildingResponse { building: Some(convert::building(building)) }))
    }

    async fn delete_building(&self, request: Request<pb::DeleteBuildingRequest>) -> Reply<pb::DeleteBuildingResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            if repo::delete_building(c, id).await? { Ok(()) } else { Err(Error::not_found("building", id)) }
        })
        .await?;
        tracing::info!(building_id = id, "building deleted");
        Ok(Response::new(pb::DeleteBuildingResponse {}))
    }

    // ---- locations --------------------------------------------------------------------

    async fn create_location(&self, request: Request<pb::CreateLocationRequest>) -> Reply<pb::CreateLocationResponse> {
        let fields = validate::create_location(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let location = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::check_location_building(c, fields.building_id).await?;
                repo::insert_location(c, &fields).await
            })
            .await?;
        tracing::info!(location_id = location.id, "location created");
        Ok(Response::new(pb::CreateLocationResponse { location: Some(convert::location(location)) }))
    }

    async fn get_location(&self, request: Request<pb::GetLocationRequest>) -> Reply<pb::GetLocationResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let location = repo::find_location(&mut conn, id).await?.ok_or_else(|| Error::not_found("location", id))?;
        Ok(Response::new(pb::GetLocationResponse { location: Some(convert::location(location)) }))
    }

    async fn list_locations(&self, request: Request<pb::ListLocationsRequest>) -> Reply<pb::ListLocationsResponse> {
        let (building_id, page) = validate::list_locations(request.into_inner())?;
        let mut conn = self.read.conn().await?;
        let total_size = repo::count_locations(&mut conn, building_id).await?;
        let rows = repo::list_locations(&mut conn, building_id, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |l| l.id.to_string());
        let locations = rows.into_iter().map(convert::location).collect();
        Ok(Response::new(pb::ListLocationsResponse { locations, next_page_token, total_size }))
    }

    async fn update_location(&self, request: Request<pb::UpdateLocationRequest>) -> Reply<pb::UpdateLocationResponse> {
        let update = validate::update_location(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let location = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_location(c, update.id).await?.ok_or_else(|| Error::not_found("location", update.id))?;
                let fields = validate::apply_location(&update, stored.fields())?;
                repo::check_location_building(c, fields.building_id).await?;
                let moved = fields.building_id != stored.building_id;
                let location = repo::write_location(c, update.id, &fields).await?;
                if moved {
                    // Rooms follow their location, so room.building_id and location agree.
                    repo::move_location_rooms(c, location.id, location.building_id).await?;
                }
                Ok(location)
            })
            .await?;
        tracing::info!(location_id = location.id, "location updated");
        Ok(Response::new(pb::UpdateLocationResponse { location: Some(convert::location(location)) }))
    }

    async fn delete_location(&self, request: Request<pb::DeleteLocationRequest>) -> Reply<pb::DeleteLocationResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            if repo::delete_location(c, id).await? { Ok(()) } else { Err(Error::not_found("location", id)) }
        })
        .await?;
        tracing::info!(location_id = id, "location deleted");
        Ok(Response::new(pb::DeleteLocationResponse {}))
    }
}
