//! The Binance adapter behind the [`Exchange`] port: the account view from `/fapi/v2/account`
//! and `/fapi/v2/positionRisk`, klines, filters, market orders confirmed until filled.

use super::client::BinanceClient;
use super::error::BinanceError;
use crate::exchange::{Exchange, ExchangeError, Fill, OrderError, OrderRequest, SymbolFilters};
use governor_core::market::Kline;
use governor_core::snapshot::{ExchangePosition, ExchangeState};
use governor_core::types::{Side, Symbol};
use std::sync::Arc;
use std::time::Duration;

/// How often and how long an accepted order is asked for until it is filled.
const CONFIRM_POLLS: u32 = 10;
const CONFIRM_EVERY: Duration = Duration::from_millis(200);

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
            .map_err(|e| match e {
                BinanceError::Transport { .. } => OrderError::Unconfirmed(e.to_string()),
                other => OrderError::Rejected {
                    code: other.code().unwrap_or(0),
                    msg: other.to_string(),
                },
            })?;
        let mut latest = answer;
        for _ in 0..CONFIRM_POLLS {
            match latest.status.as_str() {
                "FILLED" => break,
                "CANCELED" | "EXPIRED" | "REJECTED" if latest.executed_qty == 0.0 => {
                    return Err(OrderError::Rejected {
                        code: 0,
                        msg: format!("order {id} ended {}", latest.status),
                    })
                }
                "CANCELED" | "EXPIRED" => break, // partly filled, then ended: report what filled
                _ => {
                    std::thread::sleep(CONFIRM_EVERY);
                    latest = self
                        .client
                        .order(&order.symbol, &id)
                        .map_err(|e| OrderError::Unconfirmed(e.to_string()))?;
                }
            }
        }
        if latest.executed_qty == 0.0
            || !matches!(latest.status.as_str(), "FILLED" | "CANCELED" | "EXPIRED")
        {
            return Err(OrderError::Unconfirmed(format!(
                "order {id} is {} with {} filled after {} checks",
                latest.status, latest.executed_qty, CONFIRM_POLLS
            )));
        }
        Ok(Fill {
            qty: latest.executed_qty,
            avg_price: latest.avg_price,
            fee: 0.0,
            realized_pnl: 0.0,
        })
    }

    fn order_status(
        &self,
        symbol: &Symbol,
        client_id: &str,
    ) -> Result<Option<Fill>, ExchangeError> {
        let o = self
            .client
            .order(symbol, &client_order_id(client_id))
            .map_err(read)?;
        Ok((o.executed_qty > 0.0).then_some(Fill {
            qty: o.executed_qty,
            avg_price: o.avg_price,
            fee: 0.0,
            realized_pnl: 0.0,
        }))
    }
}
