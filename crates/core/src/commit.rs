//! What a commit does to the state decisions read. The embedded store applies it under its
//! lock; the governor applies it to its in-memory copy of a batch's snapshot, so that the
//! second plan of a batch sees the first one's reservation. The Redis commit script does the
//! same to its keys (`store/redis/lua/commit.lua`), effect by effect.

use crate::book::{Book, ExitLock, RotationPhase};
use crate::decide::Decision;
use crate::effects::Effect;
use crate::snapshot::Snapshot;

/// Applies the book's part of `effect` (records, permits, blocks, events and published plans
/// live outside the book and are the store's). `fence` is the commit's fencing token.
pub fn apply(book: &mut Book, effect: &Effect, fence: u64) {
    match effect {
        Effect::Reserve {
            plan_id,
            reservation,
        } => {
            let mut r = reservation.clone();
            r.fence = fence;
            book.reservations.insert(plan_id.clone(), r);
            book.reservation_seq += 1;
        }
        Effect::TakeExitLock {
            symbol,
            holder,
            expires_at,
        } => {
            book.exit_locks.insert(
                symbol.clone(),
                ExitLock {
                    holder: holder.clone(),
                    expires_at: *expires_at,
                    fence,
                },
            );
        }
        Effect::ReleaseExitLock { symbol, holder } => {
            if book
                .exit_locks
                .get(symbol)
                .is_some_and(|l| &l.holder == holder)
            {
                book.exit_locks.remove(symbol);
            }
        }
        Effect::CountOpen { symbol, at, .. } => {
            book.last_open_at.insert(symbol.clone(), *at);
            book.open_times.push(*at);
        }
        // A rotation promises slots (Book::slot_promised): like a reservation, it changes
        // what a decision on an older snapshot assumed, so it counts in the sequence that
        // `Guard::NoReservationSince` checks.
        Effect::StartRotation(lock) => {
            book.rotations
                .insert(lock.pending.plan_id.clone(), (**lock).clone());
            book.reservation_seq += 1;
        }
        Effect::MarkRotationClosePermitted { pending_plan_id } => {
            if let Some(r) = book.rotations.get_mut(pending_plan_id) {
                if r.phase == RotationPhase::AwaitingClose {
                    r.phase = RotationPhase::ClosePermitted;
                }
            }
        }
        // As the Redis script does: only a rotation still awaiting its close's fill takes it.
        Effect::HoldRotationSlot { pending_plan_id } => {
            if let Some(r) = book.rotations.get_mut(pending_plan_id) {
                if r.phase != RotationPhase::SlotHeld {
                    book.reservation_seq += 1;
                    r.phase = RotationPhase::SlotHeld;
                }
            }
        }
        Effect::EndRotation { pending_plan_id } => {
            book.rotations.remove(pending_plan_id);
        }
        Effect::FillOpen { symbol, fill, .. } => {
            *book.ledger_versions.entry(symbol.clone()).or_default() += 1;
            match book.positions.get_mut(symbol) {
                Some(p) if p.side == fill.side => {
                    let qty = p.qty + fill.qty;
                    p.entry_price = (p.entry_price * p.qty + fill.entry_price * fill.qty) / qty;
                    p.qty = qty;
                }
                _ => {
                    book.positions.insert(symbol.clone(), fill.clone());
                }
            }
        }
        Effect::ReleaseReservation { plan_id } => {
            book.reservations.remove(plan_id);
        }
        Effect::ReducePosition { symbol, qty } => {
            if let Some(p) = book.positions.get_mut(symbol) {
                *book.ledger_versions.entry(symbol.clone()).or_default() += 1;
                if p.qty > 0.0 {
                    p.entry_fees *= ((p.qty - qty) / p.qty).max(0.0);
                }
                p.qty -= qty;
                if p.qty <= p.qty.abs().max(*qty) * 1e-9 {
                    book.positions.remove(symbol);
                }
            }
        }
        Effect::PruneOpens { before } => book.open_times.retain(|t| t > before),
        Effect::MarkInDoubt { plan_id, order } => {
            book.in_doubt.insert(plan_id.clone(), order.clone());
        }
        Effect::MarkResultApplied { plan_id } => {
            book.in_doubt.remove(plan_id);
        }
        Effect::RecordEquity {
            hour,
            equity,
            keep_from,
        } => {
            let peak = book.equity_peaks.entry(*hour).or_insert(*equity);
            *peak = peak.max(*equity);
            book.equity_peaks.retain(|h, _| h >= keep_from);
        }
        Effect::ResetEquity { hour, equity } => {
            book.equity_peaks = [(*hour, *equity)].into();
        }
        Effect::SetHalt(halt) => book.halt = halt.clone(),
        Effect::RecordClose { close, keep_from } => {
            book.closes
                .retain(|c| c.at >= *keep_from && c.plan_id != close.plan_id);
            book.closes.push(close.clone());
        }
        Effect::Record(_)
        | Effect::WritePermit(_)
        | Effect::WriteBlock { .. }
        | Effect::PublishPlan(_)
        | Effect::SetTradingState { .. }
        | Effect::Emit(_) => {}
    }
}

/// Whether committing `effect` changes what a decision reads from a snapshot — its book or its
/// trading state. Records, permits, block records, events and published plans live outside the
/// snapshot ([`apply`] leaves the book as it is for them): a batch keeps one portfolio view
/// across the decisions whose effects are all of these.
pub fn changes_snapshot(effect: &Effect) -> bool {
    !matches!(
        effect,
        Effect::Record(_)
            | Effect::WritePermit(_)
            | Effect::WriteBlock { .. }
            | Effect::PublishPlan(_)
            | Effect::Emit(_)
    )
}

/// Makes `snap` what the next plan of a batch reads once `decision` is committed: its effects
/// on the book and the trading state. The plan's own record is the caller's to keep (it is
/// that plan's `prior` if the plan comes again). The fence is not known before the commit;
/// nothing a decision reads depends on it.
pub fn absorb(snap: &mut Snapshot, decision: &Decision) {
    for effect in decision.effects.iter().filter(|e| changes_snapshot(e)) {
        if let Effect::SetTradingState { to, .. } = effect {
            snap.trading_state = *to;
        }
        apply(snap.book_mut(), effect, 0);
    }
}
