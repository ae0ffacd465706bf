//! The invariants the simulator checks after every step, each with the name a violation is
//! reported under. They read the embedded store's state as a whole: what the store holds is what
//! an operator would see. (A failure no injected fault explains is reported too, as
//! `no_unexplained_failure`, by the world that saw it.)

use crate::store::memory::StoreState;
use governor_core::book::Book;
use governor_core::snapshot::{ExchangePosition, VerdictKind};
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Symbol};
use std::collections::{BTreeMap, BTreeSet};

/// A broken invariant: its name and what was seen.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// What broke it.
    pub detail: String,
}

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

/// Every invariant that must hold after any step; `swept_at` is when the sweeper last ran.
pub fn after_step(st: &StoreState, swept_at: Timestamp) -> Vec<Violation> {
    let mut out = Vec::new();
    slots_within_desired(st, &mut out);
    one_permit_per_plan(st, &mut out);
    one_terminal_decision_per_plan(st, &mut out);
    no_reservation_past_its_ttl(st, swept_at, &mut out);
    closes_blocked_only_by_close_gates(st, &mut out);
    out
}

/// A close is never blocked by an open-only gate: a blocked close names a reason of a gate on
/// the common or the close path (the gate table says which reasons each gate has).
fn closes_blocked_only_by_close_gates(st: &StoreState, out: &mut Vec<Violation>) {
    use governor_core::gates::{CLOSE_PATH, COMMON_PATH};
    for r in &st.decision_log {
        if r.action.starts_with("OPEN") || r.verdict != VerdictKind::Block {
            continue;
        }
        let Some(reason) = r.reason else { continue };
        let by_a_close_gate = COMMON_PATH
            .iter()
            .chain(CLOSE_PATH)
            .any(|g| g.spec().reasons.contains(&reason));
        if !by_a_close_gate {
            out.push(violation(
                "closes_blocked_only_by_close_gates",
                format!(
                    "{} {} was blocked with {}",
                    r.plan_id,
                    r.action,
                    reason.code()
                ),
            ));
        }
    }
}

/// Occupied slots never above the most slots any decision found desired.
fn slots_within_desired(st: &StoreState, out: &mut Vec<Violation>) {
    let Some(desired) = st.decision_log.iter().filter_map(|r| r.desired_slots).max() else {
        return;
    };
    let slots = st.book.slots();
    if slots.len() > desired as usize {
        let held: Vec<String> = slots
            .iter()
            .map(|(symbol, slot)| format!("{symbol} {:?} {:?}", slot.side, slot.holder))
            .collect();
        out.push(violation(
            "slots_within_desired",
            format!(
                "{} slots occupied, {desired} desired: {}",
                slots.len(),
                held.join("; ")
            ),
        ));
    }
}

/// Never more than one permit per plan id.
fn one_permit_per_plan(st: &StoreState, out: &mut Vec<Violation>) {
    for (id, n) in &st.permits_granted {
        if *n > 1 {
            out.push(violation(
                "one_permit_per_plan",
                format!("{id} got {n} permits"),
            ));
        }
    }
}

/// A plan id is decided once; only a PENDING rotation is decided again, at its end.
fn one_terminal_decision_per_plan(st: &StoreState, out: &mut Vec<Violation>) {
    let mut per_id: BTreeMap<&PlanId, Vec<VerdictKind>> = BTreeMap::new();
    for r in &st.decision_log {
        per_id.entry(&r.plan_id).or_default().push(r.verdict);
    }
    for (id, verdicts) in per_id {
        let ok =
            verdicts.len() == 1 || (verdicts.len() == 2 && verdicts[0] == VerdictKind::Pending);
        if !ok {
            out.push(violation(
                "one_terminal_decision_per_plan",
                format!("{id} decided as {verdicts:?}"),
            ));
        }
    }
}

/// No reservation holds a slot or capital past its TTL once the sweeper has run after it,
/// unless its order is in doubt (the in-doubt record keeps it for the reconciler).
fn no_reservation_past_its_ttl(st: &StoreState, swept_at: Timestamp, out: &mut Vec<Violation>) {
    for (id, r) in &st.book.reservations {
        if r.expires_at <= swept_at && !st.book.in_doubt.contains_key(id) {
            out.push(violation(
                "no_reservation_past_its_ttl",
                format!(
                    "{id} expired at {} and was still held after a sweep at {}",
                    r.expires_at.millis(),
                    swept_at.millis()
                ),
            ));
        }
    }
}

/// The ledger holds what the exchange holds, on every symbol where nothing is in flight (no
/// reservation, no live exit lock, no order in doubt): a fill booked twice, a fill booked as a
/// failure, a position released while its close was unknown all break it.
pub fn ledger_matches_exchange(
    book: &Book,
    exchange: &BTreeMap<Symbol, ExchangePosition>,
    now: Timestamp,
) -> Vec<Violation> {
    let symbols: BTreeSet<&Symbol> = book.positions.keys().chain(exchange.keys()).collect();
    symbols
        .into_iter()
        .filter(|s| !book.in_flight(s, now))
        .filter_map(|s| {
            let ledger = book.positions.get(s).map(|p| (p.side, p.qty));
            let held = exchange.get(s).map(|p| (p.side, p.qty));
            let same = match (ledger, held) {
                (None, None) => true,
                (Some((a, x)), Some((b, y))) => a == b && (x - y).abs() <= x.abs().max(y) * 1e-9,
                _ => false,
            };
            (!same).then(|| {
                violation(
                    "ledger_matches_exchange",
                    format!("{s}: the ledger holds {ledger:?}, the exchange {held:?}, nothing in flight"),
                )
            })
        })
        .collect()
}

/// Never two closes under one exit lock: on a symbol, at most one close is allowed and not yet
/// settled (its result not applied) while its exit lock lives (`lock_ttl_ms` from its
/// decision). A close the lock outlived cannot reach the exchange any more (the lock outlives
/// the permit and the request window), so it no longer counts.
pub fn one_close_per_exit_lock(
    st: &StoreState,
    now: Timestamp,
    lock_ttl_ms: i64,
) -> Vec<Violation> {
    let mut live: BTreeMap<&Symbol, Vec<&PlanId>> = BTreeMap::new();
    for r in &st.decision_log {
        let unsettled = !st.applied_results.contains(&r.plan_id);
        let lock_lives = r.decided_at.millis().saturating_add(lock_ttl_ms) > now.millis();
        if r.verdict == VerdictKind::Allow
            && !r.action.starts_with("OPEN")
            && unsettled
            && lock_lives
        {
            live.entry(&r.symbol).or_default().push(&r.plan_id);
        }
    }
    live.into_iter()
        .filter(|(_, closes)| closes.len() > 1)
        .map(|(symbol, closes)| {
            let ids: Vec<String> = closes.iter().map(|id| id.to_string()).collect();
            violation(
                "one_close_per_exit_lock",
                format!(
                    "{symbol}: closes {} allowed and unsettled at once",
                    ids.join(", ")
                ),
            )
        })
        .collect()
}

/// Money is never created: what the exchange holds (at its marks) and what is reserved for
/// orders that have not filled stay within the total notional cap. A reservation whose order
/// filled is counted once, in the position.
pub fn money_never_created(
    book: &Book,
    exchange: &BTreeMap<Symbol, ExchangePosition>,
    filled: impl Fn(&PlanId) -> bool,
    cap: f64,
) -> Vec<Violation> {
    let held: f64 = exchange.values().map(|p| p.qty.abs() * p.mark_price).sum();
    let reserved: f64 = book
        .reservations
        .iter()
        .filter(|(id, _)| !filled(id))
        .map(|(_, r)| r.notional)
        .sum();
    if held + reserved <= cap * (1.0 + 1e-9) {
        return Vec::new();
    }
    vec![violation(
        "money_never_created",
        format!("the exchange holds {held:.2} USDT and {reserved:.2} is reserved for orders not filled: above the cap of {cap}"),
    )]
}

/// Never more than one order per permit: a client id (the plan id) is sent once.
pub fn one_order_per_permit(sent: &BTreeMap<String, u32>) -> Vec<Violation> {
    sent.iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| violation("one_order_per_permit", format!("{id} was sent {n} times")))
        .collect()
}

/// Once faults stop and every stream is drained: every plan that was published ends with a
/// terminal decision (not PENDING) or, when no governor ever handled it, in the dead letters
/// (the poison rule: an entry delivered `MAX_DELIVERIES` times without being handled is
/// dead-lettered with its fields, where its producer and the operators see it). A plan in
/// neither was lost.
pub fn every_plan_decided(st: &StoreState, published: &[PlanId]) -> Vec<Violation> {
    let dead_lettered = |id: &PlanId| {
        st.dead_letters.iter().any(|d| {
            d.fields
                .iter()
                .any(|(k, v)| k == "plan_id" && v == id.as_str())
        })
    };
    published
        .iter()
        .filter_map(|id| match st.decisions.get(id) {
            None if dead_lettered(id) => None,
            None => Some(violation(
                "every_plan_ends_decided",
                format!("{id} has no decision and no dead letter"),
            )),
            Some(r) if r.verdict == VerdictKind::Pending => Some(violation(
                "every_plan_ends_decided",
                format!("{id} is still PENDING"),
            )),
            Some(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor_core::reason::BlockReason;
    use governor_core::snapshot::DecisionRecord;

    fn close_blocked_by(reason: BlockReason) -> std::sync::Arc<DecisionRecord> {
        std::sync::Arc::new(DecisionRecord {
            plan_id: PlanId::parse("c1").unwrap(),
            symbol: Symbol::parse("ETHUSDT").unwrap(),
            action: "FULL_CLOSE_PROPOSED".to_owned(),
            verdict: VerdictKind::Block,
            reason: Some(reason),
            detail: String::new(),
            qty: None,
            notional: None,
            regime: None,
            desired_slots: None,
            occupied_slots: None,
            decided_at: Timestamp(0),
            trace: Default::default(),
            shadow: Vec::new(),
        })
    }

    fn allowed_close(id: &str, symbol: &str, at: i64) -> std::sync::Arc<DecisionRecord> {
        let mut r = (*close_blocked_by(BlockReason::NoPosition)).clone();
        r.plan_id = PlanId::parse(id).unwrap();
        r.symbol = Symbol::parse(symbol).unwrap();
        r.verdict = VerdictKind::Allow;
        r.reason = None;
        r.decided_at = Timestamp(at);
        std::sync::Arc::new(r)
    }

    /// Two closes of ETHUSDT allowed 1 s apart break it while the first one's lock lives
    /// (120,000 ms from its decision at 0: up to 119,999) and its result is not applied; not
    /// at 120,000, nor once its result is applied, nor for closes of two symbols.
    #[test]
    fn two_unsettled_closes_of_a_symbol_under_a_live_lock_are_a_violation() {
        let mut st = StoreState::default();
        st.decision_log.push(allowed_close("c1", "ETHUSDT", 0));
        st.decision_log.push(allowed_close("c2", "ETHUSDT", 1_000));
        st.decision_log.push(allowed_close("c3", "BTCUSDT", 1_000));
        let found = one_close_per_exit_lock(&st, Timestamp(119_999), 120_000);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].invariant, "one_close_per_exit_lock");
        assert!(found[0].detail.contains("c1, c2"), "{}", found[0].detail);
        assert!(one_close_per_exit_lock(&st, Timestamp(120_000), 120_000).is_empty());
        st.applied_results.insert(PlanId::parse("c1").unwrap());
        assert!(one_close_per_exit_lock(&st, Timestamp(119_999), 120_000).is_empty());
    }

    /// 0.5 BTC held at a mark of 1,000 (500 USDT) and 300 reserved for an order not filled:
    /// 800, at a cap of 800, holds; a cap of 799.99 does not; the same reservation once its
    /// order filled is counted in the position only.
    #[test]
    fn held_and_reserved_above_the_cap_is_money_created() {
        use governor_core::book::Reservation;
        use governor_core::types::Side;
        let btc = Symbol::parse("BTCUSDT").unwrap();
        let exchange = BTreeMap::from([(
            btc.clone(),
            ExchangePosition {
                side: Side::Long,
                qty: 0.5,
                entry_price: 990.0,
                mark_price: 1_000.0,
                leverage: 5,
            },
        )]);
        let mut book = Book::default();
        book.reservations.insert(
            PlanId::parse("o1").unwrap(),
            Reservation {
                symbol: Symbol::parse("ETHUSDT").unwrap(),
                side: Side::Long,
                qty: 0.1,
                notional: 300.0,
                leverage: 5,
                score: None,
                granted_at: Timestamp(0),
                expires_at: Timestamp(60_000),
                fence: 1,
            },
        );
        assert!(money_never_created(&book, &exchange, |_| false, 800.0).is_empty());
        let found = money_never_created(&book, &exchange, |_| false, 799.99);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].invariant, "money_never_created");
        assert!(money_never_created(&book, &exchange, |_| true, 500.0).is_empty());
    }

    /// A close blocked by a close gate (the exit lock) is as it should be; one blocked by an
    /// open-only gate (correlation) breaks the invariant.
    /// A plan neither decided nor dead-lettered was lost; a decided one, or one the poison
    /// rule dead-lettered, ended; a PENDING one did not.
    #[test]
    fn a_plan_ends_decided_or_dead_lettered() {
        use crate::store::memory::DeadLetter;
        let ids: Vec<PlanId> = ["c1", "d1", "lost"]
            .iter()
            .map(|id| PlanId::parse(id).unwrap())
            .collect();
        let mut st = StoreState::default();
        st.decisions
            .insert(ids[0].clone(), close_blocked_by(BlockReason::NoPosition));
        st.dead_letters.push(DeadLetter {
            fields: vec![("plan_id".to_owned(), "d1".to_owned())],
            error: "delivered 5 times without being handled".to_owned(),
            ts: Timestamp(0),
        });
        let found = every_plan_decided(&st, &ids);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.starts_with("lost "), "{}", found[0].detail);
        let mut pending = (*close_blocked_by(BlockReason::NoPosition)).clone();
        pending.verdict = VerdictKind::Pending;
        st.decisions
            .insert(ids[0].clone(), std::sync::Arc::new(pending));
        assert_eq!(every_plan_decided(&st, &ids[..2]).len(), 1);
    }

    #[test]
    fn a_close_blocked_by_an_open_only_gate_is_a_violation() {
        let mut st = StoreState::default();
        st.decision_log.push(close_blocked_by(
            BlockReason::ExitLockBusyDoubleClosePrevention,
        ));
        let mut out = Vec::new();
        closes_blocked_only_by_close_gates(&st, &mut out);
        assert!(out.is_empty(), "{out:?}");
        st.decision_log
            .push(close_blocked_by(BlockReason::CorrelationCap));
        closes_blocked_only_by_close_gates(&st, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].invariant, "closes_blocked_only_by_close_gates");
    }
}
