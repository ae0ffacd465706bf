//! The paper exchange: USDT-M futures accounting on recorded prices. Orders fill at the next
//! bar's open with configurable slippage and taker fee; positions carry side, quantity, entry
//! and leverage; equity is wallet balance plus unrealized PnL at the mark; an order the account
//! cannot margin is refused with -2019, as Binance does; a position whose bar reaches its
//! liquidation price (Binance's formula and leverage brackets, cross or isolated) is closed
//! there. It is the default runtime of the replay, not a test double.

use super::{Exchange, ExchangeError, Fill, OrderError, OrderRequest, OrderState, SymbolFilters};
use governor_core::config::MarginMode;
use governor_core::liquidation::liquidation_price;
use governor_core::market::brackets::BracketTable;
use governor_core::market::brackets::LeverageBrackets;
use governor_core::market::Kline;
use governor_core::snapshot::{ExchangePosition, ExchangeState};
use governor_core::symbol_walk::SymbolWalk;
use governor_core::types::{Side, Symbol};
use std::collections::BTreeMap;

/// Fill assumptions.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct PaperCosts {
    /// Taker fee as a fraction of notional (Binance USDT-M default tier: 0.0005).
    pub taker_fee: f64,
    /// Slippage as a fraction of price, against the order.
    pub slippage: f64,
}

impl Default for PaperCosts {
    fn default() -> Self {
        PaperCosts {
            taker_fee: 0.0005,
            slippage: 0.0002,
        }
    }
}

/// One paper position.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperPosition {
    /// Direction.
    pub side: Side,
    /// Size in base units.
    pub qty: f64,
    /// Average entry price.
    pub entry_price: f64,
    /// Leverage.
    pub leverage: u32,
}

/// A position the paper exchange liquidated.
#[derive(Clone, Debug, PartialEq)]
pub struct Liquidated {
    /// The instrument.
    pub symbol: Symbol,
    /// The position's direction.
    pub side: Side,
    /// Its whole size.
    pub qty: f64,
    /// Where it was closed: its liquidation price.
    pub price: f64,
    /// Its realized PnL at that price, before the fee.
    pub realized_pnl: f64,
    /// The liquidation fee: the position's maintenance margin at that price, which Binance's
    /// insurance fund keeps (the paper's assumption: everything above bankruptcy is lost).
    pub fee: f64,
}

/// A position's PnL were it closed at `price` (direction-aware): unrealized at the mark.
fn pnl_at(p: &PaperPosition, price: f64) -> f64 {
    (price - p.entry_price) * p.qty * p.side.sign()
}

/// The account's figures at its marks (see [`PaperExchange::reading`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AccountReading {
    /// Wallet balance + unrealized PnL.
    pub equity: f64,
    /// Σ |notional| at the marks.
    pub notional: f64,
    /// Σ notional / leverage: the initial margin in use.
    pub margin_used: f64,
    /// Binance's account margin ratio.
    pub margin_ratio: f64,
    /// Each position's liquidation price: symbol, side, price, distance from the mark.
    pub liquidations: Vec<(Symbol, Side, f64, f64)>,
}

/// A position valued at its mark, with what margining it needs.
struct Valued<'a> {
    symbol: &'a Symbol,
    position: &'a PaperPosition,
    /// Its tiers; `None` when the symbol has none (its maintenance margin then counts as 0).
    tiers: Option<&'a LeverageBrackets>,
    mark: f64,
    upnl: f64,
    maintenance: f64,
}

/// The paper account.
#[derive(Clone, Debug)]
pub struct PaperExchange {
    costs: PaperCosts,
    /// Realized cash: deposits + realized PnL − fees.
    wallet: f64,
    positions: BTreeMap<Symbol, PaperPosition>,
    /// Current mark per symbol (the last close).
    marks: BTreeMap<Symbol, f64>,
    /// Where a market order fills now (the next bar's open).
    fill_prices: BTreeMap<Symbol, f64>,
    /// Fees paid so far.
    fees_paid: f64,
    /// Fills by client order id.
    fills: BTreeMap<String, Fill>,
}

impl PaperExchange {
    /// An account holding `deposit` USDT and no positions.
    pub fn new(deposit: f64, costs: PaperCosts) -> Self {
        PaperExchange {
            costs,
            wallet: deposit,
            positions: BTreeMap::new(),
            marks: BTreeMap::new(),
            fill_prices: BTreeMap::new(),
            fees_paid: 0.0,
            fills: BTreeMap::new(),
        }
    }

    /// Moves the market: marks are the last closes, fills happen at the next bar's opens.
    pub fn set_prices(&mut self, marks: BTreeMap<Symbol, f64>, fill_prices: BTreeMap<Symbol, f64>) {
        self.marks = marks;
        self.fill_prices = fill_prices;
    }

    /// Open positions.
    pub fn positions(&self) -> &BTreeMap<Symbol, PaperPosition> {
        &self.positions
    }

    /// Unrealized PnL of all positions at the marks.
    pub fn unrealized_pnl(&self) -> f64 {
        self.priced()
            .iter()
            .map(|(_, p, mark)| pnl_at(p, *mark))
            .sum()
    }

    /// Wallet balance + unrealized PnL.
    pub fn equity(&self) -> f64 {
        self.wallet + self.unrealized_pnl()
    }

    /// Σ |notional| at the marks.
    pub fn notional(&self) -> f64 {
        self.priced().iter().map(|(_, p, mark)| p.qty * mark).sum()
    }

    /// Σ notional / leverage: the initial margin in use.
    pub fn margin_used(&self) -> f64 {
        self.priced()
            .iter()
            .map(|(_, p, mark)| p.qty * mark / f64::from(p.leverage))
            .sum()
    }

    /// Fees paid so far.
    pub fn fees_paid(&self) -> f64 {
        self.fees_paid
    }

    fn fill_price(&self, order: &OrderRequest, buying: bool) -> Result<f64, OrderError> {
        let base = self
            .fill_prices
            .get(&order.symbol)
            .copied()
            .ok_or_else(|| OrderError::NoPrice(order.symbol.clone()))?;
        let slip = if buying {
            1.0 + self.costs.slippage
        } else {
            1.0 - self.costs.slippage
        };
        Ok(base * slip)
    }
}

impl PaperExchange {
    /// Liquidates every position that the bar just closed reached: a long whose low, a short
    /// whose high, crossed its liquidation price, computed with its symbol's `brackets` under
    /// `mode` (cross: the wallet less the other positions' maintenance margin plus their
    /// unrealized PnL at the marks; isolated: its entry notional over its leverage). One at a
    /// time, the nearest first, since in cross margin each liquidation moves the others'.
    /// A position whose symbol has no tiers is never liquidated here, and is returned in the
    /// second list so that the caller can say so.
    pub fn liquidate(
        &mut self,
        extremes: &BTreeMap<Symbol, (f64, f64)>,
        brackets: &BracketTable,
        mode: MarginMode,
    ) -> (Vec<Liquidated>, Vec<Symbol>) {
        let mut done = Vec::new();
        let untiered: Vec<Symbol> = self
            .positions
            .keys()
            .filter(|s| !brackets.contains_key(*s))
            .cloned()
            .collect();
        while let Some((symbol, price)) = self.first_reached(extremes, brackets, mode) {
            let p = self.positions.remove(&symbol).expect("a held position");
            let realized = pnl_at(&p, price);
            let fee = brackets[&symbol]
                .maintenance_margin(p.qty * price)
                .unwrap_or(0.0)
                .max(0.0);
            self.wallet += realized - fee;
            self.fees_paid += fee;
            done.push(Liquidated {
                symbol,
                side: p.side,
                qty: p.qty,
                price,
                realized_pnl: realized,
                fee,
            });
        }
        (done, untiered)
    }

    /// The reached liquidation nearest to its mark, if any.
    fn first_reached(
        &self,
        extremes: &BTreeMap<Symbol, (f64, f64)>,
        brackets: &BracketTable,
        mode: MarginMode,
    ) -> Option<(Symbol, f64)> {
        self.liquidation_prices(brackets, mode)
            .into_iter()
            .filter(|(s, side, lp, _)| {
                extremes.get(s).is_some_and(|&(low, high)| match side {
                    Side::Long => low <= *lp,
                    Side::Short => high >= *lp,
                })
            })
            .min_by(|a, b| a.3.total_cmp(&b.3))
            .map(|(s, _, lp, _)| (s, lp))
    }

    /// Each position's liquidation price under `mode`, with its side and its distance from the
    /// mark (a fraction of the mark). Positions without tiers, or that no positive price
    /// liquidates, are left out.
    pub fn liquidation_prices(
        &self,
        brackets: &BracketTable,
        mode: MarginMode,
    ) -> Vec<(Symbol, Side, f64, f64)> {
        self.liquidations_of(&self.valued(brackets), mode)
    }

    /// [`PaperExchange::liquidation_prices`] of positions already valued.
    fn liquidations_of(
        &self,
        valued: &[Valued<'_>],
        mode: MarginMode,
    ) -> Vec<(Symbol, Side, f64, f64)> {
        let total_mm: f64 = valued.iter().map(|v| v.maintenance).sum();
        let total_upnl: f64 = valued.iter().map(|v| v.upnl).sum();
        let mut out = Vec::with_capacity(valued.len());
        for v in valued {
            let (Some(tiers), p) = (v.tiers, v.position) else {
                continue;
            };
            let collateral = match mode {
                MarginMode::Cross => {
                    self.wallet - (total_mm - v.maintenance) + (total_upnl - v.upnl)
                }
                MarginMode::Isolated => p.qty * p.entry_price / f64::from(p.leverage.max(1)),
            };
            if let Some(lp) = liquidation_price(tiers, p.side, p.qty, p.entry_price, collateral)
                .and_then(|l| l.price)
            {
                out.push((
                    v.symbol.clone(),
                    p.side,
                    lp,
                    p.side.sign() * (v.mark - lp) / v.mark,
                ));
            }
        }
        out
    }

    /// The account as a report reads it after each bar, every figure from one valuation of
    /// the positions: the same values [`PaperExchange::equity`], [`PaperExchange::notional`],
    /// [`PaperExchange::margin_used`], [`PaperExchange::margin_ratio`] and
    /// [`PaperExchange::liquidation_prices`] give one by one.
    pub fn reading(&self, brackets: &BracketTable, mode: MarginMode) -> AccountReading {
        let valued = self.valued(brackets);
        let upnl: f64 = valued.iter().map(|v| v.upnl).sum();
        let equity = self.wallet + upnl;
        let maintenance: f64 = valued.iter().map(|v| v.maintenance).sum();
        AccountReading {
            equity,
            notional: valued.iter().map(|v| v.position.qty * v.mark).sum(),
            margin_used: valued
                .iter()
                .map(|v| v.position.qty * v.mark / f64::from(v.position.leverage))
                .sum(),
            margin_ratio: governor_core::liquidation::account_margin_ratio(maintenance, equity),
            liquidations: self.liquidations_of(&valued, mode),
        }
    }

    /// Each position with its mark, found by one walk of the marks alongside the positions
    /// (both sorted by symbol); a symbol without a mark is valued at its entry.
    fn priced(&self) -> Vec<(&Symbol, &PaperPosition, f64)> {
        let mut marks = SymbolWalk::new(&self.marks);
        self.positions
            .iter()
            .map(|(s, p)| (s, p, marks.find(s).copied().unwrap_or(p.entry_price)))
            .collect()
    }

    /// Each position with its tiers, mark, unrealized PnL and maintenance margin.
    fn valued<'a>(&'a self, brackets: &'a BracketTable) -> Vec<Valued<'a>> {
        let mut tiers_of = SymbolWalk::new(brackets);
        self.priced()
            .into_iter()
            .map(|(symbol, position, mark)| {
                let tiers = tiers_of.find(symbol);
                Valued {
                    symbol,
                    position,
                    tiers,
                    mark,
                    upnl: pnl_at(position, mark),
                    maintenance: tiers
                        .and_then(|b| b.maintenance_margin(position.qty * mark))
                        .unwrap_or(0.0),
                }
            })
            .collect()
    }

    /// Binance's account margin ratio: Σ maintenance margin at the marks over equity.
    pub fn margin_ratio(&self, brackets: &BracketTable) -> f64 {
        let valued = self.valued(brackets);
        let mm: f64 = valued.iter().map(|v| v.maintenance).sum();
        let upnl: f64 = valued.iter().map(|v| v.upnl).sum();
        governor_core::liquidation::account_margin_ratio(mm, self.wallet + upnl)
    }

    /// The account now: equity and positions at their marks.
    pub fn snapshot(&self) -> ExchangeState {
        // The equity from the same valuation: the terms and order of `equity()`.
        let priced = self.priced();
        let upnl: f64 = priced.iter().map(|(_, p, mark)| pnl_at(p, *mark)).sum();
        ExchangeState {
            equity_usdt: self.wallet + upnl,
            positions: priced
                .into_iter()
                .map(|(s, p, mark)| {
                    (
                        s.clone(),
                        ExchangePosition {
                            side: p.side,
                            qty: p.qty,
                            entry_price: p.entry_price,
                            mark_price: mark,
                            leverage: p.leverage,
                        },
                    )
                })
                .collect(),
            clock: governor_core::snapshot::ExchangeClock::Local,
        }
    }
}

impl Exchange for PaperExchange {
    fn account(&self) -> Result<ExchangeState, ExchangeError> {
        Ok(self.snapshot())
    }

    fn klines(&self, _symbol: &Symbol, _limit: usize) -> Result<Vec<Kline>, ExchangeError> {
        Err(ExchangeError(
            "the replay's paper exchange holds prices, not klines: the replay feeds the market itself"
                .to_owned(),
        ))
    }

    fn filters(&self, _symbol: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        Ok(super::permissive_filters())
    }

    fn order_status(&self, _symbol: &Symbol, client_id: &str) -> Result<OrderState, ExchangeError> {
        Ok(super::paper_order_state(&self.fills, client_id))
    }

    fn place_order(&mut self, order: &OrderRequest) -> Result<Fill, OrderError> {
        let fill = self.fill(order)?;
        self.fills.insert(order.client_id.to_string(), fill.clone());
        Ok(fill)
    }
}

impl PaperExchange {
    fn fill(&mut self, order: &OrderRequest) -> Result<Fill, OrderError> {
        if order.reduce_only {
            let Some(pos) = self.positions.get(&order.symbol).cloned() else {
                return Err(OrderError::ReduceOnlyRejected(order.symbol.clone()));
            };
            // A reduce-only order trades against the position's side.
            let price = self.fill_price(order, pos.side == Side::Short)?;
            let qty = order.qty.min(pos.qty);
            let realized = (price - pos.entry_price) * qty * pos.side.sign();
            let fee = qty * price * self.costs.taker_fee;
            self.wallet += realized - fee;
            self.fees_paid += fee;
            let left = pos.qty - qty;
            if left <= pos.qty * 1e-9 {
                self.positions.remove(&order.symbol);
            } else if let Some(p) = self.positions.get_mut(&order.symbol) {
                p.qty = left;
            }
            return Ok(Fill {
                qty,
                avg_price: price,
                fee: Some(fee),
                realized_pnl: Some(realized),
            });
        }
        let price = self.fill_price(order, order.side == Side::Long)?;
        if let Some(p) = self.positions.get(&order.symbol) {
            if p.side != order.side {
                // Opening against a position would net it down: this account keeps one side per
                // symbol (one-way mode), and the governor never permits it.
                return Err(OrderError::ReduceOnlyRejected(order.symbol.clone()));
            }
        }
        let notional = order.qty * price;
        let fee = notional * self.costs.taker_fee;
        let needed = notional / f64::from(order.leverage.max(1)) + fee;
        let available = self.equity() - self.margin_used();
        if !(needed <= available) {
            return Err(OrderError::MarginInsufficient { needed, available });
        }
        self.wallet -= fee;
        self.fees_paid += fee;
        let entry = self
            .positions
            .entry(order.symbol.clone())
            .or_insert(PaperPosition {
                side: order.side,
                qty: 0.0,
                entry_price: price,
                leverage: order.leverage.max(1),
            });
        let qty = entry.qty + order.qty;
        entry.entry_price = (entry.entry_price * entry.qty + price * order.qty) / qty;
        entry.qty = qty;
        Ok(Fill {
            qty: order.qty,
            avg_price: price,
            fee: Some(fee),
            realized_pnl: Some(0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor_core::types::PlanId;

    fn sym() -> Symbol {
        Symbol::parse("ETHUSDT").unwrap()
    }

    fn exchange(price: f64) -> PaperExchange {
        let mut x = PaperExchange::new(
            1000.0,
            PaperCosts {
                taker_fee: 0.001,
                slippage: 0.0,
            },
        );
        let prices: BTreeMap<_, _> = [(sym(), price)].into();
        x.set_prices(prices.clone(), prices);
        x
    }

    fn order(side: Side, qty: f64, reduce_only: bool, leverage: u32) -> OrderRequest {
        OrderRequest {
            client_id: PlanId::parse("p").unwrap(),
            symbol: sym(),
            side,
            qty,
            reduce_only,
            leverage,
        }
    }

    #[test]
    fn open_mark_and_close_account_for_pnl_and_fees() {
        let mut x = exchange(100.0);
        let fill = x.place_order(&order(Side::Long, 2.0, false, 5)).unwrap();
        assert_eq!((fill.qty, fill.avg_price), (2.0, 100.0));
        assert!((fill.fee.unwrap() - 0.2).abs() < 1e-12, "0.1 % of 200");
        let up: BTreeMap<_, _> = [(sym(), 110.0)].into();
        x.set_prices(up.clone(), up);
        assert!((x.unrealized_pnl() - 20.0).abs() < 1e-9);
        assert!((x.equity() - (1000.0 - 0.2 + 20.0)).abs() < 1e-9);
        assert!((x.margin_used() - 44.0).abs() < 1e-9, "220 notional at 5x");
        let close = x.place_order(&order(Side::Long, 2.0, true, 5)).unwrap();
        assert!((close.realized_pnl.unwrap() - 20.0).abs() < 1e-9);
        assert!(x.positions().is_empty());
        assert!((x.equity() - (1000.0 - 0.2 + 20.0 - 0.22)).abs() < 1e-9);
    }

    #[test]
    fn an_order_the_account_cannot_margin_is_refused_with_2019() {
        let mut x = exchange(100.0);
        // 1000 equity at 1x: 11 × 100 = 1100 notional needs 1100 + fee.
        let err = x
            .place_order(&order(Side::Long, 11.0, false, 1))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("-2019 Margin is insufficient"),
            "{err}"
        );
        assert!(x.positions().is_empty());
        // At 2x it fits.
        assert!(x.place_order(&order(Side::Long, 11.0, false, 2)).is_ok());
    }

    #[test]
    fn short_pnl_and_reduce_only_without_position() {
        let mut x = exchange(100.0);
        assert!(matches!(
            x.place_order(&order(Side::Short, 1.0, true, 5)),
            Err(OrderError::ReduceOnlyRejected(_))
        ));
        x.place_order(&order(Side::Short, 1.0, false, 5)).unwrap();
        let down: BTreeMap<_, _> = [(sym(), 90.0)].into();
        x.set_prices(down.clone(), down);
        assert!((x.unrealized_pnl() - 10.0).abs() < 1e-9);
        let partial = x.place_order(&order(Side::Short, 0.5, true, 5)).unwrap();
        assert!((partial.realized_pnl.unwrap() - 5.0).abs() < 1e-9);
        assert!((x.positions()[&sym()].qty - 0.5).abs() < 1e-12);
    }

    /// 0.01 BTCUSDT long at 100,000 (no fee, no slippage) on 1,000 USDT, `leverage`x, under
    /// BTCUSDT's tier 1 (MMR 0.004, cum 0).
    fn btc_long(leverage: u32) -> (PaperExchange, Symbol, BracketTable) {
        let btc = Symbol::parse("BTCUSDT").unwrap();
        let mut x = PaperExchange::new(
            1000.0,
            PaperCosts {
                taker_fee: 0.0,
                slippage: 0.0,
            },
        );
        let prices: BTreeMap<_, _> = [(btc.clone(), 100_000.0)].into();
        x.set_prices(prices.clone(), prices);
        let qty = if leverage >= 20 { 0.1 } else { 0.01 };
        x.place_order(&OrderRequest {
            client_id: PlanId::parse("p").unwrap(),
            symbol: btc.clone(),
            side: Side::Long,
            qty,
            reduce_only: false,
            leverage,
        })
        .unwrap();
        let tiers = governor_core::market::brackets::parse_binance(
            r#"[{"symbol":"BTCUSDT","brackets":[{"bracket":1,"initialLeverage":150,
            "notionalCap":300000,"notionalFloor":0,"maintMarginRatio":0.004,"cum":0}]}]"#,
        )
        .unwrap();
        (x, btc, tiers)
    }

    #[test]
    fn an_isolated_position_is_liquidated_at_its_price_and_loses_exactly_its_margin() {
        // Margin 1,000 / 5 = 200: LP (200 − 1,000) / (0.00004 − 0.01) = 80,321.29.
        let (mut x, btc, tiers) = btc_long(5);
        let bar = |low: f64| [(btc.clone(), (low, 100_000.0))].into();
        let (none, _) = x.liquidate(&bar(80_321.3), &tiers, MarginMode::Isolated);
        assert!(none.is_empty(), "the low stayed a cent above");
        let (done, untiered) = x.liquidate(&bar(80_321.2), &tiers, MarginMode::Isolated);
        assert!(untiered.is_empty());
        assert_eq!(done.len(), 1);
        assert!((done[0].price - 80_321.29).abs() < 0.005, "{done:?}");
        // Realized (80,321.29 − 100,000) × 0.01 = −196.79, fee 0.01 × 80,321.29 × 0.004 = 3.21:
        // 200 in all, the margin.
        assert!((x.equity() - 800.0).abs() < 1e-6, "{}", x.equity());
        assert!(x.positions().is_empty());
    }

    #[test]
    fn a_cross_position_is_backed_by_the_whole_wallet() {
        // 0.1 BTC at 20x on a wallet of 1,000: LP (1,000 − 10,000) / (0.0004 − 0.1) = 90,361.45;
        // isolated, its 500 of margin would give (500 − 10,000) / −0.0996 = 95,381.53.
        let (mut x, btc, tiers) = btc_long(20);
        let bar: BTreeMap<_, _> = [(btc.clone(), (92_000.0, 100_000.0))].into();
        let (done, _) = x.liquidate(&bar, &tiers, MarginMode::Cross);
        assert!(done.is_empty(), "cross: 92,000 is above 90,361.45");
        let (done, _) = x.clone().liquidate(&bar, &tiers, MarginMode::Isolated);
        assert_eq!(done.len(), 1, "isolated: 92,000 is below 95,381.53");
        let bar: BTreeMap<_, _> = [(btc, (90_000.0, 100_000.0))].into();
        let (done, _) = x.liquidate(&bar, &tiers, MarginMode::Cross);
        assert!((done[0].price - 90_361.45).abs() < 0.005, "{done:?}");
        assert!(
            x.equity().abs() < 1e-6,
            "the wallet is gone: {}",
            x.equity()
        );
    }

    /// The report's one-pass reading is the account's figures taken one by one, on a book of
    /// two positions (one without tiers) away from their entries.
    #[test]
    fn the_reading_is_the_figures_taken_one_by_one() {
        let (mut x, btc, tiers) = btc_long(5);
        let eth = Symbol::parse("ETHUSDT").unwrap();
        let open: BTreeMap<_, _> = [(btc.clone(), 100_000.0), (eth.clone(), 2_000.0)].into();
        x.set_prices(open.clone(), open);
        x.place_order(&OrderRequest {
            client_id: PlanId::parse("e").unwrap(),
            symbol: eth.clone(),
            side: Side::Short,
            qty: 0.2,
            reduce_only: false,
            leverage: 3,
        })
        .unwrap();
        let moved: BTreeMap<_, _> = [(btc, 97_500.0), (eth, 2_050.0)].into();
        x.set_prices(moved.clone(), moved);
        for mode in [MarginMode::Cross, MarginMode::Isolated] {
            let r = x.reading(&tiers, mode);
            assert_eq!(r.equity, x.equity());
            assert_eq!(r.notional, x.notional());
            assert_eq!(r.margin_used, x.margin_used());
            assert_eq!(r.margin_ratio, x.margin_ratio(&tiers));
            assert_eq!(r.liquidations, x.liquidation_prices(&tiers, mode));
            assert_eq!(r.liquidations.len(), 1, "ETHUSDT has no tiers here");
        }
        // Hand-computed: 1,000 − 0.01 × 2,500 − 0.2 × 50 = 965; 975 + 410 notional.
        let r = x.reading(&tiers, MarginMode::Cross);
        assert!((r.equity - 965.0).abs() < 1e-9, "{r:?}");
        assert!((r.notional - 1_385.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn a_position_without_tiers_is_named_and_never_liquidated() {
        let (mut x, btc, _) = btc_long(5);
        let bar: BTreeMap<_, _> = [(btc.clone(), (1.0, 100_000.0))].into();
        let (done, untiered) = x.liquidate(&bar, &BracketTable::new(), MarginMode::Isolated);
        assert!(done.is_empty());
        assert_eq!(untiered, vec![btc]);
    }
}
