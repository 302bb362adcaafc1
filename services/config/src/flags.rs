//! Feature-flag evaluation: a pure function of the flag's rule and the subject.
//!
//! - `enabled` false → off for everyone.
//! - Otherwise every rule that is set must pass (they combine with AND):
//!   - `roles` non-empty → the subject holds at least one of them (by name);
//!   - `rollout_percentage` set → the subject's bucket for this flag is below
//!     `percentage × 100`, where the bucket is a stable hash of (flag key, subject id) in
//!     `0..10_000`.
//! - No rule set → on for everyone.
//!
//! So roles pick the audience and the percentage samples within it ("10 % of staff"). The
//! hash is SHA-256, not the std hasher, so a subject gets the same answer in every process,
//! on every replica and after every upgrade; hashing the flag key too means the 10 % of one
//! flag are not the same people as the 10 % of another.

use sha2::{Digest as _, Sha256};

/// Buckets per flag: percentages are compared at 0.01 % resolution.
pub const BUCKETS: u32 = 10_000;

/// The stored rule of one flag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlagRule {
    /// Master switch.
    pub enabled: bool,
    /// Share of subjects (0–100) the flag is on for; `None` = no percentage rule.
    pub rollout_percentage: Option<u8>,
    /// Role names; empty = no role rule.
    pub roles: Vec<String>,
}

/// Who a flag is evaluated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Stable identity hashed for the percentage rule: the account id in decimal, or
    /// `service:<client id>` for a service client.
    pub id: String,
    /// Role names the subject holds.
    pub roles: Vec<String>,
}

impl Subject {
    /// A user account with its role names.
    pub fn account(account_id: i64, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { id: account_id.to_string(), roles: roles.into_iter().map(Into::into).collect() }
    }

    /// A service client (holds no roles).
    pub fn service(client_id: &str) -> Self {
        Self { id: format!("service:{client_id}"), roles: Vec::new() }
    }
}

/// Why an evaluation came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The flag is switched off.
    FlagOff,
    /// On, with no role or percentage rule.
    OnForEveryone,
    /// The subject holds none of the flag's roles.
    RoleNotMatched,
    /// The subject's bucket is outside the rollout percentage.
    OutsideRollout,
    /// Every rule that is set passed.
    RulesMatched,
}

/// The result of evaluating a flag for a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// Whether the feature is on for the subject.
    pub enabled: bool,
    /// Why.
    pub reason: Reason,
    /// The subject's bucket for this flag, `0..BUCKETS`.
    pub bucket: u32,
}

/// The subject's stable bucket for `flag_key`: SHA-256 of `flag_key NUL subject_id`, first
/// eight bytes big-endian, modulo [`BUCKETS`].
pub fn bucket(flag_key: &str, subject_id: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(flag_key.as_bytes());
    h.update([0u8]);
    h.update(subject_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder is below BUCKETS, so it always fits a u32.
    u32::try_from(u64::from_be_bytes(first) % u64::from(BUCKETS)).unwrap_or(0)
}

/// Evaluates `rule` of flag `flag_key` for `subject` (see the module docs).
pub fn evaluate(flag_key: &str, rule: &FlagRule, subject: &Subject) -> Evaluation {
    let bucket = bucket(flag_key, &subject.id);
    let reason = if !rule.enabled {
        Reason::FlagOff
    } else if !rule.roles.is_empty() && !subject.roles.iter().any(|r| rule.roles.contains(r)) {
        Reason::RoleNotMatched
    } else if rule.rollout_percentage.is_some_and(|p| bucket >= u32::from(p.min(100)) * (BUCKETS / 100)) {
        Reason::OutsideRollout
    } else if rule.roles.is_empty() && rule.rollout_percentage.is_none() {
        Reason::OnForEveryone
    } else {
        Reason::RulesMatched
    };
    Evaluation { enabled: matches!(reason, Reason::OnForEveryone | Reason::RulesMatched), reason, bucket }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(enabled: bool, pct: Option<u8>, roles: &[&str]) -> FlagRule {
        FlagRule { enabled, rollout_percentage: pct, roles: roles.iter().map(|r| r.to_string()).collect() }
    }

    #[test]
    fn off_on_and_roles() {
        let staff = Subject::account(7, ["staff"]);
        let guest = Subject::account(8, ["guest"]);
        assert_eq!(evaluate("f", &rule(false, None, &[]), &staff).reason, Reason::FlagOff);
        assert_eq!(evaluate("f", &rule(true, None, &[]), &staff).reason, Reason::OnForEveryone);
        assert!(evaluate("f", &rule(true, None, &["staff", "admin"]), &staff).enabled);
        assert_eq!(evaluate("f", &rule(true, None, &["staff"]), &guest).reason, Reason::RoleNotMatched);
        assert_eq!(
            evaluate("f", &rule(true, None, &["staff"]), &Subject::service("gateway")).reason,
            Reason::RoleNotMatched
        );
        // Off wins over every rule.
        assert!(!evaluate("f", &rule(false, Some(100), &["staff"]), &staff).enabled);
    }

    #[test]
    fn percentage_edges_and_and_combination() {
        let s = Subject::account(42, ["staff"]);
        assert_eq!(evaluate("f", &rule(true, Some(0), &[]), &s).reason, Reason::OutsideRollout);
        assert_eq!(evaluate("f", &rule(true, Some(100), &[]), &s).reason, Reason::RulesMatched);
        // Role AND percentage: the right role but percentage 0 → off; the wrong role → off.
        assert!(!evaluate("f", &rule(true, Some(0), &["staff"]), &s).enabled);
        assert_eq!(evaluate("f", &rule(true, Some(100), &["admin"]), &s).reason, Reason::RoleNotMatched);
    }

    #[test]
    fn buckets_are_stable_per_flag_and_differ_between_flags() {
        // Pinned values (also computable with any SHA-256 tool): a change of the hash would
        // silently move every subject between cohorts.
        assert_eq!(bucket("presence.board_v2", "1"), 5046);
        assert_eq!(bucket("presence.board_v2", "2"), 8399);
        assert_eq!(bucket("flag.a", "service:gateway"), 250);
        let a: Vec<u32> = (0..200).map(|i| bucket("flag.a", &i.to_string())).collect();
        let b: Vec<u32> = (0..200).map(|i| bucket("flag.b", &i.to_string())).collect();
        assert!(a.iter().all(|x| *x < BUCKETS));
        assert_ne!(a, b, "cohorts of different flags are independent");
    }

    #[test]
    fn share_in_rollout_is_close_to_the_percentage() {
        for pct in [1u8, 10, 25, 50, 90] {
            let r = rule(true, Some(pct), &[]);
            let on = (0..10_000).filter(|i| evaluate("share.test", &r, &Subject::account(*i, [""; 0])).enabled).count();
            let expected = usize::from(pct) * 100;
            assert!(on.abs_diff(expected) <= 150 + expected / 10, "{pct}%: {on} of 10000");
        }
    }
}
