//! The bootstrapper's errors. Each variant carries the object involved (flag, container, port,
//! replica, ...). `report::render` is the one place that turns them into what a person reads
//! (what failed, which object, what to do next) and is also their `Display`; `exit_code` is
//! the one place that maps them to the documented exit codes.

use std::time::Duration;

use dtr_core::InputError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The engine's own error, kept as the cause (bollard's type stays inside this crate).
pub type EngineCause = Box<dyn std::error::Error + Send + Sync>;

/// One failed preflight check. All of them are collected before anything is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightFailure {
    /// Short check name, e.g. `ports`, `swarm`, `images`.
    pub check: &'static str,
    pub problem: String,
    pub fix: String,
}

/// What kind of refusal a Docker engine error is, classified once where the engine layer
/// receives it (`engine::classify`), so that callers match on it instead of on its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerFailure {
    /// The object does not exist (404).
    NotFound,
    /// A host port the container publishes is taken.
    PortInUse,
    /// MKE's scheduler may not place the container on any node it is allowed to use.
    SchedulingRefused,
    /// A network still has endpoints (of containers just removed).
    ActiveEndpoints,
    /// A container's network is not known to its node (yet): on an attachable overlay, right
    /// after the node's last container on it left, the node forgets the network for a moment.
    NetworkNotFound,
    /// The engine refused the credentials (or MKE in front of it did).
    Unauthorized,
    /// A volume could not be mounted when the container started (an NFS export, usually).
    MountFailed,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value or TLS material that cannot be used (`dtr_core` validates them).
    Input(#[from] InputError),

    MissingInput {
        missing: Vec<(&'static str, &'static str)>,
    },

    NotAvailableYet {
        command: &'static str,
    },

    NotImplemented {
        what: String,
        hint: String,
    },

    NotSupportedYet {
        flag: &'static str,
        hint: &'static str,
    },

    EngineUnreachable {
        host: String,
        #[source]
        source: EngineCause,
    },

    Preflight {
        failures: Vec<PreflightFailure>,
    },

    Docker {
        action: &'static str,
        object: String,
        kind: DockerFailure,
        #[source]
        source: EngineCause,
    },

    Unhealthy {
        container: String,
        waited: Duration,
        last_output: String,
        logs: String,
    },

    ContainerStopped {
        container: String,
        state: String,
        exit_code: i64,
        logs: String,
    },

    Phase2 {
        step: String,
        message: String,
    },

    ReplicaNotFound {
        replica: String,
        existing: Vec<String>,
    },

    Aborted,

    Interrupted,

    RolledBack {
        operation: &'static str,
        #[source]
        cause: Box<Error>,
        removed: Vec<String>,
        left_behind: Vec<String>,
    },

    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A command run inside a component container (`etcdctl`, `psql`, Patroni's API) failed
    /// or answered something unusable.
    ClusterCommand {
        command: String,
        container: String,
        output: String,
    },

    /// A replica whose containers or volumes do not say what this operation needs to know
    /// about it (a missing mount, file or setting); nothing was changed.
    BrokenReplica {
        replica: String,
        problem: String,
    },

    /// The cluster did not reach a state the operation waits for in time.
    TimedOut {
        waiting_for: String,
        waited: Duration,
        hint: String,
    },

    /// The NFS export of the image storage could not be mounted on the node.
    NfsMount {
        url: String,
        volume: String,
        reason: String,
    },

    /// The operation's own work was done, but these objects could not be removed.
    LeftBehind {
        operation: &'static str,
        objects: Vec<String>,
    },

    /// A backup archive that cannot be used: damaged, incomplete, undecryptable or of another
    /// version. Nothing was changed.
    BadBackup {
        reason: String,
    },

    /// MKE/UCP could not be used: not reachable, its certificate not trusted, or the login
    /// refused. Nothing was changed.
    Mke {
        url: String,
        reason: String,
        hint: String,
    },

    /// An offline image bundle (`dtr images load`) that cannot be used: damaged, truncated,
    /// tampered with, incomplete or of another version. Nothing was loaded.
    BadBundle {
        reason: String,
    },

    /// The schema migration of an upgrade failed or did not finish in time.
    MigrationFailed {
        job: i64,
        reason: String,
    },

    /// The cluster's state does not allow the operation (health, quorum, versions); nothing
    /// was changed.
    Refused {
        operation: &'static str,
        reasons: Vec<String>,
        hint: String,
    },

    /// Something that cannot happen did: a bug in dtr, `what` saying where.
    Bug {
        what: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::report::render(self))
    }
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
            Error::Input(_) => exit::USAGE,
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

    /// The first line of the message: for a step's one-line failure.
    pub fn summary(&self) -> String {
        crate::report::render(self)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    pub fn invalid(
        flag: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Input(InputError::invalid(flag, value, reason))
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether this is the engine's "no such object".
    pub fn is_docker(&self, kind: DockerFailure) -> bool {
        matches!(self, Error::Docker { kind: k, .. } if *k == kind)
    }
}
