//! `dtr`: an open replacement for the Docker Trusted Registry bootstrapper.
//!
//! Data flows one way: `cli` (arguments, prompts) → `options` (validated values) → `plan`
//! (pure data: which Docker objects exist) → `engine` (applies a plan through bollard) → `report`.
//! `roles` hold the long-running and in-cluster sides of the same binary (api, jobrunner, phase2).

pub mod backup;
pub mod bundle;
pub mod cli;
pub mod components;
pub mod engine;
pub mod error;
pub mod ops;
pub mod options;
pub mod pki;
pub mod plan;
pub mod report;
pub mod roles;
pub mod secret;
pub mod version;
pub mod version_rules;

pub use error::{Error, Result};
