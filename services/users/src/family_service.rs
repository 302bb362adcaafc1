//! `phoenix.users.v1.FamilyService`: a guardian's own children (docs/access.md, the guardian
//! role).
//! Every method answers for the children of the calling account's guardian record
//! ([`phoenix_common::access::guardian_children`]) and nothing else; any other student id,
//! existing or not, is the same `NotFound` ([`crate::access::require_child`]).

use chrono::Utc;
use phoenix_common::Reply;
use phoenix_common::access::{self, Caller};
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::settings::LiveSettings;
use phoenix_common::time::business_date_in;
use phoenix_common::validate::id;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::family_service_server::FamilyService;
use tonic::{Request, Response};

use crate::access::require_child;
use crate::{children, convert, repo};

/// The permission each RPC needs: `family:read`, which the seeded guardian role holds.
pub const FAMILY_METHODS: MethodTable = &[
    ("/phoenix.users.v1.FamilyService/ListMyChildren", Requirement::Permission("family:read")),
    ("/phoenix.users.v1.FamilyService/GetChildPresence", Requirement::Permission("family:read")),
    ("/phoenix.users.v1.FamilyService/GetChildConsent", Requirement::Permission("family:read")),
    ("/phoenix.users.v1.FamilyService/GetChildPickupSchedule", Requirement::Permission("family:read")),
];

/// The family service over a database pool, on the school's calendar.
#[derive(Clone)]
pub struct FamilyApi {
    pool: DbPool,
    settings: LiveSettings,
}

impl std::fmt::Debug for FamilyApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FamilyApi").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl FamilyApi {
    /// A service answering from `pool`; "today" is the date in the school's time zone
    /// (`settings.time_zone()`, the one zone of every domain).
    pub fn new(pool: DbPool, settings: LiveSettings) -> Self {
        Self { pool, settings }
    }
}

#[tonic::async_trait]
impl FamilyService for FamilyApi {
    async fn list_my_children(&self, request: Request<pb::ListMyChildrenRequest>) -> Reply<pb::ListMyChildrenResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let Some(account_id) = caller.account_id else {
            return Ok(Response::new(pb::ListMyChildrenResponse { children: Vec::new() }));
        };
        let mut conn = db::conn(&self.pool).await?;
        let ids = access::guardian_children(&mut conn, account_id).await?;
        let rows = repo::family::children(&mut conn, account_id, &ids).await?;
        Ok(Response::new(pb::ListMyChildrenResponse { children: rows.into_iter().map(convert::child).collect() }))
    }

    async fn get_child_presence(
        &self,
        request: Request<pb::GetChildPresenceRequest>,
    ) -> Reply<pb::GetChildPresenceResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student_id = id("student_id", request.get_ref().student_id)?;
        let mut conn = db::conn(&self.pool).await?;
        require_child(&mut conn, &caller, student_id).await?;
        let presence = children::presence(&mut conn, student_id, self.settings.time_zone(), Utc::now()).await?;
        Ok(Response::new(pb::GetChildPresenceResponse { presence: Some(presence) }))
    }

    async fn get_child_consent(
        &self,
        request: Request<pb::GetChildConsentRequest>,
    ) -> Reply<pb::GetChildConsentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student_id = id("student_id", request.get_ref().student_id)?;
        let mut conn = db::conn(&self.pool).await?;
        require_child(&mut conn, &caller, student_id).await?;
        // The same answer as UsersService.GetPrivacyConsent.
        let consent = match repo::care::newest_accepted_consent(&mut conn, student_id).await? {
            Some(c) => convert::consent(c, Utc::now()),
            None => convert::default_consent(student_id),
        };
        Ok(Response::new(pb::GetChildConsentResponse { consent: Some(consent) }))
    }

    async fn get_child_pickup_schedule(
        &self,
        request: Request<pb::GetChildPickupScheduleRequest>,
    ) -> Reply<pb::GetChildPickupScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student_id = id("student_id", request.get_ref().student_id)?;
        let mut conn = db::conn(&self.pool).await?;
        require_child(&mut conn, &caller, student_id).await?;
        let today = business_date_in(Utc::now(), self.settings.time_zone());
        let entries = repo::care::schedules_of(&mut conn, student_id).await?;
        let exceptions = repo::care::exceptions_from(&mut conn, student_id, today).await?;
        Ok(Response::new(pb::GetChildPickupScheduleResponse {
            entries: entries.into_iter().map(convert::schedule).collect(),
            exceptions: exceptions.into_iter().map(convert::exception).collect(),
        }))
    }
}
