//! `quantum-governor explain PLAN_ID`: a stored decision's trace as a table, gate by gate —
//! from Redis or from a replay journal.

use anyhow::Context;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// The decision of `plan_id` in a replay journal (`decisions.jsonl`): the last entry of that
/// plan id (a pending plan has two).
pub fn from_journal(journal: &Path, plan_id: &str) -> anyhow::Result<Option<Value>> {
    let text = std::fs::read_to_string(journal)
        .with_context(|| format!("reading {}", journal.display()))?;
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a journal line", journal.display(), n + 1))?;
        if v["plan_id"] == plan_id {
            found = Some(v);
        }
    }
    Ok(found)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The decision as text: a header with the verdict, then one row per gate with its outcome,
/// reason, inputs and note.
pub fn render(record: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "plan {}  {} {}  →  {}{}",
        cell(&record["plan_id"]),
        cell(&record["action"]),
        cell(&record["symbol"]),
        cell(&record["verdict"]),
        match &record["reason"] {
            Value::String(r) => format!(" ({r})"),
            _ => String::new(),
        }
    );
    if let Some(d) = record["detail"].as_str().filter(|d| !d.is_empty()) {
        let _ = writeln!(o, "detail: {d}");
    }
    if let Some(shadow) = record["shadow"].as_array().filter(|s| !s.is_empty()) {
        let codes: Vec<String> = shadow.iter().map(cell).collect();
        let _ = writeln!(o, "shadow gates would have blocked: {}", codes.join(", "));
    }
    let _ = writeln!(
        o,
        "decided at {} ms · regime {} · slots {}/{}",
        cell(&record["ts"]),
        cell(&record["regime"]),
        cell(&record["occupied_slots"]),
        cell(&record["desired_slots"])
    );
    let lines = record["trace"].as_array().cloned().unwrap_or_default();
    let width = lines
        .iter()
        .filter_map(|l| l["gate"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        o,
        "\n{:<width$}  {:<7}  {:<36}  inputs",
        "gate", "outcome", "reason"
    );
    for l in &lines {
        let inputs = l["inputs"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", cell(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{:<width$}  {:<7}  {:<36}  {inputs}",
            cell(&l["gate"]),
            cell(&l["outcome"]),
            l["reason"].as_str().unwrap_or(""),
        );
        if let Some(note) = l["note"].as_str() {
            let _ = writeln!(o, "{:<width$}  {:<7}  {:<36}  ↳ {note}", "", "", "");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gate_gets_a_row_with_its_reason_and_inputs() {
        let record = serde_json::json!({
            "plan_id": "p1", "action": "OPEN_LONG", "symbol": "ETHUSDT", "verdict": "BLOCK",
            "reason": "correlation_cap", "detail": "0.91 > 0.80", "ts": 5, "regime": "RANGE",
            "occupied_slots": 2, "desired_slots": 4, "shadow": ["price_out_of_band"],
            "trace": [
                {"gate": "schema", "outcome": "pass", "reason": null, "inputs": {"action": "OPEN_LONG"}, "note": null},
                {"gate": "correlation", "outcome": "block", "reason": "correlation_cap",
                 "inputs": {"max_corr": 0.91, "threshold": 0.8}, "note": "too close to SOLUSDT"}
            ]
        });
        let text = render(&record);
        assert!(
            text.starts_with("plan p1  OPEN_LONG ETHUSDT  →  BLOCK (correlation_cap)"),
            "{text}"
        );
        assert!(text.contains("shadow gates would have blocked: price_out_of_band"));
        let row = text.lines().find(|l| l.starts_with("correlation")).unwrap();
        assert!(
            row.contains("block")
                && row.contains("correlation_cap")
                && row.contains("max_corr=0.91 threshold=0.8"),
            "{row}"
        );
        assert!(text.contains("↳ too close to SOLUSDT"));
        assert!(text.lines().any(|l| l.starts_with("schema ")), "{text}");
    }
}
