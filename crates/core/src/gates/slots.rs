//! Regime → desired slots, slot occupancy and the choice of a rotation.

use super::common::{refuse, Candidate, Ctx, Refusal};
use super::portfolio::{HoldingKind, Portfolio};
use crate::config::RegimeReference;
use crate::market::regime::{classify, desired_slots};
use crate::market::RegimeReading;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};
use crate::types::{PlanId, Symbol};

/// The regime reading and the slots it grants.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct SlotBudget {
    /// The regime and its confidence.
    pub reading: RegimeReading,
    /// Desired slots after the hard cap and max_open_positions.
    pub desired: u32,
}

/// Classifies the regime from the reference symbol's cached features. Missing or stale
/// klines are `market_data_unavailable` (fail-closed); too few bars are UNKNOWN.
pub fn regime(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<SlotBudget, Refusal> {
    let reference: &Symbol = match &ctx.cfg.regime.reference {
        RegimeReference::Symbol(s) => s,
        RegimeReference::Candidate => &ctx.plan.symbol,
    };
    let max_age = ctx.cfg.regime.max_kline_age_secs as f64;
    trace
        .line("regime", Outcome::Pass)
        .id("reference", reference);
    let market = match ctx.snap.market.get(reference) {
        None => {
            return Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::MarketDataUnavailable,
                    format!("no klines for the regime reference {reference}"),
                ),
            ))
        }
        Some(m) => m,
    };
    let age = market.age_secs(ctx.now);
    trace
        .last()
        .num("kline_age_secs", age)
        .num("max_kline_age_secs", max_age);
    if !(0.0..=max_age).contains(&age) {
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::MarketDataUnavailable,
                format!(
                    "{reference} klines are {age:.0} s old (max {max_age:.0} s) or not closed yet"
                ),
            ),
        ));
    }
    let reading = classify(market.features.as_ref(), &ctx.cfg.regime);
    let desired = desired_slots(
        reading.regime,
        &ctx.cfg.slots,
        ctx.cfg.funds.max_open_positions,
    );
    trace
        .last()
        .name("regime", reading.regime.as_str())
        .num("confidence", reading.confidence)
        .int("bars", market.bars as i64)
        .int("desired_slots", i64::from(desired))
        .int("hard_cap", i64::from(ctx.cfg.slots.hard_cap));
    if let Some(f) = &market.features {
        trace
            .last()
            .num("ema20", f.ema20)
            .num("ema50", f.ema50)
            .num("atr14", f.atr14)
            .num("trend", f.trend)
            .num("atr_pct", f.atr_pct)
            .num("momentum_consistency", f.momentum_consistency);
    }
    Ok(SlotBudget { reading, desired })
}

/// How an open uses the slot table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlotUse {
    /// The symbol is already held in this direction: no new slot.
    Expand,
    /// A free slot is taken.
    NewSlot,
    /// The slot a rotation freed for this very plan (phase 2).
    RotationHeld,
    /// No free slot.
    Full,
}

/// Checks the candidate's symbol against the slot table. `budget` is `None` when slot
/// accounting is disabled (only the side rule applies then). `slot_promised`: the candidate's
/// symbol's slot is promised to another plan's rotation
/// ([`Book::slot_promised`](crate::book::Book::slot_promised)): the open can neither expand it
/// (the table would be one over once the rotation completes) nor take a slot of its own (the
/// table keeps one slot per symbol, so it would count one too few); it is refused.
/// `being_closed_by`: the close plan holding the symbol's live exit lock. A close is sized from
/// the exchange's position when it is sent, so an open filled before it would be closed with
/// it (and booked after it, as a position the exchange no longer holds): an open on a symbol
/// being closed is refused until the close ends (`exit_lock_busy_double_close_prevention`).
pub fn occupancy(
    cand: &Candidate,
    portfolio: &Portfolio,
    budget: Option<SlotBudget>,
    phase2: bool,
    slot_promised: bool,
    being_closed_by: Option<&PlanId>,
    trace: &mut Trace,
) -> Result<SlotUse, Refusal> {
    let occupied = portfolio.occupied_slots() as u32;
    trace
        .line("slots", Outcome::Pass)
        .int("occupied", i64::from(occupied))
        .opt_int("desired", budget.map(|b| i64::from(b.desired)));
    if slot_promised {
        trace.last().flag("slot_promised_to_rotation", true);
    }
    match portfolio.side_of(&cand.symbol) {
        Some(side) if side != cand.side => {
            return Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::OppositePositionOpen,
                    format!("{} is held {}: close it first", cand.symbol, side.as_str()),
                ),
            ))
        }
        _ if slot_promised && budget.is_some() => {
            let why = format!(
                "{}'s slot is promised to a rotation: no other open on it until the rotation ends",
                cand.symbol
            );
            return Err(refuse(trace, Refusal::new(BlockReason::SlotsFull, why)));
        }
        Some(_) if being_closed_by.is_some() => {
            let holder = being_closed_by.expect("matched");
            trace.last().id("being_closed_by", holder);
            let why = format!(
                "{} is being closed by {holder}: no open on it until that close ends",
                cand.symbol
            );
            return Err(refuse(
                trace,
                Refusal::new(BlockReason::ExitLockBusyDoubleClosePrevention, why),
            ));
        }
        Some(_) => {
            trace
                .last()
                .note("expands the symbol's slot: no new slot taken");
            return Ok(SlotUse::Expand);
        }
        None => {}
    }
    let Some(budget) = budget else {
        trace
            .last()
            .outcome(Outcome::NotApplicable)
            .note("slot accounting disabled");
        return Ok(SlotUse::NewSlot);
    };
    if phase2 {
        // The portfolio excludes this plan's own held slot: it must still fit beside the rest.
        // If it no longer does (the regime shrank the budget), it is refused: a pending plan
        // never starts a second rotation.
        if occupied < budget.desired {
            trace.last().note("takes the slot its rotation freed");
            return Ok(SlotUse::RotationHeld);
        }
        let why = format!(
            "rotation phase 2: {occupied} other slots occupied, {} desired",
            budget.desired
        );
        return Err(refuse(trace, Refusal::new(BlockReason::SlotsFull, why)));
    }
    if occupied < budget.desired {
        return Ok(SlotUse::NewSlot);
    }
    trace
        .last()
        .outcome(Outcome::Warn)
        .note("all slots occupied");
    Ok(SlotUse::Full)
}

/// A rotation that phase 1 will start.
#[derive(Clone, Debug, PartialEq)]
pub struct RotationChoice {
    /// The weakest position, to be closed.
    pub weakest: Symbol,
    /// Its size (the close plan carries it).
    pub weakest_qty: f64,
    /// Its entry score.
    pub weakest_score: f64,
    /// The candidate's score.
    pub candidate_score: f64,
    /// The close plan's id: `rot_<first 8 of plan id>_<SYMBOL>`.
    pub close_plan_id: PlanId,
}

/// `weakness = -(unrealized_pnl_pct) + min(age_hours × per_hour, cap)`; an age nobody
/// recorded counts as the cap.
fn weakness(ctx: &Ctx<'_>, kind: &HoldingKind) -> Option<(f64, Option<f64>)> {
    let cfg = &ctx.cfg.slots;
    match kind {
        HoldingKind::Position {
            opened_at,
            entry_score,
            pnl_pct,
            ..
        } => {
            let penalty = opened_at
                .map(|t| (ctx.now.secs_since(t) / 3600.0 * cfg.age_penalty_per_hour).max(0.0))
                .unwrap_or(cfg.age_penalty_cap)
                .min(cfg.age_penalty_cap);
            Some((-pnl_pct + penalty, *entry_score))
        }
        _ => None,
    }
}

/// The close plan id of a rotation: `rot_<first 8 characters of the plan id>_<SYMBOL>`.
pub fn rotation_close_plan_id(plan_id: &PlanId, weakest: &Symbol) -> PlanId {
    let head: String = plan_id.as_str().chars().take(8).collect();
    PlanId::parse(&format!("rot_{head}_{weakest}")).expect("built from valid parts")
}

/// With every slot full: picks the weakest position not already being closed and not also
/// reserved by a permitted open (closing it would not free its slot), and rotates only if the
/// candidate's score beats its entry score by more than the threshold.
pub fn rotation(
    ctx: &Ctx<'_>,
    portfolio: &Portfolio,
    trace: &mut Trace,
) -> Result<RotationChoice, Refusal> {
    let threshold = ctx.cfg.slots.rotation_threshold;
    let book = &ctx.snap.book;
    let weakest = portfolio
        .holdings
        .iter()
        .filter(|h| book.live_exit_lock(h.symbol, ctx.now).is_none())
        .filter(|h| !book.slot_promised(h.symbol, None))
        .filter(|h| !book.reservations.values().any(|r| r.symbol == *h.symbol))
        .filter_map(|h| weakness(ctx, &h.kind).map(|(w, s)| (h, w, s)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.symbol.cmp(a.0.symbol)));
    trace
        .line("rotation", Outcome::Pass)
        .opt_num("candidate_score", ctx.plan.score)
        .num("threshold", threshold);
    let full = |detail: String| Refusal::new(BlockReason::SlotsFull, detail);
    let Some((holding, weak, weakest_score)) = weakest else {
        return Err(refuse(
            trace,
            full("every slot is taken and no position is free to rotate out".to_owned()),
        ));
    };
    trace
        .last()
        .id("weakest", holding.symbol)
        .num("weakness", weak)
        .opt_num("weakest_score", weakest_score);
    let (Some(new), Some(old)) = (ctx.plan.score, weakest_score) else {
        return Err(refuse(
            trace,
            full("slots full and a score is missing: no rotation".to_owned()),
        ));
    };
    if !(old > 0.0) {
        return Err(refuse(
            trace,
            full(format!(
                "weakest entry score {old} is not positive: no rotation"
            )),
        ));
    }
    let improvement = (new - old) / old;
    trace.last().num("improvement", improvement);
    if !(improvement > threshold) {
        return Err(refuse(
            trace,
            full(format!(
                "slots full; candidate {new} vs weakest {} at {old}: improvement {:.2}% <= {:.2}%",
                holding.symbol,
                improvement * 100.0,
                threshold * 100.0
            )),
        ));
    }
    trace
        .last()
        .note("rotation: the weakest position will be closed for this plan");
    Ok(RotationChoice {
        weakest: holding.symbol.clone(),
        weakest_qty: holding.qty,
        weakest_score: old,
        candidate_score: new,
        close_plan_id: rotation_close_plan_id(&ctx.plan.plan_id, holding.symbol),
    })
}

/// The side's maximum for `cand` and the slots of that side in `portfolio` (distinct symbols,
/// counting exchange positions the ledger does not know), when a maximum is configured.
pub fn side_count(
    ctx: &Ctx<'_>,
    cand: &Candidate,
    portfolio: &Portfolio,
) -> Option<(u32, u32, u32)> {
    let cfg = &ctx.cfg.side_slots;
    let limit = match cand.side {
        crate::types::Side::Long => cfg.max_long,
        crate::types::Side::Short => cfg.max_short,
    }?;
    let mut symbols: Vec<&Symbol> = portfolio
        .holdings
        .iter()
        .filter(|h| h.side == cand.side)
        .map(|h| h.symbol)
        .collect();
    symbols.sort();
    symbols.dedup();
    let unledgered = portfolio.unledgered_outside_book(Some(cand.side));
    Some((limit, symbols.len() as u32, unledgered))
}

/// Per-side slots: a new slot on a side already at its maximum is refused (`side_slots_full`).
/// Expanding a held symbol takes no new slot and always passes.
pub fn side_slots(
    ctx: &Ctx<'_>,
    cand: &Candidate,
    portfolio: &Portfolio,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    trace
        .line("side_slots", Outcome::Pass)
        .name("side", cand.side.as_str());
    let Some((limit, used, _)) = side_count(ctx, cand, portfolio) else {
        trace
            .last()
            .outcome(Outcome::NotApplicable)
            .note("no maximum for this side");
        return Ok(());
    };
    trace
        .last()
        .int("side_slots", i64::from(used))
        .int("max", i64::from(limit));
    let promised = ctx
        .snap
        .book
        .slot_promised(&cand.symbol, Some(&ctx.plan.plan_id));
    if portfolio.side_of(&cand.symbol).is_some() && !promised {
        trace.last().note("expands a held symbol: no new slot");
        return Ok(());
    }
    if used >= limit {
        let why = format!(
            "{used} {} slots occupied; at most {limit}",
            cand.side.as_str()
        );
        return Err(refuse(trace, Refusal::new(BlockReason::SideSlotsFull, why)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Book, ExitLock};
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{
        account, candidate, market, plan, position, reserve, run, sym, traced, NOW,
    };
    use crate::market::regime::{Regime, RegimeFeatures};
    use crate::market::SymbolMarket;
    use crate::snapshot::Snapshot;
    use crate::time::Timestamp;
    use crate::types::Side;
    use std::sync::Arc;

    fn regime_with(m: Option<SymbolMarket>) -> Result<SlotBudget, BlockReason> {
        let mut snap = test_snapshot(Book::default(), None);
        if let Some(m) = m {
            snap.market_mut().insert(sym("BTCUSDT"), Arc::new(m));
        }
        let open = plan("ETHUSDT", "OPEN_LONG", &[]);
        run(&open, &snap, &Config::default(), NOW, regime)
    }

    fn aged(age_secs: i64) -> SymbolMarket {
        SymbolMarket {
            last_bar_close: Timestamp(NOW.millis() - age_secs * 1000),
            ..(*market(100.0, vec![])).clone()
        }
    }

    #[test]
    fn the_regime_needs_reference_klines_no_older_than_two_hours() {
        let unavailable = Err(BlockReason::MarketDataUnavailable);
        assert_eq!(regime_with(None), unavailable);
        assert_eq!(regime_with(Some(aged(7_201))), unavailable);
        // A bar that has not closed yet is not data.
        assert_eq!(regime_with(Some(aged(-1))), unavailable);
        // Too few bars for features: UNKNOWN, with the base 4 slots.
        let unknown = regime_with(Some(aged(7_200))).expect("fresh enough");
        assert_eq!(
            (unknown.reading.regime, unknown.desired),
            (Regime::Unknown, 4)
        );
    }

    #[test]
    fn a_volatility_spike_grants_three_slots() {
        let features = RegimeFeatures {
            bars: 100,
            close: 100.0,
            ema20: 100.0,
            ema50: 100.0,
            atr14: 50.0,
            trend: 0.0,
            atr_pct: 0.5,
            momentum_consistency: 0.5,
        };
        let m = SymbolMarket {
            features: Some(features),
            ..aged(0)
        };
        let budget = regime_with(Some(m)).expect("fresh");
        assert_eq!(
            (budget.reading.regime, budget.desired),
            (Regime::VolatilitySpike, 3)
        );
    }

    /// Long reservations on A, B and C on 1,000 USDT equity.
    fn three_held() -> Snapshot {
        let mut book = Book::default();
        for (i, s) in ["AUSDT", "BUSDT", "CUSDT"].iter().enumerate() {
            reserve(&mut book, &format!("r{i}"), s, Side::Long, 100.0);
        }
        test_snapshot(book, Some(account(1_000.0)))
    }

    fn budget(desired: u32) -> Option<SlotBudget> {
        Some(SlotBudget {
            reading: RegimeReading {
                regime: Regime::Range,
                confidence: 1.0,
            },
            desired,
        })
    }

    fn occupancy_of(
        symbol: &str,
        side: Side,
        budget: Option<SlotBudget>,
        phase2: bool,
    ) -> Result<SlotUse, BlockReason> {
        let snap = three_held();
        let open = plan(symbol, "OPEN_LONG", &[]);
        let cand = candidate(symbol, side, 10.0, 5);
        run(&open, &snap, &Config::default(), NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            occupancy(&cand, &portfolio, budget, phase2, false, None, t)
        })
    }

    #[test]
    fn occupancy_against_three_held_slots() {
        use Side::{Long, Short};
        let cases = [
            ("ZUSDT", Long, budget(4), false, Ok(SlotUse::NewSlot)),
            ("ZUSDT", Long, budget(3), false, Ok(SlotUse::Full)),
            ("AUSDT", Long, budget(3), false, Ok(SlotUse::Expand)),
            (
                "AUSDT",
                Short,
                budget(10),
                false,
                Err(BlockReason::OppositePositionOpen),
            ),
            ("ZUSDT", Long, None, false, Ok(SlotUse::NewSlot)),
            ("ZUSDT", Long, budget(4), true, Ok(SlotUse::RotationHeld)),
            ("ZUSDT", Long, budget(3), true, Err(BlockReason::SlotsFull)),
        ];
        for (symbol, side, budget, phase2, expected) in cases {
            let got = occupancy_of(symbol, side, budget, phase2);
            assert_eq!(
                got, expected,
                "{symbol} {side:?} {budget:?} phase2={phase2}"
            );
        }
    }

    /// Two positions held an hour (age penalty 0.001): AUSDT flat with entry score 1.0, BUSDT
    /// 10 % under water with entry score 2.0 — BUSDT is the weakest (weakness 0.101).
    fn two_positions(lock_b: bool) -> Snapshot {
        let mut book = Book::default();
        let mut a = position(Side::Long, 1.0, 100.0);
        a.entry_score = Some(1.0);
        let mut b = position(Side::Long, 2.0, 100.0);
        b.entry_score = Some(2.0);
        book.positions.insert(sym("AUSDT"), a);
        book.positions.insert(sym("BUSDT"), b);
        if lock_b {
            book.exit_locks.insert(
                sym("BUSDT"),
                ExitLock {
                    holder: PlanId::parse("other").expect("id"),
                    expires_at: NOW.plus_secs(10),
                    fence: 1,
                },
            );
        }
        let mut snap = test_snapshot(book, Some(account(1_000.0)));
        snap.market_mut()
            .insert(sym("AUSDT"), market(100.0, vec![]));
        snap.market_mut().insert(sym("BUSDT"), market(90.0, vec![]));
        snap
    }

    fn rotation_for(score: Option<&str>, lock_b: bool) -> Result<RotationChoice, BlockReason> {
        let snap = two_positions(lock_b);
        let extra: Vec<(&str, &str)> = score.map(|s| ("score", s)).into_iter().collect();
        let open = plan("ZUSDT", "OPEN_LONG", &extra);
        run(&open, &snap, &Config::default(), NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            rotation(ctx, &portfolio, t)
        })
    }

    #[test]
    fn a_rotation_needs_more_than_15_percent_over_the_weakest() {
        // (2.31 − 2) / 2 = 15.5 % rotates BUSDT out; 2.3 gives 15 %, not more.
        let choice = rotation_for(Some("2.31"), false).expect("rotates");
        assert_eq!(choice.weakest, sym("BUSDT"));
        assert_eq!(choice.weakest_qty, 2.0);
        assert_eq!(choice.close_plan_id.as_str(), "rot_p1_BUSDT");
        assert_eq!(
            rotation_for(Some("2.3"), false),
            Err(BlockReason::SlotsFull)
        );
        assert_eq!(rotation_for(None, false), Err(BlockReason::SlotsFull));
        // BUSDT being closed already: AUSDT (score 1.0) is the weakest left.
        let choice = rotation_for(Some("2.31"), true).expect("rotates");
        assert_eq!(choice.weakest, sym("AUSDT"));
    }

    #[test]
    fn side_slots_cap_new_symbols_on_a_side_only() {
        let mut cfg = Config::default();
        cfg.side_slots.max_long = Some(3);
        let snap = three_held();
        let side_of = |symbol: &str, side: Side| {
            let open = plan(symbol, "OPEN_LONG", &[]);
            let cand = candidate(symbol, side, 10.0, 5);
            traced(&open, &snap, &cfg, NOW, |ctx, t| {
                let portfolio = Portfolio::build(ctx.snap).expect("an account");
                side_slots(ctx, &cand, &portfolio, t)
            })
        };
        assert_eq!(
            side_of("ZUSDT", Side::Long).0,
            Err(BlockReason::SideSlotsFull)
        );
        assert_eq!(side_of("AUSDT", Side::Long).0, Ok(()));
        let (short, line) = side_of("ZUSDT", Side::Short);
        assert_eq!((short, line.outcome), (Ok(()), Outcome::NotApplicable));
        cfg.side_slots.max_long = Some(4);
        let snap = three_held();
        let open = plan("ZUSDT", "OPEN_LONG", &[]);
        let cand = candidate("ZUSDT", Side::Long, 10.0, 5);
        let got = run(&open, &snap, &cfg, NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            side_slots(ctx, &cand, &portfolio, t)
        });
        assert_eq!(got, Ok(()));
    }

    /// An open that would expand a symbol being closed (its exit lock live) is refused, slot
    /// budget or none: the close, sized from the exchange when sent, would take the open's
    /// fill with it. Found by the simulator (schedule 2, seed 11188: a rotation's close allowed
    /// after its rotation timed out, an open on the same symbol beside it, the open's fill
    /// closed by it and then booked as a position the exchange no longer held).
    #[test]
    fn an_open_on_a_symbol_being_closed_is_refused() {
        let snap = three_held();
        let open = plan("AUSDT", "OPEN_LONG", &[]);
        let cand = candidate("AUSDT", Side::Long, 10.0, 5);
        let closer = PlanId::parse("c1").expect("id");
        let use_with = |budget: Option<SlotBudget>, closing: Option<&PlanId>| {
            run(&open, &snap, &Config::default(), NOW, |ctx, t| {
                let portfolio = Portfolio::build(ctx.snap).expect("an account");
                occupancy(&cand, &portfolio, budget, false, false, closing, t)
            })
        };
        assert_eq!(use_with(budget(3), None), Ok(SlotUse::Expand));
        assert_eq!(
            use_with(budget(3), Some(&closer)),
            Err(BlockReason::ExitLockBusyDoubleClosePrevention)
        );
        assert_eq!(
            use_with(None, Some(&closer)),
            Err(BlockReason::ExitLockBusyDoubleClosePrevention),
            "slot accounting off or on"
        );
    }

    /// A rotation closing `close` for a pending open on `pending_symbol`.
    fn rotating(book: &mut Book, close: &str, pending_symbol: &str) {
        use crate::book::{RotationLock, RotationPhase};
        let mut pending = plan(pending_symbol, "OPEN_LONG", &[]);
        pending.plan_id = PlanId::parse("pending").expect("id");
        book.rotations.insert(
            pending.plan_id.clone(),
            RotationLock {
                pending,
                close_symbol: sym(close),
                close_plan_id: PlanId::parse(&format!("rot_{close}")).expect("id"),
                created_at: NOW,
                expires_at: NOW.plus_secs(120),
                phase: RotationPhase::AwaitingClose,
            },
        );
    }

    /// An open on a symbol whose slot is promised to a rotation is refused, with room or
    /// without: it can neither expand that slot (the table would be one over once the rotation
    /// completes) nor take one of its own (one slot per symbol: the table would count one too
    /// few). Found by the simulator: seed 997 (an expansion of a symbol being closed), 3751 (a
    /// second rotation for it), 118274 (a new slot for it with room). The rotation's own plan is
    /// not refused for its own held slot.
    #[test]
    fn an_open_on_a_symbol_whose_slot_is_promised_to_a_rotation_is_refused() {
        let mut book = three_held().book.as_ref().clone();
        rotating(&mut book, "AUSDT", "ZUSDT");
        let snap = test_snapshot(book, Some(account(1_000.0)));
        let open = plan("AUSDT", "OPEN_LONG", &[]);
        let cand = candidate("AUSDT", Side::Long, 10.0, 5);
        let use_with = |desired: u32, promised: bool| {
            run(&open, &snap, &Config::default(), NOW, |ctx, t| {
                let portfolio = Portfolio::build(ctx.snap).expect("an account");
                occupancy(&cand, &portfolio, budget(desired), false, promised, None, t)
            })
        };
        assert_eq!(
            use_with(3, false),
            Ok(SlotUse::Expand),
            "held, not promised"
        );
        assert_eq!(use_with(3, true), Err(BlockReason::SlotsFull));
        assert_eq!(
            use_with(4, true),
            Err(BlockReason::SlotsFull),
            "room or not"
        );
        let book = &snap.book;
        assert!(book.slot_promised(&sym("AUSDT"), None), "closing it");
        let own = PlanId::parse("pending").expect("id");
        assert!(
            !book.slot_promised(&sym("AUSDT"), Some(&own)),
            "the rotation's own plan"
        );
        assert!(
            !book.slot_promised(&sym("ZUSDT"), None),
            "not held for it before its close"
        );
        // The side-slot count does not wave it through either.
        let mut cfg = Config::default();
        cfg.side_slots.max_long = Some(3);
        let side = run(&open, &snap, &cfg, NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            side_slots(ctx, &cand, &portfolio, t)
        });
        assert_eq!(side, Err(BlockReason::SideSlotsFull));
    }

    /// A position whose symbol also holds a permitted open is not rotated out: closing it would
    /// not free its slot. Found by the simulator (seed 982).
    #[test]
    fn the_weakest_is_never_a_symbol_with_a_reservation() {
        let mut snap = two_positions(false);
        // BUSDT is the weakest, but an open on it is permitted and not filled yet.
        reserve(snap.book_mut(), "add-b", "BUSDT", Side::Long, 50.0);
        let open = plan("ZUSDT", "OPEN_LONG", &[("score", "9")]);
        let choice = run(&open, &snap, &Config::default(), NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            rotation(ctx, &portfolio, t)
        })
        .expect("rotates");
        assert_eq!(choice.weakest, sym("AUSDT"));
        // Nor one whose slot is held for a rotation's plan (found with seed 101348): a position
        // opened beside a held slot.
        let mut snap = two_positions(false);
        rotating(snap.book_mut(), "XUSDT", "BUSDT");
        for r in snap.book_mut().rotations.values_mut() {
            r.phase = crate::book::RotationPhase::SlotHeld;
        }
        let choice = run(&open, &snap, &Config::default(), NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            rotation(ctx, &portfolio, t)
        })
        .expect("rotates");
        assert_eq!(choice.weakest, sym("AUSDT"));
    }
}
