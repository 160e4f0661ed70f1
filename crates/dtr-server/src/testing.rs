//! What the tests of this crate need from outside: the servers `scripts/test-servers.sh`
//! starts (a scratch PostgreSQL, distribution's binary), named by environment variables.

/// The value of `var`. Missing, it fails the test under `CI=true` (or `DTR_REQUIRE_ENGINE=1`,
/// as `scripts/test.sh` sets); elsewhere the test says it is skipped and `None` is returned.
pub fn required_env(var: &str) -> Option<String> {
    if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
        return Some(v);
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("DTR_REQUIRE_ENGINE").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{var} is not set: run the tests through scripts/test.sh, or source scripts/test-servers.sh first"
    );
    eprintln!("skipped: {var} is not set (source scripts/test-servers.sh; CI fails here)");
    None
}
