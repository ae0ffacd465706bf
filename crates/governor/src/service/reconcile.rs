//! The reconciler: the ledger against the exchange's positions. Unknown exchange positions are
//! adopted (they count against the limits), phantom ledger entries are released, size
//! mismatches follow the exchange; every drift is an event.

use governor_core::book::LedgerPosition;
use governor_core::snapshot::ExchangePosition;
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
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
