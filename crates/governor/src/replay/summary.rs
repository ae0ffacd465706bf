//! The numbers an operator reads first, for the terminal and the report alike.

use super::engine::ReplayResult;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Peaks and finals of one account.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AccountSummary {
    /// Most positions open at once.
    pub max_positions: usize,
    /// Largest total notional (USDT).
    pub max_notional: f64,
    /// Largest margin usage (fraction of equity).
    pub max_margin_usage: f64,
    /// Deepest drawdown (fraction).
    pub max_drawdown: f64,
    /// Equity at the end (USDT).
    pub final_equity: f64,
    /// Largest notional / equity.
    pub max_leverage_on_equity: f64,
    /// Positions the paper exchange liquidated.
    pub liquidations: usize,
}

/// The replay in numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Bars replayed.
    pub bars: usize,
    /// Plans submitted.
    pub plans: usize,
    /// Decisions by verdict.
    pub verdicts: BTreeMap<String, usize>,
    /// Blocks by reason.
    pub blocks: BTreeMap<String, usize>,
    /// Rotations started.
    pub rotations_started: usize,
    /// Rotations that ended with the permit.
    pub rotations_completed: usize,
    /// Rotations that timed out.
    pub rotations_timed_out: usize,
    /// Most slots occupied at once.
    pub max_occupied_slots: u32,
    /// Most slots desired at once.
    pub max_desired_slots: u32,
    /// Share of bars per regime.
    pub regime_share: BTreeMap<String, f64>,
    /// The governed account.
    pub governed: AccountSummary,
    /// The ungoverned account.
    pub ungoverned: AccountSummary,
}

fn account(
    r: &ReplayResult,
    pick: impl Fn(&super::engine::BarStat) -> &super::engine::AccountStat,
    liquidations: usize,
) -> AccountSummary {
    let mut s = AccountSummary {
        final_equity: r.bars.last().map_or(r.initial_equity, |b| pick(b).equity),
        liquidations,
        ..AccountSummary::default()
    };
    for b in &r.bars {
        let a = pick(b);
        s.max_positions = s.max_positions.max(a.positions);
        s.max_notional = s.max_notional.max(a.notional);
        s.max_margin_usage = s.max_margin_usage.max(a.margin_usage);
        s.max_drawdown = s.max_drawdown.max(a.drawdown);
        if a.equity > 0.0 {
            s.max_leverage_on_equity = s.max_leverage_on_equity.max(a.notional / a.equity);
        }
    }
    s
}

/// Computes the summary of a replay.
pub fn summarize(r: &ReplayResult) -> Summary {
    let mut regime_share: BTreeMap<String, f64> = BTreeMap::new();
    for b in &r.bars {
        *regime_share.entry(b.regime.clone()).or_default() += 1.0;
    }
    let n = r.bars.len().max(1) as f64;
    regime_share.values_mut().for_each(|v| *v /= n);
    Summary {
        bars: r.bars.len(),
        plans: r.plans,
        verdicts: r.verdicts.clone(),
        blocks: r.blocks.clone(),
        rotations_started: r.rotations.len(),
        rotations_completed: r.rotations.iter().filter(|x| x.outcome == "ALLOW").count(),
        rotations_timed_out: r
            .rotations
            .iter()
            .filter(|x| x.outcome == "active_slots_rotation_timeout")
            .count(),
        max_occupied_slots: r.bars.iter().map(|b| b.occupied).max().unwrap_or(0),
        max_desired_slots: r.bars.iter().map(|b| b.desired).max().unwrap_or(0),
        regime_share,
        governed: account(r, |b| &b.governed, r.liquidations_governed.len()),
        ungoverned: account(r, |b| &b.ungoverned, r.liquidations_ungoverned.len()),
    }
}

/// Governed against ungoverned, row by row: (what, governed, ungoverned).
pub fn comparison(s: &Summary) -> [(&'static str, String, String); 7] {
    let (g, u) = (&s.governed, &s.ungoverned);
    [
        (
            "max positions",
            g.max_positions.to_string(),
            u.max_positions.to_string(),
        ),
        (
            "max notional (USDT)",
            format!("{:.0}", g.max_notional),
            format!("{:.0}", u.max_notional),
        ),
        (
            "max notional / equity",
            format!("{:.2}x", g.max_leverage_on_equity),
            format!("{:.2}x", u.max_leverage_on_equity),
        ),
        (
            "max margin usage",
            format!("{:.1}%", g.max_margin_usage * 100.0),
            format!("{:.1}%", u.max_margin_usage * 100.0),
        ),
        (
            "max drawdown",
            format!("{:.2}%", g.max_drawdown * 100.0),
            format!("{:.2}%", u.max_drawdown * 100.0),
        ),
        (
            "final equity (USDT)",
            format!("{:.2}", g.final_equity),
            format!("{:.2}", u.final_equity),
        ),
        (
            "liquidations",
            g.liquidations.to_string(),
            u.liquidations.to_string(),
        ),
    ]
}

/// The terminal summary.
pub fn render(s: &Summary, r: &ReplayResult) -> String {
    let mut o = String::new();
    let v = |k: &str| s.verdicts.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        o,
        "replay: {} bars, {} symbols, {} plans",
        s.bars,
        r.symbols.len(),
        s.plans
    );
    if let Some(c) = &r.recorded {
        let _ = writeln!(
            o,
            "recorded plans: {} played at their times, {} published by the recorded governor \
             (not played: the replay publishes its own), {} outside the replayed bars (not played)",
            c.played, c.governor_published, c.outside_window
        );
    }
    let _ = writeln!(
        o,
        "decisions: {} ALLOW, {} BLOCK, {} PENDING, {} SKIP, {} rejected by the schema",
        v("ALLOW"),
        v("BLOCK"),
        v("PENDING"),
        v("SKIP"),
        r.rejected
    );
    let mut blocks: Vec<_> = s.blocks.iter().collect();
    blocks.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let _ = writeln!(o, "blocks by reason:");
    for (reason, n) in blocks {
        let _ = writeln!(o, "  {reason:<40} {n:>6}");
    }
    let _ = writeln!(
        o,
        "rotations: {} started, {} completed, {} timed out",
        s.rotations_started, s.rotations_completed, s.rotations_timed_out
    );
    let regimes: Vec<String> = s
        .regime_share
        .iter()
        .map(|(k, v)| format!("{k} {:.0}%", v * 100.0))
        .collect();
    let _ = writeln!(o, "regime: {}", regimes.join(", "));
    let _ = writeln!(
        o,
        "slots: at most {} occupied, at most {} desired",
        s.max_occupied_slots, s.max_desired_slots
    );
    let _ = writeln!(o, "{:<28} {:>14} {:>14}", "", "governed", "ungoverned");
    let rows = comparison(s);
    for (name, a, b) in rows {
        let _ = writeln!(o, "{name:<28} {a:>14} {b:>14}");
    }
    let _ = writeln!(
        o,
        "ungoverned orders: {} filled, {} refused by the exchange (-2019 margin)",
        r.ungoverned.filled, r.ungoverned.margin_rejected
    );
    let _ = writeln!(
        o,
        "de-risk: {} halts at the account margin ratio's line, {} close plans published",
        r.derisk_halts, r.derisk_closes
    );
    o
}
