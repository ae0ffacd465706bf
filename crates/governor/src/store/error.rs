//! What can go wrong with a state store, typed so that callers branch on the kind, never on
//! the text: the store could not be reached, its script is not loaded, it refused the command
//! with an error code, it answered something that does not parse, or a write no replica has
//! confirmed yet. In every case the caller acts on nothing: a plan stays undecided (and, on a
//! stream, unacknowledged), a permit's order is not placed.

use redis::ErrorKind;

/// A state store's failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// Not reachable: connection refused or dropped, a timeout, the server loading or
    /// failing over. Try again later.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The script is not in the server's cache (after a restart or `SCRIPT FLUSH`): load it
    /// and call again.
    #[error("state store script not loaded (NOSCRIPT): {0}")]
    NoScript(String),
    /// The server refused the command with an error reply (`BUSYGROUP`, `WRONGTYPE`, `OOM`…).
    #[error("state store refused the command: {code} {detail}")]
    Refused {
        /// The reply's error code, the first word of the reply.
        code: String,
        /// The rest of the reply.
        detail: String,
    },
    /// An answer or a stored record that does not read as what it must be.
    #[error("state store answered something unreadable: {0}")]
    Corrupt(String),
    /// A write was made but no replica confirmed it in time: a failover could still lose it.
    /// What depended on it (a permit taken for an order) is left undone and tried again.
    #[error("state store write not replicated: {0}")]
    NotReplicated(String),
}

impl StoreError {
    /// An answer or record that does not parse, with what it was.
    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }

    /// The server's error code, when it refused the command.
    pub fn code(&self) -> Option<&str> {
        match self {
            StoreError::Refused { code, .. } => Some(code),
            StoreError::NoScript(_) => Some("NOSCRIPT"),
            _ => None,
        }
    }

    /// The kind as a short label (logs and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::NoScript(_) => "noscript",
            StoreError::Refused { .. } => "refused",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::NotReplicated(_) => "not_replicated",
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        let text = e.to_string();
        let transient = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                ErrorKind::BusyLoadingError
                    | ErrorKind::TryAgain
                    | ErrorKind::ClusterDown
                    | ErrorKind::MasterDown
                    | ErrorKind::ReadOnly
                    | ErrorKind::ClusterConnectionNotFound
                    | ErrorKind::Moved
                    | ErrorKind::Ask
            );
        if e.kind() == ErrorKind::NoScriptError {
            StoreError::NoScript(text)
        } else if transient {
            StoreError::Unavailable(text)
        } else if matches!(e.kind(), ErrorKind::ParseError | ErrorKind::TypeError) {
            StoreError::Corrupt(text)
        } else if let Some(code) = e.code() {
            StoreError::Refused {
                code: code.to_owned(),
                detail: e.detail().unwrap_or_default().to_owned(),
            }
        } else {
            StoreError::Unavailable(text)
        }
    }
}
