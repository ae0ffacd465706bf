//! Exact quantities and prices: a symbol's exchange filters (`tickSize`, `stepSize`, `minQty`,
//! `minNotional`) and rounding to them in decimal steps, so that `0.1 + 0.2` never reaches the
//! exchange as `0.30000000000000004`. An order that rounds below a minimum is refused here,
//! with the numbers, before any request is sent.

/// A symbol's trading filters.
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolFilters {
    /// Price increment (PRICE_FILTER `tickSize`).
    pub tick_size: Decimal,
    /// Quantity increment for market orders (MARKET_LOT_SIZE, else LOT_SIZE `stepSize`).
    pub step_size: Decimal,
    /// Smallest quantity.
    pub min_qty: f64,
    /// Largest quantity of a market order.
    pub max_qty: f64,
    /// Smallest notional (MIN_NOTIONAL `notional`), unless reduce-only.
    pub min_notional: f64,
}

/// A step as Binance writes it (`"0.001"`): its value and its decimals.
#[derive(Clone, Debug, PartialEq)]
pub struct Decimal {
    /// The step's digits without the point (`1` for 0.001).
    pub units: u64,
    /// Digits after the point (`3` for 0.001).
    pub scale: u32,
}

impl Decimal {
    /// Parses a plain positive decimal (`"0.10"`, `"1"`); trailing zeros keep their scale.
    pub fn parse(raw: &str) -> Result<Decimal, String> {
        let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(format!("{raw:?} is not a plain decimal"));
        }
        let digits = format!("{int}{frac}");
        let units: u64 = digits.parse().map_err(|_| format!("{raw:?} is too long"))?;
        if units == 0 {
            return Err(format!("{raw:?} is not above 0"));
        }
        Ok(Decimal {
            units,
            scale: frac.len() as u32,
        })
    }

    /// The step's value.
    pub fn value(&self) -> f64 {
        self.units as f64 / 10f64.powi(self.scale as i32)
    }

    /// `x` rounded down to a whole number of steps, written exactly (`"0.012"`); `None` for a
    /// value that is not finite or not positive.
    pub fn floor(&self, x: f64) -> Option<(u64, String)> {
        if !(x.is_finite() && x > 0.0) {
            return None;
        }
        // A hair of tolerance so that 0.3 / 0.1 counts as 3 steps, not 2.999…
        let steps = (x / self.value() * (1.0 + 1e-12)).floor() as u64;
        let units = steps.checked_mul(self.units)?;
        Some((steps, self.render(units)))
    }

    /// `units × 10^-scale` as text.
    pub fn render(&self, units: u64) -> String {
        if self.scale == 0 {
            return units.to_string();
        }
        let text = format!("{units:0>width$}", width = self.scale as usize + 1);
        let (int, frac) = text.split_at(text.len() - self.scale as usize);
        format!("{int}.{frac}")
    }
}

/// A quantity ready to send: exact text and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderQty {
    /// What is sent (`"0.012"`).
    pub text: String,
    /// Its value.
    pub value: f64,
}

impl SymbolFilters {
    /// Rounds `qty` down to the step and checks the minimums at `price` (the notional minimum
    /// does not apply to reduce-only orders, as on Binance).
    pub fn order_qty(&self, qty: f64, price: f64, reduce_only: bool) -> Result<OrderQty, String> {
        let Some((_, text)) = self.step_size.floor(qty) else {
            return Err(format!("quantity {qty} is not a positive number"));
        };
        let value: f64 = text.parse().expect("rendered digits parse");
        if !(value >= self.min_qty) || value == 0.0 {
            return Err(format!(
                "quantity {qty} rounds to {text} at step {}, below minQty {}",
                self.step_size.value(),
                self.min_qty
            ));
        }
        if value > self.max_qty {
            return Err(format!("quantity {text} is above maxQty {}", self.max_qty));
        }
        let notional = value * price;
        if !reduce_only && !(notional >= self.min_notional) {
            return Err(format!(
                "notional {text} × {price} = {notional:.4} USDT is below minNotional {}",
                self.min_notional
            ));
        }
        Ok(OrderQty { text, value })
    }

    /// `price` rounded down to the tick, as text.
    pub fn price_text(&self, price: f64) -> Option<String> {
        self.tick_size.floor(price).map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc() -> SymbolFilters {
        SymbolFilters {
            tick_size: Decimal::parse("0.10").unwrap(),
            step_size: Decimal::parse("0.001").unwrap(),
            min_qty: 0.001,
            max_qty: 120.0,
            min_notional: 100.0,
        }
    }

    #[test]
    fn quantities_round_down_to_the_step_exactly() {
        let f = btc();
        assert_eq!(f.order_qty(0.0129, 50_000.0, false).unwrap().text, "0.012");
        assert_eq!(
            f.order_qty(0.1 + 0.2, 50_000.0, false).unwrap().text,
            "0.300"
        );
        assert_eq!(f.order_qty(2.0, 50_000.0, false).unwrap().text, "2.000");
        assert_eq!(f.price_text(50_012.37).unwrap(), "50012.30");
        assert_eq!(Decimal::parse("1").unwrap().render(7), "7");
        assert_eq!(Decimal::parse("0.01").unwrap().render(5), "0.05");
    }

    #[test]
    fn below_the_minimums_is_refused_with_the_numbers() {
        let f = btc();
        let small = f.order_qty(0.0009, 50_000.0, false).unwrap_err();
        assert!(small.contains("below minQty 0.001"), "{small}");
        // 0.001 × 50,000 = 50 USDT < 100.
        let cheap = f.order_qty(0.001, 50_000.0, false).unwrap_err();
        assert!(cheap.contains("below minNotional 100"), "{cheap}");
        assert!(
            f.order_qty(0.001, 50_000.0, true).is_ok(),
            "reduce-only is exempt"
        );
        assert!(f.order_qty(f64::NAN, 1.0, false).is_err());
        assert!(f
            .order_qty(500.0, 1.0, false)
            .unwrap_err()
            .contains("maxQty"));
        assert!(Decimal::parse("0").is_err() && Decimal::parse("1e-3").is_err());
    }
}
