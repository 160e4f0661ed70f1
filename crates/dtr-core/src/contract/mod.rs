//! The contracts between the bootstrapper and what runs in the containers it makes. Each side
//! builds or reads these values through this module only, so that a change on one side that
//! the other does not follow is a compile error or a failing round-trip test, not a container
//! that cannot start.

pub mod cluster;
pub mod db;
pub mod env;
pub mod etcd_access;
pub mod phase2;
pub mod storage;

/// Where every component sees its replica's `dtr-ca` volume (read-only; phase 2 writes it).
pub const CA_MOUNT: &str = "/ca";

/// The directory of the dtr-ca volume that holds the cluster CA's key (`root/ca-key.pem`).
/// Phase 2 and the bootstrapper's helpers see it; in every component an empty tmpfs covers it.
pub const CA_KEY_DIR: &str = "/ca/root";

/// Where the registry and the jobrunner see the image storage.
pub const STORAGE_MOUNT: &str = "/storage";
