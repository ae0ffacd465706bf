//! The admin bearer token of trading-state changes: compared in constant time, never logged,
//! never echoed. Without a configured token every change is refused (fail closed).

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// Why a request may not change the trading state.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer …` header (401).
    Missing,
    /// A token that is not the admin token, or no admin token is configured (403).
    Wrong,
    /// The server has no admin token configured (403).
    NotConfigured,
}

/// Checks the request's bearer token against `expected`.
pub fn check(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Denied> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Denied::Missing)?;
    let expected = expected.ok_or(Denied::NotConfigured)?;
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_checked_exactly() {
        assert_eq!(
            check(&HeaderMap::new(), Some("s3cret")),
            Err(Denied::Missing)
        );
        assert_eq!(
            check(&with("Basic s3cret"), Some("s3cret")),
            Err(Denied::Missing)
        );
        assert_eq!(
            check(&with("Bearer "), Some("s3cret")),
            Err(Denied::Missing)
        );
        assert_eq!(
            check(&with("Bearer s3cre"), Some("s3cret")),
            Err(Denied::Wrong)
        );
        assert_eq!(
            check(&with("Bearer s3cret!"), Some("s3cret")),
            Err(Denied::Wrong)
        );
        assert_eq!(
            check(&with("Bearer s3cret"), None),
            Err(Denied::NotConfigured)
        );
        assert_eq!(check(&with("Bearer s3cret"), Some("s3cret")), Ok(()));
    }
}
