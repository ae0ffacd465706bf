//! Starting the Binance adapter from a configuration: the venue (base URLs, credentials, the
//! withdrawal check, the first clock measurement) and the market inputs it serves for the
//! symbols of the policy universe.

use super::client::{
    check_base_url, BinanceClient, Credentials, PRODUCTION_URL, SPOT_URL, TESTNET_URL,
};
use super::market::BinanceMarket;
use super::venue::BinanceVenue;
use crate::inputs::InputsSource;
use crate::store::StoreError;
use governor_core::config::RegimeReference;
use governor_core::snapshot::Policy;
use governor_core::types::Symbol;
use std::sync::{Arc, Mutex};

/// The Binance adapter of a configuration: the base URL of `binance.base_url`, else testnet or
/// production by `mode`; the key and secret from the environment only (in testnet mode the
/// testnet pair and only it). Refuses to start — the error says why — on a plain-`http` base
/// URL that is not loopback, and in production mode on a key that can withdraw or whose
/// restrictions cannot be read. The clock offset is measured once here (a failure is logged;
/// opens are refused until it is measured, and requests re-sync on -1021).
pub fn venue(
    cfg: &governor_core::Config,
    env: &[(String, String)],
) -> anyhow::Result<BinanceVenue> {
    let testnet = cfg.mode == governor_core::config::Mode::Testnet;
    let base = cfg
        .binance
        .base_url
        .clone()
        .unwrap_or_else(|| if testnet { TESTNET_URL } else { PRODUCTION_URL }.to_owned());
    let spot = cfg
        .binance
        .spot_base_url
        .clone()
        .unwrap_or_else(|| SPOT_URL.to_owned());
    check_base_url(&base).map_err(|e| anyhow::anyhow!("binance.base_url: {e}"))?;
    check_base_url(&spot).map_err(|e| anyhow::anyhow!("binance.spot_base_url: {e}"))?;
    let credentials = Credentials::from_env(testnet, env).map_err(|e| anyhow::anyhow!(e))?;
    let client = BinanceClient::new(&base, Some(credentials)).with_spot_base(&spot);
    if !testnet {
        match client.key_can_withdraw() {
            Ok(false) => crate::logfmt::line(
                "BINANCE_KEY_CHECKED",
                &[("withdrawals", "disabled".to_owned())],
            ),
            Ok(true) => anyhow::bail!(
                "the Binance API key can withdraw (enableWithdrawals=true at {spot}/sapi/v1/account/apiRestrictions): \
                 production mode trades only with a key whose withdrawal permission is off"
            ),
            Err(e) => anyhow::bail!(
                "cannot read the Binance API key's restrictions, so cannot prove it cannot withdraw: {e}"
            ),
        }
    }
    match client.sync_time() {
        Ok(offset) => crate::logfmt::line(
            "BINANCE_CLOCK",
            &[("base", base.clone()), ("offset_ms", offset.to_string())],
        ),
        Err(e) => crate::logfmt::line("BINANCE_CLOCK_FAILED", &[("error", e.to_string())]),
    }
    Ok(BinanceVenue {
        client: std::sync::Arc::new(client),
    })
}

/// Reads the policy universe (the store's strict reading of `policy:current`).
pub type UniverseSource = Arc<dyn Fn() -> Result<Policy, StoreError> + Send + Sync>;

/// Market and account from Binance for the symbols of the policy universe (and the regime
/// reference), klines fetched once per bar. A universe that cannot be used is logged
/// (`POLICY_UNUSABLE`, once per distinct reason) and only the reference is fetched: the policy
/// gate refuses opens with the same reason, so nothing is traded on a guessed universe.
pub fn inputs(
    cfg: &governor_core::Config,
    venue: &BinanceVenue,
    universe: UniverseSource,
) -> Arc<dyn InputsSource> {
    let reference = match &cfg.regime.reference {
        RegimeReference::Symbol(s) => Some(s.clone()),
        RegimeReference::Candidate => None,
    };
    let last_complaint = Mutex::new(None::<String>);
    let symbols = Arc::new(move || {
        let (mut list, complaint) = symbols_of(universe());
        let mut last = last_complaint.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &complaint {
            if last.as_ref() != Some(why) {
                crate::logfmt::line("POLICY_UNUSABLE", &[("reason", why.clone())]);
            }
        }
        *last = complaint;
        list.extend(reference.clone());
        list.sort();
        list.dedup();
        list
    });
    Arc::new(BinanceMarket::new(
        venue.clone(),
        symbols,
        cfg.correlation.window as usize,
    ))
}

/// The symbols a universe names, and why none are, when it cannot be used.
fn symbols_of(policy: Result<Policy, StoreError>) -> (Vec<Symbol>, Option<String>) {
    match policy {
        Ok(Policy::Universe(symbols)) => (symbols.into_iter().collect(), None),
        Ok(Policy::Missing) => (
            Vec::new(),
            Some("policy:current has no universe_symbols".to_owned()),
        ),
        Ok(Policy::Invalid(why)) => (
            Vec::new(),
            Some(format!("universe_symbols unusable: {why}")),
        ),
        Err(e) => (Vec::new(), Some(format!("policy unreadable: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_invalid_symbol_makes_the_universe_unusable_and_says_which() {
        let policy = Policy::from_field(Some(r#"["BTCUSDT","btc usdt","ETHUSDT"]"#));
        let (symbols, why) = symbols_of(Ok(policy));
        assert!(
            symbols.is_empty(),
            "no shorter list is guessed: {symbols:?}"
        );
        let why = why.expect("the reason is given");
        assert!(why.contains("btc usdt"), "{why}");
    }

    #[test]
    fn a_valid_universe_is_fetched_and_a_dead_store_is_said() {
        let policy = Policy::from_field(Some(r#"["ETHUSDT","BTCUSDT"]"#));
        let (symbols, why) = symbols_of(Ok(policy));
        let names: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
        assert_eq!((names, why), (vec!["BTCUSDT", "ETHUSDT"], None));
        let (symbols, why) = symbols_of(Err(StoreError::Unavailable("refused".to_owned())));
        assert!(symbols.is_empty());
        assert!(why.unwrap().contains("refused"));
    }
}
