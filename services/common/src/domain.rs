//! The Phoenix domains: one PostgreSQL schema, one proto package and one gRPC service each.

use std::fmt;
use std::str::FromStr;

/// A Phoenix domain. The order is fixed: it gives each domain its port offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// Identity, tokens, roles and permissions.
    Auth,
    /// Persons, staff, students, guardians, cards, consents.
    Users,
    /// Education groups, teachers, substitutions.
    Education,
    /// Rooms, buildings, locations.
    Facilities,
    /// Activities, categories, enrollments.
    Activities,
    /// Room sessions, visits, attendance, scans, live presence.
    Active,
    /// Timeframes, recurrence, class schedules.
    Schedule,
    /// RFID readers.
    Iot,
    /// Pupil feedback.
    Feedback,
    /// Settings and feature flags.
    Config,
    /// Audit trail and GDPR requests.
    Audit,
}

impl Domain {
    /// Every domain, in port-offset order.
    pub const ALL: [Domain; 11] = [
        Domain::Auth,
        Domain::Users,
        Domain::Education,
        Domain::Facilities,
        Domain::Activities,
        Domain::Active,
        Domain::Schedule,
        Domain::Iot,
        Domain::Feedback,
        Domain::Config,
        Domain::Audit,
    ];

    /// Short name: the schema, the proto package segment and the `--services` word.
    pub const fn name(self) -> &'static str {
        match self {
            Domain::Auth => "auth",
            Domain::Users => "users",
            Domain::Education => "education",
            Domain::Facilities => "facilities",
            Domain::Activities => "activities",
            Domain::Active => "active",
            Domain::Schedule => "schedule",
            Domain::Iot => "iot",
            Domain::Feedback => "feedback",
            Domain::Config => "config",
            Domain::Audit => "audit",
        }
    }

    /// Fully qualified gRPC service name, also the name its health status is reported under.
    pub const fn grpc_service(self) -> &'static str {
        match self {
            Domain::Auth => "phoenix.auth.v1.AuthService",
            Domain::Users => "phoenix.users.v1.UsersService",
            Domain::Education => "phoenix.education.v1.EducationService",
            Domain::Facilities => "phoenix.facilities.v1.FacilitiesService",
            Domain::Activities => "phoenix.activities.v1.ActivitiesService",
            Domain::Active => "phoenix.active.v1.ActiveService",
            Domain::Schedule => "phoenix.schedule.v1.ScheduleService",
            Domain::Iot => "phoenix.iot.v1.IotService",
            Domain::Feedback => "phoenix.feedback.v1.FeedbackService",
            Domain::Config => "phoenix.config.v1.ConfigService",
            Domain::Audit => "phoenix.audit.v1.AuditService",
        }
    }

    /// Offset from `PHOENIX_GRPC_BASE_PORT` at which this domain listens.
    pub fn port_offset(self) -> u16 {
        Domain::ALL.iter().position(|d| *d == self).unwrap_or_default() as u16
    }

    /// Parses `all` or a comma-separated list (`auth,users`) into a sorted, de-duplicated set.
    pub fn parse_list(list: &str) -> Result<Vec<Domain>, String> {
        let list = list.trim();
        if list.eq_ignore_ascii_case("all") {
            return Ok(Domain::ALL.to_vec());
        }
        let mut out = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            out.push(word.parse::<Domain>()?);
        }
        if out.is_empty() {
            return Err("no services named: use `all` or a comma list such as `auth,users`".into());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Domain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            let names: Vec<_> = Domain::ALL.iter().map(|d| d.name()).collect();
            format!("unknown service {s:?}; expected one of: {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_list_accepts_all_and_subsets() {
        assert_eq!(Domain::parse_list("all").expect("all").len(), 11);
        assert_eq!(Domain::parse_list(" users, auth ,users").expect("list"), vec![Domain::Auth, Domain::Users]);
    }

    #[test]
    fn parse_list_names_the_unknown_word() {
        let err = Domain::parse_list("auth,pupils").unwrap_err();
        assert!(err.contains("\"pupils\""), "{err}");
        assert!(Domain::parse_list(" , ").is_err());
    }

    #[test]
    fn offsets_are_distinct_and_service_names_match_packages() {
        for (i, d) in Domain::ALL.iter().enumerate() {
            assert_eq!(d.port_offset() as usize, i);
            assert!(d.grpc_service().starts_with(&format!("phoenix.{}.v1.", d.name())));
        }
    }
}
