//! The metadata database as both sides name it: the bootstrapper runs `psql` and `pg_dump`
//! against it (backup, restore, upgrade), the api and jobrunner connect to it and migrate it.

/// The database of the api and jobrunner.
pub const DATABASE: &str = "dtr";
/// The role they connect as (by client certificate; `pg_ident` maps their certificates to it).
pub const ROLE: &str = "dtr";

/// The role that owns each database (the rethinkdb image's post-bootstrap makes them so, and the
/// notary schemas are created as them). A restore loads each dump as its owner, never as the
/// superuser: a dump can do no more than the components that use the database.
pub fn owner(database: &str) -> Option<&'static str> {
    match database {
        DATABASE => Some(ROLE),
        "notaryserver" => Some("notaryserver"),
        "notarysigner" => Some("notarysigner"),
        _ => None,
    }
}

/// Each schema version and the first release (`major.minor.patch`) that carries it. The api's
/// migrations (`dtr_server::db`) are these, with their SQL (a test there checks the two lists
/// agree). A bootstrapper of an older release leaves the newer ones out: that is how the test
/// build of the next version (`DTR_TEST_VERSION`) has a real migration the current one lacks.
pub const SCHEMA_VERSIONS: &[(i32, (u64, u64, u64))] = &[
    (1, (0, 1, 0)),
    (2, (0, 1, 0)),
    (3, (0, 1, 0)),
    (4, (0, 1, 0)),
    (5, (0, 2, 0)),
];

/// The schema versions this build carries, in order.
pub fn schema_versions() -> impl Iterator<Item = i32> {
    let release = crate::version::release();
    SCHEMA_VERSIONS
        .iter()
        .filter(move |(_, since)| *since <= release)
        .map(|(v, _)| *v)
}

/// The schema version this build's code is written for: what `dtr upgrade` waits for the
/// metadatastoremigration job to reach.
pub fn schema_target() -> i32 {
    schema_versions().last().unwrap_or(0)
}
