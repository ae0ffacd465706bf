//! Guards and effects as the Lua commit script reads them: flat JSON objects whose numbers
//! are either small integers (times in ms, counts) or decimal text Rust already checked, and
//! whose records are pre-rendered JSON the script stores as they are.

use governor_core::effects::{Effect, Guard};
use governor_core::snapshot::DecisionRecord;
use governor_core::time::Timestamp;
use serde_json::{json, Value};

/// How long decision records and applied-result markers are kept (7 days).
pub const RECORD_TTL_SECS: u64 = 7 * 86_400;

/// What the encoding needs besides the effect itself.
pub struct OpContext<'a> {
    /// Decision time: TTLs are `expires_at - now`.
    pub now: Timestamp,
    /// Lifetime of block records.
    pub block_ttl_secs: u64,
    /// Written into every decision stream entry.
    pub governor_id: &'a str,
}

/// The script argument the first large text arrives as (`ARGV[1]` is the key prefix,
/// `ARGV[2]` the commits' JSON).
const FIRST_TEXT_ARG: usize = 3;

/// The large texts of a batch of commits (decision records with their traces), passed to the
/// script as arguments of their own and referred to by number from its JSON: the script
/// stores them as they are, so they are neither escaped a second time here nor parsed there.
#[derive(Debug, Default)]
pub struct LargeTexts(Vec<String>);

impl LargeTexts {
    /// Keeps `text`; returns the script argument number it will arrive as.
    fn add(&mut self, text: String) -> usize {
        self.0.push(text);
        FIRST_TEXT_ARG + self.0.len() - 1
    }

    /// The texts, in argument order from `ARGV[3]`.
    pub fn into_args(self) -> Vec<String> {
        self.0
    }
}

fn ttl_ms(expires_at: Timestamp, now: Timestamp) -> i64 {
    (expires_at.millis() - now.millis()).max(1)
}

/// A guard for the Lua script.
pub fn guard(g: &Guard) -> Value {
    match g {
        Guard::Undecided(id) => json!({"guard": "undecided", "plan_id": id}),
        Guard::RotationSlotHeld(id) => json!({"guard": "rotation_slot_held", "plan_id": id}),
        Guard::TradingStateIs(s) => json!({"guard": "trading_state_is", "state": s.as_str()}),
        Guard::SlotAvailable {
            symbol,
            side,
            desired,
            unledgered,
        } => json!({
            "guard": "slot_available", "symbol": symbol, "side": side.as_str(),
            "desired": desired, "unledgered": unledgered,
        }),
        Guard::ExitLockFree { symbol, holder } => {
            json!({"guard": "exit_lock_free", "symbol": symbol, "holder": holder})
        }
        Guard::CooldownClear { symbol, since } => {
            json!({"guard": "cooldown_clear", "symbol": symbol, "since": since.millis()})
        }
        Guard::OpensBelow { since, limit } => {
            json!({"guard": "opens_below", "since": since.millis(), "limit": limit})
        }
        Guard::NoReservationSince(seq) => json!({"guard": "no_reservation_since", "seq": seq}),
        Guard::ReservationExists(id) => json!({"guard": "reservation_exists", "plan_id": id}),
        Guard::RotationExists(id) => json!({"guard": "rotation_exists", "plan_id": id}),
        Guard::ResultNotApplied(id) => json!({"guard": "result_not_applied", "plan_id": id}),
        Guard::NotInDoubt(id) => json!({"guard": "not_in_doubt", "plan_id": id}),
        Guard::LedgerSettled { symbol, version } => {
            json!({"guard": "ledger_settled", "symbol": symbol, "version": version})
        }
        Guard::SideSlotsBelow {
            symbol,
            side,
            limit,
            unledgered,
        } => json!({
            "guard": "side_slots_below", "symbol": symbol, "side": side.as_str(),
            "limit": limit, "unledgered": unledgered,
        }),
    }
}

/// The decisions stream entry of a record (docs/wire-contract.md).
pub fn decision_fields(r: &DecisionRecord, governor_id: &str) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        ("plan_id", r.plan_id.to_string()),
        ("symbol", r.symbol.to_string()),
        ("action", r.action.clone()),
        ("verdict", r.verdict.as_str().to_owned()),
        ("reason", opt(r.reason.map(|x| x.code().to_owned()))),
        ("qty", opt(r.qty.map(|q| q.to_string()))),
        ("regime", opt(r.regime.clone())),
        ("desired_slots", opt(r.desired_slots.map(|d| d.to_string()))),
        (
            "occupied_slots",
            opt(r.occupied_slots.map(|d| d.to_string())),
        ),
        ("trace", r.trace.clone()),
        (
            "shadow_reasons",
            r.shadow
                .iter()
                .map(|x| x.code())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("ts", r.decided_at.millis().to_string()),
        ("governor_id", governor_id.to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect()
}

/// A decision record for the Lua script: the record's JSON and its trace go to `texts`; the
/// stream entry's fields carry an empty trace value at `trace_field` (1-based, as Lua counts)
/// for the script to fill in.
fn record_op(r: &DecisionRecord, ctx: &OpContext<'_>, texts: &mut LargeTexts) -> Value {
    let mut fields = decision_fields(r, ctx.governor_id);
    let trace_value = fields
        .iter()
        .step_by(2)
        .position(|k| k == "trace")
        .map(|pair| 2 * pair + 1)
        .expect("a decision stream entry has a trace field");
    let trace = std::mem::take(&mut fields[trace_value]);
    json!({
        "op": "record", "plan_id": r.plan_id,
        "json_arg": texts.add(serde_json::to_string(r).expect("a record serializes")),
        "ttl_secs": RECORD_TTL_SECS,
        "fields": fields,
        "trace_field": trace_value + 1,
        "trace_arg": texts.add(trace),
    })
}

/// An effect for the Lua script; large texts go to `texts`.
pub fn op(e: &Effect, ctx: &OpContext<'_>, texts: &mut LargeTexts) -> Value {
    let now = ctx.now;
    match e {
        Effect::Record(r) => record_op(r, ctx, texts),
        Effect::Reserve {
            plan_id,
            reservation,
        } => json!({
            "op": "reserve", "plan_id": plan_id, "symbol": reservation.symbol,
            "side": reservation.side.as_str(),
            "json": serde_json::to_string(reservation).expect("a reservation serializes"),
            "notional_micro": (reservation.notional * 1e6).round() as i64,
        }),
        Effect::WritePermit(p) => json!({
            "op": "write_permit", "plan_id": p.plan_id,
            "json": serde_json::to_string(p).expect("a permit serializes"),
            "ttl_ms": ttl_ms(p.expires_at, now),
        }),
        Effect::WriteBlock {
            plan_id,
            reason,
            detail,
        } => json!({
            "op": "write_block", "plan_id": plan_id,
            "json": json!({"reason": reason.code(), "detail": detail, "ts": now.millis()}).to_string(),
            "ttl_secs": ctx.block_ttl_secs,
        }),
        Effect::TakeExitLock {
            symbol,
            holder,
            expires_at,
        } => json!({
            "op": "take_exit_lock", "symbol": symbol, "holder": holder, "ttl_ms": ttl_ms(*expires_at, now),
        }),
        Effect::ReleaseExitLock { symbol, holder } => {
            json!({"op": "release_exit_lock", "symbol": symbol, "holder": holder})
        }
        Effect::CountOpen {
            plan_id,
            symbol,
            at,
        } => {
            json!({"op": "count_open", "symbol": symbol, "at": at.millis(), "member": plan_id})
        }
        Effect::StartRotation(lock) => json!({
            "op": "start_rotation", "plan_id": lock.pending.plan_id,
            "json": serde_json::to_string(lock).expect("a rotation serializes"),
            "lock_json": json!({
                "new_symbol": lock.pending.symbol, "new_plan_id": lock.pending.plan_id,
                "close_symbol": lock.close_symbol, "close_plan_id": lock.close_plan_id,
                "created_at": lock.created_at.millis(),
            }).to_string(),
            "ttl_ms": ttl_ms(lock.expires_at, now),
        }),
        Effect::HoldRotationSlot { pending_plan_id } => {
            json!({"op": "hold_rotation_slot", "plan_id": pending_plan_id})
        }
        Effect::EndRotation { pending_plan_id } => {
            json!({"op": "end_rotation", "plan_id": pending_plan_id})
        }
        Effect::PublishPlan(fields) => json!({
            "op": "publish_plan",
            "fields": fields.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect::<Vec<_>>(),
        }),
        Effect::SetTradingState { to, .. } => json!({"op": "set_trading_state", "to": to.as_str()}),
        Effect::FillOpen { symbol, fill, .. } => json!({
            "op": "fill_open", "symbol": symbol, "side": fill.side.as_str(),
            "qty": fill.qty.to_string(), "price": fill.entry_price.to_string(),
            "leverage": fill.leverage.to_string(), "opened_at": fill.opened_at.millis().to_string(),
            "entry_score": fill.entry_score.map(|s| s.to_string()),
            "entry_fees": fill.entry_fees.to_string(),
        }),
        Effect::ReleaseReservation { plan_id } => {
            json!({"op": "release_reservation", "plan_id": plan_id})
        }
        Effect::ReducePosition { symbol, qty } => {
            json!({"op": "reduce_position", "symbol": symbol, "qty": qty.to_string()})
        }
        Effect::PruneOpens { before } => json!({"op": "prune_opens", "before": before.millis()}),
        Effect::MarkInDoubt { plan_id, order } => json!({
            "op": "mark_in_doubt", "plan_id": plan_id,
            "json": serde_json::to_string(order).expect("an order in doubt serializes"),
        }),
        Effect::MarkResultApplied { plan_id } => {
            json!({"op": "mark_result_applied", "plan_id": plan_id})
        }
        Effect::Emit(ev) => {
            let mut fields = vec![
                "event".to_owned(),
                ev.event.to_owned(),
                "plan_id".to_owned(),
                ev.plan_id.clone(),
                "symbol".to_owned(),
                ev.symbol.clone(),
                "ts".to_owned(),
                ev.ts.millis().to_string(),
            ];
            for (k, v) in &ev.fields {
                fields.push((*k).to_owned());
                fields.push(v.clone());
            }
            json!({"op": "emit", "fields": fields})
        }
        Effect::RecordEquity {
            hour,
            equity,
            keep_from,
        } => json!({
            "op": "record_equity", "hour": hour.to_string(), "equity": equity.to_string(),
            "keep_from": keep_from.to_string(),
        }),
        Effect::ResetEquity { hour, equity } => json!({
            "op": "reset_equity", "hour": hour.to_string(), "equity": equity.to_string(),
        }),
        Effect::SetHalt(halt) => json!({
            "op": "set_halt",
            "json": halt.as_ref().map(|h| serde_json::to_string(h).expect("a halt serializes")),
        }),
        Effect::RecordClose { close, keep_from } => json!({
            "op": "record_close", "at": close.at.millis(), "keep_from": keep_from.millis(),
            "json": serde_json::to_string(close).expect("a close serializes"),
        }),
    }
}
