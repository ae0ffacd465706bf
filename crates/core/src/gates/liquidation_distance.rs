//! Liquidation distance: an open whose projected liquidation price (the symbol's position after
//! the fill, by Binance's formula, see [`crate::liquidation`]) is nearer to the mark than the
//! larger of `liquidation.min_distance_pct` and `liquidation.min_distance_sigmas` daily
//! volatilities is refused `liquidation_too_close`. A day's ordinary move must not liquidate a
//! position the governor let open. Closes are never refused here.

use super::common::{refuse, Candidate, Ctx, Refusal};
use super::projection::{Projection, Unprojectable};
use crate::heat::sigma_from_atr;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// The gate (opens only), on the projection of the open.
pub fn check(
    ctx: &Ctx<'_>,
    cand: &Candidate,
    projected: Result<&Projection, &Unprojectable>,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.liquidation;
    let mode = cfg.margin_mode.as_str();
    trace
        .line("liquidation_distance", Outcome::Pass)
        .name("margin_mode", mode);
    let p = match projected {
        Ok(p) => p,
        Err(u) => return Err(refuse(trace, u.refusal())),
    };
    trace.last().num("mark", p.mark);
    let atr_pct = ctx
        .snap
        .market
        .get(&cand.symbol)
        .and_then(|m| m.features.as_ref())
        .map(|f| f.atr_pct);
    let sigma = match (cfg.min_distance_sigmas > 0.0, atr_pct) {
        (false, _) => None,
        (true, Some(atr)) if atr.is_finite() && atr > 0.0 => Some(sigma_from_atr(atr)),
        (true, _) => {
            let why = format!(
                "no ATR for {}: its daily volatility, and so the liquidation distance it needs, \
                 is unknown",
                cand.symbol
            );
            return Err(refuse(
                trace,
                Refusal::new(BlockReason::MarketDataUnavailable, why),
            ));
        }
    };
    let min_distance = sigma.map_or(cfg.min_distance_pct, |s| {
        cfg.min_distance_pct.max(cfg.min_distance_sigmas * s)
    });
    let Some(liq) = p.liquidation else {
        let why = format!(
            "{} notional {:.2} is beyond its last tier: no liquidation price",
            cand.symbol, p.notional
        );
        trace.last().num("min_distance", min_distance);
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::LiquidationTooClose, why),
        ));
    };
    let distance = liq.distance(cand.side, p.mark);
    trace
        .last()
        .opt_num("daily_sigma", sigma)
        .num("min_distance", min_distance)
        .int("tier", i64::from(liq.tier.bracket))
        .num("mmr", liq.tier.maint_margin_ratio)
        .num("cum", liq.tier.cum)
        .opt_num("liquidation_price", liq.price)
        .num("distance", distance)
        .opt_num("distance_sigmas", sigma.map(|s| distance / s));
    if distance < min_distance {
        let why = format!(
            "{} {} would be liquidated at {:.6}, {:.2}% from {:.6}: at least {:.2}% required",
            cand.symbol,
            cand.side.as_str(),
            liq.price.unwrap_or(0.0),
            distance * 100.0,
            p.mark,
            min_distance * 100.0
        );
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::LiquidationTooClose, why),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, MarginMode};
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{account, candidate, market, plan, run, sym, NOW};
    use crate::gates::portfolio::Portfolio;
    use crate::gates::projection::project;
    use crate::market::RegimeFeatures;
    use crate::snapshot::{ExchangePosition, Snapshot};
    use crate::types::Side;

    /// `qty` BTC at 100,000 on `side`, `leverage`x (BTCUSDT tier 1: MMR 0.004, cum 0).
    fn btc(side: Side, qty: f64, leverage: u32) -> Candidate {
        Candidate {
            qty,
            price: 100_000.0,
            notional: qty * 100_000.0,
            ..candidate("BTCUSDT", side, 0.0, leverage)
        }
    }

    /// The BTCUSDT market with an hourly ATR of `atr_pct` (none: no features).
    fn with_atr(snap: &mut Snapshot, atr_pct: Option<f64>) {
        let features = atr_pct.map(|atr_pct| RegimeFeatures {
            bars: 300,
            close: 100_000.0,
            ema20: 100_000.0,
            ema50: 100_000.0,
            atr14: atr_pct * 100_000.0,
            trend: 0.0,
            atr_pct,
            momentum_consistency: 0.5,
        });
        let mut m = (*market(100_000.0, vec![])).clone();
        m.features = features;
        snap.market_mut()
            .insert(sym("BTCUSDT"), std::sync::Arc::new(m));
    }

    fn gate(snap: &Snapshot, cfg: &Config, cand: &Candidate) -> Result<(), BlockReason> {
        let view = Portfolio::build(snap).expect("an account");
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        run(&open, snap, cfg, NOW, |ctx, t| {
            check(ctx, cand, project(ctx, cand, &view).complete(), t)
        })
    }

    fn isolated(min_pct: f64, sigmas: f64) -> Config {
        let mut cfg = Config::default();
        cfg.liquidation.margin_mode = MarginMode::Isolated;
        cfg.liquidation.min_distance_pct = min_pct;
        cfg.liquidation.min_distance_sigmas = sigmas;
        cfg
    }

    #[test]
    fn isolated_5x_is_liquidated_19_68_pct_below_a_long_and_19_52_pct_above_a_short() {
        // Long: margin 1,000 / 5 = 200; LP 80,321.29, 19.679 % below 100,000.
        // Short: LP 119,521.91, 19.522 % above.
        let snap = test_snapshot(Default::default(), Some(account(10_000.0)));
        let too_close = Err(BlockReason::LiquidationTooClose);
        let cases = [
            (Side::Long, 0.1967, Ok(())),
            (Side::Long, 0.1968, too_close),
            (Side::Short, 0.1952, Ok(())),
            (Side::Short, 0.1953, too_close),
        ];
        for (side, min_pct, expected) in cases {
            let got = gate(&snap, &isolated(min_pct, 0.0), &btc(side, 0.01, 5));
            assert_eq!(got, expected, "{side:?} with {min_pct}");
        }
    }

    #[test]
    fn the_daily_volatility_raises_the_distance_required() {
        let mut snap = test_snapshot(Default::default(), Some(account(10_000.0)));
        let cand = btc(Side::Long, 0.01, 5);
        // ATR 1 % an hour: σ = 0.01 × √24 = 4.899 % a day; 3σ = 14.70 % < 19.68 %: passes.
        with_atr(&mut snap, Some(0.01));
        assert_eq!(gate(&snap, &isolated(0.05, 3.0), &cand), Ok(()));
        // ATR 1.4 %: σ = 6.859 %; 3σ = 20.58 % > 19.68 %: too close.
        with_atr(&mut snap, Some(0.014));
        assert_eq!(
            gate(&snap, &isolated(0.05, 3.0), &cand),
            Err(BlockReason::LiquidationTooClose)
        );
        // No ATR: the distance required is unknown, so the open fails closed…
        with_atr(&mut snap, None);
        assert_eq!(
            gate(&snap, &isolated(0.05, 3.0), &cand),
            Err(BlockReason::MarketDataUnavailable)
        );
        // …unless the volatility part is turned off.
        assert_eq!(gate(&snap, &isolated(0.05, 0.0), &cand), Ok(()));
    }

    #[test]
    fn cross_margin_counts_the_wallet_and_the_other_positions() {
        // ETHUSDT long 25 at 102, marked at 100: uPnL −50, notional 2,500, maintenance margin
        // 2,500 × 0.004 = 10 (its test tiers are BTCUSDT's). Equity 950 = wallet 1,000 − 50.
        // Collateral 1,000 − 10 − 50 = 940: LP (940 − 10,000) / (0.0004 − 0.1) = 90,963.86,
        // 9.036 % below 100,000.
        let mut acct = account(950.0);
        acct.positions.insert(
            sym("ETHUSDT"),
            ExchangePosition {
                side: Side::Long,
                qty: 25.0,
                entry_price: 102.0,
                mark_price: 100.0,
                leverage: 5,
            },
        );
        let mut snap = test_snapshot(Default::default(), Some(acct));
        snap.market_mut()
            .insert(sym("ETHUSDT"), market(100.0, vec![]));
        let mut cfg = Config::default();
        cfg.liquidation.min_distance_sigmas = 0.0;
        let cand = btc(Side::Long, 0.1, 10);
        cfg.liquidation.min_distance_pct = 0.0903;
        assert_eq!(gate(&snap, &cfg, &cand), Ok(()));
        cfg.liquidation.min_distance_pct = 0.0904;
        assert_eq!(
            gate(&snap, &cfg, &cand),
            Err(BlockReason::LiquidationTooClose)
        );
        // Without ETHUSDT's tiers its maintenance margin is unknown: fail closed.
        snap.market_mut().remove(&sym("ETHUSDT"));
        assert_eq!(
            gate(&snap, &cfg, &cand),
            Err(BlockReason::MarketDataUnavailable)
        );
    }
}
