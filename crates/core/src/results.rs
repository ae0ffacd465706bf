//! The result side: what an execution result (`apply.result`) changes. A filled open turns its
//! reservation into a position; a failed open releases it; an executed close reduces or frees
//! the position and releases the exit lock if it is still the plan's own; a rotation's close
//! holds the freed slot for the pending plan, which is then re-decided. Results are idempotent.

use crate::book::{Book, LedgerPosition, RotationPhase};
use crate::effects::{Effect, Event};
use crate::plan::{parse_bool, parse_decimal, Action, CloseKind, FieldError, PlanRejection};
use crate::time::Timestamp;
use crate::types::{PlanId, Symbol};
use serde::Serialize;
use std::collections::BTreeMap;

/// A parsed execution result (CONTRACT.md, `apply.result`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExecutionResult {
    /// The plan the order executed.
    pub plan_id: PlanId,
    /// The instrument.
    pub symbol: Symbol,
    /// Whether the order executed.
    pub executed: bool,
    /// `reduceOnly` as the executor placed it.
    pub reduce_only: bool,
    /// The plan's action.
    pub action: Action,
    /// Filled quantity (> 0 when executed).
    pub filled_qty: f64,
    /// Average fill price (> 0 when executed).
    pub avg_price: f64,
    /// The exchange's error when not executed.
    pub error: Option<String>,
    /// Commission paid on the fill in USDT (`fee`, ≥ 0), when the executor learned it.
    pub fee: Option<f64>,
    /// The exchange's realized PnL of the fill before fees (`realized_pnl`), when known.
    pub realized_pnl: Option<f64>,
    /// How the outcome was learned (`resolved_by`: `answer`, `query`, `reconciler`), when said.
    pub resolved_by: Option<String>,
}

impl ExecutionResult {
    /// Parses a result strictly; every problem is reported with its field and value.
    pub fn parse<K: AsRef<str>, V: AsRef<str>>(
        fields: &[(K, V)],
    ) -> Result<ExecutionResult, PlanRejection> {
        let mut map: BTreeMap<&str, &str> = BTreeMap::new();
        let mut errors = Vec::new();
        for (k, v) in fields {
            if map.insert(k.as_ref(), v.as_ref()).is_some() {
                errors.push(FieldError {
                    field: k.as_ref().to_owned(),
                    value: Some(v.as_ref().to_owned()),
                    problem: "appears more than once".to_owned(),
                });
            }
        }
        let mut field = |name: &str, conv: &dyn Fn(&str) -> Result<(), String>| -> Option<String> {
            match map.get(name) {
                None => {
                    errors.push(FieldError {
                        field: name.to_owned(),
                        value: None,
                        problem: "required in a result".to_owned(),
                    });
                    None
                }
                Some(v) => match conv(v) {
                    Ok(()) => Some((*v).to_owned()),
                    Err(problem) => {
                        errors.push(FieldError {
                            field: name.to_owned(),
                            value: Some((*v).to_owned()),
                            problem,
                        });
                        None
                    }
                },
            }
        };
        let plan_id = field("plan_id", &|v| PlanId::parse(v).map(drop));
        let symbol = field("symbol", &|v| Symbol::parse(v).map(drop));
        let executed = field("executed", &|v| parse_bool(v).map(drop));
        let action = field("action", &|v| action_of(v).map(drop));
        let executed_true = executed.as_deref() == Some("true");
        let amount = |v: &str| -> Result<(), String> {
            let x = parse_decimal(v)?;
            if x > 0.0 || (!executed_true && x == 0.0) {
                Ok(())
            } else {
                Err("must be > 0 on an executed result (0 allowed when not executed)".to_owned())
            }
        };
        let filled_qty = field("filled_qty", &amount);
        let avg_price = field("avg_price", &amount);
        let reduce_only = match map.get("reduceOnly") {
            None => Some("false".to_owned()),
            Some(_) => field("reduceOnly", &|v| parse_bool(v).map(drop)),
        };
        let error = map.get("error").map(|e| (*e).to_owned());
        let mut optional_number = |name: &str, check: &dyn Fn(f64) -> Result<(), String>| {
            let raw = map.get(name)?;
            match parse_decimal(raw).and_then(|x| check(x).map(|()| x)) {
                Ok(x) => Some(x),
                Err(problem) => {
                    errors.push(FieldError {
                        field: name.to_owned(),
                        value: Some((*raw).to_owned()),
                        problem,
                    });
                    None
                }
            }
        };
        let fee = optional_number("fee", &|x| {
            if x >= 0.0 {
                Ok(())
            } else {
                Err("a fee is ≥ 0 (the commission paid)".to_owned())
            }
        });
        let realized_pnl = optional_number("realized_pnl", &|_| Ok(()));
        let resolved_by = map.get("resolved_by").map(|r| (*r).to_owned());
        if !executed_true && error.as_deref().is_none_or(str::is_empty) && executed.is_some() {
            errors.push(FieldError {
                field: "error".to_owned(),
                value: error.clone(),
                problem: "a failed result must say why".to_owned(),
            });
        }
        if !errors.is_empty() {
            return Err(PlanRejection { errors });
        }
        let (Some(plan_id), Some(symbol), Some(executed), Some(action), Some(q), Some(p), Some(r)) = (
            plan_id,
            symbol,
            executed,
            action,
            filled_qty,
            avg_price,
            reduce_only,
        ) else {
            unreachable!("a field was missing without an error being recorded");
        };
        Ok(ExecutionResult {
            plan_id: PlanId::parse(&plan_id).expect("checked"),
            symbol: Symbol::parse(&symbol).expect("checked"),
            executed: executed == "true",
            reduce_only: r == "true",
            action: action_of(&action).expect("checked"),
            filled_qty: parse_decimal(&q).expect("checked"),
            avg_price: parse_decimal(&p).expect("checked"),
            error,
            fee,
            realized_pnl,
            resolved_by,
        })
    }
}

fn action_of(raw: &str) -> Result<Action, String> {
    use crate::types::Side;
    Ok(match raw {
        "OPEN_LONG" => Action::Open(Side::Long),
        "OPEN_SHORT" => Action::Open(Side::Short),
        "FULL_CLOSE_PROPOSED" => Action::Close(CloseKind::Full),
        "PARTIAL_75" => Action::Close(CloseKind::Partial75),
        "PARTIAL_50" => Action::Close(CloseKind::Partial50),
        "PARTIAL_25" => Action::Close(CloseKind::Partial25),
        _ => {
            return Err(
                "a result's action is OPEN_LONG, OPEN_SHORT, FULL_CLOSE_PROPOSED or PARTIAL_n"
                    .to_owned(),
            )
        }
    })
}

/// What applying a result does.
#[derive(Clone, Debug, PartialEq)]
pub struct Settlement {
    /// Checked atomically before the effects (the result was not applied meanwhile).
    pub guards: Vec<crate::effects::Guard>,
    /// The store changes, applied atomically.
    pub effects: Vec<Effect>,
    /// A pending plan to re-decide now (rotation phase 2).
    pub redecide: Option<PlanId>,
    /// What happened, for the log.
    pub note: String,
}

/// The settings the result side needs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SettlePolicy {
    /// Leverage of a fill whose reservation is gone.
    pub default_leverage: u32,
    /// How long executed closes are kept for the loss-streak guard (its window + its lock).
    pub close_retention_secs: u64,
}

impl SettlePolicy {
    /// The policy of a configuration.
    pub fn of(cfg: &crate::Config) -> Self {
        SettlePolicy {
            default_leverage: cfg.funds.default_leverage,
            close_retention_secs: cfg.loss_streak.window_secs + cfg.loss_streak.lock_secs,
        }
    }
}

/// Computes what `result` changes in `book`. `already_applied` makes it a no-op (idempotent).
pub fn settle(
    result: &ExecutionResult,
    book: &Book,
    already_applied: bool,
    policy: &SettlePolicy,
    now: Timestamp,
) -> Settlement {
    let default_leverage = policy.default_leverage;
    if already_applied {
        // The executor may have applied its own result first: a rotation whose close it
        // confirmed still needs its phase 2, which only a governor decides.
        let redecide = book
            .rotation_by_close(&result.plan_id)
            .filter(|(_, rot)| rot.phase == RotationPhase::SlotHeld)
            .map(|(pending, _)| pending.clone());
        return Settlement {
            guards: Vec::new(),
            effects: Vec::new(),
            redecide,
            note: format!("result for {} already applied: ignored", result.plan_id),
        };
    }
    let mut effects = vec![Effect::MarkResultApplied {
        plan_id: result.plan_id.clone(),
    }];
    let mut redecide = None;
    let note;
    match result.action {
        Action::Open(side) => {
            let reservation = book.reservations.get(&result.plan_id);
            if reservation.is_some() {
                effects.push(Effect::ReleaseReservation {
                    plan_id: result.plan_id.clone(),
                });
            }
            if result.executed {
                effects.push(Effect::FillOpen {
                    plan_id: result.plan_id.clone(),
                    symbol: result.symbol.clone(),
                    fill: LedgerPosition {
                        side,
                        qty: result.filled_qty,
                        entry_price: result.avg_price,
                        leverage: reservation.map_or(default_leverage, |r| r.leverage),
                        opened_at: now,
                        entry_score: reservation.and_then(|r| r.score),
                    },
                });
                if reservation.is_none() {
                    effects.push(Effect::Emit(
                        Event::new("RECONCILE_DRIFT", &result.plan_id, &result.symbol, now).with(
                            "reason",
                            "fill without a live reservation (permit expired?)",
                        ),
                    ));
                }
                note = format!(
                    "open filled: {} {} at {}",
                    result.symbol, result.filled_qty, result.avg_price
                );
            } else {
                note = format!(
                    "open failed, reservation released: {}",
                    result.error.as_deref().unwrap_or("")
                );
            }
        }
        Action::Close(kind) => {
            effects.push(Effect::ReleaseExitLock {
                symbol: result.symbol.clone(),
                holder: result.plan_id.clone(),
            });
            if result.executed {
                let qty = match (kind, book.positions.get(&result.symbol)) {
                    (CloseKind::Full, Some(p)) => p.qty,
                    _ => result.filled_qty,
                };
                effects.push(Effect::ReducePosition {
                    symbol: result.symbol.clone(),
                    qty,
                });
                // The realized PnL, net of the close's fee, feeds the loss-streak guard: the
                // exchange's own figure when the result carries it, else computed from the
                // ledger's entry price. Without a ledger entry no PnL is guessed.
                if let Some(p) = book.positions.get(&result.symbol) {
                    let gross = result
                        .realized_pnl
                        .unwrap_or((result.avg_price - p.entry_price) * qty * p.side.sign());
                    effects.push(Effect::RecordClose {
                        close: crate::book::CloseRecord {
                            plan_id: result.plan_id.clone(),
                            symbol: result.symbol.clone(),
                            at: now,
                            pnl: gross - result.fee.unwrap_or(0.0),
                        },
                        keep_from: now.minus_secs(policy.close_retention_secs),
                    });
                }
                let rotation = book.rotation_by_close(&result.plan_id);
                if let Some((pending, rot)) = rotation {
                    if kind == CloseKind::Full
                        && result.reduce_only
                        && rot.phase == RotationPhase::AwaitingClose
                    {
                        effects.push(Effect::HoldRotationSlot {
                            pending_plan_id: pending.clone(),
                        });
                        redecide = Some(pending.clone());
                    }
                }
                note = format!("close executed: {} {}", result.symbol, qty);
            } else {
                note = format!(
                    "close failed, exit lock released: {}",
                    result.error.as_deref().unwrap_or("")
                );
            }
        }
        Action::UpdateSl | Action::Hold => {
            unreachable!("results are parsed for executable actions only")
        }
    }
    Settlement {
        guards: vec![crate::effects::Guard::ResultNotApplied(
            result.plan_id.clone(),
        )],
        effects,
        redecide,
        note,
    }
}
