//! The process's decision counters and latency histogram, rendered in the Prometheus text
//! format with the gauges of the moment (`/metrics`). Counters are this process's: with several
//! governor processes, Prometheus sums them.

use governor_core::snapshot::{DecisionRecord, VerdictKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the decision latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

#[derive(Debug, Default)]
struct Inner {
    /// (decision, reason, mode) → count; mode is `enforce` for verdicts, `shadow` for what a
    /// shadow gate would have blocked.
    decisions: BTreeMap<(String, String, &'static str), u64>,
    buckets: [u64; LATENCY_BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    /// Supervised thread → how often it ended or panicked.
    thread_deaths: BTreeMap<String, u64>,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process's registry.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// A gauge of the moment: name, help, labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Gauge {
    /// Metric name (`governor_…`).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Label pairs.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

impl Gauge {
    /// A gauge without labels.
    pub fn plain(name: &'static str, help: &'static str, value: f64) -> Self {
        Gauge {
            name,
            help,
            labels: Vec::new(),
            value,
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one committed decision and how long it took.
    pub fn observe(&self, r: &DecisionRecord, took: Duration) {
        let mut m = self.lock();
        let reason = r.reason.map_or(String::new(), |x| x.code().to_owned());
        *m.decisions
            .entry((r.verdict.as_str().to_owned(), reason, "enforce"))
            .or_default() += 1;
        for s in &r.shadow {
            *m.decisions
                .entry((
                    VerdictKind::Block.as_str().to_owned(),
                    s.code().to_owned(),
                    "shadow",
                ))
                .or_default() += 1;
        }
        let secs = took.as_secs_f64();
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *le {
                m.buckets[i] += 1;
            }
        }
        m.latency_count += 1;
        m.latency_sum += secs;
    }

    /// Counts a supervised thread's end or panic.
    pub fn thread_died(&self, thread: &str) {
        *self
            .lock()
            .thread_deaths
            .entry(thread.to_owned())
            .or_default() += 1;
    }

    /// Decisions counted so far by verdict and by block reason (`/v1/stats`).
    pub fn totals(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let m = self.lock();
        let mut by_decision: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for ((decision, reason, mode), n) in &m.decisions {
            if *mode != "enforce" {
                continue;
            }
            *by_decision.entry(decision.clone()).or_default() += n;
            if !reason.is_empty() {
                *by_reason.entry(reason.clone()).or_default() += n;
            }
        }
        (by_decision, by_reason)
    }

    /// The whole exposition: counters, the histogram, then `gauges`.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let m = self.lock();
        let mut o = String::new();
        o.push_str("# HELP governor_decisions_total Decisions by verdict and block reason; mode=\"shadow\" counts what a shadow gate would have blocked.\n# TYPE governor_decisions_total counter\n");
        for ((decision, reason, mode), n) in &m.decisions {
            let l = labels(&[
                ("decision", decision.clone()),
                ("reason", reason.clone()),
                ("mode", (*mode).to_owned()),
            ]);
            let _ = writeln!(o, "governor_decisions_total{l} {n}");
        }
        o.push_str("# HELP governor_decision_latency_seconds From snapshot read to commit, per decision.\n# TYPE governor_decision_latency_seconds histogram\n");
        for (le, n) in LATENCY_BUCKETS.iter().zip(m.buckets) {
            let _ = writeln!(
                o,
                "governor_decision_latency_seconds_bucket{{le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "governor_decision_latency_seconds_bucket{{le=\"+Inf\"}} {}\ngovernor_decision_latency_seconds_sum {}\ngovernor_decision_latency_seconds_count {}",
            m.latency_count, m.latency_sum, m.latency_count
        );
        o.push_str("# HELP governor_thread_deaths_total Supervised threads that ended or panicked (each is restarted).\n# TYPE governor_thread_deaths_total counter\n");
        for (thread, n) in &m.thread_deaths {
            let l = labels(&[("thread", thread.clone())]);
            let _ = writeln!(o, "governor_thread_deaths_total{l} {n}");
        }
        let mut seen: Vec<&str> = Vec::new();
        for g in gauges {
            if !seen.contains(&g.name) {
                let _ = writeln!(o, "# HELP {} {}\n# TYPE {} gauge", g.name, g.help, g.name);
                seen.push(g.name);
            }
            let _ = writeln!(o, "{}{} {}", g.name, labels(&g.labels), g.value);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor_core::reason::BlockReason;
    use governor_core::time::Timestamp;
    use governor_core::types::{PlanId, Symbol};

    fn record(verdict: VerdictKind, reason: Option<BlockReason>) -> DecisionRecord {
        DecisionRecord {
            plan_id: PlanId::parse("p1").unwrap(),
            symbol: Symbol::parse("BTCUSDT").unwrap(),
            action: "OPEN_LONG".into(),
            verdict,
            reason,
            detail: String::new(),
            qty: None,
            notional: None,
            regime: None,
            desired_slots: None,
            occupied_slots: None,
            decided_at: Timestamp(0),
            trace: Default::default(),
            shadow: vec![BlockReason::CorrelationCap],
        }
    }

    #[test]
    fn counters_histogram_and_gauges_render_in_the_text_format() {
        let m = Metrics::default();
        m.observe(&record(VerdictKind::Allow, None), Duration::from_micros(80));
        m.observe(
            &record(VerdictKind::Block, Some(BlockReason::SlotsFull)),
            Duration::from_millis(3),
        );
        let text = m.render(&[Gauge::plain(
            "governor_slots_desired",
            "Desired slots.",
            4.0,
        )]);
        assert!(
            text.contains(
                r#"governor_decisions_total{decision="BLOCK",reason="slots_full",mode="enforce"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"governor_decisions_total{decision="BLOCK",reason="correlation_cap",mode="shadow"} 2"#), "{text}");
        assert!(
            text.contains(r#"governor_decision_latency_seconds_bucket{le="0.0001"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"governor_decision_latency_seconds_bucket{le="0.005"} 2"#),
            "{text}"
        );
        assert!(text.contains("governor_decision_latency_seconds_count 2"));
        assert!(text.contains("# TYPE governor_slots_desired gauge\ngovernor_slots_desired 4"));
        let (by_decision, by_reason) = m.totals();
        assert_eq!(by_decision["ALLOW"], 1);
        assert_eq!(by_reason["slots_full"], 1);
        assert!(
            !by_reason.contains_key("correlation_cap"),
            "shadow is not a block"
        );
    }
}
