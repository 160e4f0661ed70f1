//! The operations behind the subcommands. Each is a short composition of shared steps:
//! connect, preflight, plan, apply, wait, report.

pub mod backup;
pub mod cluster;
pub mod config;
pub mod destroy;
pub mod install;
pub mod join;
pub mod offline;
pub mod preflight;
pub mod reconfigure;
pub mod remove;
pub mod repair;
pub mod replace;
pub mod restore;
pub mod upgrade;

use crate::error::{Error, Result};

/// Resolves when the user presses Ctrl-C or the process gets SIGTERM (e.g. `docker stop`).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

/// Runs `work`, turning Ctrl-C/SIGTERM into `Error::Interrupted` (the caller cleans up).
pub async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = shutdown_signal() => Err(Error::Interrupted),
    }
}
