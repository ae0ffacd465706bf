//! A config's violations: what is wrong with one key, and the collector that checks ranges
//! so that every problem is reported in one go.

use serde::Serialize;
use std::fmt;

/// One invalid setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// The TOML key (`funds.max_margin_usage`), or the file itself for syntax errors.
    pub key: String,
    /// The environment variable the value came from, if it came from one.
    pub env: Option<String>,
    /// The value as given.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env {
            Some(env) => write!(
                f,
                "{} (from {env}) = {}: {}",
                self.key, self.value, self.allowed
            ),
            None => write!(f, "{} = {}: {}", self.key, self.value, self.allowed),
        }
    }
}

/// Collects every violation of one config, so that all are reported at once.
#[derive(Default)]
pub(super) struct Validator(Vec<ConfigError>);

impl Validator {
    /// `value` must be in `min..=max`.
    pub(super) fn int(&mut self, key: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.push(
                key,
                value.to_string(),
                format!("an integer from {min} to {max}"),
            );
        }
    }

    /// Numbers are open at the lower bound (a cap of 0 is never meant) and closed at the upper.
    pub(super) fn num(&mut self, key: &str, value: f64, above: f64, max: f64) {
        if !(value.is_finite() && value > above && value <= max) {
            let allowed = format!("a number above {above} and at most {max}");
            self.push(key, value.to_string(), allowed);
        }
    }

    /// `value` must satisfy `ok`.
    pub(super) fn text(
        &mut self,
        key: &str,
        value: &str,
        ok: impl Fn(&str) -> bool,
        allowed: &str,
    ) {
        if !ok(value) {
            self.push(key, format!("{value:?}"), allowed.to_owned());
        }
    }

    /// A violation found by a rule of its own.
    pub(super) fn push(&mut self, key: &str, value: String, allowed: String) {
        self.0.push(ConfigError {
            key: key.to_owned(),
            env: None,
            value,
            allowed,
        });
    }

    /// Every violation found.
    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.0
    }
}
