//! `phoenix-active`, `phoenix.active.v1.ActiveService` (schema `active`): room sessions with
//! supervisors and combined groups, `ProcessScan` (the reader hot path, behaviour.md "One
//! scan, step by step"), visits and daily attendance by hand and as lists, a pupil's
//! presence, and analytics. The presence board and `WatchPresence` are a separate service
//! (`PresenceService`, in [`presence`]). House style: `docs/house-style.md`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`ActiveApi`], [`METHODS`] and the tonic impl: the handlers |
//! | [`scan`] | `ProcessScan` in one transaction; [`scan::batch`] commits the scans that queue up together (group commit) |
//! | [`jobs`] | the scheduled jobs: session end, abandoned sweep, attendance close |
//! | [`events`] | the presence event log behind `WatchPresence`, and [`PRESENCE_CHANNEL`] |
//! | [`presence`] | `phoenix.active.v1.PresenceService`: the board and `WatchPresence` |
//! | [`report_service`] | `phoenix.active.v1.ReportService`: monthly reports as streamed files |
//! | [`reports`] | the attendance and room-utilisation reports, CSV and XLSX |
//! | [`correction_service`] | `phoenix.active.v1.CorrectionService`: its handlers |
//! | [`corrections`] | correcting a visit, checking in at a past time (audited) |
//! | [`sessions`] | start (with `force`), end, get, list |
//! | [`supervisors`] | join, leave, claim, replace |
//! | [`combined`] | combined groups of running sessions |
//! | [`visits`] | get, list, manual check-in / check-out / end (the scan's locks) |
//! | [`attendance`] | a pupil's day and state, lists, check-out for the day |
//! | [`student`] | a pupil's presence now, redacted without full access |
//! | [`analytics`] | counts and room utilisation (aggregates only) |
//! | [`scope`] | who may see and change which pupils' presence data |
//! | [`store`] | shared row locks (pupil, session) and look-ups |
//! | [`calendar`] | business days as instants |
//! | [`validate`] | requests → typed commands with field violations |
//! | [`convert`] | domain → proto |
//! | [`repo`] | diesel queries of sessions and scans |

pub mod analytics;
pub mod attendance;
pub mod calendar;
pub mod combined;
pub mod convert;
pub mod correction_service;
pub mod corrections;
pub mod events;
pub mod jobs;
pub mod presence;
pub mod repo;
pub mod report_service;
pub mod reports;
pub mod scan;
pub mod scope;
pub mod service;
pub mod sessions;
pub mod store;
pub mod student;
pub mod supervisors;
pub mod validate;
pub mod visits;

pub use correction_service::{CorrectionApi, METHODS as CORRECTION_METHODS};
pub use events::PRESENCE_CHANNEL;
pub use presence::{METHODS as PRESENCE_METHODS, PresenceSettings};
pub use scan::ScanSettings;
pub use service::{ActiveApi, METHODS};

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_common::settings::LiveSettings;
use phoenix_proto::active::v1::active_service_server::ActiveServiceServer;
use scan::batch::ScanCommitter;

/// Presence settings in the school's time zone, alert thresholds read live from `settings`
/// (the defaults otherwise).
pub fn presence_settings(settings: &LiveSettings) -> PresenceSettings {
    PresenceSettings { live: Some(settings.clone()), ..PresenceSettings::new(settings.time_zone()) }
}

/// This domain in the process: `ActiveService` and `PresenceService`, their permission
/// tables and servers. One presence hub per active server (LISTEN connection, broadcast to
/// watchers), stopped with the process.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Active,
    services: &[
        "phoenix.active.v1.ActiveService",
        "phoenix.active.v1.PresenceService",
        "phoenix.active.v1.CorrectionService",
        "phoenix.active.v1.ReportService",
    ],
    methods: &[METHODS, PRESENCE_METHODS, CORRECTION_METHODS, report_service::METHODS],
    add: add_servers,
    jobs: jobs::specs,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let settings = LiveSettings::of(ctx);
        let scans = ScanCommitter::start(
            ctx.pool.clone(),
            settings.clone(),
            ctx.config.scan_committers,
            ctx.config.scan_batch_max,
        );
        let active = ActiveServiceServer::new(
            ActiveApi::new(ctx.pool.clone(), settings.clone(), scans).with_reads(ctx.read.clone()),
        );
        routes.add_service(Authorized::new(active, METHODS, ctx.verifier.clone())?);
        let presence = presence::server(
            ctx.pool.clone(),
            presence_settings(&settings),
            ctx.shutdown.child_token(),
            ctx.verifier.clone(),
        );
        routes.add_service(Authorized::new(presence, PRESENCE_METHODS, ctx.verifier.clone())?);
        let corrections = phoenix_proto::active::v1::correction_service_server::CorrectionServiceServer::new(
            CorrectionApi::new(ctx.pool.clone(), phoenix_common::settings::LiveSettings::of(ctx)),
        );
        routes.add_service(Authorized::new(corrections, CORRECTION_METHODS, ctx.verifier.clone())?);
        let reports = phoenix_proto::active::v1::report_service_server::ReportServiceServer::new(
            report_service::ReportApi::new(ctx.pool.clone(), settings.clone()).with_reads(ctx.read.clone()),
        );
        routes.add_service(Authorized::new(reports, report_service::METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
