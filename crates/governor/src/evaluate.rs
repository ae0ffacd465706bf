//! `quantum-governor evaluate PLAN.json [--state STATE.json]`: one decision and its trace as
//! JSON, without committing anything — the operator's "what would it say, and why?".

use crate::json_fields::{object_fields, Scalars};
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
    object_fields(&text, Scalars::TextNumbersBooleans)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
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
