//! `calibrate regime` on the long recorded history: the printed `[regime]` snippet, loaded as a
//! config file would be, re-classifies every bar with each targeted regime within 2 percentage
//! points of its share; a bad request is refused with what is wrong.

mod support;

use governor_core::market::calibrate::{shares, Targets};
use governor_core::Config;
use quantum_governor::calibrate::regime;
use std::path::PathBuf;

fn long_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/klines_long")
}

#[test]
fn the_printed_thresholds_give_each_targeted_regime_its_share_of_the_history() {
    let targets = Targets::parse("TREND_STRONG=0.15,VOLATILITY_SPIKE=0.05,CHOP=0.30").unwrap();
    let c = regime(&long_data(), &Config::default().regime, None, targets).unwrap();
    assert!(c.history.len() > 9_000, "{} bars", c.history.len());
    // The snippet as an operator would paste it into a config file.
    let cfg = Config::load(Some(&c.toml()), &[]).expect("the snippet is a valid config");
    let got = shares(&c.history, &cfg.regime);
    for (regime, target) in [
        ("TREND_STRONG", 0.15),
        ("VOLATILITY_SPIKE", 0.05),
        ("CHOP", 0.30),
    ] {
        let share = got.get(regime).copied().unwrap_or(0.0);
        assert!(
            (share - target).abs() <= 0.02,
            "{regime}: {share} for {target}"
        );
    }
    // The deployed thresholds never see a strong trend nor a spike on this history.
    let now = shares(&c.history, &Config::default().regime);
    assert_eq!(now.get("TREND_STRONG"), None);
    assert_eq!(now.get("VOLATILITY_SPIKE"), None);
}

#[test]
fn a_bad_target_or_a_missing_symbol_is_refused_naming_it() {
    let run = |args: &[&str]| {
        let out = support::governor_command()
            .args(["calibrate", "regime"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["--target", "RANGE=0.2"]);
    assert!(
        !ok && err.contains("only VOLATILITY_SPIKE, TREND_STRONG and CHOP"),
        "{err}"
    );
    let (ok, err) = run(&["--symbol", "NOPEUSDT"]);
    assert!(!ok && err.contains("NOPEUSDT has no klines"), "{err}");
    let out = support::governor_command()
        .args(["calibrate", "regime"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("# regime calibrated on BTCUSDT"),
        "{text}"
    );
    assert!(text.contains("\n[regime]\n"), "{text}");
}
