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

/// Never more than one order per permit: a client id (the plan id) is sent once.
pub fn one_order_per_permit(sent: &BTreeMap<String, u32>) -> Vec<Violation> {
    sent.iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| violation("one_order_per_permit", format!("{id} was sent {n} times")))
        .collect()
}

/// Once faults stop and every stream is drained: every plan that was published ends with a
/// terminal decision (not PENDING).
pub fn every_plan_decided(st: &StoreState, published: &[PlanId]) -> Vec<Violation> {
    published
        .iter()
        .filter_map(|id| match st.decisions.get(id) {
            None => Some(violation(
                "every_plan_ends_decided",
                format!("{id} has no decision"),
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

    /// A close blocked by a close gate (the exit lock) is as it should be; one blocked by an
    /// open-only gate (correlation) breaks the invariant.
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
