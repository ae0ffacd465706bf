//! Binance's documented response shapes, read strictly: a missing or malformed field is an
//! error naming the endpoint, the field and the value — never a default.

use super::error::BinanceError;
use super::filters::{Decimal, SymbolFilters};
use governor_core::market::Kline;
use governor_core::plan::parse_decimal;
use governor_core::time::Timestamp;
use governor_core::types::{Side, Symbol};
use serde_json::{Map, Value};

/// Reads the fields of one JSON object of one endpoint's answer.
pub struct Obj<'a> {
    endpoint: &'a str,
    map: &'a Map<String, Value>,
}

fn bad(endpoint: &str, problem: String) -> BinanceError {
    BinanceError::BadResponse {
        endpoint: endpoint.to_owned(),
        problem,
    }
}

impl<'a> Obj<'a> {
    /// `v` as an object of `endpoint`'s answer.
    pub fn of(endpoint: &'a str, v: &'a Value, what: &str) -> Result<Self, BinanceError> {
        match v {
            Value::Object(map) => Ok(Obj { endpoint, map }),
            other => Err(bad(
                endpoint,
                format!("{what} is not an object: {}", short(other)),
            )),
        }
    }

    fn get(&self, field: &str) -> Result<&'a Value, BinanceError> {
        self.map
            .get(field)
            .ok_or_else(|| bad(self.endpoint, format!("field `{field}` is missing")))
    }

    /// A string field.
    pub fn text(&self, field: &str) -> Result<&'a str, BinanceError> {
        self.get(field)?.as_str().ok_or_else(|| {
            bad(
                self.endpoint,
                format!(
                    "field `{field}` = {} is not a string",
                    short(self.map.get(field).unwrap())
                ),
            )
        })
    }

    /// A decimal field, written as a string (Binance's way) or a number; finite only.
    pub fn decimal(&self, field: &str) -> Result<f64, BinanceError> {
        let v = self.get(field)?;
        let raw = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(bad(
                    self.endpoint,
                    format!("field `{field}` = {} is not a decimal", short(other)),
                ))
            }
        };
        parse_decimal(&raw)
            .map_err(|e| bad(self.endpoint, format!("field `{field}` = {raw:?}: {e}")))
    }

    /// An integer field.
    pub fn int(&self, field: &str) -> Result<i64, BinanceError> {
        let v = self.get(field)?;
        v.as_i64().ok_or_else(|| {
            bad(
                self.endpoint,
                format!("field `{field}` = {} is not an integer", short(v)),
            )
        })
    }
}

/// At most 60 characters of a value for an error message (cut on a character, never inside
/// one: the text comes from outside).
fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// `/fapi/v1/time`: the server's clock (ms).
pub fn server_time(v: &Value) -> Result<i64, BinanceError> {
    Obj::of("/fapi/v1/time", v, "the answer")?.int("serverTime")
}

/// `/fapi/v1/exchangeInfo`: the filters of `symbol`.
pub fn symbol_filters(v: &Value, symbol: &Symbol) -> Result<SymbolFilters, BinanceError> {
    const EP: &str = "/fapi/v1/exchangeInfo";
    let root = Obj::of(EP, v, "the answer")?;
    let symbols = root
        .get("symbols")?
        .as_array()
        .ok_or_else(|| bad(EP, "field `symbols` is not a list".into()))?;
    let entry = symbols
        .iter()
        .find(|s| s.get("symbol").and_then(Value::as_str) == Some(symbol.as_str()))
        .ok_or_else(|| BinanceError::InvalidSymbol {
            endpoint: EP.to_owned(),
        })?;
    let e = Obj::of(EP, entry, "a symbol")?;
    let status = e.text("status")?;
    if status != "TRADING" {
        return Err(BinanceError::Refused(format!(
            "{symbol} is {status}, not TRADING"
        )));
    }
    let filters = e
        .get("filters")?
        .as_array()
        .ok_or_else(|| bad(EP, "field `filters` is not a list".into()))?;
    let find = |kind: &str| {
        filters
            .iter()
            .find(|f| f.get("filterType").and_then(Value::as_str) == Some(kind))
    };
    let need =
        |kind: &str| find(kind).ok_or_else(|| bad(EP, format!("{symbol} has no {kind} filter")));
    let step = |f: &Obj<'_>, field: &str| -> Result<Decimal, BinanceError> {
        Decimal::parse(f.text(field)?).map_err(|e| bad(EP, format!("{field}: {e}")))
    };
    let price = Obj::of(EP, need("PRICE_FILTER")?, "PRICE_FILTER")?;
    let lot = Obj::of(
        EP,
        find("MARKET_LOT_SIZE").map_or_else(|| need("LOT_SIZE"), Ok)?,
        "LOT_SIZE",
    )?;
    let notional = Obj::of(EP, need("MIN_NOTIONAL")?, "MIN_NOTIONAL")?;
    Ok(SymbolFilters {
        tick_size: step(&price, "tickSize")?,
        step_size: step(&lot, "stepSize")?,
        min_qty: lot.decimal("minQty")?,
        max_qty: lot.decimal("maxQty")?,
        min_notional: notional.decimal("notional")?,
    })
}

/// `/fapi/v1/klines`: `[open time, open, high, low, close, volume, close time, …]` rows.
pub fn klines(v: &Value) -> Result<Vec<Kline>, BinanceError> {
    const EP: &str = "/fapi/v1/klines";
    let rows = v
        .as_array()
        .ok_or_else(|| bad(EP, "the answer is not a list".into()))?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let cells = row
                .as_array()
                .filter(|c| c.len() >= 6)
                .ok_or_else(|| bad(EP, format!("row {i} is not a kline: {}", short(row))))?;
            let num = |j: usize, name: &str| -> Result<f64, BinanceError> {
                let raw = cells[j].as_str().ok_or_else(|| {
                    bad(
                        EP,
                        format!(
                            "row {i} {name} = {} is not a decimal string",
                            short(&cells[j])
                        ),
                    )
                })?;
                parse_decimal(raw).map_err(|e| bad(EP, format!("row {i} {name} = {raw:?}: {e}")))
            };
            Ok(Kline {
                open_time: Timestamp(
                    cells[0]
                        .as_i64()
                        .ok_or_else(|| bad(EP, format!("row {i} open time is not an integer")))?,
                ),
                open: num(1, "open")?,
                high: num(2, "high")?,
                low: num(3, "low")?,
                close: num(4, "close")?,
                volume: num(5, "volume")?,
            })
        })
        .collect()
}

/// The account totals of `/fapi/v2/account`.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    /// Wallet balance + unrealized PnL (`totalMarginBalance`): the equity the caps use.
    pub equity: f64,
    /// Free for new margin (`availableBalance`).
    pub available: f64,
    /// Margin in use (`totalInitialMargin`).
    pub initial_margin: f64,
}

/// `/fapi/v2/account`.
pub fn account(v: &Value) -> Result<Account, BinanceError> {
    let a = Obj::of("/fapi/v2/account", v, "the answer")?;
    Ok(Account {
        equity: a.decimal("totalMarginBalance")?,
        available: a.decimal("availableBalance")?,
        initial_margin: a.decimal("totalInitialMargin")?,
    })
}

/// One open position of `/fapi/v2/positionRisk`.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionRisk {
    /// The symbol.
    pub symbol: Symbol,
    /// Long or short (from the sign of `positionAmt`).
    pub side: Side,
    /// |positionAmt|.
    pub qty: f64,
    /// Entry price.
    pub entry_price: f64,
    /// Mark price.
    pub mark_price: f64,
    /// Leverage.
    pub leverage: u32,
}

/// `/fapi/v2/positionRisk`: the open positions (rows with `positionAmt` 0 are left out).
pub fn positions(v: &Value) -> Result<Vec<PositionRisk>, BinanceError> {
    const EP: &str = "/fapi/v2/positionRisk";
    let rows = v
        .as_array()
        .ok_or_else(|| bad(EP, "the answer is not a list".into()))?;
    let mut out = Vec::new();
    for row in rows {
        let p = Obj::of(EP, row, "a position")?;
        let amt = p.decimal("positionAmt")?;
        if amt == 0.0 {
            continue;
        }
        let raw_symbol = p.text("symbol")?;
        let symbol = Symbol::parse(raw_symbol)
            .map_err(|e| bad(EP, format!("field `symbol` = {raw_symbol:?}: {e}")))?;
        let leverage = p.decimal("leverage")?;
        out.push(PositionRisk {
            symbol,
            side: if amt > 0.0 { Side::Long } else { Side::Short },
            qty: amt.abs(),
            entry_price: p.decimal("entryPrice")?,
            mark_price: p.decimal("markPrice")?,
            leverage: leverage as u32,
        });
    }
    Ok(out)
}

/// An order as `/fapi/v1/order` answers (placing it or asking for it).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderAnswer {
    /// NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, …
    pub status: String,
    /// Filled so far.
    pub executed_qty: f64,
    /// Average fill price (0 while nothing filled).
    pub avg_price: f64,
    /// Our client order id.
    pub client_order_id: String,
    /// Binance's order id (its trades are asked for by it).
    pub order_id: i64,
}

impl OrderAnswer {
    /// Whether the order can still fill (`NEW`, `PARTIALLY_FILLED`); any other status is final.
    pub fn working(&self) -> bool {
        matches!(self.status.as_str(), "NEW" | "PARTIALLY_FILLED")
    }
}

/// `/fapi/v1/order`.
pub fn order(v: &Value) -> Result<OrderAnswer, BinanceError> {
    let o = Obj::of("/fapi/v1/order", v, "the answer")?;
    Ok(OrderAnswer {
        status: o.text("status")?.to_owned(),
        executed_qty: o.decimal("executedQty")?,
        avg_price: o.decimal("avgPrice")?,
        client_order_id: o.text("clientOrderId")?.to_owned(),
        order_id: o.int("orderId")?,
    })
}

/// What an order's trades cost and realized, summed (`/fapi/v1/userTrades`).
#[derive(Clone, Debug, PartialEq)]
pub struct TradeCosts {
    /// Commission paid, in USDT (Binance reports it per trade, as a magnitude or negative).
    pub commission: f64,
    /// Realized PnL before fees.
    pub realized_pnl: f64,
    /// Quantity the trades add up to.
    pub qty: f64,
}

/// `/fapi/v1/userTrades` for one order: the sum of its trades. A commission in another asset
/// than USDT is an error (its USDT value is not known here).
pub fn trade_costs(v: &Value) -> Result<TradeCosts, BinanceError> {
    const EP: &str = "/fapi/v1/userTrades";
    let rows = v
        .as_array()
        .ok_or_else(|| bad(EP, "the answer is not a list".into()))?;
    let mut sum = TradeCosts {
        commission: 0.0,
        realized_pnl: 0.0,
        qty: 0.0,
    };
    for row in rows {
        let t = Obj::of(EP, row, "a trade")?;
        let asset = t.text("commissionAsset")?;
        if asset != "USDT" {
            return Err(bad(
                EP,
                format!("field `commissionAsset` = {asset:?}: only USDT commissions are read"),
            ));
        }
        sum.commission += t.decimal("commission")?.abs();
        sum.realized_pnl += t.decimal("realizedPnl")?;
        sum.qty += t.decimal("qty")?;
    }
    Ok(sum)
}

/// What an API key may do (`/sapi/v1/account/apiRestrictions`, on the spot API host): the
/// governor refuses to trade with a key that can withdraw.
pub fn withdrawals_enabled(v: &Value) -> Result<bool, BinanceError> {
    const EP: &str = "/sapi/v1/account/apiRestrictions";
    let o = Obj::of(EP, v, "the answer")?;
    let raw = o.get("enableWithdrawals")?;
    raw.as_bool().ok_or_else(|| {
        bad(
            EP,
            format!(
                "field `enableWithdrawals` = {} is not a boolean",
                short(raw)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_field_full_of_multibyte_characters_is_an_error_not_a_panic() {
        // 70 three-byte characters: the 60-character cut falls inside no character.
        let junk = "€".repeat(70);
        let v = serde_json::json!({
            "totalMarginBalance": {"nested": junk},
            "availableBalance": "1",
            "totalInitialMargin": "0"
        });
        let e = account(&v).unwrap_err().to_string();
        assert!(
            e.contains("totalMarginBalance") && e.ends_with("… is not a decimal"),
            "{e}"
        );
        let list = serde_json::Value::Array(vec![serde_json::json!(["€".repeat(80)])]);
        assert!(klines(&list).unwrap_err().to_string().contains("row 0"));
    }
}
