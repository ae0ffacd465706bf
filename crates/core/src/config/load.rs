//! Loading: the file's text and the environment's pairs become one validated config, or the
//! full list of what is wrong. Pure: the caller hands in both, so a test can check every
//! override without touching the process environment.

use super::env::{env_table, env_value, ENV_SECRETS};
use super::sections::Config;
use super::validate::ConfigError;
use std::collections::BTreeMap;

impl Config {
    /// Builds the effective config from an optional TOML text and the environment's pairs.
    /// Returns every problem found, or the validated config.
    pub fn load(
        toml_text: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Config, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut table = match toml_text.map(str::parse::<toml::Table>) {
            None => toml::Table::new(),
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                return Err(vec![ConfigError {
                    key: "<file>".to_owned(),
                    env: None,
                    value: "(not valid TOML)".to_owned(),
                    allowed: e.to_string().trim().to_owned(),
                }])
            }
        };
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        let names = env_table();
        for (name, raw) in env {
            if let Some((env_name, key, kind)) = names.iter().find(|(e, _, _)| e == name) {
                match env_value(*kind, raw) {
                    Ok(v) => match insert_path(&mut table, key, v) {
                        Ok(()) => {
                            origin.insert(key.to_owned(), env_name.to_owned());
                        }
                        Err(allowed) => errors.push(ConfigError {
                            key: key.to_owned(),
                            env: Some(name.clone()),
                            value: raw.clone(),
                            allowed,
                        }),
                    },
                    Err(allowed) => errors.push(ConfigError {
                        key: key.to_owned(),
                        env: Some(name.clone()),
                        value: raw.clone(),
                        allowed,
                    }),
                }
            } else if name.starts_with("GOV_") && !ENV_SECRETS.contains(&name.as_str()) {
                errors.push(ConfigError {
                    key: "<environment>".to_owned(),
                    env: Some(name.clone()),
                    value: "(set)".to_owned(),
                    allowed: "not a known GOV_ setting (a typo?); see the README's list".to_owned(),
                });
            }
        }

        // Check each key on its own so that every bad key is reported, not just the first;
        // the keys that are fine are then validated together, so range errors come too.
        // Every key is checked on top of the defaults, so that a partial table (one rung of
        // the heat ladder) keeps the defaults of its other keys.
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        let known = known_keys();
        let mut user_leaves = Vec::new();
        leaves("", &table, &mut user_leaves);
        let mut usable = defaults.clone();
        for (path, value) in &user_leaves {
            let env = origin.get(path).cloned();
            if !known.iter().any(|k| k == path) {
                errors.push(ConfigError {
                    key: path.clone(),
                    env,
                    value: value.to_string(),
                    allowed: "unknown key; `config check` with no file lists every known key"
                        .to_owned(),
                });
                continue;
            }
            let mut single = defaults.clone();
            let checked = insert_path(&mut single, path, value.clone()).and_then(|()| {
                single
                    .try_into::<Config>()
                    .map_err(|e| e.message().trim().to_owned())
            });
            match checked.and_then(|_| insert_path(&mut usable, path, value.clone())) {
                Ok(()) => {}
                Err(allowed) => errors.push(ConfigError {
                    key: path.clone(),
                    env,
                    value: value.to_string(),
                    allowed,
                }),
            }
        }
        let config: Config = usable.try_into().expect("every key was checked on its own");
        for mut problem in config.validate() {
            problem.env = origin.get(&problem.key).cloned();
            errors.push(problem);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// The effective config as TOML (contains no secrets: they are not part of it).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config always serializes")
    }
}

impl Config {
    /// This config with `key` (`section.field`, or a top-level field) set to `raw`, read as a
    /// TOML value (a number, `true`/`false`, or else text), then checked as a whole. The error
    /// names the key and the value: an unknown key, a value of the wrong kind, or one out of
    /// range.
    pub fn with_setting(&self, key: &str, raw: &str) -> Result<Config, String> {
        let mut table: toml::Table = toml::Table::try_from(self).expect("the config serializes");
        let mut cur = &table;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            match cur.get(*part) {
                Some(toml::Value::Table(t)) if i + 1 < parts.len() => cur = t,
                Some(v) if i + 1 == parts.len() && !v.is_table() => {}
                // Optional settings left unset are absent from the serialized config; a field
                // that does not exist is refused by the section's own parser, naming the ones
                // that do.
                None if i + 1 == parts.len() && i > 0 => {}
                _ => return Err(format!("{key}: no such config key")),
            }
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
        insert_path(&mut table, key, value).map_err(|e| format!("{key}: {e}"))?;
        let cfg: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| format!("{key} = {raw}: {}", e.message()))?;
        match cfg.validate().as_slice() {
            [] => Ok(cfg),
            errors => Err(errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }
}

/// Sets `path` (`section.key`) in `table`; the error says which part is a value where a
/// section is needed (`slots = 1` in the file, then `GOV_ACTIVE_SLOTS_BASE`).
fn insert_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a key has at least one part");
    let mut cur = table;
    for part in parts {
        cur = cur
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| {
                format!("`{part}` is a value here, but `{path}` needs it to be a [{part}] section")
            })?;
    }
    cur.insert(last.to_owned(), value);
    Ok(())
}

fn leaves(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => leaves(&path, t, out),
            other => out.push((path, other.clone())),
        }
    }
}

fn known_keys() -> Vec<String> {
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
    let mut out = Vec::new();
    leaves("", &defaults, &mut out);
    let mut keys: Vec<String> = out.into_iter().map(|(k, _)| k).collect();
    // Optional keys have no default value, so they do not appear in the serialized defaults.
    keys.push("binance.base_url".to_owned());
    keys.push("binance.spot_base_url".to_owned());
    keys.push("side_slots.max_long".to_owned());
    keys.push("side_slots.max_short".to_owned());
    keys
}

#[cfg(test)]
mod setting_tests {
    use super::*;

    #[test]
    fn one_setting_changes_and_a_bad_one_is_refused_naming_it() {
        let base = Config::default();
        let c = base.with_setting("correlation.max", "0.7").unwrap();
        assert_eq!(c.correlation.max, 0.7);
        assert_eq!(c.slots, base.slots, "nothing else changes");
        let c = base
            .with_setting("liquidation.margin_mode", "isolated")
            .unwrap();
        assert_eq!(
            c.liquidation.margin_mode,
            crate::config::MarginMode::Isolated
        );
        assert_eq!(
            base.with_setting("side_slots.max_long", "2")
                .unwrap()
                .side_slots
                .max_long,
            Some(2)
        );
        for (key, raw, says) in [
            (
                "correlation.maximum",
                "0.7",
                "unknown field `maximum`, expected one of `max`",
            ),
            (
                "corelation.max",
                "0.7",
                "corelation.max: no such config key",
            ),
            ("correlation", "0.7", "correlation: no such config key"),
            ("correlation.max", "high", "correlation.max = high"),
            ("correlation.max", "7", "correlation.max"),
        ] {
            let err = base.with_setting(key, raw).unwrap_err();
            assert!(err.contains(says), "{key}={raw}: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HeatMode, Mode};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_shadowable_gate_mode_has_its_environment_name_and_no_integrity_gate_does() {
        // Written out by hand, not derived: the names the deployment sets.
        let shadowable = [
            "policy",
            "drift",
            "kill_score",
            "cooldown",
            "rate_limit",
            "slots",
            "correlation",
            "margin",
            "fund_caps",
            "capital",
            "drawdown_halt",
            "loss_streak",
            "price_collar",
            "leverage_cap",
            "side_slots",
            "submit_throttle",
        ];
        for field in shadowable {
            let name = format!("GOV_GATE_{}_MODE", field.to_uppercase());
            let c = Config::load(None, &env(&[(&name, "shadow")])).unwrap();
            let set = toml::Value::try_from(&c.gates).unwrap();
            assert_eq!(set[field].as_str(), Some("shadow"), "{name}");
        }
        for field in ["trading_state", "exchange_state", "market_data", "close"] {
            let name = format!("GOV_GATE_{}_MODE", field.to_uppercase());
            let errors = Config::load(None, &env(&[(&name, "enforce")])).unwrap_err();
            assert_eq!(errors[0].env.as_deref(), Some(name.as_str()), "{errors:?}");
            assert!(
                errors[0].allowed.contains("not a known GOV_ setting"),
                "{errors:?}"
            );
        }
    }

    /// The exit lock must outlive the permit by more than an order's reach (5 s): with the
    /// permit's 60 s, 66 s passes and 65 s is refused, naming the key and the value.
    #[test]
    fn an_exit_lock_that_the_permit_outlives_is_refused() {
        let ok = Config::load(None, &env(&[("GOV_PERMIT_TTL", "60")]));
        assert!(ok.is_ok());
        let mut c = Config {
            exit_lock_ttl_secs: 66,
            ..Config::default()
        };
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        c.exit_lock_ttl_secs = 65;
        let errors = c.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "exit_lock_ttl_secs");
        assert_eq!(errors[0].value, "65");
        assert!(
            errors[0].allowed.contains("permit_ttl_secs (60)"),
            "{errors:?}"
        );
    }

    #[test]
    fn defaults_are_the_original_systems_and_valid() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c.slots.base, 4);
        assert_eq!(c.slots.trend_strong, 6);
        assert_eq!(c.slots.chop, 3);
        assert_eq!(c.slots.hard_cap, 10);
        assert_eq!(c.slots.rotation_threshold, 0.15);
        assert_eq!(c.correlation.max, 0.80);
        assert_eq!(c.funds.max_margin_usage, 0.65);
        assert_eq!(c.funds.max_open_positions, 10);
        assert_eq!(c.funds.max_notional_per_trade_usdt, 200.0);
        assert_eq!(c.funds.max_total_notional_usdt, 2000.0);
        assert_eq!(c.cadence.symbol_cooldown_secs, 60);
        assert_eq!(
            (c.cadence.max_exec_per_hour, c.cadence.max_exec_per_5min),
            (3, 2)
        );
        assert_eq!(c.permit_ttl_secs, 60);
        assert_eq!(c.key_prefix, "quantum:");
    }

    #[test]
    fn every_contract_environment_name_takes_effect() {
        let c = Config::load(
            None,
            &env(&[
                ("GOV_ACTIVE_SLOTS_ENABLED", "false"),
                ("GOV_ACTIVE_SLOTS_BASE", "5"),
                ("GOV_ACTIVE_SLOTS_TREND_STRONG", "7"),
                ("GOV_ACTIVE_SLOTS_CHOP", "2"),
                ("GOV_ROTATION_THRESHOLD", "0.2"),
                ("GOV_MAX_CORRELATION", "0.7"),
                ("GOV_ROTATION_LOCK_TTL", "90"),
                ("GOV_MAX_MARGIN_USAGE_PCT", "0.5"),
                ("GOV_MAX_OPEN_POSITIONS", "8"),
                ("GOV_MAX_NOTIONAL_PER_TRADE_USDT", "150"),
                ("GOV_MAX_TOTAL_NOTIONAL_USDT", "1500"),
                ("GOV_SYMBOL_COOLDOWN_SECONDS", "30"),
                ("GOV_MAX_EXEC_PER_HOUR", "6"),
                ("GOV_MAX_EXEC_PER_5MIN", "4"),
                ("GOV_PERMIT_TTL", "45"),
                ("GOV_KEY_PREFIX", "quantum:{acct1}:"),
                ("GOV_BINANCE_BASE_URL", "http://127.0.0.1:9"),
                ("GOV_TESTNET_ENABLE_P29", "true"),
                ("GOV_MODE", "production"),
                ("P26_MODE", "enforce"),
                ("GOV_ADMIN_TOKEN", "secret-not-in-config"),
            ]),
        )
        .unwrap();
        assert!(!c.slots.enabled);
        assert_eq!(
            (c.slots.base, c.slots.trend_strong, c.slots.chop),
            (5, 7, 2)
        );
        assert_eq!(c.slots.rotation_threshold, 0.2);
        assert_eq!(c.correlation.max, 0.7);
        assert_eq!(c.slots.rotation_lock_ttl_secs, 90);
        assert_eq!(c.funds.max_margin_usage, 0.5);
        assert_eq!(c.funds.max_open_positions, 8);
        assert_eq!(c.funds.max_notional_per_trade_usdt, 150.0);
        assert_eq!(c.funds.max_total_notional_usdt, 1500.0);
        assert_eq!(c.cadence.symbol_cooldown_secs, 30);
        assert_eq!(
            (c.cadence.max_exec_per_hour, c.cadence.max_exec_per_5min),
            (6, 4)
        );
        assert_eq!(c.permit_ttl_secs, 45);
        assert_eq!(c.key_prefix, "quantum:{acct1}:");
        assert_eq!(c.binance.base_url.as_deref(), Some("http://127.0.0.1:9"));
        assert!(c.binance.testnet_enable_p29);
        assert_eq!(c.mode, Mode::Production);
        assert_eq!(c.heat.mode, HeatMode::Enforce);
        assert!(!c.to_toml().contains("secret-not-in-config"));
    }

    #[test]
    fn a_value_where_the_environment_needs_a_section_is_an_error_not_a_panic() {
        let errors = Config::load(
            Some("slots = 1\n"),
            &env(&[
                ("GOV_ACTIVE_SLOTS_BASE", "5"),
                ("GOV_MAX_CLOCK_OFFSET_MS", "+5"),
            ]),
        )
        .unwrap_err();
        let base = errors
            .iter()
            .find(|e| e.key == "slots.base")
            .unwrap_or_else(|| panic!("{errors:?}"));
        assert_eq!(base.env.as_deref(), Some("GOV_ACTIVE_SLOTS_BASE"));
        assert!(base.allowed.contains("[slots] section"), "{base:?}");
        assert!(
            errors.iter().any(|e| e.key == "slots"),
            "the file's `slots = 1` too"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.env.as_deref() == Some("GOV_MAX_CLOCK_OFFSET_MS")),
            "environment integers follow the number grammar: {errors:?}"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = Config::load(
            Some("[funds]\nmax_open_positions = 7\n"),
            &env(&[("GOV_MAX_OPEN_POSITIONS", "9")]),
        )
        .unwrap();
        assert_eq!(c.funds.max_open_positions, 9);
    }

    #[test]
    fn every_invalid_key_is_reported_with_value_and_range() {
        let errors = Config::load(
            Some(
                "mode = \"paper\"\nbogus = 1\n[funds]\nmax_margin_usage = 65.0\nmax_open_positons = 3\n\
                 [slots]\nbase = 0\n[correlation]\nmax = \"high\"\n",
            ),
            &env(&[("GOV_MAX_EXEC_PER_HOUR", "three"), ("GOV_MAX_OPEN_POSITION", "3")]),
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        for expected in [
            "mode",
            "bogus",
            "funds.max_open_positons",
            "correlation.max",
            "cadence.max_exec_per_hour",
            "<environment>",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
        let env_err = errors
            .iter()
            .find(|e| e.key == "cadence.max_exec_per_hour")
            .unwrap();
        assert_eq!(env_err.env.as_deref(), Some("GOV_MAX_EXEC_PER_HOUR"));
        assert_eq!(env_err.value, "three");
        let typo = errors.iter().find(|e| e.key == "<environment>").unwrap();
        assert_eq!(typo.env.as_deref(), Some("GOV_MAX_OPEN_POSITION"));
    }

    #[test]
    fn out_of_range_values_are_all_reported_after_types_pass() {
        let errors = Config::load(
            Some("[funds]\nmax_margin_usage = 65.0\n[slots]\nbase = 0\n[kill_score]\nopen_threshold = 0.9\n"),
            &[],
        )
        .unwrap_err();
        let rendered: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("funds.max_margin_usage = 65: a number above 0")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("slots.base = 0: an integer from 1")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|e| e.contains("below kill_score.critical")),
            "{rendered:?}"
        );
    }

    #[test]
    fn a_non_finite_environment_number_is_rejected() {
        let errors = Config::load(None, &env(&[("GOV_MAX_CORRELATION", "NaN")])).unwrap_err();
        assert_eq!(errors[0].key, "correlation.max");
        assert_eq!(errors[0].value, "NaN");
    }

    #[test]
    fn the_printed_config_loads_back_identically() {
        let c = Config::default();
        assert_eq!(Config::load(Some(&c.to_toml()), &[]).unwrap(), c);
    }
}
