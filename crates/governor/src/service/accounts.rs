//! Several accounts in one fleet: an accounts file (`serve --accounts FILE`) names each account
//! — its key prefix, the environment names of its exchange credentials, and its config
//! overrides — so that one process serves all of them, each with its own consumer groups on its
//! own streams and its own limits. Nothing is shared between accounts but the process: their
//! keys are apart (no prefix is the start of another), and on a Redis Cluster each prefix's hash
//! tag puts an account in a slot of its own.
//!
//! ```toml
//! [[account]]
//! name = "acct1"
//! key_prefix = "quantum:{acct1}:"
//! api_key_env = "ACCT1_BINANCE_KEY"       # with --exchange binance: both, or neither
//! api_secret_env = "ACCT1_BINANCE_SECRET"
//! [account.config]                         # the same keys as --config, for this account only
//! slots = { base = 3 }
//! ```
//!
//! An account's config is the process's (`--config`, then `GOV_*` variables) with its own
//! overrides on top: the most specific setting wins.

use governor_core::Config;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    account: Vec<AccountEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    name: String,
    key_prefix: String,
    api_key_env: Option<String>,
    api_secret_env: Option<String>,
    #[serde(default)]
    config: toml::Table,
}

/// One account of the file, ready to serve.
#[derive(Clone, Debug)]
pub struct Account {
    /// Its name: in thread and consumer names, and in the logs.
    pub name: String,
    /// The process's config with the account's prefix and overrides.
    pub cfg: Config,
    /// The environment variables holding its exchange key and secret, when it names them.
    pub credentials_env: Option<(String, String)>,
}

impl Account {
    /// The process environment as this account's exchange adapter must see it: its own key
    /// and secret under the names the adapter reads (testnet's and production's), and no
    /// other account's.
    pub fn exchange_env(&self, env: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
        const STANDARD: [&str; 4] = [
            "BINANCE_TESTNET_API_KEY",
            "BINANCE_TESTNET_API_SECRET",
            "BINANCE_API_KEY",
            "BINANCE_API_SECRET",
        ];
        let Some((key_env, secret_env)) = &self.credentials_env else {
            return Err(format!(
                "account {}: api_key_env and api_secret_env are needed to trade on Binance: each \
                 account names its own credentials",
                self.name
            ));
        };
        let get = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    format!(
                        "account {}: the environment variable {name} is not set",
                        self.name
                    )
                })
        };
        let (key, secret) = (get(key_env)?, get(secret_env)?);
        let mut out: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| !STANDARD.contains(&k.as_str()))
            .cloned()
            .collect();
        for (i, name) in STANDARD.iter().enumerate() {
            let value = if i % 2 == 0 { &key } else { &secret };
            out.push(((*name).to_owned(), value.clone()));
        }
        Ok(out)
    }
}

/// Copies `over` into `base`, table by table (a value in `over` replaces the one in `base`).
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Reads an accounts file on top of the process's config. Every problem is reported, each
/// naming the account, the field and the value.
pub fn load(text: &str, base: &Config) -> Result<Vec<Account>, Vec<String>> {
    let file: AccountsFile = toml::from_str(text)
        .map_err(|e| vec![format!("accounts file: {}", e.to_string().trim())])?;
    if file.account.is_empty() {
        return Err(vec!["accounts file: no [[account]]".to_owned()]);
    }
    let base_table = toml::Table::try_from(base).expect("the config serializes");
    let mut errors = Vec::new();
    let mut accounts = Vec::new();
    for (i, entry) in file.account.iter().enumerate() {
        let who = format!("account {:?}", entry.name);
        if !valid_name(&entry.name) {
            errors.push(format!(
                "account #{}: name {:?} must be 1 to 64 letters, digits, '_' or '-'",
                i + 1,
                entry.name
            ));
        }
        if file.account[..i].iter().any(|a| a.name == entry.name) {
            errors.push(format!("{who}: the name is used twice"));
        }
        for other in &file.account[..i] {
            if other.key_prefix.starts_with(&entry.key_prefix)
                || entry.key_prefix.starts_with(&other.key_prefix)
            {
                errors.push(format!(
                    "{who}: key_prefix {:?} overlaps account {:?}'s {:?}: one account's keys \
                     would be read as the other's",
                    entry.key_prefix, other.name, other.key_prefix
                ));
            }
        }
        if entry.config.contains_key("key_prefix") {
            errors.push(format!(
                "{who}: config.key_prefix: an account's prefix is its own key_prefix field"
            ));
        }
        let credentials_env = match (&entry.api_key_env, &entry.api_secret_env) {
            (Some(k), Some(s)) => Some((k.clone(), s.clone())),
            (None, None) => None,
            _ => {
                errors.push(format!(
                    "{who}: api_key_env and api_secret_env go together: both, or neither"
                ));
                None
            }
        };
        let mut table = base_table.clone();
        merge(&mut table, &entry.config);
        table.insert(
            "key_prefix".to_owned(),
            toml::Value::String(entry.key_prefix.clone()),
        );
        match Config::load(Some(&table.to_string()), &[]) {
            Ok(cfg) => accounts.push(Account {
                name: entry.name.clone(),
                cfg,
                credentials_env,
            }),
            Err(problems) => errors.extend(problems.iter().map(|p| format!("{who}: {p}"))),
        }
    }
    if errors.is_empty() {
        Ok(accounts)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
[[account]]
name = "acct1"
key_prefix = "quantum:{acct1}:"
api_key_env = "A1_KEY"
api_secret_env = "A1_SECRET"
[account.config]
slots = { base = 2 }

[[account]]
name = "acct2"
key_prefix = "quantum:{acct2}:"
"#;

    #[test]
    fn each_account_gets_the_process_config_with_its_prefix_and_overrides() {
        let mut base = Config::default();
        base.slots.base = 4;
        base.permit_ttl_secs = 45;
        let accounts = load(TWO, &base).unwrap();
        assert_eq!(accounts.len(), 2);
        let (a, b) = (&accounts[0], &accounts[1]);
        assert_eq!(a.cfg.key_prefix, "quantum:{acct1}:");
        assert_eq!(a.cfg.slots.base, 2, "the account's override wins");
        assert_eq!(b.cfg.slots.base, 4, "the process's setting where none");
        assert_eq!((a.cfg.permit_ttl_secs, b.cfg.permit_ttl_secs), (45, 45));
        assert_eq!(
            a.credentials_env,
            Some(("A1_KEY".to_owned(), "A1_SECRET".to_owned()))
        );
        assert_eq!(b.credentials_env, None);
    }

    #[test]
    fn every_problem_is_named_with_its_account_and_value() {
        let text = r#"
[[account]]
name = "a b"
key_prefix = "q:{a}:"
api_key_env = "K"
[account.config]
key_prefix = "x:"
slots = { base = 0 }

[[account]]
name = "b"
key_prefix = "q:{a}:more:"

[[account]]
name = "b"
key_prefix = "z:"
"#;
        let errors = load(text, &Config::default()).unwrap_err();
        let all = errors.join("\n");
        for expected in [
            "name \"a b\" must be",
            "config.key_prefix",
            "api_key_env and api_secret_env go together",
            "slots.base",
            "key_prefix \"q:{a}:more:\" overlaps account \"a b\"'s \"q:{a}:\"",
            "account \"b\": the name is used twice",
        ] {
            assert!(all.contains(expected), "{expected:?} not in:\n{all}");
        }
        assert!(load("", &Config::default()).is_err());
        assert!(load("[[account]]\nname = \"a\"\n", &Config::default()).is_err());
        let unknown = load(
            "[[account]]\nname = \"a\"\nkey_prefix = \"a:\"\nprefix = \"b\"\n",
            &Config::default(),
        )
        .unwrap_err();
        assert!(unknown[0].contains("prefix"), "{unknown:?}");
    }

    #[test]
    fn an_account_trades_with_its_own_credentials_only() {
        let accounts = load(TWO, &Config::default()).unwrap();
        let env: Vec<(String, String)> = [
            ("A1_KEY", "k1"),
            ("A1_SECRET", "s1"),
            ("BINANCE_TESTNET_API_KEY", "process-key"),
            ("PATH", "/bin"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let seen = accounts[0].exchange_env(&env).unwrap();
        let get = |n: &str| seen.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("BINANCE_TESTNET_API_KEY"), Some("k1"));
        assert_eq!(get("BINANCE_TESTNET_API_SECRET"), Some("s1"));
        assert_eq!(get("BINANCE_API_KEY"), Some("k1"));
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(
            seen.iter()
                .filter(|(k, _)| k == "BINANCE_TESTNET_API_KEY")
                .count(),
            1
        );
        let e = accounts[1].exchange_env(&env).unwrap_err();
        assert!(e.contains("acct2") && e.contains("api_key_env"), "{e}");
        let missing = vec![("A1_KEY".to_owned(), "k1".to_owned())];
        let e = accounts[0].exchange_env(&missing).unwrap_err();
        assert!(e.contains("A1_SECRET"), "{e}");
    }
}
