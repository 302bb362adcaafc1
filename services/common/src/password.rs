//! Password hashing: argon2id (m = 64 MiB, t = 3, p = 2, 16-byte salt, 32-byte hash), stored as a PHC string.
//!
//! Every hash and verification holds a permit of one process-wide gate
//! ([`set_concurrency`], `PHOENIX_AUTH_HASH_CONCURRENCY`, default
//! [`DEFAULT_CONCURRENCY`]): each takes 64 MiB, so the bound is what keeps the process
//! inside its memory limit. Request paths use [`hash_async`] / [`verify_async`]: they wait
//! at most [`MAX_WAIT`] for a permit (and not at all when [`MAX_WAITING`] callers already
//! wait), then answer `ResourceExhausted` with a `RetryInfo`. [`running`] and
//! [`peak_running`] report the gate for tests and metrics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::Error;

/// Hashes running at once when nothing is configured: 2 × 64 MiB.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// Longest a request waits for a permit before it is answered `ResourceExhausted`.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
/// Callers waiting at once beyond which a newcomer is refused at once.
pub const MAX_WAITING: usize = 64;
/// The retry hint of a refused caller.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The gate: how many may run, how many run and wait, the most that ever ran at once.
struct Gate {
    state: Mutex<GateState>,
    freed: Condvar,
    limit: AtomicUsize,
    peak: AtomicUsize,
}

struct GateState {
    running: usize,
    waiting: usize,
}

static GATE: Gate = Gate {
    state: Mutex::new(GateState { running: 0, waiting: 0 }),
    freed: Condvar::new(),
    limit: AtomicUsize::new(DEFAULT_CONCURRENCY),
    peak: AtomicUsize::new(0),
};

/// A held permit; dropping it lets the next caller in.
struct Permit;

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = GATE.state.lock().unwrap_or_else(|p| p.into_inner());
        state.running -= 1;
        drop(state);
        GATE.freed.notify_one();
    }
}

/// Why a caller got no permit in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once; retry in {} s", retry_after.as_secs().max(1))]
pub struct Busy {
    /// When to try again.
    pub retry_after: Duration,
}

impl From<Busy> for Error {
    fn from(busy: Busy) -> Self {
        Error::ResourceExhausted { message: busy.to_string(), retry_after: busy.retry_after }
    }
}

/// Waits up to `max_wait` (`None`: as long as it takes) for a permit. Blocking: call it on a
/// blocking thread.
fn acquire(max_wait: Option<Duration>) -> Result<Permit, Busy> {
    let busy = Busy { retry_after: RETRY_AFTER };
    let deadline = max_wait.map(|w| Instant::now() + w);
    let mut state = GATE.state.lock().unwrap_or_else(|p| p.into_inner());
    let full = |s: &GateState| s.running >= GATE.limit.load(Ordering::Relaxed).max(1);
    if full(&state) {
        if max_wait.is_some() && state.waiting >= MAX_WAITING {
            return Err(busy);
        }
        state.waiting += 1;
        while full(&state) {
            state = match deadline {
                None => GATE.freed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.waiting -= 1;
                        return Err(busy);
                    }
                    GATE.freed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
        state.waiting -= 1;
    }
    state.running += 1;
    GATE.peak.fetch_max(state.running, Ordering::Relaxed);
    Ok(Permit)
}

/// Sets how many hashes may run at once in this process (at least 1).
pub fn set_concurrency(limit: usize) {
    GATE.limit.store(limit.max(1), Ordering::Relaxed);
    GATE.freed.notify_all();
}

/// Hashes or verifications running now.
pub fn running() -> usize {
    GATE.state.lock().map(|s| s.running).unwrap_or_default()
}

/// Callers waiting for a permit now.
pub fn waiting() -> usize {
    GATE.state.lock().map(|s| s.waiting).unwrap_or_default()
}

/// How many may run at once ([`set_concurrency`]).
pub fn concurrency() -> usize {
    GATE.limit.load(Ordering::Relaxed).max(1)
}

/// The most that ever ran at once in this process.
pub fn peak_running() -> usize {
    GATE.peak.load(Ordering::Relaxed)
}

fn hasher() -> Argon2<'static> {
    // The parameters are constants known to be valid; `Params::new` only rejects out-of-range values.
    let params = Params::new(64 * 1024, 3, 2, Some(32)).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

fn verify_now(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    if parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(19) {
        return false;
    }
    hasher().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Hashes `password` into an argon2id PHC string with a fresh random salt, waiting as long
/// as it takes for a permit (blocking: start-up, commands, tests).
pub fn hash(password: &str) -> anyhow::Result<String> {
    let _permit = acquire(None)?;
    hash_now(password)
}

/// Verifies `password` against a stored PHC string in constant time, waiting as long as it
/// takes for a permit (blocking). An unparsable or non-argon2id hash never verifies.
pub fn verify(password: &str, stored: &str) -> bool {
    match acquire(None) {
        Ok(_permit) => verify_now(password, stored),
        Err(_) => false,
    }
}

/// [`hash`] on a blocking thread, for request paths: `ResourceExhausted` (with a retry
/// hint) when no permit comes within [`MAX_WAIT`].
pub async fn hash_async(password: String) -> crate::Result<String> {
    tokio::task::spawn_blocking(move || {
        let _permit = acquire(Some(MAX_WAIT)).inspect_err(|_| crate::metrics::argon2_refused())?;
        hash_now(&password).map_err(Error::Internal)
    })
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("password hashing task failed: {e}")))?
}

/// [`verify`] on a blocking thread, for request paths: `ResourceExhausted` (with a retry
/// hint) when no permit comes within [`MAX_WAIT`].
pub async fn verify_async(password: String, stored: String) -> crate::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let _permit = acquire(Some(MAX_WAIT)).inspect_err(|_| crate::metrics::argon2_refused())?;
        Ok(verify_now(&password, &stored))
    })
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("password verification task failed: {e}")))?
}

/// The strength rules: at least 8 characters with an upper-case letter,
/// a lower-case letter, a digit and a character outside `[A-Za-z0-9]`.
pub fn is_strong(password: &str) -> bool {
    password.chars().count() >= 8
        && password.chars().any(|c| c.is_ascii_uppercase())
        && password.chars().any(|c| c.is_ascii_lowercase())
        && password.chars().any(|c| c.is_ascii_digit())
        && password.chars().any(|c| !c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_round_trips_with_the_reference_parameters() {
        let h = hash("Correct-Horse-9").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=2$"), "{h}");
        assert!(verify("Correct-Horse-9", &h));
        assert!(!verify("correct-horse-9", &h));
        assert!(!verify("Correct-Horse-9", "not a hash"));
    }

    #[test]
    fn strength_rules() {
        assert!(is_strong("Abcdef1!"));
        assert!(!is_strong("Abcde1!"), "too short");
        assert!(!is_strong("abcdef1!"), "no upper");
        assert!(!is_strong("ABCDEF1!"), "no lower");
        assert!(!is_strong("Abcdefg!"), "no digit");
        assert!(!is_strong("Abcdefg1"), "no symbol");
    }

    #[test]
    fn a_full_gate_refuses_after_the_wait() {
        // The only test touching the gate's limit (unit tests share one process).
        let permits: Vec<_> = (0..DEFAULT_CONCURRENCY).map(|_| acquire(Some(MAX_WAIT)).expect("permit")).collect();
        let started = Instant::now();
        let refused = acquire(Some(Duration::from_millis(50))).map(|_| ()).expect_err("gate is full");
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(refused.retry_after, RETRY_AFTER);
        let status = tonic::Status::from(Error::from(refused));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        drop(permits);
        assert!(acquire(Some(Duration::from_millis(50))).is_ok(), "a freed permit is taken");
        assert!(peak_running() >= DEFAULT_CONCURRENCY);
    }
}
