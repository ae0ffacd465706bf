//! An order's outcome, from the moment it is about to be sent to the moment its result is
//! published — shared by the executor (which places orders) and the reconciler (which settles
//! those whose executor died or gave up).
//!
//! Three outcomes, never two: filled, not filled, and *unknown*. An unknown outcome (a timeout,
//! a 5xx, Binance's -1006/-1007, an answer that could not be read, an order still working) is
//! resolved by asking the exchange for the order by its client id, with bounded back-off, and
//! never by sending the order again. Until it is resolved, a record in the store
//! ([`OrderInDoubt`]) holds the open's reservation and keeps the reconciler away from the
//! symbol. "The exchange knows no such order" is taken as "never placed" only once the exchange
//! can no longer accept the request: its request window (`recvWindow`) after the last moment
//! the order could have been sent.

use crate::exchange::{Exchange, Fill, OrderError, OrderState};
use crate::store::redis::RedisStore;
use crate::store::{StateStore, StoreError};
use governor_core::book::OrderInDoubt;
use governor_core::effects::Effect;
use governor_core::results::{ExecutionResult, SettlePolicy};
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Symbol};
use governor_core::Config;
use std::time::Duration;

/// A known outcome.
#[derive(Clone, Debug, PartialEq)]
pub enum Known {
    /// The order filled, in whole or in part.
    Filled(Fill),
    /// Nothing filled: refused, rejected, ended empty, or never placed (the reason says which).
    NotFilled(String),
}

/// How the outcome was learned (`resolved_by` on `apply.result`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ResolvedBy {
    /// From the order's own answer (or it was refused before anything was sent).
    Answer,
    /// By asking the exchange for the order by its client id, after an unknown answer.
    Query,
    /// By the reconciler, for an order whose executor did not resolve it in time.
    Reconciler,
}

impl ResolvedBy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedBy::Answer => "answer",
            ResolvedBy::Query => "query",
            ResolvedBy::Reconciler => "reconciler",
        }
    }
}

/// What an order's own answer tells: its outcome, or (`Err`) why the outcome is unknown — a
/// timeout, a 5xx, an unreadable answer — which is asked for by client id, never taken as a
/// failure (the order may have filled).
pub fn outcome_of(answer: Result<Fill, OrderError>) -> Result<Known, String> {
    match answer {
        Ok(fill) => Ok(Known::Filled(fill)),
        Err(OrderError::Unknown(why)) => Err(why),
        Err(refused) => Ok(Known::NotFilled(refused.to_string())),
    }
}

/// Refuses to send an order whose permit has lapsed: its in-doubt record promises the
/// reconciler that nothing is sent after the permit's expiry, and the exit lock of a close
/// outlives the permit only by so much. Checked right before sending, after any wait.
pub fn still_permitted(expires_at: Timestamp, now: Timestamp) -> Result<(), OrderError> {
    if now >= expires_at {
        return Err(OrderError::Refused(format!(
            "the permit expired at {} before the order could be sent",
            expires_at.millis()
        )));
    }
    Ok(())
}

/// Whether an order sent at `sent_at` can no longer reach the exchange at `now`. The exchange
/// still processes a request whose age equals its window (Binance: `serverTime - timestamp <=
/// recvWindow`), so absence is final only strictly after `sent_at + window`: concluding it at
/// the window's last millisecond books as never placed an order that can still fill.
pub fn absence_is_final(sent_at: Timestamp, now: Timestamp, window: Duration) -> bool {
    now.millis() > sent_at.millis().saturating_add(window.as_millis() as i64)
}

/// One question to the exchange about an order. `Ok` when the answer settles it; `Err` with
/// why it is still unknown. An absent order settles it (never placed) only when
/// `absent_is_final`: before that, the request may still be on its way.
pub fn ask<E: Exchange + ?Sized>(
    exchange: &E,
    symbol: &Symbol,
    client_id: &PlanId,
    absent_is_final: bool,
) -> Result<Known, String> {
    match exchange.order_status(symbol, client_id.as_str()) {
        Ok(OrderState::Final {
            fill: Some(fill), ..
        }) => Ok(Known::Filled(fill)),
        Ok(OrderState::Final { status, fill: None }) => Ok(Known::NotFilled(format!(
            "order {client_id} ended {status} with nothing filled"
        ))),
        Ok(OrderState::Absent) if absent_is_final => Ok(Known::NotFilled(format!(
            "order {client_id} was never placed: the exchange knows no such order"
        ))),
        Ok(OrderState::Absent) => Err(format!(
            "the exchange knows no order {client_id} yet (it may still arrive)"
        )),
        Ok(OrderState::Working) => Err(format!("order {client_id} is still working")),
        Err(e) => Err(e.to_string()),
    }
}

/// How long and how often the executor asks before it leaves an order to the reconciler.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvePolicy {
    /// The first wait; it doubles after each answer that settles nothing.
    pub first_wait: Duration,
    /// The longest wait between two questions.
    pub max_wait: Duration,
    /// Give up (the outcome stays unknown, in the store) after this long.
    pub give_up_after: Duration,
    /// The exchange's request window: an absent order is final only this long after sending.
    pub absent_after: Duration,
}

/// Asks until the outcome is known or the policy gives up (`Err` with the last reason).
/// `sleep` is the wait (the real one in the service, a recorded one in tests).
pub fn resolve<E: Exchange + ?Sized>(
    exchange: &E,
    symbol: &Symbol,
    client_id: &PlanId,
    policy: &ResolvePolicy,
    mut sleep: impl FnMut(Duration),
) -> Result<Known, String> {
    let started = std::time::Instant::now();
    let mut wait = policy.first_wait;
    loop {
        let elapsed = started.elapsed();
        // Strictly after the window, as in [`absence_is_final`].
        match ask(exchange, symbol, client_id, elapsed > policy.absent_after) {
            Ok(known) => return Ok(known),
            Err(why) if elapsed >= policy.give_up_after => return Err(why),
            Err(_) => {
                sleep(
                    wait.min(policy.give_up_after.saturating_sub(elapsed))
                        .max(Duration::from_millis(1)),
                );
                wait = (wait * 2).min(policy.max_wait);
            }
        }
    }
}

/// Writes the order's in-doubt record before it is sent (or updates why it is in doubt).
pub fn mark_in_doubt(
    store: &(impl StateStore + ?Sized),
    plan_id: &PlanId,
    order: OrderInDoubt,
    now: Timestamp,
) -> Result<(), StoreError> {
    store.apply(
        &[],
        &[Effect::MarkInDoubt {
            plan_id: plan_id.clone(),
            order,
        }],
        now,
    )?;
    Ok(())
}

/// The `apply.result` entry of a known outcome: the contract's fields, plus `fee` and
/// `realized_pnl` when the exchange gave them, and `resolved_by`.
pub fn result_fields(
    plan_id: &PlanId,
    symbol: &Symbol,
    action: &str,
    reduce_only: bool,
    known: &Known,
    resolved_by: ResolvedBy,
    now: Timestamp,
) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = vec![
        ("plan_id".into(), plan_id.to_string()),
        ("symbol".into(), symbol.to_string()),
        ("reduceOnly".into(), reduce_only.to_string()),
        ("action".into(), action.to_owned()),
        ("ts".into(), (now.millis() / 1000).to_string()),
        ("resolved_by".into(), resolved_by.as_str().to_owned()),
    ];
    match known {
        Known::Filled(fill) => {
            f.push(("executed".into(), "true".into()));
            f.push(("filled_qty".into(), fill.qty.to_string()));
            f.push(("avg_price".into(), fill.avg_price.to_string()));
            if let Some(fee) = fill.fee {
                f.push(("fee".into(), fee.to_string()));
            }
            if let Some(pnl) = fill.realized_pnl {
                f.push(("realized_pnl".into(), pnl.to_string()));
            }
        }
        Known::NotFilled(why) => {
            f.push(("executed".into(), "false".into()));
            f.push(("filled_qty".into(), "0".into()));
            f.push(("avg_price".into(), "0".into()));
            f.push(("error".into(), why.clone()));
        }
    }
    f
}

/// Applies an outcome's `apply.result` fields to the ledger at once: the executor does not wait
/// for the result monitor to book what it knows (the monitor applies the same result again,
/// idempotently).
pub fn settle_result(
    store: &(impl StateStore + ?Sized),
    cfg: &Config,
    fields: &[(String, String)],
    now: Timestamp,
) -> Result<(), StoreError> {
    let result = ExecutionResult::parse(fields).map_err(StoreError::corrupt)?;
    store.settle(&result, &SettlePolicy::of(cfg), now)?;
    Ok(())
}

/// Applies a result to the ledger through the governor's own idempotent settlement (which also
/// clears the order's in-doubt record), then publishes it on `apply.result`.
pub fn publish_result(
    store: &RedisStore,
    cfg: &Config,
    fields: &[(String, String)],
    now: Timestamp,
) -> Result<(), StoreError> {
    settle_result(store, cfg, fields, now)?;
    let key = store.key("stream:apply.result");
    store.with_conn(|c| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&key).arg("MAXLEN").arg("~").arg(100_000).arg("*");
        for (k, v) in fields {
            cmd.arg(k).arg(v);
        }
        cmd.query::<String>(c).map(drop)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{ExchangeError, OrderRequest, SymbolFilters};
    use governor_core::market::Kline;
    use governor_core::snapshot::ExchangeState;
    use std::cell::RefCell;

    /// An exchange that answers order questions from a script, one answer per question.
    struct Scripted(RefCell<Vec<Result<OrderState, ExchangeError>>>);

    impl Exchange for Scripted {
        fn account(&self) -> Result<ExchangeState, ExchangeError> {
            unreachable!("not asked")
        }
        fn klines(&self, _: &Symbol, _: usize) -> Result<Vec<Kline>, ExchangeError> {
            unreachable!("not asked")
        }
        fn filters(&self, _: &Symbol) -> Result<SymbolFilters, ExchangeError> {
            unreachable!("not asked")
        }
        fn place_order(&mut self, _: &OrderRequest) -> Result<Fill, OrderError> {
            unreachable!("resolution never places an order")
        }
        fn order_status(&self, _: &Symbol, _: &str) -> Result<OrderState, ExchangeError> {
            let mut script = self.0.borrow_mut();
            assert!(!script.is_empty(), "asked more often than scripted");
            script.remove(0)
        }
    }

    fn fill() -> Fill {
        Fill {
            qty: 0.002,
            avg_price: 50_000.0,
            fee: Some(0.04),
            realized_pnl: Some(0.0),
        }
    }

    fn policy(give_up_ms: u64, absent_ms: u64) -> ResolvePolicy {
        ResolvePolicy {
            first_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(4),
            give_up_after: Duration::from_millis(give_up_ms),
            absent_after: Duration::from_millis(absent_ms),
        }
    }

    fn ids() -> (Symbol, PlanId) {
        (
            Symbol::parse("BTCUSDT").unwrap(),
            PlanId::parse("p1").unwrap(),
        )
    }

    #[test]
    fn errors_and_a_working_order_are_asked_again_until_the_fill_is_known() {
        let x = Scripted(RefCell::new(vec![
            Err(ExchangeError("HTTP 503 code -1007".into())),
            Ok(OrderState::Working),
            Ok(OrderState::Final {
                status: "FILLED".into(),
                fill: Some(fill()),
            }),
        ]));
        let (s, id) = ids();
        let mut waits = Vec::new();
        let known = resolve(&x, &s, &id, &policy(10_000, 0), |d| waits.push(d));
        assert_eq!(known, Ok(Known::Filled(fill())));
        assert_eq!(waits, [Duration::from_millis(1), Duration::from_millis(2)]);
    }

    #[test]
    fn absence_is_final_only_strictly_after_the_window() {
        let (sent, window) = (Timestamp(1_000_000), Duration::from_millis(5_000));
        // Binance processes a request while serverTime - timestamp <= recvWindow.
        assert!(!absence_is_final(sent, Timestamp(1_004_999), window));
        assert!(!absence_is_final(sent, Timestamp(1_005_000), window));
        assert!(absence_is_final(sent, Timestamp(1_005_001), window));
        assert!(!absence_is_final(
            Timestamp(i64::MAX),
            Timestamp(i64::MAX),
            window
        ));
    }

    #[test]
    fn an_absent_order_is_never_placed_only_after_the_request_window() {
        let (s, id) = ids();
        // Within the window: absent is not an answer yet.
        assert!(ask(
            &Scripted(RefCell::new(vec![Ok(OrderState::Absent)])),
            &s,
            &id,
            false
        )
        .is_err());
        let known = ask(
            &Scripted(RefCell::new(vec![Ok(OrderState::Absent)])),
            &s,
            &id,
            true,
        );
        assert!(matches!(known, Ok(Known::NotFilled(why)) if why.contains("never placed")));
    }

    #[test]
    fn an_order_that_ended_empty_is_not_filled_and_a_partial_one_is_filled() {
        let (s, id) = ids();
        let ended = Scripted(RefCell::new(vec![Ok(OrderState::Final {
            status: "EXPIRED".into(),
            fill: None,
        })]));
        assert!(
            matches!(ask(&ended, &s, &id, false), Ok(Known::NotFilled(why)) if why.contains("EXPIRED"))
        );
        let partial = Scripted(RefCell::new(vec![Ok(OrderState::Final {
            status: "EXPIRED".into(),
            fill: Some(Fill {
                qty: 0.001,
                ..fill()
            }),
        })]));
        assert!(matches!(ask(&partial, &s, &id, false), Ok(Known::Filled(f)) if f.qty == 0.001));
    }

    #[test]
    fn it_gives_up_with_the_last_reason_and_never_guesses() {
        let answers = (0..200)
            .map(|_| Err(ExchangeError("no answer: timed out".into())))
            .collect();
        let (s, id) = ids();
        let got = resolve(
            &Scripted(RefCell::new(answers)),
            &s,
            &id,
            &policy(20, 0),
            std::thread::sleep,
        );
        assert_eq!(got, Err("exchange: no answer: timed out".to_owned()));
    }

    #[test]
    fn the_result_says_how_it_was_resolved_and_carries_the_exchanges_fee() {
        let (s, id) = ids();
        let f = result_fields(
            &id,
            &s,
            "OPEN_LONG",
            false,
            &Known::Filled(fill()),
            ResolvedBy::Query,
            Timestamp(5_000),
        );
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("executed"), Some("true"));
        assert_eq!(get("resolved_by"), Some("query"));
        assert_eq!(get("fee"), Some("0.04"));
        let parsed = ExecutionResult::parse(&f).unwrap();
        assert_eq!(parsed.fee, Some(0.04));
        let failed = result_fields(
            &id,
            &s,
            "OPEN_LONG",
            false,
            &Known::NotFilled("never placed".into()),
            ResolvedBy::Reconciler,
            Timestamp(5_000),
        );
        let parsed = ExecutionResult::parse(&failed).unwrap();
        assert!(!parsed.executed);
        assert_eq!(parsed.error.as_deref(), Some("never placed"));
        assert_eq!(parsed.fee, None);
    }
}
