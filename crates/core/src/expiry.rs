//! What time alone changes: expired reservations (unless their order is in doubt: an unknown
//! open counts as open until the exchange says otherwise) and exit locks are released, a rotation
//! with no confirmed close within its TTL times out (its pending plan is blocked
//! `active_slots_rotation_timeout`), and old opens leave the rate windows.

use crate::book::Book;
use crate::effects::{Effect, Event, Guard};
use crate::reason::BlockReason;
use crate::snapshot::{DecisionRecord, VerdictKind};
use crate::time::Timestamp;
use crate::trace::{Outcome, RecordTrace, Trace};

/// One thing that expired: what to change, and what must still be true (another sweeper may
/// have handled it already, or a result may have arrived first).
#[derive(Clone, Debug, PartialEq)]
pub struct Expiry {
    /// Checked atomically before the effects.
    pub guards: Vec<Guard>,
    /// Applied all or none.
    pub effects: Vec<Effect>,
}

/// What letting time reach `now` changes, item by item.
pub fn expire(book: &Book, now: Timestamp) -> Vec<Expiry> {
    let mut out = Vec::new();
    for (plan_id, r) in &book.reservations {
        if r.expires_at <= now && !book.in_doubt.contains_key(plan_id) {
            out.push(Expiry {
                guards: vec![
                    Guard::ReservationExists(plan_id.clone()),
                    Guard::NotInDoubt(plan_id.clone()),
                ],
                effects: vec![
                    Effect::ReleaseReservation {
                        plan_id: plan_id.clone(),
                    },
                    Effect::Emit(
                        Event::new("RESERVATION_EXPIRED", plan_id, &r.symbol, now)
                            .with("notional", r.notional)
                            .with("fence", r.fence),
                    ),
                ],
            });
        }
    }
    for (symbol, lock) in &book.exit_locks {
        if lock.expires_at <= now {
            out.push(Expiry {
                guards: Vec::new(),
                effects: vec![Effect::ReleaseExitLock {
                    symbol: symbol.clone(),
                    holder: lock.holder.clone(),
                }],
            });
        }
    }
    for (plan_id, rot) in &book.rotations {
        if rot.expires_at > now {
            continue;
        }
        let pending = &rot.pending;
        let age = now.secs_since(rot.created_at);
        let detail = format!(
            "no confirmed close of {} ({}) within {:.0} s",
            rot.close_symbol, rot.close_plan_id, age
        );
        let mut trace = Trace::default();
        trace
            .line(
                "rotation_timeout",
                Outcome::Block(BlockReason::ActiveSlotsRotationTimeout),
            )
            .id("close_symbol", &rot.close_symbol)
            .id("close_plan_id", &rot.close_plan_id)
            .num("lock_age_secs", age)
            .note(detail.clone());
        let mut effects = Vec::new();
        effects.push(Effect::EndRotation {
            pending_plan_id: plan_id.clone(),
        });
        effects.push(Effect::ReleaseExitLock {
            symbol: rot.close_symbol.clone(),
            holder: rot.close_plan_id.clone(),
        });
        effects.push(Effect::Record(std::sync::Arc::new(DecisionRecord {
            plan_id: plan_id.clone(),
            symbol: pending.symbol.clone(),
            action: pending.action.as_str().to_owned(),
            verdict: VerdictKind::Block,
            reason: Some(BlockReason::ActiveSlotsRotationTimeout),
            detail: detail.clone(),
            qty: None,
            notional: None,
            regime: None,
            desired_slots: None,
            occupied_slots: None,
            decided_at: now,
            trace: RecordTrace::Lines(std::sync::Arc::new(trace)),
            shadow: Vec::new(),
        })));
        effects.push(Effect::WriteBlock {
            plan_id: plan_id.clone(),
            reason: BlockReason::ActiveSlotsRotationTimeout,
            detail,
        });
        effects.push(Effect::Emit(
            Event::new("ROTATION_TIMEOUT", plan_id, &pending.symbol, now)
                .with("new_symbol", &pending.symbol)
                .with("close_symbol", &rot.close_symbol)
                .with("close_plan_id", &rot.close_plan_id)
                .with("lock_age", format!("{age:.3}")),
        ));
        effects.push(Effect::Emit(
            Event::new("PLAN_BLOCKED", plan_id, &pending.symbol, now)
                .with("action", pending.action.as_str())
                .with("reason", BlockReason::ActiveSlotsRotationTimeout.code()),
        ));
        out.push(Expiry {
            guards: vec![Guard::RotationExists(plan_id.clone())],
            effects,
        });
    }
    if book
        .open_times
        .first()
        .is_some_and(|t| *t <= now.minus_secs(3600))
    {
        out.push(Expiry {
            guards: Vec::new(),
            effects: vec![Effect::PruneOpens {
                before: now.minus_secs(3600),
            }],
        });
    }
    out
}
