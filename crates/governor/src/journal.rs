//! A decision record as JSON, the one shape the journal, `evaluate` and the API share: the
//! trace is embedded as JSON, not as a string. A journal line is written straight from the
//! record's gate lines, with no intermediate text or JSON tree.

use governor_core::reason::BlockReason;
use governor_core::snapshot::DecisionRecord;
use governor_core::trace::RecordTrace;
use serde::de::IgnoredAny;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The reason codes of a record's shadow refusals.
struct ShadowCodes<'a>(&'a [BlockReason]);

impl Serialize for ShadowCodes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| r.code()))
    }
}

/// The record's JSON object without its trace, keys in alphabetical order (the trace is
/// appended last, as it is: see [`write_record`]).
#[derive(Serialize)]
struct RecordLine<'a> {
    action: &'a str,
    desired_slots: Option<u32>,
    detail: &'a str,
    notional: Option<f64>,
    occupied_slots: Option<u32>,
    plan_id: &'a str,
    qty: Option<f64>,
    reason: Option<&'static str>,
    regime: Option<&'a str>,
    shadow: ShadowCodes<'a>,
    symbol: &'a str,
    ts: i64,
    verdict: &'static str,
}

impl<'a> RecordLine<'a> {
    fn of(r: &'a DecisionRecord) -> Self {
        RecordLine {
            action: &r.action,
            desired_slots: r.desired_slots,
            detail: &r.detail,
            notional: r.notional,
            occupied_slots: r.occupied_slots,
            plan_id: r.plan_id.as_str(),
            qty: r.qty,
            reason: r.reason.map(|x| x.code()),
            regime: r.regime.as_deref(),
            shadow: ShadowCodes(&r.shadow),
            symbol: r.symbol.as_str(),
            ts: r.decided_at.millis(),
            verdict: r.verdict.as_str(),
        }
    }
}

/// The record as a JSON object.
pub fn record_json(r: &DecisionRecord) -> Value {
    let mut line = Vec::new();
    write_record(r, &mut line).expect("writing to memory does not fail");
    serde_json::from_slice(&line).expect("a record line is JSON")
}

/// Writes the record as one JSON object (a journal line without its newline), its trace last
/// and embedded as JSON: written straight from the gate lines, or — for a trace read back as
/// text — the text as it is, kept as a string if it is not JSON (it always is when the store
/// wrote it).
pub fn write_record(r: &DecisionRecord, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&RecordLine::of(r)).map_err(std::io::Error::other)?;
    line.pop(); // the closing brace
    line.extend_from_slice(b",\"trace\":");
    match &r.trace {
        RecordTrace::Lines(lines) => lines.write_json(&mut line),
        RecordTrace::Json(text) if serde_json::from_str::<IgnoredAny>(text).is_ok() => {
            line.extend_from_slice(text.as_bytes())
        }
        RecordTrace::Json(text) => {
            serde_json::to_writer(&mut line, text).map_err(std::io::Error::other)?
        }
    }
    line.push(b'}');
    out.write_all(&line)
}

/// The record without its trace: the list view of the API and the dashboard's live feed.
pub fn record_summary_json(r: &DecisionRecord) -> Value {
    let mut v = record_json(r);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("trace");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor_core::snapshot::VerdictKind;
    use governor_core::time::Timestamp;
    use governor_core::trace::{Outcome, Trace};
    use governor_core::types::{PlanId, Symbol};

    fn record(trace: RecordTrace) -> DecisionRecord {
        DecisionRecord {
            plan_id: PlanId::parse("p1").unwrap(),
            symbol: Symbol::parse("BTCUSDT").unwrap(),
            action: "OPEN_LONG".to_owned(),
            verdict: VerdictKind::Block,
            reason: Some(BlockReason::CorrelationCap),
            detail: "too close".to_owned(),
            qty: None,
            notional: None,
            regime: Some("CHOP".to_owned()),
            desired_slots: Some(3),
            occupied_slots: None,
            decided_at: Timestamp(42),
            trace,
            shadow: vec![BlockReason::DrawdownHalt],
        }
    }

    #[test]
    fn a_record_reads_the_same_whether_its_trace_is_lines_or_stored_text() {
        let mut trace = Trace::default();
        trace.line("correlation", Outcome::Pass).num("rho", 0.5);
        let lines = record(RecordTrace::Lines(std::sync::Arc::new(trace.clone())));
        let stored = record(RecordTrace::Json(trace.to_json()));
        let v = record_json(&lines);
        assert_eq!(v, record_json(&stored));
        assert_eq!(v["trace"][0]["gate"], "correlation");
        assert_eq!(v["trace"][0]["inputs"]["rho"], 0.5);
        assert_eq!(v["reason"], "correlation_cap");
        assert_eq!(v["shadow"], serde_json::json!(["drawdown_halt"]));
        assert_eq!(v["ts"], 42);
        assert_eq!(v["verdict"], "BLOCK");
        let mut line = Vec::new();
        write_record(&lines, &mut line).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&line).unwrap(), v);
        // A stored trace that is not JSON is kept as its text.
        let broken = record_json(&record(RecordTrace::Json("not json".to_owned())));
        assert_eq!(broken["trace"], "not json");
    }
}
