//! De-risking: when Binance's account margin ratio (maintenance margin over margin balance,
//! liquidation at 100 %) rises above `liquidation.derisk_at` — a price move, not an open, took
//! it there — the governor switches trading to REDUCING (its halt says
//! `account_margin_ratio`) and reduces the account by itself: it publishes a close plan,
//! `PARTIAL_50` of the position that contributes the most maintenance margin, through the
//! normal plan stream, taking that symbol's exit lock for the plan as a rotation does. The next
//! close is published only once that lock is free again (the close executed and released it,
//! or the lock lapsed) and the exchange shows the position the ledger holds, so there is one
//! de-risk close at a time and never two under one lock. It closes whatever put trading into
//! REDUCING — its own line, the drawdown halt (the same price move often crosses both) or the
//! operator — since reducing is what REDUCING is for; HALTED stops it like everything else.
//! Once the ratio is under `derisk_resume_below` and `derisk_resume_after_secs` have passed
//! since the halt began, trading resumes by itself (an operator may resume earlier, as with the
//! drawdown halt).
//!
//! Run by the sweeper every second and by the replay every bar; like the drawdown monitor, a
//! plan id and symbol of `governor` / `ACCOUNT` stand on its events.

use crate::config::{Config, GateMode};
use crate::effects::{Effect, Event, Guard};
use crate::gates::portfolio::{Holding, Portfolio};
use crate::halt::{halt_effects, monitor_ids, resume, Observation};
use crate::market::brackets::LeverageBrackets;
use crate::reason::BlockReason;
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use crate::types::{PlanId, Side, Symbol, TradingState};

/// The account's margin as Binance computes it, and the position that weighs most.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountMargin {
    /// Σ maintenance margin of the open positions at their marks.
    pub maintenance: f64,
    /// Wallet balance + unrealized PnL (the account equity).
    pub margin_balance: f64,
    /// `maintenance / margin_balance` (infinite when the balance is not positive).
    pub ratio: f64,
    /// The position contributing the most maintenance margin: symbol, side, size and margin.
    pub largest: Option<(Symbol, Side, f64, f64)>,
}

/// The account margin of `snap`'s exchange view (positions only: a reservation is not at the
/// exchange yet). `Err(symbol)` when a position's tiers are not known: the ratio is unknown,
/// never guessed low.
pub fn account_margin(snap: &Snapshot) -> Result<Option<AccountMargin>, Symbol> {
    let Some(view) = Portfolio::build(snap) else {
        return Ok(None);
    };
    let margined = margined_positions(snap, &view)?;
    // Folded from +0.0: a float `sum` of nothing is −0.0, which would show as "-0.0%".
    let maintenance = margined.iter().fold(0.0, |total, p| total + p.2);
    let largest = margined
        .iter()
        .fold(
            None::<&(&Holding, &LeverageBrackets, f64)>,
            |best, p| match best {
                Some(b) if b.2 >= p.2 => Some(b),
                _ => Some(p),
            },
        )
        .map(|(h, _, mm)| (h.symbol.clone(), h.side, h.qty, *mm));
    Ok(Some(AccountMargin {
        maintenance,
        margin_balance: view.equity,
        ratio: crate::liquidation::account_margin_ratio(maintenance, view.equity),
        largest,
    }))
}

/// The open positions of `view` (not reservations: they are not at the exchange yet), each
/// with its symbol's tiers and its maintenance margin at the mark; `Err(symbol)` for the first
/// whose tiers are unknown or exceeded.
fn margined_positions<'v>(
    snap: &'v Snapshot,
    view: &'v Portfolio<'v>,
) -> Result<Vec<(&'v Holding<'v>, &'v LeverageBrackets, f64)>, Symbol> {
    view.holdings
        .iter()
        .filter(|h| h.is_position())
        .map(|h| {
            snap.market
                .get(h.symbol)
                .and_then(|m| m.brackets.as_ref())
                .and_then(|b| Some((h, b, b.maintenance_margin(h.notional)?)))
                .ok_or_else(|| h.symbol.clone())
        })
        .collect()
}

/// One open position against its liquidation price, for the operator's view.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PositionRisk {
    /// The instrument.
    pub symbol: Symbol,
    /// Its direction.
    pub side: Side,
    /// Its mark.
    pub mark: f64,
    /// Where it would be liquidated (`None`: no positive price liquidates it).
    pub liquidation_price: Option<f64>,
    /// How far the mark is from it, as a fraction of the mark (`None` with no price).
    pub distance: Option<f64>,
}

/// Every open position of `snap`'s exchange view against its liquidation price under `cfg`'s
/// margin mode (cross: backed by the wallet less the others' maintenance margin plus their
/// unrealized PnL; isolated: by its entry notional over its leverage). `Err(symbol)` when a
/// position's tiers are not known.
pub fn position_risks(snap: &Snapshot, cfg: &Config) -> Result<Vec<PositionRisk>, Symbol> {
    let Some(view) = Portfolio::build(snap) else {
        return Ok(Vec::new());
    };
    let margined = margined_positions(snap, &view)?;
    let total_mm: f64 = margined.iter().map(|p| p.2).sum();
    let total_upnl: f64 = margined.iter().map(|p| p.0.unrealized_pnl()).sum();
    let wallet = view.equity - total_upnl;
    Ok(margined
        .iter()
        .map(|&(h, b, mm)| {
            let mark = h.notional / h.qty;
            let entry = match h.kind {
                crate::gates::portfolio::HoldingKind::Position { entry_price, .. } => entry_price,
                _ => mark,
            };
            let collateral = match cfg.liquidation.margin_mode {
                crate::config::MarginMode::Cross => {
                    wallet - (total_mm - mm) + (total_upnl - h.unrealized_pnl())
                }
                crate::config::MarginMode::Isolated => h.qty * entry / f64::from(h.leverage),
            };
            let liq = crate::liquidation::liquidation_price(b, h.side, h.qty, entry, collateral);
            let price = liq.and_then(|l| l.price);
            PositionRisk {
                symbol: h.symbol.clone(),
                side: h.side,
                mark,
                liquidation_price: price,
                distance: liq
                    .filter(|_| price.is_some())
                    .map(|l| l.distance(h.side, mark)),
            }
        })
        .collect())
}

/// What the account margin seen at `now` changes.
pub fn observe(snap: &Snapshot, cfg: &Config, now: Timestamp) -> Vec<Observation> {
    let lq = &cfg.liquidation;
    if cfg.gates.account_margin_ratio != GateMode::Enforce {
        return Vec::new();
    }
    let Ok(Some(m)) = account_margin(snap) else {
        return Vec::new();
    };
    let (who, account) = monitor_ids();
    let halt = snap.book.halt.as_ref();
    let above = m.ratio > lq.derisk_at;
    match (snap.trading_state, halt) {
        (TradingState::Active, None) if above => {
            let detail = format!(
                "account margin ratio {:.2}% is above the de-risk line {:.2}%",
                m.ratio * 100.0,
                lq.derisk_at * 100.0
            );
            let mut effects = halt_effects(
                BlockReason::AccountMarginRatio,
                &who,
                &account,
                &detail,
                now,
            );
            let mut guards = vec![Guard::TradingStateIs(TradingState::Active)];
            if let Some((close, lock)) = close_plan(snap, &m, cfg, now) {
                effects.extend(close);
                guards.push(lock);
            }
            vec![Observation { guards, effects }]
        }
        (TradingState::Reducing, _) if above => close_plan(snap, &m, cfg, now)
            .map(|(effects, lock)| Observation {
                guards: vec![Guard::TradingStateIs(TradingState::Reducing), lock],
                effects,
            })
            .into_iter()
            .collect(),
        (TradingState::Reducing, Some(h)) if h.reason == BlockReason::AccountMarginRatio => {
            let paused = now.secs_since(h.since);
            if !(m.ratio < lq.derisk_resume_below && paused >= lq.derisk_resume_after_secs as f64) {
                return Vec::new();
            }
            let why = format!(
                "account margin ratio {:.2}% is back under {:.2}% after {paused:.0} s",
                m.ratio * 100.0,
                lq.derisk_resume_below * 100.0
            );
            vec![resume("account_margin_resume", why, now)]
        }
        _ => Vec::new(),
    }
}

/// Whether the ledger and the exchange agree on `symbol`'s position: a close that just
/// executed may not show in the exchange's view yet (it is read every two seconds), and a
/// position the reconciler has not adopted is not the ledger's yet. Either way the next close
/// waits, rather than halve a size that is no longer there.
fn settled(snap: &Snapshot, symbol: &Symbol) -> bool {
    let live = snap.exchange.as_ref().and_then(|x| x.positions.get(symbol));
    match (snap.book.positions.get(symbol), live) {
        (Some(l), Some(x)) => l.side == x.side && (l.qty - x.qty).abs() <= l.qty.max(x.qty) * 1e-9,
        _ => false,
    }
}

/// The next de-risk close: `PARTIAL_50` of the position with the most maintenance margin,
/// published with its symbol's exit lock taken for it, unless a live lock holds that symbol
/// (the last close is still on its way). Its effects, and the guard that the lock is still
/// free at commit: two monitors (two governor processes) publishing at once name different
/// plans, and the second one's guard fails on the first one's lock.
fn close_plan(
    snap: &Snapshot,
    m: &AccountMargin,
    cfg: &Config,
    now: Timestamp,
) -> Option<(Vec<Effect>, Guard)> {
    let (symbol, side, qty, mm) = m.largest.clone()?;
    if snap.book.live_exit_lock(&symbol, now).is_some() || !settled(snap, &symbol) {
        return None;
    }
    let plan_id =
        PlanId::parse(&format!("derisk-{symbol}-{}", now.millis())).expect("a valid plan id");
    let fields: Vec<(String, String)> = [
        ("plan_id", plan_id.to_string()),
        ("symbol", symbol.to_string()),
        ("action", "PARTIAL_50".to_owned()),
        ("decision", "EXECUTE".to_owned()),
        ("reduceOnly", "true".to_owned()),
        ("qty", (qty * 0.5).to_string()),
        ("derisk_trigger", "true".to_owned()),
        ("account_margin_ratio", m.ratio.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let effects = vec![
        Effect::TakeExitLock {
            symbol: symbol.clone(),
            holder: plan_id.clone(),
            expires_at: now.plus_secs(cfg.exit_lock_ttl_secs),
        },
        Effect::PublishPlan(fields),
        Effect::Emit(
            Event::new("DERISK_CLOSE_PUBLISHED", &plan_id, &symbol, now)
                .with("side", side.as_str())
                .with("action", "PARTIAL_50")
                .with("ratio", m.ratio)
                .with("maintenance_margin", mm),
        ),
    ];
    let guard = Guard::ExitLockFree {
        symbol,
        holder: plan_id,
    };
    Some((effects, guard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Book, ExitLock, Halt, LedgerPosition};
    use crate::market::brackets::testing::btc;
    use crate::market::SymbolMarket;
    use crate::snapshot::{CapitalState, ExchangeClock, ExchangePosition, ExchangeState, Policy};
    use std::sync::Arc;

    const NOW: Timestamp = Timestamp(1_767_225_600_000);

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    /// An account of `equity` holding ETHUSDT and SOLUSDT longs of these notionals at 100,
    /// in the ledger and at the exchange alike, both with BTCUSDT's tiers (tier 1: MMR 0.004).
    fn account(equity: f64, eth: f64, sol: f64) -> Snapshot {
        let mut book = Book::default();
        let mut live = std::collections::BTreeMap::new();
        let mut market = std::collections::BTreeMap::new();
        for (s, notional) in [("ETHUSDT", eth), ("SOLUSDT", sol)] {
            let qty = notional / 100.0;
            book.positions.insert(
                sym(s),
                LedgerPosition {
                    side: Side::Long,
                    qty,
                    entry_price: 100.0,
                    leverage: 10,
                    opened_at: NOW,
                    entry_score: None,
                    entry_fees: 0.0,
                },
            );
            live.insert(
                sym(s),
                ExchangePosition {
                    side: Side::Long,
                    qty,
                    entry_price: 100.0,
                    mark_price: 100.0,
                    leverage: 10,
                },
            );
            market.insert(
                sym(s),
                Arc::new(SymbolMarket {
                    last_bar_close: NOW,
                    last_close: 100.0,
                    bars: 1,
                    features: None,
                    returns: Vec::new(),
                    brackets: Some(btc()),
                }),
            );
        }
        Snapshot {
            trading_state: TradingState::Active,
            policy: Policy::Missing,
            prior: None,
            book: book.into(),
            exchange: Some(ExchangeState {
                equity_usdt: equity,
                positions: live,
                clock: ExchangeClock::Local,
            }),
            market: market.into(),
            correlations: None,
            capital: CapitalState::default(),
        }
    }

    /// What `observe` would leave: the snapshot with its effects applied.
    fn after(mut snap: Snapshot, obs: &[Observation]) -> Snapshot {
        for o in obs {
            for e in &o.effects {
                if let Effect::SetTradingState { to, .. } = e {
                    snap.trading_state = *to;
                }
                crate::commit::apply(snap.book_mut(), e, 0);
            }
        }
        snap
    }

    fn published(obs: &[Observation]) -> Vec<Vec<(String, String)>> {
        obs.iter()
            .flat_map(|o| &o.effects)
            .filter_map(|e| match e {
                Effect::PublishPlan(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    fn field<'a>(plan: &'a [(String, String)], k: &str) -> &'a str {
        &plan.iter().find(|(n, _)| n == k).unwrap().1
    }

    #[test]
    fn an_account_without_positions_has_a_ratio_of_plus_zero() {
        let mut snap = account(1_000.0, 0.0, 0.0);
        snap.book_mut().positions.clear();
        snap.exchange.as_mut().unwrap().positions.clear();
        let m = account_margin(&snap).unwrap().unwrap();
        assert!(m.ratio == 0.0 && m.ratio.is_sign_positive(), "{}", m.ratio);
    }

    #[test]
    fn the_account_ratio_is_the_positions_maintenance_over_the_equity() {
        // ETH 20,000 × 0.004 = 80, SOL 16,000 × 0.004 = 64: 144 / 1,000 = 14.4 %.
        let m = account_margin(&account(1_000.0, 20_000.0, 16_000.0))
            .unwrap()
            .unwrap();
        assert!((m.maintenance - 144.0).abs() < 1e-9);
        assert!((m.ratio - 0.144).abs() < 1e-12);
        assert_eq!(m.largest.map(|l| l.0), Some(sym("ETHUSDT")));
    }

    #[test]
    fn above_the_line_it_halts_and_closes_half_the_heaviest_position_one_lock_at_a_time() {
        let cfg = Config::default();
        // 9.6 % (144 / 1,500): under the 10 % line, nothing happens.
        assert!(observe(&account(1_500.0, 20_000.0, 16_000.0), &cfg, NOW).is_empty());
        // 14.4 %: REDUCING, and PARTIAL_50 of ETH (its 80 is the most maintenance margin).
        let snap = account(1_000.0, 20_000.0, 16_000.0);
        let obs = observe(&snap, &cfg, NOW);
        let plans = published(&obs);
        assert_eq!(plans.len(), 1);
        assert_eq!(field(&plans[0], "symbol"), "ETHUSDT");
        assert_eq!(field(&plans[0], "action"), "PARTIAL_50");
        assert_eq!(field(&plans[0], "qty"), "100", "half of 200 ETH");
        let id = format!("derisk-ETHUSDT-{}", NOW.millis());
        assert_eq!(field(&plans[0], "plan_id"), id);
        let snap = after(snap, &obs);
        assert_eq!(snap.trading_state, TradingState::Reducing);
        assert_eq!(
            snap.book.halt.as_ref().unwrap().reason,
            BlockReason::AccountMarginRatio
        );
        assert_eq!(
            snap.book.exit_locks[&sym("ETHUSDT")].holder.as_str(),
            id,
            "the close holds ETH's exit lock"
        );
        // While that lock holds, nothing more is published.
        assert!(observe(&snap, &cfg, NOW.plus_secs(1)).is_empty());
        // The close executed: ETH 10,000 in the ledger, but the exchange's view still shows
        // 20,000 — not settled, so still nothing.
        let mut snap = snap;
        snap.book_mut().exit_locks.clear();
        snap.book_mut()
            .positions
            .get_mut(&sym("ETHUSDT"))
            .unwrap()
            .qty = 100.0;
        assert!(observe(&snap, &cfg, NOW.plus_secs(2)).is_empty());
        // Settled: 40 + 64 = 104 / 1,000 = 10.4 %, still above: now SOL is the heaviest.
        snap.exchange
            .as_mut()
            .unwrap()
            .positions
            .get_mut(&sym("ETHUSDT"))
            .unwrap()
            .qty = 100.0;
        let obs = observe(&snap, &cfg, NOW.plus_secs(3));
        let plans = published(&obs);
        assert_eq!(field(&plans[0], "symbol"), "SOLUSDT");
        assert_eq!(field(&plans[0], "qty"), "80");
        assert_eq!(
            field(&plans[0], "plan_id"),
            format!("derisk-SOLUSDT-{}", NOW.plus_secs(3).millis())
        );
    }

    #[test]
    fn under_another_halt_it_still_closes_and_under_halted_it_does_not() {
        let cfg = Config::default();
        let mut snap = account(1_000.0, 20_000.0, 16_000.0);
        snap.trading_state = TradingState::Reducing;
        snap.book_mut().halt = Some(Halt {
            reason: BlockReason::DrawdownHalt,
            since: NOW,
            detail: "the same move".into(),
        });
        let obs = observe(&snap, &cfg, NOW);
        assert_eq!(
            published(&obs).len(),
            1,
            "the drawdown halt does not stop de-risking"
        );
        assert_eq!(
            after(snap.clone(), &obs).book.halt.clone().unwrap().reason,
            BlockReason::DrawdownHalt,
            "and keeps its own halt"
        );
        snap.trading_state = TradingState::Halted;
        assert!(observe(&snap, &cfg, NOW).is_empty());
    }

    #[test]
    fn it_resumes_under_the_lower_line_after_the_pause_and_not_before() {
        let cfg = Config::default();
        let snap = account(1_000.0, 20_000.0, 16_000.0);
        let halted = after(
            snap,
            &observe(&account(1_000.0, 20_000.0, 16_000.0), &cfg, NOW),
        );
        // Back to 4.8 % (ETH 8,000 and SOL 4,000: 48 / 1,000), the ledger and the exchange
        // agreeing, no lock.
        let mut calm = account(1_000.0, 8_000.0, 4_000.0);
        calm.trading_state = TradingState::Reducing;
        calm.book_mut().halt = halted.book.halt.clone();
        assert!(
            observe(&calm, &cfg, NOW.plus_secs(3_599)).is_empty(),
            "paused an hour"
        );
        let obs = observe(&calm, &cfg, NOW.plus_secs(3_600));
        assert_eq!(
            after(calm.clone(), &obs).trading_state,
            TradingState::Active
        );
        // At 6 % (under the 10 % line, over the 5 % one) it stays REDUCING and closes nothing.
        let mut between = account(1_000.0, 10_000.0, 5_000.0);
        between.trading_state = TradingState::Reducing;
        between.book_mut().halt = halted.book.halt.clone();
        assert!(observe(&between, &cfg, NOW.plus_secs(7_200)).is_empty());
    }

    #[test]
    fn each_position_is_shown_against_its_liquidation_price() {
        // Cross: wallet 1,000 (no PnL); ETH 20,000 (200 at 100, MM 80) is backed by
        // 1,000 − SOL's 64 = 936: (936 − 20,000) / (200 × 0.004 − 200) = 95.70, 4.30 % away.
        let snap = account(1_000.0, 20_000.0, 16_000.0);
        let risks = position_risks(&snap, &Config::default()).unwrap();
        let eth = &risks[0];
        assert_eq!(eth.symbol, sym("ETHUSDT"));
        assert!(
            (eth.liquidation_price.unwrap() - 95.7028).abs() < 1e-3,
            "{eth:?}"
        );
        assert!((eth.distance.unwrap() - 0.042972).abs() < 1e-5);
        // Isolated at 10x: 2,000 of margin: (2,000 − 20,000) / (0.8 − 200) = 90.36.
        let mut cfg = Config::default();
        cfg.liquidation.margin_mode = crate::config::MarginMode::Isolated;
        let risks = position_risks(&snap, &cfg).unwrap();
        assert!((risks[0].liquidation_price.unwrap() - 90.3614).abs() < 1e-3);
    }

    #[test]
    fn unknown_tiers_or_a_gate_not_enforced_change_nothing() {
        let mut snap = account(1_000.0, 20_000.0, 16_000.0);
        let mut cfg = Config::default();
        cfg.gates.account_margin_ratio = GateMode::Shadow;
        assert!(observe(&snap, &cfg, NOW).is_empty());
        let cfg = Config::default();
        snap.market_mut().remove(&sym("SOLUSDT"));
        assert_eq!(account_margin(&snap), Err(sym("SOLUSDT")));
        assert!(observe(&snap, &cfg, NOW).is_empty());
    }

    #[test]
    fn a_live_lock_held_by_another_close_is_left_alone() {
        let mut snap = account(1_000.0, 20_000.0, 16_000.0);
        snap.book_mut().exit_locks.insert(
            sym("ETHUSDT"),
            ExitLock {
                holder: PlanId::parse("strategy-close-7").unwrap(),
                expires_at: NOW.plus_secs(60),
                fence: 1,
            },
        );
        let obs = observe(&snap, &Config::default(), NOW);
        assert!(
            published(&obs).is_empty(),
            "the strategy's own close is on its way"
        );
        assert_eq!(
            after(snap, &obs).trading_state,
            TradingState::Reducing,
            "but trading is REDUCING already"
        );
    }
}
