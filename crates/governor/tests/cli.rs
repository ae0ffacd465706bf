//! The command line as an operator uses it: `config check` and `evaluate`.

use std::process::Command;

fn governor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quantum-governor"));
    // Keep the caller's GOV_* settings out of these tests.
    for (name, _) in std::env::vars() {
        if name.starts_with("GOV_") || name == "P26_MODE" {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn config_check_prints_the_effective_config_with_env_overrides() {
    let out = governor()
        .args(["config", "check"])
        .env("GOV_MAX_OPEN_POSITIONS", "7")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("max_open_positions = 7"), "{text}");
    assert!(text.contains("max_margin_usage = 0.65"), "{text}");
}

#[test]
fn config_check_lists_every_invalid_key_with_value_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gov.toml");
    std::fs::write(
        &file,
        "[funds]\nmax_margin_usage = 65.0\nmax_open_positons = 3\n[slots]\nbase = 0\n",
    )
    .unwrap();
    let out = governor()
        .args(["config", "check"])
        .arg(&file)
        .env("GOV_MAX_EXEC_PER_HOUR", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "funds.max_open_positons",
        "cadence.max_exec_per_hour (from GOV_MAX_EXEC_PER_HOUR) = many",
        "funds.max_margin_usage = 65: a number above 0 and at most 1",
        "slots.base = 0: an integer from 1 to 125",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
}

#[test]
fn evaluate_prints_the_decision_and_its_trace() {
    let out = governor()
        .args([
            "evaluate",
            &repo("examples/plan-open.json"),
            "--state",
            &repo("examples/state.json"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "ALLOW");
    // kill_score 0.70: scaled to 1 - (0.05/0.15) × 0.75 = 0.75 of 0.05.
    assert!(
        (v["qty"].as_f64().unwrap() - 0.0375).abs() < 1e-12,
        "{}",
        v["qty"]
    );
    let gates: Vec<&str> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["gate"].as_str().unwrap())
        .collect();
    for gate in [
        "schema",
        "policy_universe",
        "kill_score",
        "regime",
        "slots",
        "correlation",
        "margin",
        "fund_caps",
        "capital_allocation",
    ] {
        assert!(gates.contains(&gate), "{gate} missing from {gates:?}");
    }
}

#[test]
fn evaluate_without_state_fails_closed_and_a_bad_plan_is_a_reject() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, r#"{"now_ms": 1753120800000}"#).unwrap();
    let out = governor()
        .args(["evaluate", &repo("examples/plan-open.json"), "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reason"], "active_slots_no_policy");

    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        r#"{"plan_id": "b1", "symbol": "ETHUSDT", "action": "CLOSE", "decision": "EXECUTE"}"#,
    )
    .unwrap();
    let out = governor()
        .args(["evaluate"])
        .arg(&plan)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "REJECT");
    assert_eq!(v["errors"][0]["field"], "action");
    assert_eq!(v["errors"][0]["value"], "CLOSE");
}

#[test]
fn a_state_file_with_an_unknown_field_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, r#"{"now_ms": 1, "equity": 5}"#).unwrap();
    let out = governor()
        .args(["evaluate", &repo("examples/plan-open.json"), "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown field `equity`"), "{err}");
}

#[test]
fn replay_prints_a_summary_and_writes_the_report_and_journal() {
    let dir = tempfile::tempdir().unwrap();
    let out = governor()
        .args([
            "replay",
            "--quiet",
            "--data",
            &repo("data/klines"),
            "--from",
            "2025-06-01",
            "--to",
            "2025-06-08",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "decisions:",
        "blocks by reason:",
        "rotations:",
        "regime:",
        "max drawdown",
        "final equity (USDT)",
        "ungoverned",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(dir.path().join("report.html").is_file());
    assert!(
        std::fs::metadata(dir.path().join("decisions.jsonl"))
            .unwrap()
            .len()
            > 0
    );
}

#[test]
fn replay_refuses_a_bad_time_and_a_bad_capital() {
    let out = governor()
        .args(["replay", "--from", "2025-13-01"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2025-13-01"));
    let out = governor()
        .args(["replay", "--quiet", "--capital", "NaN"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--capital NaN"));
}

#[test]
fn explain_reads_a_decision_from_a_replay_journal() {
    let dir = tempfile::tempdir().unwrap();
    let out = governor()
        .args([
            "replay",
            "--quiet",
            "--heat",
            "off",
            "--from",
            "2025-06-01",
            "--to",
            "2025-06-04",
        ])
        .arg("--data")
        .arg(repo("data/klines"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let journal = dir.path().join("decisions.jsonl");
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&journal)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let id = first["plan_id"].as_str().unwrap();
    let explained = governor()
        .args(["explain", id, "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(explained.status.success());
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(text.starts_with(&format!("plan {id} ")), "{text}");
    for line in first["trace"].as_array().unwrap() {
        let gate = line["gate"].as_str().unwrap();
        assert!(
            text.lines().any(|l| l.starts_with(gate)),
            "no row for {gate}:\n{text}"
        );
    }
    let missing = governor()
        .args(["explain", "no-such-plan", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-plan"));
}

#[test]
fn serve_refuses_an_accounts_file_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accounts.toml");
    std::fs::write(
        &file,
        "[[account]]\nname = \"a\"\nkey_prefix = \"q:{a}:\"\n[account.config]\nslots = { base = 0 }\n\n\
         [[account]]\nname = \"b\"\nkey_prefix = \"q:{a}:b:\"\napi_key_env = \"B_KEY\"\n",
    )
    .unwrap();
    // Nothing listens on port 1: the file is refused before any connection is tried.
    let out = governor()
        .args(["serve", "--redis", "redis://127.0.0.1:1/", "--accounts"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("3 problems"), "{err}");
    for expected in [
        "account \"a\": slots.base",
        "key_prefix \"q:{a}:b:\" overlaps account \"a\"'s \"q:{a}:\"",
        "account \"b\": api_key_env and api_secret_env go together",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
}
