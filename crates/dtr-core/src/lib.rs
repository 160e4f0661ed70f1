//! What both sides of `dtr` share: the bootstrapper (`dtr-bootstrap`, which creates the Docker
//! objects) and the in-cluster servers (`dtr-server`, which run inside them). Validated option
//! values, the components' names, users and ports, the version and its upgrade rules,
//! `Secret`, certificates, and the *contracts* between the two sides (`contract`): what phase 1
//! hands phase 2, the environment a role is started with, the database's names and schema.
//! No I/O beyond reading a file a caller names; no Docker, no HTTP server, no database client.

pub mod component;
pub mod contract;
pub mod error;
pub mod options;
pub mod pki;
pub mod secret;
pub mod version;
pub mod version_rules;

pub use component::Component;
pub use error::InputError;
pub use secret::Secret;

/// RFC 3339 UTC, second precision: the timestamp of every plain log line, on both sides.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}
