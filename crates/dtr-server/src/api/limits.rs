//! What a login may cost the api. A password check is argon2id (19 MiB, two passes): without a
//! bound, anyone who sends `Authorization: Basic x:y` in parallel makes the api spend memory and
//! CPU at will, and can guess passwords as fast as it checks them. So:
//! - at most [`CONCURRENT_CHECKS`] checks run at once; a request that waits longer than
//!   [`CHECK_WAIT`] for its turn answers 503 `TOO_MANY_LOGINS` (`Retry-After`);
//! - an account with [`ACCOUNT_FAILURES`] failed logins within [`WINDOW`], or a client address
//!   with [`ADDRESS_FAILURES`], answers 429 `TOO_MANY_FAILED_LOGINS` until the oldest of them is
//!   older than the window — without any check, even for the right password;
//! - a password checked successfully is remembered for [`REMEMBER`] (a keyed digest of name,
//!   password and stored hash, never the password): `docker pull` sends it with every token
//!   request, and a changed password changes the stored hash, which forgets it.
//!
//! Access tokens are 256-bit random values checked by a digest lookup: they cost nothing and
//! keep working while their account is locked (an address over its limit is refused first).
//! The counts are per api process: each replica counts its own.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use ring::hmac;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::error::ApiError;

pub const CONCURRENT_CHECKS: usize = 4;
pub const CHECK_WAIT: Duration = Duration::from_secs(3);
pub const WINDOW: Duration = Duration::from_secs(60);
pub const ACCOUNT_FAILURES: usize = 10;
pub const ADDRESS_FAILURES: usize = 30;
pub const REMEMBER: Duration = Duration::from_secs(300);
/// Bounds on what is remembered, so that made-up names cannot grow the maps without end.
const MAX_KEYS: usize = 50_000;
const MAX_REMEMBERED: usize = 10_000;

pub struct LoginLimits {
    checks: Semaphore,
    failures: Mutex<Failures>,
    remembered: Mutex<HashMap<Vec<u8>, Instant>>,
    /// One check at a time per name, password and stored hash: a burst of logins with the same
    /// credentials (a CI fleet pulling at once) costs one check, the others find it remembered.
    flights: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
    key: hmac::Key,
}

#[derive(Default)]
struct Failures {
    accounts: HashMap<String, VecDeque<Instant>>,
    addresses: HashMap<String, VecDeque<Instant>>,
}

/// 429 (with the wait) when `times` holds `limit` failures within the window; `what` names
/// whose failures they are.
fn refuse_if_locked(
    times: Option<&VecDeque<Instant>>,
    limit: usize,
    what: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    let now = Instant::now();
    let recent: Vec<&Instant> = times
        .into_iter()
        .flatten()
        .filter(|t| now.duration_since(**t) < WINDOW)
        .collect();
    if recent.len() < limit {
        return Ok(());
    }
    Err(too_many(
        what(),
        WINDOW.saturating_sub(now.duration_since(*recent[0])),
    ))
}

fn record(map: &mut HashMap<String, VecDeque<Instant>>, key: &str, limit: usize, now: Instant) {
    if map.len() >= MAX_KEYS {
        map.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < WINDOW)
        });
    }
    let times = map.entry(key.to_string()).or_default();
    times.retain(|t| now.duration_since(*t) < WINDOW);
    times.push_back(now);
    while times.len() > limit {
        times.pop_front();
    }
}

fn too_many(what: String, wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + 1;
    ApiError {
        retry_after: Some(seconds),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_FAILED_LOGINS",
            format!("{what}: try again in {seconds} s"),
        )
    }
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            checks: Semaphore::new(CONCURRENT_CHECKS),
            failures: Mutex::new(Failures::default()),
            remembered: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            key: hmac::Key::new(hmac::HMAC_SHA256, &rand::random::<[u8; 32]>()),
        }
    }
}

impl LoginLimits {
    /// 429 when the client address is over its limit of failed logins.
    pub fn check_address(&self, address: &str) -> Result<(), ApiError> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        refuse_if_locked(failures.addresses.get(address), ADDRESS_FAILURES, || {
            format!("too many failed logins from {address}")
        })
    }

    /// 429 when the account is over its limit of failed logins.
    pub fn check_account(&self, account: &str) -> Result<(), ApiError> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        refuse_if_locked(failures.accounts.get(account), ACCOUNT_FAILURES, || {
            format!("too many failed logins for account {account}")
        })
    }

    pub fn failed(&self, account: &str, address: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        record(&mut failures.accounts, account, ACCOUNT_FAILURES, now);
        record(&mut failures.addresses, address, ADDRESS_FAILURES, now);
    }

    /// A turn to run one argon2 computation; 503 when none comes within [`CHECK_WAIT`].
    pub async fn turn(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        match tokio::time::timeout(CHECK_WAIT, self.checks.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "TOO_MANY_LOGINS",
                    "too many password checks are under way: try again in a second",
                )
            }),
        }
    }

    fn digest(&self, account: &str, password: &str, phc: &str) -> Vec<u8> {
        let message = [account, password, phc].join("\0");
        hmac::sign(&self.key, message.as_bytes()).as_ref().to_vec()
    }

    /// Whether this password was checked against this stored hash within [`REMEMBER`].
    pub fn remembered(&self, account: &str, password: &str, phc: &str) -> bool {
        let digest = self.digest(account, password, phc);
        let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        remembered
            .get(&digest)
            .is_some_and(|at| at.elapsed() < REMEMBER)
    }

    /// The lock that checks of these credentials take one at a time.
    pub fn flight(&self, account: &str, password: &str, phc: &str) -> Arc<tokio::sync::Mutex<()>> {
        let digest = self.digest(account, password, phc);
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.len() >= MAX_KEYS {
            flights.retain(|_, f| Arc::strong_count(f) > 1);
        }
        Arc::clone(flights.entry(digest).or_default())
    }

    pub fn remember(&self, account: &str, password: &str, phc: &str) {
        let digest = self.digest(account, password, phc);
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, at| at.elapsed() < REMEMBER);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(digest, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_locked_after_its_failures_and_others_are_not() {
        let limits = LoginLimits::default();
        for _ in 0..ACCOUNT_FAILURES - 1 {
            limits.failed("alice", "10.0.0.1");
        }
        assert!(limits.check_account("alice").is_ok());
        limits.failed("alice", "10.0.0.2");
        let e = limits.check_account("alice").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after.is_some_and(|s| s <= WINDOW.as_secs() + 1));
        assert!(limits.check_account("bob").is_ok());
        assert!(limits.check_address("10.0.0.1").is_ok());
    }

    #[test]
    fn an_address_is_locked_after_its_failures_whatever_the_names() {
        let limits = LoginLimits::default();
        for i in 0..ADDRESS_FAILURES {
            limits.failed(&format!("user{i}"), "10.0.0.9");
        }
        assert!(limits.check_address("10.0.0.9").is_err());
        assert!(limits.check_address("10.0.0.8").is_ok());
        assert!(limits.check_account("user1").is_ok());
    }

    #[test]
    fn a_remembered_password_is_tied_to_the_stored_hash() {
        let limits = LoginLimits::default();
        limits.remember("alice", "pw", "$argon2id$one");
        assert!(limits.remembered("alice", "pw", "$argon2id$one"));
        assert!(!limits.remembered("alice", "pw", "$argon2id$two"));
        assert!(!limits.remembered("alice", "other", "$argon2id$one"));
        assert!(!limits.remembered("bob", "pw", "$argon2id$one"));
    }

    #[tokio::test]
    async fn no_more_checks_than_the_bound_run_at_once() {
        let limits = LoginLimits::default();
        let mut held = Vec::new();
        for _ in 0..CONCURRENT_CHECKS {
            held.push(limits.turn().await.expect("a turn"));
        }
        let e = limits.turn().await.unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        assert!(limits.turn().await.is_ok());
    }
}
