//! The integration tests: one binary (the harness in `common` is compiled once), one module
//! per user story. The modules that drive the Docker engine run one at a time
//! (`.config/nextest.toml`, group `engine`): one engine holds one DTR cluster.

mod common;

mod backup;
mod cli;
mod cli_reference;
mod cli_snapshots;
mod engine;
mod ha;
mod hardening;
mod jobs;
mod mke;
mod mke_standin;
mod multinode;
mod nodes;
mod offline;
mod registry;
mod storage;
mod terminal;
mod upgrade;
