//! The account after an open fills, as Binance would margin it: the symbol's one position
//! (one-way mode) with the open added, the tier its notional falls in, its liquidation price,
//! and the account's maintenance margin before and after. Computed once per decision, for the
//! gates that read it (`leverage_bracket`, `liquidation_distance`, `account_margin_ratio`).
//!
//! Reservations count as the positions they will become (at their reserved notional, with no
//! PnL); held rotation slots hold nothing yet. The open is valued at its candidate price. The
//! isolated margin of a position is taken as its entry notional over its leverage (what the
//! order posts; margin added by hand afterwards is not known here).

use super::common::{Candidate, Ctx, Refusal};
use super::portfolio::{HoldingKind, Portfolio};
use crate::config::MarginMode;
use crate::liquidation::{liquidation_price, Liquidation};
use crate::market::brackets::Bracket;
use crate::reason::BlockReason;
use crate::types::Symbol;

/// The account after the open.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    /// The symbol's position after the fill, in base units.
    pub qty: f64,
    /// Its average entry price.
    pub entry: f64,
    /// The price it is valued at (the open's price).
    pub mark: f64,
    /// qty × mark.
    pub notional: f64,
    /// The tier holding that notional; `None` beyond the last tier's cap (Binance takes no
    /// position that large; its maintenance margin then counts as infinite).
    pub tier: Option<Bracket>,
    /// Where it would be liquidated; `None` beyond the last tier's cap.
    pub liquidation: Option<Liquidation>,
    /// What backs it: cross, the wallet less the other positions' maintenance margin plus
    /// their unrealized PnL; isolated, its own margin.
    pub collateral: f64,
    /// The account's maintenance margin now (the symbol at the open's price).
    pub maintenance_before: f64,
    /// The account's maintenance margin after the fill.
    pub maintenance_after: f64,
    /// Wallet balance + unrealized PnL: the account equity.
    pub margin_balance: f64,
    /// Set when another holding's maintenance margin is unknown: then the collateral (cross),
    /// the liquidation price and the account's margin are not known either.
    pub unknown: Option<Unprojectable>,
}

impl Projection {
    /// The whole projection, or why the account's side of it is unknown (the symbol's own
    /// position, tier and notional are known either way).
    pub fn complete(&self) -> Result<&Projection, &Unprojectable> {
        match &self.unknown {
            None => Ok(self),
            Some(u) => Err(u),
        }
    }
}

/// Why the account's maintenance margin cannot be computed: another holding's symbol has no
/// known tiers, or its notional is beyond its last tier.
#[derive(Clone, Debug, PartialEq)]
pub struct Unprojectable {
    /// The holding's symbol.
    pub symbol: Symbol,
}

impl Unprojectable {
    /// The refusal of a gate that needs the projection: fail closed on unknown market data.
    pub fn refusal(&self) -> Refusal {
        Refusal::new(
            BlockReason::MarketDataUnavailable,
            format!(
                "no leverage bracket for the {} holding: the account's maintenance margin is \
                 unknown",
                self.symbol
            ),
        )
    }
}

/// Projects the open `cand` onto the account `view`.
pub fn project(ctx: &Ctx<'_>, cand: &Candidate, view: &Portfolio<'_>) -> Projection {
    let (mut same_qty, mut same_cost, mut same_margin) = (0.0, 0.0, 0.0);
    let (mut others_mm, mut others_upnl, mut all_upnl) = (0.0, 0.0, 0.0);
    let mut unknown = None;
    for h in view.holdings.iter().filter(|h| h.qty > 0.0) {
        let upnl = h.unrealized_pnl();
        all_upnl += upnl;
        if *h.symbol == cand.symbol && h.side == cand.side {
            let entry = match h.kind {
                HoldingKind::Position { entry_price, .. } => entry_price,
                _ => h.notional / h.qty,
            };
            same_qty += h.qty;
            same_cost += h.qty * entry;
            same_margin += h.qty * entry / f64::from(h.leverage);
            continue;
        }
        match h
            .market
            .and_then(|m| m.brackets.as_ref())
            .and_then(|b| b.maintenance_margin(h.notional))
        {
            Some(mm) => others_mm += mm,
            None => {
                unknown.get_or_insert_with(|| Unprojectable {
                    symbol: h.symbol.clone(),
                });
            }
        }
        others_upnl += upnl;
    }
    let tiers = &cand.brackets;
    let mark = cand.price;
    let qty = same_qty + cand.qty;
    let entry = (same_cost + cand.notional) / qty;
    let notional = qty * mark;
    // Beyond the last tier Binance takes no position: its maintenance margin is unbounded.
    let margin_of = |n: f64| tiers.maintenance_margin(n).unwrap_or(f64::INFINITY);
    let own_now = if same_qty > 0.0 {
        margin_of(same_qty * mark)
    } else {
        0.0
    };
    let margin_balance = view.equity;
    let collateral = match ctx.cfg.liquidation.margin_mode {
        MarginMode::Cross => (margin_balance - all_upnl) - others_mm + others_upnl,
        MarginMode::Isolated => same_margin + cand.notional / f64::from(cand.leverage.max(1)),
    };
    Projection {
        qty,
        entry,
        mark,
        notional,
        tier: tiers.tier_for(notional).map(|(_, t)| *t),
        liquidation: liquidation_price(tiers, cand.side, qty, entry, collateral),
        collateral,
        maintenance_before: others_mm + own_now,
        maintenance_after: others_mm + margin_of(notional),
        margin_balance,
        unknown,
    }
}
