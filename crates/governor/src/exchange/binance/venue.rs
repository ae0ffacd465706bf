//! The Binance adapter behind the [`Exchange`] port: the account view from `/fapi/v2/account`
//! and `/fapi/v2/positionRisk`, klines, filters, market orders confirmed until filled.

use super::client::BinanceClient;
use super::error::BinanceError;
use super::wire::OrderAnswer;
use crate::exchange::{
    Exchange, ExchangeError, Fill, OrderError, OrderRequest, OrderState, SymbolFilters,
};
use governor_core::market::Kline;
use governor_core::snapshot::{ExchangePosition, ExchangeState};
use governor_core::types::{Side, Symbol};
use std::sync::Arc;

/// Binance as an exchange.
#[derive(Clone, Debug)]
pub struct BinanceVenue {
    /// The REST client (shared with the market-data side).
    pub client: Arc<BinanceClient>,
}

fn read(e: BinanceError) -> ExchangeError {
    ExchangeError(e.to_string())
}

/// Binance's client order id for a plan id: the plan id itself when Binance accepts it
/// (`[.A-Z:/a-z0-9_-]{1,36}`), else `qg-` and 33 hex digits of its SHA-256.
pub fn client_order_id(plan_id: &str) -> String {
    if plan_id.len() <= 36 {
        return plan_id.to_owned();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(plan_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("qg-{}", &hex[..33])
}

impl Exchange for BinanceVenue {
    fn account(&self) -> Result<ExchangeState, ExchangeError> {
        let account = self.client.account().map_err(read)?;
        let positions = self
            .client
            .positions()
            .map_err(read)?
            .into_iter()
            .map(|p| {
                let x = ExchangePosition {
                    side: p.side,
                    qty: p.qty,
                    entry_price: p.entry_price,
                    mark_price: p.mark_price,
                    leverage: p.leverage,
                };
                (p.symbol, x)
            })
            .collect();
        Ok(ExchangeState {
            equity_usdt: account.equity,
            positions,
            clock: self.client.clock(crate::clock::wall_clock().millis()),
        })
    }

    fn klines(&self, symbol: &Symbol, limit: usize) -> Result<Vec<Kline>, ExchangeError> {
        self.client.klines(symbol, limit).map_err(read)
    }

    fn filters(&self, symbol: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        self.client.filters(symbol).map_err(read)
    }

    fn place_order(&mut self, order: &OrderRequest) -> Result<Fill, OrderError> {
        let filters = self
            .client
            .filters(&order.symbol)
            .map_err(|e| OrderError::Refused(e.to_string()))?;
        let (_, qty) = filters.step_size.floor(order.qty).ok_or_else(|| {
            OrderError::Refused(format!("quantity {} is not positive", order.qty))
        })?;
        // An open trades at the leverage the governor's margin cap assumed.
        if !order.reduce_only {
            let set = self
                .client
                .set_leverage(&order.symbol, order.leverage)
                .map_err(|e| {
                    OrderError::Refused(format!("setting leverage {}: {e}", order.leverage))
                })?;
            if set != order.leverage {
                return Err(OrderError::Refused(format!(
                    "{} leverage is {set}, not the {} the permit was sized for",
                    order.symbol, order.leverage
                )));
            }
        }
        // Opening long and closing short buy; opening short and closing long sell.
        let buy = (order.side == Side::Long) != order.reduce_only;
        let id = client_order_id(order.client_id.as_str());
        let answer = self
            .client
            .market_order(&order.symbol, buy, &qty, order.reduce_only, &id)
            .map_err(|e| {
                if e.outcome_unknown() {
                    OrderError::Unknown(e.to_string())
                } else {
                    OrderError::Rejected {
                        code: e.code().unwrap_or(0),
                        msg: e.to_string(),
                    }
                }
            })?;
        match self.state_of(&order.symbol, &answer) {
            OrderState::Final {
                fill: Some(fill), ..
            } => Ok(fill),
            OrderState::Final { status, fill: None } => Err(OrderError::Rejected {
                code: 0,
                msg: format!("order {id} ended {status} with nothing filled"),
            }),
            OrderState::Working | OrderState::Absent => Err(OrderError::Unknown(format!(
                "order {id} accepted as {}, not final yet",
                answer.status
            ))),
        }
    }

    fn request_window(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.client.recv_window_ms())
    }

    fn order_status(&self, symbol: &Symbol, client_id: &str) -> Result<OrderState, ExchangeError> {
        match self.client.order(symbol, &client_order_id(client_id)) {
            Ok(answer) => Ok(self.state_of(symbol, &answer)),
            Err(BinanceError::NoSuchOrder { .. }) => Ok(OrderState::Absent),
            Err(e) => Err(read(e)),
        }
    }
}

impl BinanceVenue {
    /// What an order answer says, with the fill's commission and realized PnL read from the
    /// order's trades. Trades that cannot be read leave them `None` (the fill stands; a fee is
    /// never guessed), with a log line.
    fn state_of(&self, symbol: &Symbol, answer: &OrderAnswer) -> OrderState {
        if answer.working() {
            return OrderState::Working;
        }
        if answer.executed_qty <= 0.0 {
            return OrderState::Final {
                status: answer.status.clone(),
                fill: None,
            };
        }
        let costs = self
            .client
            .trade_costs(symbol, answer.order_id)
            .map_err(|e| {
                crate::logfmt::line(
                    "BINANCE_TRADES_UNREADABLE",
                    &[
                        ("symbol", symbol.to_string()),
                        ("order_id", answer.order_id.to_string()),
                        ("error", e.to_string()),
                    ],
                );
            })
            .ok();
        OrderState::Final {
            status: answer.status.clone(),
            fill: Some(Fill {
                qty: answer.executed_qty,
                avg_price: answer.avg_price,
                fee: costs.as_ref().map(|c| c.commission),
                realized_pnl: costs.as_ref().map(|c| c.realized_pnl),
            }),
        }
    }
}
