//! `report.html`: one self-contained page (inline SVG and CSS, no scripts to fetch, opens
//! offline). Every chart's data is also embedded as JSON (`<script type="application/json"
//! id="data-…">`) so a test, or a curious operator, can read the numbers behind it.

use super::config_diff::ConfigDiff;
use super::drawdown::DrawdownComparison;
use super::engine::ReplayResult;
use super::heat::HeatReplay;
use super::heat_comparison::HeatComparison;
use super::summary::Summary;
use crate::civil::date;
use serde_json::json;
use std::fmt::Write as _;

const W: f64 = 960.0;
const PAD: f64 = 48.0;

/// `s` made safe inside HTML text and attribute values.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn data_block(id: &str, value: &serde_json::Value) -> String {
    // `</` cannot appear inside JSON strings we write, but escape it anyway.
    let text = value.to_string().replace("</", "<\\/");
    format!("<script type=\"application/json\" id=\"data-{id}\">{text}</script>\n")
}

/// Keeps at most `max` evenly spaced indices (always the last one).
fn sample(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let step = n as f64 / max as f64;
    let mut idx: Vec<usize> = (0..max).map(|i| (i as f64 * step) as usize).collect();
    idx.push(n - 1);
    idx.dedup();
    idx
}

struct Axis {
    min: f64,
    max: f64,
    h: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, h: f64, include_zero: bool) -> Axis {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            min = min.min(v);
            max = max.max(v);
        }
        if include_zero {
            min = min.min(0.0);
        }
        if !(max > min) {
            max = min + 1.0;
        }
        Axis { min, max, h }
    }
    fn y(&self, v: f64) -> f64 {
        let v = if v.is_finite() { v } else { self.max };
        PAD / 2.0 + (self.max - v) / (self.max - self.min) * (self.h - PAD)
    }
}

fn x_of(i: usize, n: usize) -> f64 {
    PAD + (W - 2.0 * PAD) * i as f64 / (n.max(2) - 1) as f64
}

fn polyline(idx: &[usize], n: usize, ys: &[f64], axis: &Axis, color: &str, width: f64) -> String {
    let pts: Vec<String> = idx
        .iter()
        .map(|&i| format!("{:.1},{:.1}", x_of(i, n), axis.y(ys[i])))
        .collect();
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" points=\"{}\"/>",
        pts.join(" ")
    )
}

fn y_labels(axis: &Axis, fmt: impl Fn(f64) -> String) -> String {
    let ticks: Vec<f64> = (0..=4)
        .map(|k| axis.min + (axis.max - axis.min) * f64::from(k) / 4.0)
        .collect();
    tick_labels(axis, &ticks, fmt)
}

fn tick_labels(axis: &Axis, ticks: &[f64], fmt: impl Fn(f64) -> String) -> String {
    let mut o = String::new();
    for &v in ticks {
        let y = axis.y(v);
        let _ = write!(
            o,
            "<line x1=\"{PAD}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/><text x=\"{}\" y=\"{:.1}\" class=\"lab\" text-anchor=\"end\">{}</text>",
            W - PAD,
            PAD - 6.0,
            y + 4.0,
            esc(&fmt(v))
        );
    }
    o
}

fn x_labels(r: &ReplayResult, h: f64) -> String {
    let n = r.bars.len();
    let mut o = String::new();
    for k in 0..=4 {
        let i = (n.saturating_sub(1)) * k / 4;
        if let Some(b) = r.bars.get(i) {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"lab\" text-anchor=\"middle\">{}</text>",
                x_of(i, n),
                h - 6.0,
                date(b.t.millis())
            );
        }
    }
    o
}

fn regime_color(regime: &str) -> &'static str {
    match regime {
        "CHOP" => "#f3e3c3",
        "RANGE" => "#dbe8f5",
        "TREND_MODERATE" => "#d5efd8",
        "TREND_STRONG" => "#a8dcae",
        "VOLATILITY_SPIKE" => "#f5c6c6",
        _ => "#e6e6e6",
    }
}

fn equity_chart(r: &ReplayResult) -> String {
    let n = r.bars.len();
    let idx = sample(n, 1500);
    let gov: Vec<f64> = r.bars.iter().map(|b| b.governed.equity).collect();
    let ungov: Vec<f64> = r.bars.iter().map(|b| b.ungoverned.equity).collect();
    let h = 300.0;
    let axis = Axis::new(gov.iter().chain(&ungov).copied(), h, false);
    let dd_h = 160.0;
    let dd_gov: Vec<f64> = r
        .bars
        .iter()
        .map(|b| -b.governed.drawdown * 100.0)
        .collect();
    let dd_ungov: Vec<f64> = r
        .bars
        .iter()
        .map(|b| -b.ungoverned.drawdown * 100.0)
        .collect();
    let dd_axis = Axis::new(dd_gov.iter().chain(&dd_ungov).copied(), dd_h, true);
    format!(
        "<svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"equity\">{}{}{}{}</svg>\
         <svg viewBox=\"0 0 {W} {dd_h}\" role=\"img\" aria-label=\"drawdown\">{}{}{}{}</svg>",
        y_labels(&axis, |v| format!("{v:.0}")),
        polyline(&idx, n, &ungov, &axis, "#c0392b", 1.5),
        polyline(&idx, n, &gov, &axis, "#1f5fa8", 2.0),
        x_labels(r, h),
        y_labels(&dd_axis, |v| format!("{v:.1}%")),
        polyline(&idx, n, &dd_ungov, &dd_axis, "#c0392b", 1.5),
        polyline(&idx, n, &dd_gov, &dd_axis, "#1f5fa8", 2.0),
        x_labels(r, dd_h),
    )
}

fn slots_chart(r: &ReplayResult) -> String {
    let n = r.bars.len();
    let h = 260.0;
    let desired: Vec<f64> = r.bars.iter().map(|b| f64::from(b.desired)).collect();
    let occupied: Vec<f64> = r.bars.iter().map(|b| f64::from(b.occupied)).collect();
    let axis = Axis::new(desired.iter().chain(&occupied).map(|v| v + 1.0), h, true);
    let mut bands = String::new();
    let mut start = 0;
    for i in 1..=n {
        if i == n || r.bars[i].regime != r.bars[start].regime {
            let (x0, x1) = (
                x_of(start, n),
                x_of(i.saturating_sub(1).max(start), n) + (W - 2.0 * PAD) / n as f64,
            );
            let _ = write!(
                bands,
                "<rect x=\"{x0:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"><title>{}</title></rect>",
                PAD / 2.0,
                (x1 - x0).max(0.5),
                h - PAD,
                regime_color(&r.bars[start].regime),
                esc(&r.bars[start].regime)
            );
            start = i;
        }
    }
    let step = |ys: &[f64], color: &str, width: f64| {
        let mut pts = Vec::with_capacity(2 * n);
        for (i, v) in ys.iter().enumerate() {
            let y = axis.y(*v);
            pts.push(format!("{:.1},{y:.1}", x_of(i, n)));
            if i + 1 < n {
                pts.push(format!("{:.1},{y:.1}", x_of(i + 1, n)));
            }
        }
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" points=\"{}\"/>",
            pts.join(" ")
        )
    };
    format!(
        "<svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"slots\">{bands}{}{}{}{}</svg>",
        tick_labels(
            &axis,
            &(0..=axis.max as u32).map(f64::from).collect::<Vec<_>>(),
            |v| format!("{v:.0}")
        ),
        step(&desired, "#333", 2.0),
        step(&occupied, "#1f5fa8", 2.0),
        x_labels(r, h)
    )
}

fn blocks_chart(s: &Summary) -> String {
    let mut rows: Vec<(&String, &usize)> = s.blocks.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if rows.is_empty() {
        return "<p class=\"note\">No plan was blocked.</p>".to_owned();
    }
    let max = *rows[0].1 as f64;
    let h = 26.0 * rows.len() as f64 + 10.0;
    let mut o =
        format!("<svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"blocks by reason\">");
    for (i, (reason, n)) in rows.iter().enumerate() {
        let y = 5.0 + 26.0 * i as f64;
        let w = (W - 420.0) * **n as f64 / max;
        let _ = write!(
            o,
            "<text x=\"330\" y=\"{:.1}\" class=\"lab\" text-anchor=\"end\">{}</text><rect x=\"340\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"18\" fill=\"#c0392b\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"lab\">{n}</text>",
            y + 14.0,
            esc(reason),
            345.0 + w,
            y + 14.0
        );
    }
    o.push_str("</svg>");
    o
}

fn heat_color(v: Option<f64>) -> String {
    match v {
        None => "#eee".to_owned(),
        Some(v) => {
            let v = v.clamp(-1.0, 1.0);
            let (r, g, b) = if v >= 0.0 {
                (255.0, 255.0 - 180.0 * v, 255.0 - 200.0 * v)
            } else {
                (255.0 + 200.0 * v, 255.0 + 120.0 * v, 255.0)
            };
            format!("rgb({:.0},{:.0},{:.0})", r, g, b)
        }
    }
}

fn heatmap(r: &ReplayResult) -> String {
    let (names, m) = &r.heatmap;
    let cell = 64.0;
    let left = 110.0;
    let size = left + cell * names.len() as f64 + 10.0;
    let mut o = format!("<svg viewBox=\"0 0 {size} {size}\" style=\"max-width:{size}px\" role=\"img\" aria-label=\"correlation heatmap\">");
    for (j, name) in names.iter().enumerate() {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"lab\" text-anchor=\"middle\">{}</text>",
            left + cell * j as f64 + cell / 2.0,
            left - 10.0,
            esc(name.trim_end_matches("USDT"))
        );
    }
    for (i, row) in m.iter().enumerate() {
        let y = left + cell * i as f64;
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"lab\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            y + cell / 2.0 + 4.0,
            esc(names[i].trim_end_matches("USDT"))
        );
        for (j, v) in row.iter().enumerate() {
            let x = left + cell * j as f64;
            let label = v.map_or("n/a".to_owned(), |v| format!("{v:.2}"));
            let _ = write!(
                o,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\" stroke=\"#fff\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"cell\" text-anchor=\"middle\">{label}</text>",
                heat_color(*v),
                x + cell / 2.0,
                y + cell / 2.0 + 4.0
            );
        }
    }
    o.push_str("</svg>");
    o
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".to_owned(), |v| format!("{:+.2}%", v * 100.0))
}

fn rotation_table(r: &ReplayResult) -> String {
    if r.rotations.is_empty() {
        return "<p class=\"note\">No rotation was started: slots were never full with a candidate scoring more than the rotation threshold above the weakest position.</p>".to_owned();
    }
    let mut o = String::from("<table><tr><th>time (UTC)</th><th>new</th><th>replaced</th><th>outcome</th><th>new, next 24 h</th><th>replaced, next 24 h</th><th>did it beat it?</th></tr>");
    for row in &r.rotations {
        let beat = match (row.new_return_24h, row.old_return_24h) {
            (Some(a), Some(b)) if a > b => "<td class=\"good\">yes</td>",
            (Some(_), Some(_)) => "<td class=\"bad\">no</td>",
            _ => "<td>n/a</td>",
        };
        let _ = write!(
            o,
            "<tr><td>{} {:02}:00</td><td>{} {}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td>{beat}</tr>",
            date(row.t.millis()),
            (row.t.millis() / 3_600_000) % 24,
            esc(&row.new_symbol),
            esc(&row.new_side),
            esc(&row.close_symbol),
            esc(&row.close_side),
            esc(&row.outcome),
            pct(row.new_return_24h),
            pct(row.old_return_24h)
        );
    }
    o.push_str("</table>");
    o
}

fn money(v: f64) -> String {
    format!("{v:+.2}")
}

/// The shadow-compare section: how often each downgrade happened, and the governed account
/// with the heat gate enforced against the same account without it.
fn heat_section(h: Option<&HeatComparison>) -> String {
    let Some(h) = h else {
        return "<p class=\"note\">The heat gate was off in this run (<code>--heat off</code>).</p>"
            .to_owned();
    };
    let mode = match h.mode {
        HeatReplay::Enforce => "enforced in this run (the comparison run had it off)",
        _ => "in shadow in this run: it changed nothing (the comparison run enforced it)",
    };
    let mut o = format!(
        "<p class=\"note\">The heat gate was {mode}. {n} close proposals were calibrated; {u} could not be (heat unknown) and passed unchanged.</p>",
        n = h.proposals,
        u = h.uncalibrated
    );
    o.push_str("<table><tr><th>bucket</th><th>proposals</th></tr>");
    for (bucket, n) in &h.by_bucket {
        let _ = write!(o, "<tr><td>{}</td><td>{n}</td></tr>", esc(bucket));
    }
    o.push_str("</table>");
    if h.downgrades.is_empty() {
        o.push_str("<p class=\"note\">No proposal would have been changed: the portfolio never ran warm enough.</p>");
    } else {
        o.push_str("<table><tr><th>what would have changed</th><th>times</th></tr>");
        for (change, n) in &h.downgrades {
            let _ = write!(o, "<tr><td>{}</td><td>{n}</td></tr>", esc(change));
        }
        o.push_str("</table>");
    }
    let _ = write!(
        o,
        "<table class=\"cmp\"><tr><th>governed account</th><th>heat gate off</th><th>heat gate enforced</th></tr>\
         <tr><td>final equity</td><td>{:.2}</td><td>{:.2}</td></tr>\
         <tr><td>PnL</td><td>{}</td><td>{}</td></tr>\
         <tr><td>max drawdown</td><td>{:.2}%</td><td>{:.2}%</td></tr></table>",
        h.off.final_equity,
        h.enforce.final_equity,
        money(h.off.pnl),
        money(h.enforce.pnl),
        h.off.max_drawdown * 100.0,
        h.enforce.max_drawdown * 100.0
    );
    o
}

/// The side-by-side runs a report can show besides the main one.
#[derive(Clone, Debug, Default)]
pub struct Comparisons {
    /// The heat gate enforced against off.
    pub heat: Option<HeatComparison>,
    /// The drawdown halt in shadow against enforced.
    pub drawdown: Option<DrawdownComparison>,
    /// A candidate config against the current one (`--candidate`).
    pub candidate: Option<ConfigDiff>,
}

/// Three stacked panels — equity, drawdown, exposure — of the current and candidate runs.
fn diff_chart(r: &ReplayResult, d: &ConfigDiff) -> String {
    let (a, b) = &d.paths;
    let n = a.t.len().min(b.t.len());
    let idx = sample(n, 1500);
    let h = 200.0;
    let panel = |label: &str, xs: &[f64], ys: &[f64], fmt: &dyn Fn(f64) -> String| {
        let axis = Axis::new(xs.iter().chain(ys).copied(), h, false);
        format!(
            "<svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{label}\">{}{}{}{}</svg>",
            y_labels(&axis, fmt),
            polyline(&idx, n, xs, &axis, "#1f5fa8", 2.0),
            polyline(&idx, n, ys, &axis, "#d35400", 1.5),
            x_labels(r, h),
        )
    };
    let neg = |v: &[f64]| v.iter().map(|x| -x * 100.0).collect::<Vec<_>>();
    format!(
        "<p class=\"note\">Equity (USDT)</p>{}<p class=\"note\">Drawdown</p>{}<p class=\"note\">Exposure: notional ÷ equity</p>{}",
        panel("equity", &a.equity, &b.equity, &|v| format!("{v:.0}")),
        panel("drawdown", &neg(&a.drawdown), &neg(&b.drawdown), &|v| format!("{v:.1}%")),
        panel("exposure", &a.exposure, &b.exposure, &|v| format!("{v:.2}x")),
    )
}

/// The config diff section: what the candidate config changes.
fn candidate_section(r: &ReplayResult, d: Option<&ConfigDiff>) -> String {
    let Some(d) = d else {
        return "<p class=\"note\">Run with <code>--candidate new.toml</code> to replay the same plans under a second config and see every decision it changes.</p>".to_owned();
    };
    let mut o = String::new();
    o.push_str("<table><tr><th>setting</th><th>current</th><th>candidate</th></tr>");
    for (k, a, b) in &d.settings {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(k),
            esc(a),
            esc(b)
        );
    }
    if d.settings.is_empty() {
        o.push_str("<tr><td colspan=\"3\">the two configs are the same</td></tr>");
    }
    o.push_str("</table>");
    let _ = write!(
        o,
        "<div class=\"kpis\"><div class=\"kpi\"><b>{}</b>plans compared</div><div class=\"kpi\"><b>{}</b>decided differently</div>\
         <div class=\"kpi\"><b>{} / {}</b>PnL, current / candidate</div><div class=\"kpi\"><b>{:.2}% / {:.2}%</b>max drawdown, current / candidate</div></div>",
        d.plans_compared,
        d.changed.len(),
        money(d.current.pnl),
        money(d.candidate.pnl),
        d.current.max_drawdown * 100.0,
        d.candidate.max_drawdown * 100.0,
    );
    o.push_str("<div class=\"legend\"><span class=\"gov\">— current</span><span style=\"color:#d35400;font-weight:600\">— candidate</span></div>");
    o.push_str(&diff_chart(r, d));
    // Plans both configs decided, then the ones only one did (a close of a position only the
    // other config opened — exit proposals follow each account's own positions — or a
    // rotation close only the other published): the second kind is not a verdict change.
    let mut transitions: Vec<_> = d.transitions.iter().collect();
    transitions.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let (one_sided, both): (Vec<_>, Vec<_>) =
        transitions.into_iter().partition(|(k, _)| k.contains('—'));
    for (title, rows) in [
        ("verdict changed (current → candidate)", both),
        (
            "decided under one config only (— : not decided under that one)",
            one_sided,
        ),
    ] {
        let _ = write!(o, "<table><tr><th>{}</th><th>plans</th></tr>", esc(title));
        for (k, n) in rows {
            let _ = write!(o, "<tr><td>{}</td><td>{n}</td></tr>", esc(k));
        }
        o.push_str("</table>");
    }
    o.push_str("<table id=\"config-diff-plans\"><tr><th>plan</th><th>time</th><th>symbol</th><th>action</th><th>current</th><th>candidate</th><th>gate that made the difference</th></tr>");
    for c in &d.changed {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.plan_id),
            esc(&crate::civil::datetime(c.t.millis())),
            esc(&c.symbol),
            esc(&c.action),
            esc(&c.current),
            esc(&c.candidate),
            esc(&c.gate)
        );
    }
    o.push_str("</table>");
    o
}

/// What shadow-mode gates would have blocked in this run.
fn shadow_section(r: &ReplayResult) -> String {
    if r.shadow_blocks.is_empty() {
        return "<p class=\"note\">No gate in shadow mode would have blocked anything in this run (set a gate's mode to <code>shadow</code> under <code>[gates]</code> to see what it would block).</p>".to_owned();
    }
    let mut o =
        String::from("<table><tr><th>what this gate would have blocked</th><th>plans</th></tr>");
    for (reason, n) in &r.shadow_blocks {
        let _ = write!(o, "<tr><td>{}</td><td>{n}</td></tr>", esc(reason));
    }
    o.push_str("</table>");
    o
}

fn drawdown_section(d: Option<&DrawdownComparison>) -> String {
    let Some(d) = d else {
        return String::new();
    };
    let mut o = format!(
        "<p class=\"note\">The same signals with the drawdown halt ({:.1}% below the {:.0} h equity peak) in shadow and enforced. Enforced, every open is refused while the halt holds; in shadow trading never halts and the gate records each open it would have refused, so the two counts measure different things: compare the accounts.</p>",
        d.limit * 100.0,
        d.window_hours
    );
    let _ = write!(
        o,
        "<table class=\"cmp\"><tr><th>drawdown halt</th><th>shadow</th><th>enforce</th></tr>\
         <tr><td>opens stopped (shadow: would have been)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>halts (switched to REDUCING)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>final equity</td><td>{:.2}</td><td>{:.2}</td></tr>\
         <tr><td>PnL</td><td>{}</td><td>{}</td></tr>\
         <tr><td>max drawdown</td><td>{:.2}%</td><td>{:.2}%</td></tr></table>",
        d.shadow.opens_stopped,
        d.enforce.opens_stopped,
        d.shadow.halts,
        d.enforce.halts,
        d.shadow.account.final_equity,
        d.enforce.account.final_equity,
        money(d.shadow.account.pnl),
        money(d.enforce.account.pnl),
        d.shadow.account.max_drawdown * 100.0,
        d.enforce.account.max_drawdown * 100.0
    );
    o
}

/// Each regime's share of the replayed bars under the current thresholds and under ones
/// calibrated on the same history (`quantum-governor calibrate regime` prints the snippet).
fn calibration_section(r: &ReplayResult) -> String {
    let Some(rows) = &r.regime_calibration else {
        return "<p class=\"note\">No calibration: the regime reference has too little history here (or the reference is the candidate).</p>".to_owned();
    };
    let mut o = String::from(
        "<p class=\"note\">The share of bars each regime gets with the thresholds in force, and with thresholds calibrated on this history to the default targets (<code>quantum-governor calibrate regime --data …</code> prints them as a <code>[regime]</code> snippet; nothing changes until you paste it into a config).</p>\
         <table><tr><th>regime</th><th>current</th><th>calibrated</th><th>target</th></tr>",
    );
    for row in rows {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{:.1}%</td><td>{:.1}%</td><td>{}</td></tr>",
            row.regime,
            row.current * 100.0,
            row.calibrated * 100.0,
            row.target_text()
        );
    }
    o.push_str("</table>");
    o
}

/// A dashed horizontal line at `v` labelled `label` (a limit on a chart).
fn limit_line(axis: &Axis, v: f64, label: &str, color: &str) -> String {
    let y = axis.y(v);
    format!(
        "<line x1=\"{PAD}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-dasharray=\"6 4\"/>\
         <text x=\"{}\" y=\"{:.1}\" class=\"lab\" text-anchor=\"end\">{}</text>",
        W - PAD,
        W - PAD,
        y - 4.0,
        esc(label)
    )
}

/// Liquidation: both accounts' margin ratio and nearest liquidation over time, what the new
/// gates refused, what was liquidated, what the de-risk monitor closed.
fn liquidation_section(r: &ReplayResult, s: &Summary) -> String {
    let n = r.bars.len();
    let idx = sample(n, 1500);
    let h = 220.0;
    let pct_of = |f: fn(&super::engine::BarStat) -> f64| -> Vec<f64> {
        r.bars.iter().map(|b| f(b) * 100.0).collect()
    };
    let ratio_gov = pct_of(|b| b.governed.margin_ratio);
    let ratio_ungov = pct_of(|b| b.ungoverned.margin_ratio);
    let lines = [r.max_account_margin_ratio * 100.0, r.derisk_at * 100.0];
    let ratio_axis = Axis::new(
        ratio_gov.iter().chain(&ratio_ungov).chain(&lines).copied(),
        h,
        true,
    );
    // No position (or none a positive price liquidates): drawn at 100 %.
    let dist = |a: fn(&super::engine::BarStat) -> Option<f64>| -> Vec<f64> {
        r.bars
            .iter()
            .map(|b| a(b).map_or(100.0, |d| (d * 100.0).min(100.0)))
            .collect()
    };
    let dist_gov = dist(|b| b.governed.closest_liquidation);
    let dist_ungov = dist(|b| b.ungoverned.closest_liquidation);
    let dist_axis = Axis::new(dist_gov.iter().chain(&dist_ungov).copied(), h, true);
    let block = |code: &str| s.blocks.get(code).copied().unwrap_or(0);
    let mut o = format!(
        "<p class=\"note\">Binance's account margin ratio (maintenance margin ÷ equity; liquidation at 100 %) with the line above which opens are refused and the de-risk line; then how near the nearest position was to its liquidation price (capped at 100 %: none).</p>\
         <div class=\"legend\"><span class=\"gov\">— governed</span><span class=\"ungov\">— ungoverned</span></div>\
         <svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"account margin ratio\">{}{}{}{}{}{}</svg>\
         <svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"closest liquidation\">{}{}{}{}</svg>",
        y_labels(&ratio_axis, |v| format!("{v:.1}%")),
        limit_line(&ratio_axis, lines[0], "opens refused above", "#8e44ad"),
        limit_line(&ratio_axis, lines[1], "de-risk above", "#b03a2e"),
        polyline(&idx, n, &ratio_ungov, &ratio_axis, "#c0392b", 1.5),
        polyline(&idx, n, &ratio_gov, &ratio_axis, "#1f5fa8", 2.0),
        x_labels(r, h),
        y_labels(&dist_axis, |v| format!("{v:.0}%")),
        polyline(&idx, n, &dist_ungov, &dist_axis, "#c0392b", 1.5),
        polyline(&idx, n, &dist_gov, &dist_axis, "#1f5fa8", 2.0),
        x_labels(r, h),
    );
    let _ = write!(
        o,
        "<table class=\"cmp\"><tr><th></th><th>governed</th><th>ungoverned</th></tr>\
         <tr><td>positions liquidated</td><td>{}</td><td>{}</td></tr></table>\
         <table><tr><th>opens refused</th><th>plans</th></tr>\
         <tr><td>leverage_above_bracket</td><td>{}</td></tr>\
         <tr><td>liquidation_too_close</td><td>{}</td></tr>\
         <tr><td>account_margin_ratio</td><td>{}</td></tr></table>\
         <p class=\"note\">De-risk: {} halts at the line, {} close plans published.</p>",
        r.liquidations_governed.len(),
        r.liquidations_ungoverned.len(),
        block("leverage_above_bracket"),
        block("liquidation_too_close"),
        block("account_margin_ratio"),
        r.derisk_halts,
        r.derisk_closes,
    );
    let rows: Vec<_> = r
        .liquidations_governed
        .iter()
        .map(|l| ("governed", l))
        .chain(r.liquidations_ungoverned.iter().map(|l| ("ungoverned", l)))
        .take(50)
        .collect();
    if !rows.is_empty() {
        o.push_str("<table><tr><th>liquidated</th><th>account</th><th>symbol</th><th>side</th><th>qty</th><th>price</th><th>loss</th></tr>");
        for (account, l) in rows {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{account}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.6}</td><td>{}</td></tr>",
                date(l.t.millis()),
                esc(&l.symbol),
                esc(&l.side),
                l.qty,
                l.price,
                money(l.loss)
            );
        }
        o.push_str("</table>");
    }
    o
}

/// Renders the whole report.
pub fn render(r: &ReplayResult, s: &Summary, extra: &Comparisons) -> String {
    let heat = extra.heat.as_ref();
    let (g, u) = (&s.governed, &s.ungoverned);
    let compare = super::summary::comparison(s);
    let mut table =
        String::from("<table class=\"cmp\"><tr><th></th><th>governed</th><th>ungoverned</th></tr>");
    for (k, a, b) in &compare {
        let _ = write!(table, "<tr><td>{k}</td><td>{a}</td><td>{b}</td></tr>");
    }
    table.push_str("</table>");
    let regimes: Vec<String> = s
        .regime_share
        .iter()
        .map(|(k, v)| {
            format!(
                "<span class=\"chip\" style=\"background:{}\">{} {:.0}%</span>",
                regime_color(k),
                esc(k),
                v * 100.0
            )
        })
        .collect();
    let v = |k: &str| s.verdicts.get(k).copied().unwrap_or(0);
    let first = r.bars.first().map_or(String::new(), |b| date(b.t.millis()));
    let last = r.bars.last().map_or(String::new(), |b| date(b.t.millis()));
    let mut data = String::new();
    let n = r.bars.len();
    data.push_str(&data_block(
        "equity",
        &json!({
            "t": r.bars.iter().map(|b| b.t.millis()).collect::<Vec<_>>(),
            "governed": r.bars.iter().map(|b| b.governed.equity).collect::<Vec<_>>(),
            "ungoverned": r.bars.iter().map(|b| b.ungoverned.equity).collect::<Vec<_>>(),
            "governed_drawdown": r.bars.iter().map(|b| b.governed.drawdown).collect::<Vec<_>>(),
            "ungoverned_drawdown": r.bars.iter().map(|b| b.ungoverned.drawdown).collect::<Vec<_>>(),
        }),
    ));
    data.push_str(&data_block(
        "slots",
        &json!({
            "t": r.bars.iter().map(|b| b.t.millis()).collect::<Vec<_>>(),
            "desired": r.bars.iter().map(|b| b.desired).collect::<Vec<_>>(),
            "occupied": r.bars.iter().map(|b| b.occupied).collect::<Vec<_>>(),
            "regime": r.bars.iter().map(|b| b.regime.as_str()).collect::<Vec<_>>(),
        }),
    ));
    data.push_str(&data_block("blocks", &json!(s.blocks)));
    data.push_str(&data_block("rotations", &json!(r.rotations)));
    data.push_str(&data_block("heatmap", &json!({"symbols": r.heatmap.0, "matrix": r.heatmap.1, "is_final_portfolio": r.heatmap_is_portfolio})));
    data.push_str(&data_block("summary", &json!(s)));
    data.push_str(&data_block("heat_compare", &json!(heat)));
    data.push_str(&data_block("drawdown_compare", &json!(extra.drawdown)));
    data.push_str(&data_block("shadow_blocks", &json!(r.shadow_blocks)));
    data.push_str(&data_block("config_diff", &json!(extra.candidate)));
    data.push_str(&data_block(
        "liquidation",
        &json!({
            "t": r.bars.iter().map(|b| b.t.millis()).collect::<Vec<_>>(),
            "governed_margin_ratio": r.bars.iter().map(|b| b.governed.margin_ratio).collect::<Vec<_>>(),
            "ungoverned_margin_ratio": r.bars.iter().map(|b| b.ungoverned.margin_ratio).collect::<Vec<_>>(),
            "governed_closest": r.bars.iter().map(|b| b.governed.closest_liquidation).collect::<Vec<_>>(),
            "ungoverned_closest": r.bars.iter().map(|b| b.ungoverned.closest_liquidation).collect::<Vec<_>>(),
            "liquidations_governed": r.liquidations_governed,
            "liquidations_ungoverned": r.liquidations_ungoverned,
            "derisk_halts": r.derisk_halts,
            "derisk_closes": r.derisk_closes,
        }),
    ));
    let heat_note = if r.heatmap_is_portfolio {
        "The positions held at the end of the replay, correlated over their last 100 aligned 1 h log returns."
    } else {
        "Fewer than two positions were held at the end, so this shows the whole universe (last 100 aligned 1 h log returns)."
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quantum-governor replay {first} → {last}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;max-width:1000px;margin:24px auto;padding:0 16px}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}}
.sub{{color:#666}} .note{{color:#555;font-size:13px}} svg{{width:100%;height:auto;display:block}}
.grid{{stroke:#e5e5e5}} .lab{{font-size:12px;fill:#555}} .cell{{font-size:12px;fill:#222}}
table{{border-collapse:collapse;margin:8px 0}} td,th{{border-bottom:1px solid #eee;padding:4px 10px;text-align:right}} th{{background:#f7f7f7}}
td:first-child,th:first-child{{text-align:left}} .good{{color:#1d7a35;font-weight:600}} .bad{{color:#b03a2e;font-weight:600}}
.kpis{{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}} .kpi{{background:#f5f7fa;border-radius:6px;padding:8px 12px}} .kpi b{{display:block;font-size:20px}}
.chip{{display:inline-block;border-radius:10px;padding:1px 8px;margin-right:6px;font-size:13px}}
.legend span{{margin-right:14px}} .gov{{color:#1f5fa8;font-weight:600}} .ungov{{color:#c0392b;font-weight:600}}
</style></head><body>
<h1>Replay {first} → {last}</h1>
<div class="sub">{bars} hourly bars of {symbols} · {plans} plans · starting capital {cap:.0} USDT</div>
<div class="kpis">
<div class="kpi"><b>{allow}</b>allowed</div><div class="kpi"><b>{block}</b>blocked</div><div class="kpi"><b>{rot}</b>rotations started</div>
<div class="kpi"><b>{gdd:.2}% / {udd:.2}%</b>max drawdown, governed / ungoverned</div>
<div class="kpi"><b>{glev:.2}x / {ulev:.2}x</b>max notional ÷ equity</div>
</div>
<h2>Governed vs ungoverned</h2>
<p class="note">The same signals, once through the governor and once straight to the exchange (only its margin limit applies) — what the incident looked like, and what the governor changes.</p>
{table}
<h2>Equity and drawdown</h2>
<div class="legend"><span class="gov">— governed</span><span class="ungov">— ungoverned</span></div>
{equity}
<h2>Slots used vs desired, on regime bands</h2>
<div class="legend"><span style="color:#333;font-weight:600">— desired</span><span class="gov">— occupied</span> {regimes}</div>
<p class="note">With the deployed defaults the regime classifier says CHOP most of the time on 1 h BTCUSDT candles (the 1 h EMA gap rarely reaches the thresholds), so desired slots mostly sit at the CHOP value.</p>
{slots}
<h2>Regime calibration</h2>
{calibration}
<h2>Liquidation</h2>
{liquidation}
<h2>Blocks by reason</h2>
{blocks}
<h2>Rotations</h2>
{rotations}
<h2>Gates in shadow mode</h2>
{shadow}
<h2>Drawdown halt: shadow vs enforce</h2>
{drawdown}
<h2>Portfolio heat gate: shadow compare</h2>
{heat_compare}
<h2>Config diff: candidate vs current</h2>
{candidate}
<h2>Correlation heatmap</h2>
<p class="note">{heat_note}</p>
{heatmap}
{data}</body></html>
"#,
        bars = n,
        symbols = esc(&r.symbols.join(", ")),
        plans = r.plans,
        cap = r.initial_equity,
        allow = v("ALLOW"),
        block = v("BLOCK"),
        rot = s.rotations_started,
        gdd = g.max_drawdown * 100.0,
        udd = u.max_drawdown * 100.0,
        glev = g.max_leverage_on_equity,
        ulev = u.max_leverage_on_equity,
        equity = equity_chart(r),
        regimes = regimes.join(""),
        slots = slots_chart(r),
        blocks = blocks_chart(s),
        liquidation = liquidation_section(r, s),
        calibration = calibration_section(r),
        rotations = rotation_table(r),
        heatmap = heatmap(r),
        heat_compare = heat_section(heat),
        shadow = shadow_section(r),
        drawdown = drawdown_section(extra.drawdown.as_ref()),
        candidate = candidate_section(r, extra.candidate.as_ref()),
    )
}
