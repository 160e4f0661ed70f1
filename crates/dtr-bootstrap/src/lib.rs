//! The bootstrapper's work, under the command line: data flows one way, validated options
//! (`dtr_core::options`) → `plan` (pure data: which Docker objects exist) → `engine` (the only
//! place that speaks to Docker, through bollard) → `report` (progress and the one place errors
//! become messages). `ops` composes those into the subcommands; `backup` and `bundle` are the
//! archive formats of `dtr backup` and `dtr images save`. Nothing here parses flags or knows
//! the in-cluster servers beyond `dtr_core`'s contracts.

pub mod backup;
pub mod bundle;
pub mod engine;
pub mod error;
pub mod ops;
pub mod plan;
pub mod report;

pub use error::{Error, Result};
