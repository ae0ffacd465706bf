//! One-line logfmt records on stdout, with the grep tokens the deployment already uses
//! (docs/wire-contract.md): `BLOCKED plan= symbol= reason=`, `ACTIVE_SLOTS_ALLOW symbol= score= slots=N/M`,
//! `BLOCKED_SLOTS_FULL …`. Values are quoted when they hold spaces; secrets are never passed in.

use governor_core::reason::BlockReason;
use governor_core::snapshot::{DecisionRecord, VerdictKind};
use governor_core::trace::{Fact, Trace};
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

/// What the background writer is handed: a line to write, or a request to report once every
/// line handed before it is written and flushed.
enum ToWriter {
    Line(String),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Lines waiting for the background writer, once [`write_in_background`] started it.
static BACKGROUND: std::sync::OnceLock<std::sync::mpsc::SyncSender<ToWriter>> =
    std::sync::OnceLock::new();

/// How many lines may wait for a slow stdout before a writer waits for room (then the log
/// holds the decisions up rather than losing lines).
const BACKGROUND_QUEUE: usize = 65_536;

/// How long [`flush`] waits for the writer: a process about to exit must not hang forever on
/// a stdout nobody reads, nor leave before the lines that say why it exits are written.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Flushes the background log when dropped, so that a service returning (with or without an
/// error) never loses the lines it queued last.
#[must_use = "the log is flushed when this guard is dropped"]
pub struct FlushOnDrop(());

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        flush();
    }
}

/// From now on, lines are handed to a thread of their own that writes them (buffered, flushed
/// whenever it has caught up), so that a slow reader of stdout does not hold up the decision
/// loop. For long-running services; whoever exits the process calls [`flush`] first, and the
/// returned guard flushes when the service returns.
pub fn write_in_background() -> FlushOnDrop {
    BACKGROUND.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ToWriter>(BACKGROUND_QUEUE);
        std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
                let mut waiting: Vec<std::sync::mpsc::SyncSender<()>> = Vec::new();
                while let Ok(first) = rx.recv() {
                    take(first, &mut out, &mut waiting);
                    while let Ok(more) = rx.try_recv() {
                        take(more, &mut out, &mut waiting);
                    }
                    let _ = out.flush();
                    for done in waiting.drain(..) {
                        let _ = done.send(());
                    }
                }
            })
            .expect("the log writer thread starts");
        tx
    });
    FlushOnDrop(())
}

/// The background writer's handling of one message: a line is written (buffered), a flush
/// request waits until the writer has caught up.
fn take(
    msg: ToWriter,
    out: &mut impl std::io::Write,
    waiting: &mut Vec<std::sync::mpsc::SyncSender<()>>,
) {
    match msg {
        ToWriter::Line(line) => {
            let _ = out.write_all(line.as_bytes());
        }
        ToWriter::Flush(done) => waiting.push(done),
    }
}

/// Waits (at most a few seconds) until every line handed to the background writer so far is
/// written to stdout and flushed. Without a background writer, lines are already written.
pub fn flush() {
    if let Some(tx) = BACKGROUND.get() {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        if tx.send(ToWriter::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(FLUSH_WAIT);
        }
    }
    let _ = std::io::stdout().lock().flush();
}

thread_local! {
    /// This thread's lines, when they are kept instead of written ([`capture_on_this_thread`]).
    static CAPTURED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// From now on, this thread's lines are kept instead of written, until [`take_captured`]: the
/// simulator runs the service's loops on one thread and prints a seed's lines only when that
/// seed breaks an invariant.
pub fn capture_on_this_thread() {
    CAPTURED.with(|c| *c.borrow_mut() = Some(String::new()));
}

/// The lines this thread kept since the last call (empty when it keeps none).
pub fn take_captured() -> String {
    CAPTURED.with(|c| {
        c.borrow_mut()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}

/// Writes formatted lines (one, or a batch's) to stdout in one write, or hands them to the
/// background writer in one piece; a closed stdout must never take a worker down (println!
/// would panic).
pub fn write_stdout(line: &str) {
    if line.is_empty() {
        return;
    }
    let kept = CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some(buf) => {
            buf.push_str(line);
            true
        }
        None => false,
    });
    if kept {
        return;
    }
    match BACKGROUND.get() {
        // The writer only ends with the process; a send that fails writes directly.
        Some(tx) => {
            if let Err(std::sync::mpsc::SendError(ToWriter::Line(line))) =
                tx.send(ToWriter::Line(line.to_owned()))
            {
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
        }
        None => {
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
    }
}

/// A fact of a gate's trace line, as text (`-` when the gate or the fact is not there).
fn fact(trace: &Trace, gate: &str, name: &str) -> String {
    trace.fact(gate, name).map_or("-".to_owned(), |v| match v {
        Fact::Num(x) => format!("{x:.4}"),
        Fact::Int(x) => x.to_string(),
        Fact::Flag(x) => x.to_string(),
        Fact::Name(x) => (*x).to_owned(),
        Fact::Text(x) => x.to_string(),
        Fact::Id(x) => x.to_string(),
        Fact::Missing => "-".to_owned(),
    })
}

/// A fraction fact of the trace as a percentage.
fn pct(trace: &Trace, gate: &str, name: &str) -> String {
    fact(trace, gate, name)
        .parse::<f64>()
        .map_or("-".to_owned(), |x| format!("{:.2}", x * 100.0))
}

/// The one log line of a decision, with the grep token of docs/wire-contract.md that fits it and the
/// numbers from its trace.
pub fn decision_line(r: &DecisionRecord, trace: &Trace, score: Option<f64>) -> String {
    let slots = format!(
        "{}/{}",
        r.occupied_slots.map_or("-".to_owned(), |o| o.to_string()),
        r.desired_slots.map_or("-".to_owned(), |d| d.to_string())
    );
    let score = score.map_or(String::new(), |s| s.to_string());
    let plan = ("plan", r.plan_id.to_string());
    let symbol = ("symbol", r.symbol.to_string());
    let code = |reason: Option<BlockReason>| reason.map_or(String::new(), |x| x.code().to_owned());
    let (token, mut fields): (&str, Vec<(&str, String)>) = match (r.verdict, r.reason) {
        (VerdictKind::Allow, _) if r.action.starts_with("OPEN") => (
            "ACTIVE_SLOTS_ALLOW",
            vec![symbol, ("score", score), ("slots", slots), plan],
        ),
        (VerdictKind::Allow, _) => (
            "ALLOWED_CLOSE",
            vec![plan, symbol, ("action", r.action.clone())],
        ),
        (VerdictKind::Block, Some(BlockReason::SlotsFull)) => (
            "BLOCKED_SLOTS_FULL",
            vec![symbol, ("score", score), ("slots", slots), plan],
        ),
        (VerdictKind::Block, Some(BlockReason::CorrelationCap)) => (
            "CORR_BLOCK",
            vec![
                symbol,
                ("corr", fact(trace, "correlation", "max_corr")),
                ("threshold", fact(trace, "correlation", "threshold")),
                plan,
            ],
        ),
        (VerdictKind::Block, Some(BlockReason::MarginCap)) => (
            "BLOCKED_MARGIN",
            vec![
                symbol,
                ("margin_usage_pct", pct(trace, "margin", "projected_usage")),
                ("max_margin_pct", pct(trace, "margin", "max_usage")),
                plan,
            ],
        ),
        (
            VerdictKind::Block,
            reason @ Some(BlockReason::ActiveSlotsNoPolicy | BlockReason::ActiveSlotsNotInUniverse),
        ) => (
            "BLOCKED_NO_POLICY",
            vec![symbol, ("reason", code(reason)), plan],
        ),
        (VerdictKind::Block, reason) => (
            "BLOCKED",
            vec![
                plan,
                symbol,
                ("reason", code(reason)),
                ("detail", r.detail.clone()),
            ],
        ),
        (VerdictKind::Pending, _) => (
            "ROTATION_CLOSE",
            vec![
                ("weakest", fact(trace, "rotation", "weakest")),
                ("weakest_score", fact(trace, "rotation", "weakest_score")),
                ("new_symbol", r.symbol.to_string()),
                ("new_score", fact(trace, "rotation", "candidate_score")),
                ("threshold", fact(trace, "rotation", "threshold")),
                ("improvement", fact(trace, "rotation", "improvement")),
                plan,
                ("close_plan", r.detail.clone()),
            ],
        ),
        (VerdictKind::Skip | VerdictKind::Reject, _) => {
            ("SKIPPED", vec![plan, symbol, ("why", r.detail.clone())])
        }
    };
    // What shadow-mode gates would have blocked rides on the decision's one line.
    if !r.shadow.is_empty() {
        let codes: Vec<&str> = r.shadow.iter().map(|x| x.code()).collect();
        fields.push(("shadow", codes.join(",")));
    }
    format(token, &fields)
}

/// Writes the log line of one decision.
pub fn decision(r: &DecisionRecord, trace: &Trace, score: Option<f64>) {
    write_stdout(&decision_line(r, trace, score));
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor_core::time::Timestamp;
    use governor_core::trace::Outcome;
    use governor_core::types::{PlanId, Symbol};

    fn record(verdict: VerdictKind, reason: Option<BlockReason>) -> DecisionRecord {
        DecisionRecord {
            plan_id: PlanId::parse("p-7").unwrap(),
            symbol: Symbol::parse("ETHUSDT").unwrap(),
            action: "OPEN_LONG".into(),
            verdict,
            reason,
            detail: "rot_p-7_SOLUSDT".into(),
            qty: None,
            notional: None,
            regime: None,
            desired_slots: Some(4),
            occupied_slots: Some(4),
            decided_at: Timestamp(0),
            trace: Default::default(),
            shadow: Vec::new(),
        }
    }

    #[test]
    fn each_kind_of_decision_gets_its_contract_token_and_numbers() {
        let mut trace = Trace::default();
        trace
            .line("correlation", Outcome::Block(BlockReason::CorrelationCap))
            .num("threshold", 0.8)
            .num("max_corr", 0.9134);
        trace
            .line("margin", Outcome::Block(BlockReason::MarginCap))
            .num("projected_usage", 0.7)
            .num("max_usage", 0.65);
        trace
            .line("rotation", Outcome::Pass)
            .num("candidate_score", 73.0)
            .num("threshold", 0.15)
            .text("weakest", "SOLUSDT")
            .num("weakest_score", 60.0)
            .num("improvement", 0.2167);
        let line = |v, r| decision_line(&record(v, r), &trace, Some(73.0));
        assert_eq!(
            line(VerdictKind::Block, Some(BlockReason::CorrelationCap)),
            "CORR_BLOCK symbol=ETHUSDT corr=0.9134 threshold=0.8000 plan=p-7\n"
        );
        assert_eq!(
            line(VerdictKind::Block, Some(BlockReason::MarginCap)),
            "BLOCKED_MARGIN symbol=ETHUSDT margin_usage_pct=70.00 max_margin_pct=65.00 plan=p-7\n"
        );
        assert_eq!(
            line(VerdictKind::Block, Some(BlockReason::ActiveSlotsNoPolicy)),
            "BLOCKED_NO_POLICY symbol=ETHUSDT reason=active_slots_no_policy plan=p-7\n"
        );
        assert_eq!(
            line(VerdictKind::Pending, Some(BlockReason::ActiveSlotsWaitingRotationClose)),
            "ROTATION_CLOSE weakest=SOLUSDT weakest_score=60.0000 new_symbol=ETHUSDT new_score=73.0000 threshold=0.1500 improvement=0.2167 plan=p-7 close_plan=rot_p-7_SOLUSDT\n"
        );
        assert_eq!(
            line(VerdictKind::Allow, None),
            "ACTIVE_SLOTS_ALLOW symbol=ETHUSDT score=73 slots=4/4 plan=p-7\n"
        );
        let mut shadowed = record(VerdictKind::Block, Some(BlockReason::NoPosition));
        shadowed.shadow = vec![BlockReason::PriceOutOfBand];
        assert!(decision_line(&shadowed, &trace, None)
            .ends_with("reason=no_position detail=rot_p-7_SOLUSDT shadow=price_out_of_band\n"));
    }
}
