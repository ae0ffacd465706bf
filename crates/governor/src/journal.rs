//! A decision record as JSON, the one shape the journal, `evaluate` and (later) the decisions
//! stream and the API share: the trace is embedded as JSON, not as a string.

use governor_core::snapshot::DecisionRecord;
use serde_json::{json, Value};

/// The record as a JSON object. A record whose trace text is not JSON (it always is when the
/// store wrote it) keeps the text as a string rather than failing.
pub fn record_json(r: &DecisionRecord) -> Value {
    let trace = serde_json::from_str(&r.trace).unwrap_or_else(|_| Value::String(r.trace.clone()));
    json!({
        "plan_id": r.plan_id,
        "symbol": r.symbol,
        "action": r.action,
        "verdict": r.verdict.as_str(),
        "reason": r.reason.map(|x| x.code()),
        "detail": r.detail,
        "qty": r.qty,
        "notional": r.notional,
        "regime": r.regime,
        "desired_slots": r.desired_slots,
        "occupied_slots": r.occupied_slots,
        "ts": r.decided_at,
        "shadow": r.shadow.iter().map(|x| x.code()).collect::<Vec<_>>(),
        "trace": trace,
    })
}

/// The record without its trace: the list view of the API and the dashboard's live feed.
pub fn record_summary_json(r: &DecisionRecord) -> Value {
    let mut v = record_json(r);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("trace");
    }
    v
}
