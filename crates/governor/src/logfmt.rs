//! One-line logfmt records on stdout, with the grep tokens the deployment already uses
//! (CONTRACT.md): `BLOCKED plan= symbol= reason=`, `ACTIVE_SLOTS_ALLOW symbol= score= slots=N/M`,
//! `BLOCKED_SLOTS_FULL …`. Values are quoted when they hold spaces; secrets are never passed in.

use governor_core::snapshot::{DecisionRecord, VerdictKind};
use std::fmt::Write as _;
use std::io::Write as _;

fn value(v: &str) -> String {
    if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        format!("{v:?}")
    } else {
        v.to_owned()
    }
}

/// `TOKEN k=v k=v …` with its newline, for callers that write it somewhere else than stdout.
pub fn format(token: &str, fields: &[(&str, String)]) -> String {
    let mut out = String::from(token);
    for (k, v) in fields {
        let _ = write!(out, " {k}={}", value(v));
    }
    out.push('\n');
    out
}

/// Writes `TOKEN k=v k=v …` as one line.
pub fn line(token: &str, fields: &[(&str, String)]) {
    write_stdout(&format(token, fields));
}

/// Writes a formatted line to stdout in one write; a closed stdout must never take a worker
/// down (println! would panic).
pub fn write_stdout(line: &str) {
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// The log line of one decision.
pub fn decision(r: &DecisionRecord, score: Option<f64>) {
    let slots = format!(
        "{}/{}",
        r.occupied_slots.map_or("-".to_owned(), |o| o.to_string()),
        r.desired_slots.map_or("-".to_owned(), |d| d.to_string())
    );
    let score = score.map_or(String::new(), |s| s.to_string());
    let (token, mut fields): (&str, Vec<(&str, String)>) = match (r.verdict, r.reason) {
        (VerdictKind::Allow, _) if r.action.starts_with("OPEN") => (
            "ACTIVE_SLOTS_ALLOW",
            vec![
                ("symbol", r.symbol.to_string()),
                ("score", score),
                ("slots", slots),
                ("plan", r.plan_id.to_string()),
            ],
        ),
        (VerdictKind::Allow, _) => (
            "ALLOWED_CLOSE",
            vec![
                ("plan", r.plan_id.to_string()),
                ("symbol", r.symbol.to_string()),
                ("action", r.action.clone()),
            ],
        ),
        (VerdictKind::Block, Some(reason)) if reason.code() == "slots_full" => (
            "BLOCKED_SLOTS_FULL",
            vec![
                ("symbol", r.symbol.to_string()),
                ("score", score),
                ("slots", slots),
                ("plan", r.plan_id.to_string()),
            ],
        ),
        (VerdictKind::Block, reason) => (
            "BLOCKED",
            vec![
                ("plan", r.plan_id.to_string()),
                ("symbol", r.symbol.to_string()),
                (
                    "reason",
                    reason.map_or(String::new(), |x| x.code().to_owned()),
                ),
                ("detail", r.detail.clone()),
            ],
        ),
        (VerdictKind::Pending, _) => (
            "ROTATION_PENDING",
            vec![
                ("plan", r.plan_id.to_string()),
                ("symbol", r.symbol.to_string()),
                ("close_plan", r.detail.clone()),
            ],
        ),
        (VerdictKind::Skip | VerdictKind::Reject, _) => (
            "SKIPPED",
            vec![
                ("plan", r.plan_id.to_string()),
                ("symbol", r.symbol.to_string()),
                ("why", r.detail.clone()),
            ],
        ),
    };
    // What shadow-mode gates would have blocked rides on the decision's one line.
    if !r.shadow.is_empty() {
        let codes: Vec<&str> = r.shadow.iter().map(|x| x.code()).collect();
        fields.push(("shadow", codes.join(",")));
    }
    line(token, &fields);
}
