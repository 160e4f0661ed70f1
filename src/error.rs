//! The library's errors. Each variant carries the object involved (flag, container, port, ...);
//! `report::render` is the one place that turns them into what a person reads, and
//! `Error::exit_code` the one place that maps them to the documented exit codes.

use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One failed preflight check. All of them are collected before anything is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightFailure {
    /// Short check name, e.g. `ports`, `swarm`, `images`.
    pub check: &'static str,
    pub problem: String,
    pub fix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid value {value:?} for {flag}: {reason}")]
    InvalidValue {
        flag: &'static str,
        value: String,
        reason: String,
    },

    #[error("missing required values and no terminal to ask for them")]
    MissingInput {
        missing: Vec<(&'static str, &'static str)>,
    },

    #[error("`{command}` is not available yet in this version of dtr")]
    NotAvailableYet { command: &'static str },

    #[error("{what} is not available yet in this version of dtr")]
    NotImplemented { what: String, hint: String },

    #[error("{flag} is not supported yet by this version of dtr")]
    NotSupportedYet {
        flag: &'static str,
        hint: &'static str,
    },

    #[error("cannot reach the Docker engine at {host}: {source}")]
    EngineUnreachable {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("preflight checks failed")]
    Preflight { failures: Vec<PreflightFailure> },

    #[error("Docker engine refused to {action} {object}: {source}")]
    Docker {
        action: &'static str,
        object: String,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("{container} did not become healthy within {}s", waited.as_secs())]
    Unhealthy {
        container: String,
        waited: Duration,
        last_output: String,
        logs: String,
    },

    #[error("{container} stopped (state {state}, exit code {exit_code})")]
    ContainerStopped {
        container: String,
        state: String,
        exit_code: i64,
        logs: String,
    },

    #[error("phase 2 ({step}) failed: {message}")]
    Phase2 { step: String, message: String },

    #[error("invalid TLS material ({what}): {reason}")]
    Tls { what: String, reason: String },

    #[error("no replica {replica} found on this engine")]
    ReplicaNotFound {
        replica: String,
        existing: Vec<String>,
    },

    #[error("aborted by the user")]
    Aborted,

    #[error("interrupted")]
    Interrupted,

    #[error("{operation} failed")]
    RolledBack {
        operation: &'static str,
        #[source]
        cause: Box<Error>,
        removed: Vec<String>,
        left_behind: Vec<String>,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("database: {context}: {message}")]
    Database { context: String, message: String },

    #[error("{0}")]
    Role(String),

    #[error("`{command}` failed in {container}")]
    ClusterCommand {
        command: String,
        container: String,
        output: String,
    },

    /// A backup archive that cannot be used: damaged, incomplete, undecryptable or of another
    /// version. Nothing was changed.
    #[error("the backup is refused: {reason}")]
    BadBackup { reason: String },

    /// MKE/UCP could not be used: not reachable, its certificate not trusted, or the login
    /// refused. Nothing was changed.
    #[error("MKE/UCP at {url}: {reason}")]
    Mke {
        url: String,
        reason: String,
        hint: String,
    },

    /// An offline image bundle (`dtr images load`) that cannot be used: damaged, truncated,
    /// tampered with, incomplete or of another version. Nothing was loaded.
    #[error("the image bundle is refused: {reason}")]
    BadBundle { reason: String },

    /// The schema migration of an upgrade failed or did not finish in time.
    #[error("the metadatastoremigration job {job} did not complete: {reason}")]
    MigrationFailed { job: i64, reason: String },

    /// The cluster's state does not allow the operation (health, quorum, versions); nothing
    /// was changed.
    #[error("{operation} refused")]
    Refused {
        operation: &'static str,
        reasons: Vec<String>,
        hint: String,
    },
}

/// Documented in docs/cli.md ("Exit codes"); keep both in step.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const PREFLIGHT: i32 = 3;
    pub const NOT_AVAILABLE: i32 = 4;
    pub const MISSING_INPUT: i32 = 5;
    pub const REFUSED: i32 = 6;
    pub const BAD_BACKUP: i32 = 7;
    pub const INTERRUPTED: i32 = 130;
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidValue { .. } | Error::Tls { .. } => exit::USAGE,
            Error::MissingInput { .. } => exit::MISSING_INPUT,
            Error::NotAvailableYet { .. }
            | Error::NotSupportedYet { .. }
            | Error::NotImplemented { .. } => exit::NOT_AVAILABLE,
            Error::Preflight { .. } | Error::EngineUnreachable { .. } | Error::Mke { .. } => {
                exit::PREFLIGHT
            }
            Error::Interrupted => exit::INTERRUPTED,
            Error::Refused { .. } => exit::REFUSED,
            Error::BadBackup { .. } | Error::BadBundle { .. } => exit::BAD_BACKUP,
            Error::RolledBack { cause, .. } => cause.exit_code(),
            _ => exit::FAILED,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn docker(
        action: &'static str,
        object: impl Into<String>,
        source: bollard::errors::Error,
    ) -> Self {
        Error::Docker {
            action,
            object: object.into(),
            source,
        }
    }
}
