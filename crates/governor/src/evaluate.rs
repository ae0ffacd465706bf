//! `quantum-governor evaluate PLAN.json [--state STATE.json]`: one decision and its trace as
//! JSON, without committing anything — the operator's "what would it say, and why?".

use crate::state_file;
use crate::store::memory::MemoryStore;
use anyhow::Context;
use governor_core::decide::decide;
use governor_core::{Config, Plan};
use serde_json::{json, Value};
use std::path::Path;

/// Reads a plan file: a JSON object whose values are strings, numbers or booleans (as a
/// stream entry would carry them). Anything else is an error naming the field.
pub fn read_plan_fields(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    plan_fields(value).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A JSON plan as stream fields: an object whose values are strings, numbers or booleans
/// (turned into their text). Anything else is an error naming the field (the plan file of
/// `evaluate` and the body of `POST /v1/plans`).
pub fn plan_fields(value: Value) -> Result<Vec<(String, String)>, String> {
    let Value::Object(map) = value else {
        return Err("a plan is a JSON object of field names to values".to_owned());
    };
    map.into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "field `{k}` = {other}: values are strings, numbers or booleans"
                    ))
                }
            };
            Ok((k, text))
        })
        .collect()
}

/// Decides the plan against the state and returns the decision as JSON.
pub fn evaluate(
    plan_path: &Path,
    state_path: Option<&Path>,
    cfg: &Config,
) -> anyhow::Result<Value> {
    let fields = read_plan_fields(plan_path)?;
    let plan = match Plan::parse(&fields) {
        Ok(plan) => plan,
        Err(rejection) => {
            return Ok(json!({
                "verdict": "REJECT",
                "errors": rejection.errors,
                "error": rejection.to_string(),
            }))
        }
    };
    let loaded = state_file::load(state_path, cfg.correlation.window as usize)?;
    let store = MemoryStore::with_state(loaded.store, cfg.block_ttl_secs);
    let snapshot = store.snapshot(&plan.plan_id, &loaded.inputs, loaded.now);
    let decision = decide(&plan, &snapshot, cfg, loaded.now);
    let mut out = crate::journal::record_json(&decision.committed_record());
    out["now_ms"] = json!(loaded.now.millis());
    out["replayed"] = json!(decision.replayed);
    out["effects"] = json!(decision.effects);
    out["guards"] = json!(decision.guards);
    Ok(out)
}
