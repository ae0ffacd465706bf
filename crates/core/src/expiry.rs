//! What time alone changes: expired reservations (unless their order is in doubt: an unknown
//! open counts as open until the exchange says otherwise) and exit locks are released, a rotation
//! with no confirmed close within its TTL times out (its pending plan is blocked
//! `active_slots_rotation_timeout`; its close's exit lock is released with it unless that close
//! was permitted meanwhile), and old opens leave the rate windows.

use crate::book::{Book, RotationPhase};
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
        // The close's exit lock goes with the rotation only while no close was permitted under
        // it: a permitted close keeps it until it lapses (the close may still be sent), and an
        // executed one released it with its result.
        let awaiting_close = rot.phase == RotationPhase::AwaitingClose;
        if awaiting_close {
            effects.push(Effect::ReleaseExitLock {
                symbol: rot.close_symbol.clone(),
                holder: rot.close_plan_id.clone(),
            });
        }
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
        let guard = if awaiting_close {
            Guard::RotationAwaitingClose(plan_id.clone())
        } else {
            Guard::RotationExists(plan_id.clone())
        };
        out.push(Expiry {
            guards: vec![guard],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::RotationLock;
    use crate::gates::common::testing::{plan, sym, NOW};
    use crate::types::PlanId;

    fn rotation_timing_out(phase: RotationPhase) -> Book {
        let mut book = Book::default();
        book.rotations.insert(
            PlanId::parse("cand").expect("id"),
            RotationLock {
                pending: plan("ADAUSDT", "OPEN_LONG", &[]),
                close_symbol: sym("ETHUSDT"),
                close_plan_id: PlanId::parse("rot_cand_ETHUSDT").expect("id"),
                created_at: NOW.minus_secs(120),
                expires_at: NOW,
                phase,
            },
        );
        book
    }

    fn releases_the_lock(e: &Expiry) -> bool {
        e.effects
            .iter()
            .any(|x| matches!(x, Effect::ReleaseExitLock { .. }))
    }

    #[test]
    fn a_timed_out_rotation_releases_its_close_lock_only_while_no_close_was_permitted() {
        let cand = PlanId::parse("cand").expect("id");
        // Nothing permitted under the lock: it goes with the rotation, as long as the close
        // is still not permitted when the expiry commits.
        let got = expire(&rotation_timing_out(RotationPhase::AwaitingClose), NOW);
        assert_eq!(got.len(), 1);
        assert!(releases_the_lock(&got[0]));
        assert_eq!(got[0].guards, [Guard::RotationAwaitingClose(cand.clone())]);
        // The close was permitted: it may still be sent, the lock stays to its own TTL.
        let got = expire(&rotation_timing_out(RotationPhase::ClosePermitted), NOW);
        assert!(!releases_the_lock(&got[0]));
        assert_eq!(got[0].guards, [Guard::RotationExists(cand.clone())]);
        // The close executed (its result released the lock); the pending plan timed out.
        let got = expire(&rotation_timing_out(RotationPhase::SlotHeld), NOW);
        assert!(!releases_the_lock(&got[0]));
        assert_eq!(got[0].guards, [Guard::RotationExists(cand)]);
        // One millisecond before its expiry nothing happens.
        let got = expire(
            &rotation_timing_out(RotationPhase::AwaitingClose),
            Timestamp(NOW.millis() - 1),
        );
        assert!(got.is_empty());
    }
}
