//! The errors of the in-cluster roles. A role logs them and exits non-zero; phase 2's reach
//! the bootstrapper as its stderr, which quotes them. Each names what failed and what it
//! concerned; the text is the `#[error]` line, the only one.

use dtr_core::contract::env::EnvError;
use dtr_core::InputError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The role's environment, set by the install plan, is missing a value or has a bad one.
    #[error(transparent)]
    Env(#[from] EnvError),

    #[error(transparent)]
    Input(#[from] InputError),

    /// An emergency repair left this replica out; it must not start again.
    #[error("this replica no longer belongs to a cluster ({reason}); it must not start again: remove it with dtr destroy")]
    Tombstoned { reason: String },

    /// Certificates, keys or the TLS set-up built from them.
    #[error("TLS ({what}): {reason}")]
    Tls { what: String, reason: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("database: {context}: {message}")]
    Database { context: String, message: String },

    /// A request to another component (`url`) failed or was answered with an error.
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },

    /// A health probe's verdict.
    #[error("unhealthy: {0}")]
    Unhealthy(String),

    /// A file the role reads (`what`) has content it cannot use.
    #[error("{what}: {reason}")]
    BadFile { what: String, reason: String },

    #[error("phase 2 ({step}): {message}")]
    Phase2 { step: String, message: String },

    /// The role was started wrongly (a missing argument of an internal command).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn tls(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Tls {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub fn database(context: impl Into<String>, e: impl ToString) -> Self {
        Error::Database {
            context: context.into(),
            message: e.to_string(),
        }
    }
}
