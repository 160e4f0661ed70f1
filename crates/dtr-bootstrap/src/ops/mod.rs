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
pub mod seed;
pub mod steps;
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

/// A directory under `TMPDIR` (default /tmp) that only this user can enter, created so (mode
/// 0700 from the start, not changed afterwards), and removed when dropped: where backups,
/// restores and image bundles are spooled (a backup's holds private keys). `what` names it in
/// an error.
pub fn private_temp_dir(prefix: &str, what: &str) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir();
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&base)
        .map_err(|e| {
            Error::io(
                format!(
                    "create a temporary directory for {what} in {}",
                    base.display()
                ),
                e,
            )
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn spool_directories_are_private_from_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = super::private_temp_dir("dtr-test-", "a test").unwrap();
        let mode = dir.path().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
