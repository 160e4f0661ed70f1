//! The in-cluster sides of `dtr`, run by the same binary inside the containers the
//! bootstrapper made: `dtr api` (the HTTP API and the registry's token service), `dtr
//! jobrunner` (background jobs), `dtr phase2` (work that must happen on the target node,
//! inside the replica's volumes), `dtr join-agent` (a joining replica's way into the cluster, as a
//! swarm task on its node), `dtr db-proxy` (notary's way to the database primary) and
//! `dtr health`. They share only `dtr_core`'s contracts with the bootstrapper: no Docker
//! client, no command-line parsing, no terminal.

pub mod api;
pub mod db;
pub mod dbproxy;
pub mod error;
pub mod etcd;
pub mod etcd_guard;
pub mod health;
pub mod jobrunner;
pub mod jobs;
pub mod join_agent;
pub mod password;
pub mod phase2;
pub mod registry;
pub mod runtime;
pub mod storage;
#[cfg(test)]
mod testing;

pub use error::{Error, Result};
