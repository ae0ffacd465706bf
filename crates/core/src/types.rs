//! Small domain types shared by every part of the core: symbols, plan ids, sides, trading state.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The first eight bytes as a big-endian integer, zero-padded: where two texts' keys differ,
/// they order as the texts do (the first differing byte decides, and a text that ends first
/// reads as zeros, as a prefix orders first). Equal keys settle nothing (a shorter text padded
/// with zeros and a longer one with real zero bytes have the same key).
#[inline]
fn prefix_key(text: &[u8]) -> u64 {
    match text.first_chunk::<8>() {
        Some(first) => u64::from_be_bytes(*first),
        // Shorter than eight bytes: byte by byte (a copy of variable length calls memcpy).
        None => text
            .iter()
            .enumerate()
            .fold(0, |key, (i, &byte)| key | u64::from(byte) << (56 - 8 * i)),
    }
}

/// Declares a validated identifier that shares its text (`Arc<str>`): a clone (every effect,
/// guard and record names one) is a reference count, and two clones of one value compare equal
/// without reading their text. `$what` names it in errors; `$parse` validates the text.
macro_rules! shared_text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $parse:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `raw`; the error says what is wrong with it.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $parse;
                check(raw).map(|()| $name(Arc::from(raw)))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// The identifier's text, shared rather than copied (a trace fact naming it).
        impl From<&$name> for Arc<str> {
            fn from(id: &$name) -> Arc<str> {
                Arc::clone(&id.0)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }

        impl Eq for $name {}

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            #[inline]
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                if Arc::ptr_eq(&self.0, &other.0) {
                    return std::cmp::Ordering::Equal;
                }
                let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
                // Two different identifiers mostly differ in their first eight bytes (BTCUSDT,
                // BNBUSDT): settled here by one integer comparison, without a call to the
                // library's. The order is the text's either way (see `prefix_key`).
                match prefix_key(a).cmp(&prefix_key(b)) {
                    std::cmp::Ordering::Equal => a.cmp(b),
                    settled => settled,
                }
            }
        }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(&value).map_err(|e| format!("{} {value:?}: {e}", $what))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

shared_text_id!(
    /// A validated exchange symbol such as `BTCUSDT` (`[A-Z0-9]{2,30}`).
    ///
    /// Constructing one is the only way a symbol enters the core, so every symbol downstream
    /// has already been checked.
    Symbol,
    "symbol",
    |raw| {
        let ok_len = (2..=30).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok_len && ok_chars {
            Ok(())
        } else {
            Err("must be 2-30 characters of A-Z and 0-9".to_owned())
        }
    }
);

shared_text_id!(
    /// A validated plan id (`[A-Za-z0-9_.:-]{1,128}`); it is also the order's client id.
    PlanId,
    "plan id",
    |raw| {
        let ok_len = (1..=128).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok_len && ok_chars {
            Ok(())
        } else {
            Err("must be 1-128 characters of A-Z a-z 0-9 _ . : -".to_owned())
        }
    }
);

/// The direction of a position or of an open.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    /// Profits when the price rises.
    Long,
    /// Profits when the price falls.
    Short,
}

impl Side {
    /// +1 for long, -1 for short: the factor of direction-aware correlation and of PnL.
    pub fn sign(self) -> f64 {
        match self {
            Side::Long => 1.0,
            Side::Short => -1.0,
        }
    }

    /// The wire name (`LONG` / `SHORT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Long => "LONG",
            Side::Short => "SHORT",
        }
    }
}

/// The account's trading state: the kill switch.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum TradingState {
    /// Normal trading.
    #[default]
    Active,
    /// Only closes pass; every open is blocked.
    Reducing,
    /// Nothing passes, closes included.
    Halted,
}

impl TradingState {
    /// Reads the `quantum:kill` key's value: `1` (legacy) means HALTED, `0` ACTIVE, and the
    /// three state names are accepted as they are. Anything else is an error, never a default.
    pub fn parse_kill_key(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "1" | "HALTED" => Ok(TradingState::Halted),
            "0" | "ACTIVE" => Ok(TradingState::Active),
            "REDUCING" => Ok(TradingState::Reducing),
            other => Err(format!(
                "quantum:kill = {other:?}: expected 1, 0, ACTIVE, REDUCING or HALTED"
            )),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "ACTIVE",
            TradingState::Reducing => "REDUCING",
            TradingState::Halted => "HALTED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identifiers order as their text does, whichever byte they differ in (the first, a
    /// later one, or only in length) and whether or not they share their text's allocation.
    #[test]
    fn identifiers_order_as_their_text() {
        let names = [
            "BTCUSDT",
            "BNBUSDT",
            "ETHUSDT",
            "ETHUSD",
            "ETHUSDTX",
            "SOLUSDT",
            "1000PEPEUSDT",
            "AUSDT",
            "BTCUSDT",
        ];
        for a in names {
            for b in names {
                let (x, y) = (Symbol::parse(a).unwrap(), Symbol::parse(b).unwrap());
                assert_eq!(x.cmp(&y), a.cmp(b), "{a} vs {b}");
                assert_eq!(x == y, a == b, "{a} vs {b}");
            }
        }
        let one = Symbol::parse("ETHUSDT").unwrap();
        assert_eq!(one.cmp(&one.clone()), std::cmp::Ordering::Equal);
        let ids = [
            "o12_BTCUSDT",
            "o12_ETHUSDT",
            "o1_BTCUSDT",
            "p-1",
            "SYM0USDT",
            "SYM1USDT",
            "SYM0USDTX",
            "SYM0USD",
            "SYM0USDT_2",
            "SYM0USDT_10",
        ];
        for a in ids {
            for b in ids {
                let (x, y) = (PlanId::parse(a).unwrap(), PlanId::parse(b).unwrap());
                assert_eq!(x.cmp(&y), a.cmp(b), "{a} vs {b}");
            }
        }
    }
}
