//! The tonic handlers of `phoenix.facilities.v1.FacilitiesService`: validate → transaction →
//! repo → convert. Each writing RPC is exactly one transaction; reads use none.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{DbConn, DbPool};
use phoenix_common::{Error, Result};
use phoenix_proto::facilities::v1 as pb;
use phoenix_proto::facilities::v1::facilities_service_server::FacilitiesService;
use tonic::{Request, Response, Status};

use crate::repo::{self, Occupancy, RoomFields};
use crate::{convert, error, validate};

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
pub struct Facilities {
    pool: DbPool,
}

impl std::fmt::Debug for Facilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facilities").finish_non_exhaustive()
    }
}

impl Facilities {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    async fn conn(&self) -> Result<DbConn<'_>> {
        Ok(self.pool.get().await?)
    }
}

/// Checks that the room's building and location exist and agree; a location inside a
/// building puts the room into that building when no building is given.
pub async fn resolve_room_refs(conn: &mut AsyncPgConnection, fields: &mut RoomFields) -> Result<()> {
    if let Some(b) = fields.building_id
        && repo::find_building(conn, b).await?.is_none()
    {
        return Err(Error::invalid("room.building_id", format!("building {b} does not exist")));
    }
    if let Some(l) = fields.location_id {
        let Some(location) = repo::find_location(conn, l).await? else {
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

/// Creates a room in one transaction (also the demo school's path).
pub async fn create_room(conn: &mut AsyncPgConnection, fields: RoomFields) -> Result<repo::Room> {
    conn.transaction::<_, Error, _>(async move |c| {
        let mut fields = fields;
        resolve_room_refs(c, &mut fields).await?;
        repo::insert_room(c, &fields).await.map_err(|e| error::room_write(e, &fields.name))
    })
    .await
}

/// Creates a building in one transaction (also the demo school's path).
pub async fn create_building(conn: &mut AsyncPgConnection, fields: repo::BuildingFields) -> Result<repo::Building> {
    conn.transaction::<_, Error, _>(async move |c| {
        repo::insert_building(c, &fields).await.map_err(|e| error::building_write(e, &fields.name))
    })
    .await
}

async fn room_with_occupancy(conn: &mut AsyncPgConnection, room: repo::Room) -> Result<pb::Room> {
    let occ = repo::occupancy(conn, &[room.id]).await?.remove(&room.id).unwrap_or_default();
    Ok(convert::room(room, occ))
}

impl Facilities {
    async fn do_create_room(&self, req: pb::CreateRoomRequest) -> Result<pb::CreateRoomResponse> {
        let fields = validate::create_room(req)?;
        let mut conn = self.conn().await?;
        let room = create_room(&mut conn, fields).await?;
        tracing::info!(room_id = room.id, "room created");
        Ok(pb::CreateRoomResponse { room: Some(convert::room(room, Occupancy::default())) })
    }

    async fn do_get_room(&self, req: pb::GetRoomRequest) -> Result<pb::GetRoomResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let room = repo::find_room(&mut conn, id).await?.ok_or_else(|| Error::not_found("room", id))?;
        Ok(pb::GetRoomResponse { room: Some(room_with_occupancy(&mut conn, room).await?) })
    }

    async fn do_list_rooms(&self, req: pb::ListRoomsRequest) -> Result<pb::ListRoomsResponse> {
        let (filter, page) = validate::list_rooms(req)?;
        let mut conn = self.conn().await?;
        let total_size = repo::count_rooms(&mut conn, &filter).await?;
        let rows = repo::list_rooms(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut occ = repo::occupancy(&mut conn, &ids).await?;
        let rooms = rows
            .into_iter()
            .map(|r| {
                let o = occ.remove(&r.id).unwrap_or_default();
                convert::room(r, o)
            })
            .collect();
        Ok(pb::ListRoomsResponse { rooms, next_page_token, total_size })
    }

    async fn do_update_room(&self, req: pb::UpdateRoomRequest) -> Result<pb::UpdateRoomResponse> {
        let update = validate::update_room(req)?;
        let mut conn = self.conn().await?;
        let room = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::lock_room(c, update.id).await?.ok_or_else(|| Error::not_found("room", update.id))?;
                let mut fields = update.apply_room(stored.fields())?;
                resolve_room_refs(c, &mut fields).await?;
                repo::write_room(c, update.id, &fields).await.map_err(|e| error::room_write(e, &fields.name))
            })
            .await?;
        tracing::info!(room_id = room.id, "room updated");
        Ok(pb::UpdateRoomResponse { room: Some(room_with_occupancy(&mut conn, room).await?) })
    }

    async fn do_delete_room(&self, req: pb::DeleteRoomRequest) -> Result<pb::DeleteRoomResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let existed = repo::delete_room(c, id).await.map_err(|e| error::room_delete(e, id))?;
            if existed { Ok(()) } else { Err(Error::not_found("room", id)) }
        })
        .await?;
        tracing::info!(room_id = id, "room deleted");
        Ok(pb::DeleteRoomResponse {})
    }

    async fn do_list_room_categories(&self) -> Result<pb::ListRoomCategoriesResponse> {
        let mut conn = self.conn().await?;
        Ok(pb::ListRoomCategoriesResponse { categories: repo::room_categories(&mut conn).await? })
    }

    async fn do_create_building(&self, req: pb::CreateBuildingRequest) -> Result<pb::CreateBuildingResponse> {
        let fields = validate::create_building(req)?;
        let mut conn = self.conn().await?;
        let b = create_building(&mut conn, fields).await?;
        tracing::info!(building_id = b.id, "building created");
        Ok(pb::CreateBuildingResponse { building: Some(convert::building(b)) })
    }

    async fn do_get_building(&self, req: pb::GetBuildingRequest) -> Result<pb::GetBuildingResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let b = repo::find_building(&mut conn, id).await?.ok_or_else(|| Error::not_found("building", id))?;
        Ok(pb::GetBuildingResponse { building: Some(convert::building(b)) })
    }

    async fn do_list_buildings(&self, req: pb::ListBuildingsRequest) -> Result<pb::ListBuildingsResponse> {
        let page = phoenix_common::page::PageRequest::parse("buildings", "", req.page_size, &req.page_token)?;
        let mut conn = self.conn().await?;
        let total_size = repo::count_buildings(&mut conn).await?;
        let rows = repo::list_buildings(&mut conn, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |b| b.id.to_string());
        Ok(pb::ListBuildingsResponse {
            buildings: rows.into_iter().map(convert::building).collect(),
            next_page_token,
            total_size,
        })
    }

    async fn do_update_building(&self, req: pb::UpdateBuildingRequest) -> Result<pb::UpdateBuildingResponse> {
        let update = validate::update_building(req)?;
        let mut conn = self.conn().await?;
        let b = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_building(c, update.id).await?.ok_or_else(|| Error::not_found("building", update.id))?;
                let fields = update.apply_building(stored.fields())?;
                repo::write_building(c, update.id, &fields).await.map_err(|e| error::building_write(e, &fields.name))
            })
            .await?;
        tracing::info!(building_id = b.id, "building updated");
        Ok(pb::UpdateBuildingResponse { building: Some(convert::building(b)) })
    }

    async fn do_delete_building(&self, req: pb::DeleteBuildingRequest) -> Result<pb::DeleteBuildingResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let existed = repo::delete_building(c, id).await.map_err(|e| error::building_delete(e, id))?;
            if existed { Ok(()) } else { Err(Error::not_found("building", id)) }
        })
        .await?;
        tracing::info!(building_id = id, "building deleted");
        Ok(pb::DeleteBuildingResponse {})
    }

    async fn do_create_location(&self, req: pb::CreateLocationRequest) -> Result<pb::CreateLocationResponse> {
        let fields = validate::create_location(req)?;
        let mut conn = self.conn().await?;
        let l = conn
            .transaction::<_, Error, _>(async move |c| {
                check_location_building(c, fields.building_id).await?;
                repo::insert_location(c, &fields).await.map_err(|e| error::location_write(e, &fields.name))
            })
            .await?;
        tracing::info!(location_id = l.id, "location created");
        Ok(pb::CreateLocationResponse { location: Some(convert::location(l)) })
    }

    async fn do_get_location(&self, req: pb::GetLocationRequest) -> Result<pb::GetLocationResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let l = repo::find_location(&mut conn, id).await?.ok_or_else(|| Error::not_found("location", id))?;
        Ok(pb::GetLocationResponse { location: Some(convert::location(l)) })
    }

    async fn do_list_locations(&self, req: pb::ListLocationsRequest) -> Result<pb::ListLocationsResponse> {
        let mut v = phoenix_common::FieldViolations::default();
        let building_id = phoenix_common::validate::optional_id("building_id", req.building_id, &mut v);
        let page = phoenix_common::validate::collect(
            phoenix_common::page::PageRequest::parse(
                "locations",
                &format!("{building_id:?}"),
                req.page_size,
                &req.page_token,
            ),
            &mut v,
        );
        v.into_result()?;
        let page = page.ok_or_else(|| Error::invalid("page_token", "invalid"))?;
        let mut conn = self.conn().await?;
        let total_size = repo::count_locations(&mut conn, building_id).await?;
        let rows = repo::list_locations(&mut conn, building_id, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |l| l.id.to_string());
        Ok(pb::ListLocationsResponse {
            locations: rows.into_iter().map(convert::location).collect(),
            next_page_token,
            total_size,
        })
    }

    async fn do_update_location(&self, req: pb::UpdateLocationRequest) -> Result<pb::UpdateLocationResponse> {
        let update = validate::update_location(req)?;
        let mut conn = self.conn().await?;
        let l = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_location(c, update.id).await?.ok_or_else(|| Error::not_found("location", update.id))?;
                let fields = update.apply_location(stored.fields())?;
                check_location_building(c, fields.building_id).await?;
                let moved = fields.building_id != stored.building_id;
                let l = repo::write_location(c, update.id, &fields)
                    .await
                    .map_err(|e| error::location_write(e, &fields.name))?;
                if moved {
                    // Rooms follow their location, so room.building_id and location agree.
                    repo::move_location_rooms(c, l.id, l.building_id).await?;
                }
                Ok(l)
            })
            .await?;
        tracing::info!(location_id = l.id, "location updated");
        Ok(pb::UpdateLocationResponse { location: Some(convert::location(l)) })
    }

    async fn do_delete_location(&self, req: pb::DeleteLocationRequest) -> Result<pb::DeleteLocationResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            if repo::delete_location(c, id).await? { Ok(()) } else { Err(Error::not_found("location", id)) }
        })
        .await?;
        tracing::info!(location_id = id, "location deleted");
        Ok(pb::DeleteLocationResponse {})
    }
}

async fn check_location_building(conn: &mut AsyncPgConnection, building_id: Option<i64>) -> Result<()> {
    if let Some(b) = building_id
        && repo::find_building(conn, b).await?.is_none()
    {
        return Err(Error::invalid("location.building_id", format!("building {b} does not exist")));
    }
    Ok(())
}

#[tonic::async_trait]
impl FacilitiesService for Facilities {
    async fn create_room(&self, r: Request<pb::CreateRoomRequest>) -> Result<Response<pb::CreateRoomResponse>, Status> {
        Ok(Response::new(self.do_create_room(r.into_inner()).await?))
    }

    async fn get_room(&self, r: Request<pb::GetRoomRequest>) -> Result<Response<pb::GetRoomResponse>, Status> {
        Ok(Response::new(self.do_get_room(r.into_inner()).await?))
    }

    async fn list_rooms(&self, r: Request<pb::ListRoomsRequest>) -> Result<Response<pb::ListRoomsResponse>, Status> {
        Ok(Response::new(self.do_list_rooms(r.into_inner()).await?))
    }

    async fn update_room(&self, r: Request<pb::UpdateRoomRequest>) -> Result<Response<pb::UpdateRoomResponse>, Status> {
        Ok(Response::new(self.do_update_room(r.into_inner()).await?))
    }

    async fn delete_room(&self, r: Request<pb::DeleteRoomRequest>) -> Result<Response<pb::DeleteRoomResponse>, Status> {
        Ok(Response::new(self.do_delete_room(r.into_inner()).await?))
    }

    async fn list_room_categories(
        &self,
        _r: Request<pb::ListRoomCategoriesRequest>,
    ) -> Result<Response<pb::ListRoomCategoriesResponse>, Status> {
        Ok(Response::new(self.do_list_room_categories().await?))
    }

    async fn create_building(
        &self,
        r: Request<pb::CreateBuildingRequest>,
    ) -> Result<Response<pb::CreateBuildingResponse>, Status> {
        Ok(Response::new(self.do_create_building(r.into_inner()).await?))
    }

    async fn get_building(
        &self,
        r: Request<pb::GetBuildingRequest>,
    ) -> Result<Response<pb::GetBuildingResponse>, Status> {
        Ok(Response::new(self.do_get_building(r.into_inner()).await?))
    }

    async fn list_buildings(
        &self,
        r: Request<pb::ListBuildingsRequest>,
    ) -> Result<Response<pb::ListBuildingsResponse>, Status> {
        Ok(Response::new(self.do_list_buildings(r.into_inner()).await?))
    }

    async fn update_building(
        &self,
        r: Request<pb::UpdateBuildingRequest>,
    ) -> Result<Response<pb::UpdateBuildingResponse>, Status> {
        Ok(Response::new(self.do_update_building(r.into_inner()).await?))
    }

    async fn delete_building(
        &self,
        r: Request<pb::DeleteBuildingRequest>,
    ) -> Result<Response<pb::DeleteBuildingResponse>, Status> {
        Ok(Response::new(self.do_delete_building(r.into_inner()).await?))
    }

    async fn create_location(
        &self,
        r: Request<pb::CreateLocationRequest>,
    ) -> Result<Response<pb::CreateLocationResponse>, Status> {
        Ok(Response::new(self.do_create_location(r.into_inner()).await?))
    }

    async fn get_location(
        &self,
        r: Request<pb::GetLocationRequest>,
    ) -> Result<Response<pb::GetLocationResponse>, Status> {
        Ok(Response::new(self.do_get_location(r.into_inner()).await?))
    }

    async fn list_locations(
        &self,
        r: Request<pb::ListLocationsRequest>,
    ) -> Result<Response<pb::ListLocationsResponse>, Status> {
        Ok(Response::new(self.do_list_locations(r.into_inner()).await?))
    }

    async fn update_location(
        &self,
        r: Request<pb::UpdateLocationRequest>,
    ) -> Result<Response<pb::UpdateLocationResponse>, Status> {
        Ok(Response::new(self.do_update_location(r.into_inner()).await?))
    }

    async fn delete_location(
        &self,
        r: Request<pb::DeleteLocationRequest>,
    ) -> Result<Response<pb::DeleteLocationResponse>, Status> {
        Ok(Response::new(self.do_delete_location(r.into_inner()).await?))
    }
}
