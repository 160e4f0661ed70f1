//! The errors of validating what a person gave: a flag's value, or TLS material. Both sides
//! wrap it (`dtr_bootstrap::Error::Input`, `dtr_server::Error::Input`); its `Display` is the
//! one text of each message.

pub type Result<T, E = InputError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A flag (or the environment variable behind it) has a value that cannot be used.
    #[error("invalid value {value:?} for {flag}: {reason}")]
    InvalidValue {
        flag: &'static str,
        value: String,
        reason: String,
    },

    /// A certificate, key or CA bundle that cannot be used, `what` naming which.
    #[error("invalid TLS material ({what}): {reason}")]
    Tls { what: String, reason: String },
}

impl InputError {
    pub fn invalid(
        flag: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> InputError {
        InputError::InvalidValue {
            flag,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The same refusal, named by the flag the user typed (a replica id given to
    /// `--existing-replica-id` is not a `--replica-id` error).
    pub fn for_flag(self, flag: &'static str) -> InputError {
        match self {
            InputError::InvalidValue { value, reason, .. } => InputError::InvalidValue {
                flag,
                value,
                reason,
            },
            other => other,
        }
    }
}
