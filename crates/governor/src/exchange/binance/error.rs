//! What can go wrong talking to Binance, typed by the codes that matter. No variant ever holds
//! the API key, the secret, a signature or a signed URL: messages name the endpoint only.

/// An error of the Binance adapter. Fields: `endpoint` is the path that was called (never the
/// URL with its signature), `msg` Binance's own message, `status` the HTTP status, `code`
/// Binance's error code, `retry_after_secs` its `Retry-After`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[allow(missing_docs)] // the fields are documented above, once for every variant
pub enum BinanceError {
    /// -1021: the request's timestamp is outside the recvWindow (clock drift).
    #[error("{endpoint}: -1021 timestamp outside the recvWindow: {msg}")]
    Timestamp { endpoint: String, msg: String },
    /// -1022: the signature was not accepted (wrong secret).
    #[error("{endpoint}: -1022 signature not valid")]
    Signature { endpoint: String },
    /// -2019: the account cannot margin the order.
    #[error("{endpoint}: -2019 margin is insufficient: {msg}")]
    MarginInsufficient { endpoint: String, msg: String },
    /// -2022: a reduce-only order was rejected (nothing to reduce).
    #[error("{endpoint}: -2022 reduce-only order rejected: {msg}")]
    ReduceOnlyRejected { endpoint: String, msg: String },
    /// -4164: the order's notional is under the symbol's minimum.
    #[error("{endpoint}: -4164 notional under the minimum: {msg}")]
    MinNotional { endpoint: String, msg: String },
    /// -2013: no order with that id exists (asked for by client id: it was never placed).
    #[error("{endpoint}: -2013 order does not exist")]
    NoSuchOrder { endpoint: String },
    /// -1121: the symbol does not exist.
    #[error("{endpoint}: -1121 invalid symbol")]
    InvalidSymbol { endpoint: String },
    /// HTTP 429 still after waiting out `Retry-After` once.
    #[error("{endpoint}: 429 rate limited (Retry-After {retry_after_secs} s): {msg}")]
    RateLimited {
        endpoint: String,
        retry_after_secs: u64,
        msg: String,
    },
    /// HTTP 418: the IP is banned for `retry_after_secs`; nothing is sent until then.
    #[error("{endpoint}: 418 IP banned for {retry_after_secs} s: {msg}")]
    Banned {
        endpoint: String,
        retry_after_secs: u64,
        msg: String,
    },
    /// Any other error Binance answered with.
    #[error("{endpoint}: HTTP {status} code {code}: {msg}")]
    Api {
        endpoint: String,
        status: u16,
        code: i64,
        msg: String,
    },
    /// The request did not get an answer (connection, timeout).
    #[error("{endpoint}: no answer: {reason}")]
    Transport { endpoint: String, reason: String },
    /// The answer was not what Binance documents (a missing or malformed field).
    #[error("{endpoint}: unexpected response: {problem}")]
    BadResponse { endpoint: String, problem: String },
    /// Refused here before any request was sent (filters, missing credentials, a ban).
    #[error("refused before sending: {0}")]
    Refused(String),
}

impl BinanceError {
    /// Binance's error code, where there is one.
    pub fn code(&self) -> Option<i64> {
        Some(match self {
            BinanceError::Timestamp { .. } => -1021,
            BinanceError::Signature { .. } => -1022,
            BinanceError::MarginInsufficient { .. } => -2019,
            BinanceError::ReduceOnlyRejected { .. } => -2022,
            BinanceError::MinNotional { .. } => -4164,
            BinanceError::InvalidSymbol { .. } => -1121,
            BinanceError::NoSuchOrder { .. } => -2013,
            BinanceError::RateLimited { .. } | BinanceError::Banned { .. } => -1003,
            BinanceError::Api { code, .. } => *code,
            _ => return None,
        })
    }

    /// Whether a request that failed this way may still have taken effect. Binance documents
    /// that a 5xx (and -1006 / -1007, "execution status unknown") does not mean failure; no
    /// answer, or an answer that cannot be read, tells nothing either. A 4xx (including 429,
    /// 418 and -1021) is a refusal: the request was not executed.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            BinanceError::Transport { .. } | BinanceError::BadResponse { .. } => true,
            BinanceError::Api { status, code, .. } => {
                *status >= 500 || matches!(*code, -1006 | -1007)
            }
            _ => false,
        }
    }

    /// Maps an error answer to its typed error.
    pub fn from_answer(endpoint: &str, status: u16, code: i64, msg: String) -> Self {
        let endpoint = endpoint.to_owned();
        match code {
            -1021 => BinanceError::Timestamp { endpoint, msg },
            -1022 => BinanceError::Signature { endpoint },
            -2019 => BinanceError::MarginInsufficient { endpoint, msg },
            -2022 => BinanceError::ReduceOnlyRejected { endpoint, msg },
            -4164 => BinanceError::MinNotional { endpoint, msg },
            -1121 => BinanceError::InvalidSymbol { endpoint },
            -2013 => BinanceError::NoSuchOrder { endpoint },
            _ => BinanceError::Api {
                endpoint,
                status,
                code,
                msg,
            },
        }
    }
}
