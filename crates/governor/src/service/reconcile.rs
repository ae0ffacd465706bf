//! The reconciler: the ledger against the exchange's positions. Unknown exchange positions are
//! adopted (they count against the limits), phantom ledger entries are released, size
//! mismatches follow the exchange; every drift is an event. It also settles orders left in
//! doubt once their permit's life is over, by asking the exchange for them by client id.
//!
//! One consistent view: the ledger is read first, the exchange after it (never a cached
//! account), and each correction is committed under a guard that the symbol's ledger version
//! is still the one compared and that nothing is in flight on it (a reservation, a live exit
//! lock, an order in doubt). A fill or a close that lands between the two reads therefore
//! never makes a fresh position a "phantom" nor a closed one "unknown": the guard fails, and
//! the next cycle compares again.

use crate::exchange::Exchange;
use crate::logfmt;
use crate::orders::{self, Known, ResolvedBy};
use crate::store::redis::RedisStore;
use crate::store::{StateStore, StoreError};
use governor_core::book::LedgerPosition;
use governor_core::effects::{Effect, Event, Guard};
use governor_core::snapshot::ExchangePosition;
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Symbol};
use governor_core::Config;
use std::collections::BTreeMap;

/// One difference between the ledger and the exchange.
#[derive(Clone, Debug, PartialEq)]
pub enum Drift {
    /// On the exchange, not in the ledger: adopt it.
    Unknown(Symbol, LedgerPosition),
    /// In the ledger, not on the exchange: release it (its qty, to remove it whole).
    Phantom(Symbol, f64),
    /// Both hold it, in other sizes or sides: the exchange is right.
    Mismatch(Symbol, LedgerPosition),
}

impl Drift {
    /// The symbol concerned.
    pub fn symbol(&self) -> &Symbol {
        match self {
            Drift::Unknown(s, _) | Drift::Phantom(s, _) | Drift::Mismatch(s, _) => s,
        }
    }

    /// The ledger changes that correct it.
    pub fn effects(&self) -> Vec<Effect> {
        match self {
            Drift::Unknown(s, p) | Drift::Mismatch(s, p) => vec![
                Effect::ReducePosition {
                    symbol: s.clone(),
                    qty: f64::MAX,
                },
                Effect::FillOpen {
                    plan_id: PlanId::parse("reconciler").expect("valid"),
                    symbol: s.clone(),
                    fill: p.clone(),
                },
            ],
            Drift::Phantom(s, qty) => vec![Effect::ReducePosition {
                symbol: s.clone(),
                qty: *qty,
            }],
        }
    }

    /// The event's `reason` field.
    pub fn reason(&self) -> &'static str {
        match self {
            Drift::Unknown(..) => "unknown_exchange_position_adopted",
            Drift::Phantom(..) => "phantom_ledger_position_released",
            Drift::Mismatch(..) => "ledger_size_corrected_to_exchange",
        }
    }
}

/// Compares the two views. Sizes within a relative 1e-9 are equal.
pub fn compare(
    ledger: &BTreeMap<Symbol, LedgerPosition>,
    exchange: &BTreeMap<Symbol, ExchangePosition>,
    default_leverage: u32,
    now: Timestamp,
) -> Vec<Drift> {
    let mut out = Vec::new();
    for (s, x) in exchange {
        match ledger.get(s) {
            None => out.push(Drift::Unknown(
                s.clone(),
                LedgerPosition {
                    side: x.side,
                    qty: x.qty,
                    entry_price: x.entry_price,
                    leverage: if x.leverage == 0 {
                        default_leverage
                    } else {
                        x.leverage.min(125)
                    },
                    opened_at: now,
                    entry_score: None,
                    entry_fees: 0.0,
                },
            )),
            Some(l)
                if l.side != x.side || (l.qty - x.qty).abs() > l.qty.abs().max(x.qty) * 1e-9 =>
            {
                out.push(Drift::Mismatch(
                    s.clone(),
                    LedgerPosition {
                        side: x.side,
                        qty: x.qty,
                        entry_price: x.entry_price,
                        ..l.clone()
                    },
                ))
            }
            Some(_) => {}
        }
    }
    for (s, l) in ledger {
        if !exchange.contains_key(s) {
            out.push(Drift::Phantom(s.clone(), l.qty));
        }
    }
    out
}

/// What one reconciliation did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciled {
    /// Drifts corrected in the ledger (each with its `RECONCILE_DRIFT` event).
    pub applied: Vec<Drift>,
    /// Drifts left for the next cycle: something was in flight on the symbol, or its ledger
    /// changed after it was read.
    pub deferred: Vec<Drift>,
    /// Orders in doubt whose outcome the exchange told, now settled and published.
    pub settled: Vec<(PlanId, Known)>,
}

/// One reconciliation of the store's ledger against `exchange`: the ledger read, then the
/// exchange compared with it, settled results published on `apply.result`.
pub fn reconcile_once<E: Exchange + ?Sized>(
    store: &RedisStore,
    exchange: &E,
    cfg: &Config,
    now: Timestamp,
) -> Result<Reconciled, StoreError> {
    read_ledger(store, now)?.reconcile(store, exchange, cfg, now, |fields| {
        orders::publish_result(store, cfg, fields, now)
    })
}

/// The first half of a reconciliation: the ledger as it was read, before the exchange is. A
/// reconciler may be paused or die between the two halves; what it does with the second is
/// guarded by what it read in the first.
pub struct LedgerRead {
    book: std::sync::Arc<governor_core::book::Book>,
}

/// Reads the ledger (the book) for a reconciliation.
pub fn read_ledger<S: StateStore + ?Sized>(
    store: &S,
    now: Timestamp,
) -> Result<LedgerRead, StoreError> {
    Ok(LedgerRead {
        book: store.state(&[], now)?.0.book,
    })
}

impl LedgerRead {
    /// The second half: settles the orders left in doubt that the exchange can now tell
    /// (`publish` books each result and puts it on `apply.result`), then compares the ledger
    /// read with the exchange's positions, read now, and corrects each drift under the guard
    /// that the symbol's ledger is still the one read and nothing is in flight on it.
    pub fn reconcile<S: StateStore + ?Sized, E: Exchange + ?Sized>(
        self,
        store: &S,
        exchange: &E,
        cfg: &Config,
        now: Timestamp,
        mut publish: impl FnMut(&[(String, String)]) -> Result<(), StoreError>,
    ) -> Result<Reconciled, StoreError> {
        let book = self.book;
        let mut done = Reconciled::default();
        let window = exchange.request_window();
        for (plan_id, order) in &book.in_doubt {
            if !orders::absence_is_final(order.send_deadline, now, window) {
                continue; // its executor may still be asking, or the order still arriving
            }
            match orders::ask(exchange, &order.symbol, plan_id, true) {
                Ok(known) => {
                    let close = !order.action.starts_with("OPEN");
                    let fields = orders::result_fields(
                        plan_id,
                        &order.symbol,
                        &order.action,
                        close,
                        &known,
                        ResolvedBy::Reconciler,
                        now,
                    );
                    publish(&fields)?;
                    logfmt::line(
                        "ORDER_RESOLVED",
                        &[
                            ("plan", plan_id.to_string()),
                            ("symbol", order.symbol.to_string()),
                            ("resolved_by", "reconciler".to_owned()),
                            ("filled", matches!(known, Known::Filled(_)).to_string()),
                        ],
                    );
                    done.settled.push((plan_id.clone(), known));
                }
                Err(why) => logfmt::line(
                    "ORDER_STILL_UNKNOWN",
                    &[
                        ("plan", plan_id.to_string()),
                        ("symbol", order.symbol.to_string()),
                        ("last", why),
                    ],
                ),
            }
        }
        if !done.settled.is_empty() {
            return Ok(done); // the ledger just changed: compare positions on the next cycle
        }
        // Read after the ledger: a fill the ledger does not show yet is in flight, and guarded.
        let Ok(account) = exchange.account() else {
            return Ok(done); // nothing to compare with: never release on missing data
        };
        let drifts = compare(
            &book.positions,
            &account.positions,
            cfg.funds.default_leverage,
            now,
        );
        let operator = PlanId::parse("reconciler").expect("valid");
        for d in drifts {
            let symbol = d.symbol().clone();
            if book.in_flight(&symbol, now) {
                done.deferred.push(d);
                continue;
            }
            let guard = Guard::LedgerSettled {
                symbol: symbol.clone(),
                version: book.ledger_version(&symbol),
            };
            let mut effects = d.effects();
            effects.push(Effect::Emit(
                Event::new("RECONCILE_DRIFT", &operator, &symbol, now).with("reason", d.reason()),
            ));
            if !store.apply(&[guard], &effects, now)? {
                done.deferred.push(d);
                continue;
            }
            logfmt::line(
                "RECONCILE_DRIFT",
                &[
                    ("symbol", symbol.to_string()),
                    ("reason", d.reason().to_owned()),
                ],
            );
            done.applied.push(d);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor_core::types::Side;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    fn ledger(qty: f64) -> LedgerPosition {
        LedgerPosition {
            side: Side::Long,
            qty,
            entry_price: 10.0,
            leverage: 5,
            opened_at: Timestamp(1),
            entry_score: Some(70.0),
            entry_fees: 0.0,
        }
    }

    fn live(qty: f64) -> ExchangePosition {
        ExchangePosition {
            side: Side::Long,
            qty,
            entry_price: 10.0,
            mark_price: 11.0,
            leverage: 5,
        }
    }

    #[test]
    fn adopts_unknown_releases_phantom_and_corrects_sizes() {
        let l: BTreeMap<_, _> = [
            (sym("ETHUSDT"), ledger(1.0)),
            (sym("SOLUSDT"), ledger(2.0)),
            (sym("XRPUSDT"), ledger(3.0)),
        ]
        .into();
        let x: BTreeMap<_, _> = [
            (sym("ETHUSDT"), live(1.0)),
            (sym("SOLUSDT"), live(1.5)),
            (sym("BNBUSDT"), live(4.0)),
        ]
        .into();
        let drifts = compare(&l, &x, 5, Timestamp(99));
        assert_eq!(drifts.len(), 3, "{drifts:?}");
        assert!(
            matches!(&drifts[0], Drift::Unknown(s, p) if s.as_str() == "BNBUSDT" && p.qty == 4.0 && p.opened_at == Timestamp(99))
        );
        assert!(
            matches!(&drifts[1], Drift::Mismatch(s, p) if s.as_str() == "SOLUSDT" && p.qty == 1.5 && p.entry_score == Some(70.0))
        );
        assert!(matches!(&drifts[2], Drift::Phantom(s, q) if s.as_str() == "XRPUSDT" && *q == 3.0));
        assert_eq!(drifts[0].reason(), "unknown_exchange_position_adopted");
    }

    #[test]
    fn equal_views_have_no_drift() {
        let l: BTreeMap<_, _> = [(sym("ETHUSDT"), ledger(1.0))].into();
        let x: BTreeMap<_, _> = [(sym("ETHUSDT"), live(1.0))].into();
        assert!(compare(&l, &x, 5, Timestamp(0)).is_empty());
    }
}
