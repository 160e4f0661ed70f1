//! The in-cluster and long-running sides of the binary: `dtr phase2` (work that must happen on the
//! target node, inside the replica's volumes), `dtr api`, `dtr jobrunner` and their `dtr health`.

pub mod api;
pub mod db;
pub mod dbproxy;
pub mod health;
pub mod jobrunner;
pub mod jobs;
pub mod phase2;
pub mod runtime;
