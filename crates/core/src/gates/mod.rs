//! The gates and the one table that orders them.
//!
//! Each gate is a small function in a file of its own: it reads the plan, the snapshot and the
//! config, writes its one trace line, and either lets the plan through or returns a typed
//! [`Refusal`]. [`Gate`] names every gate; [`Gate::spec`] gives its trace name, the `[gates]`
//! key of its mode, its config section and the reason codes it may refuse with;
//! [`COMMON_PATH`], [`OPEN_PATH`] and [`CLOSE_PATH`] are the order `decide` runs them in.
//! The tests at the bottom fail when a gate is in no path, when a mode key is not in
//! `[gates]`, when a reason code belongs to no gate, and (in every debug build) when a gate
//! refuses with a reason its row does not name.
//!
//! # Adding a gate (five files)
//!
//! 1. `gates/<name>.rs`: the check, `fn(&Ctx, …, &mut Trace) -> Result<_, Refusal>`, with
//!    its own table of hand-computed boundary cases (`#[cfg(test)]`). It starts its line with
//!    `trace.line(name, Outcome::Pass)`, adds what it learns with `trace.last()`, and refuses
//!    with `refuse(trace, refusal)`, which marks that line blocked.
//! 2. Here: `pub mod <name>;`, a variant in `gates!`, its row in [`Gate::spec`], its place in
//!    [`OPEN_PATH`] or [`CLOSE_PATH`], and its arm in [`Pipeline::check`].
//! 3. `reason.rs`: its reason code(s), in `BlockReason` and `BlockReason::ALL`.
//! 4. `config/sections.rs`: its settings (a field of an existing section, or a new section in
//!    `Config`), their defaults and validation, and its mode in `GatesConfig` (the mode's
//!    environment name, `GOV_GATE_<GATE>_MODE`, follows from the field).
//! 5. `docs/wire-contract.md`: the reason code(s) and the environment names (the docs test
//!    fails until they are documented).
//!
//! A setting of the gate's own that the deployment sets by environment (not only in TOML) is
//! a sixth file: its row in `config/env.rs`.
//!
//! A gate whose condition the store must re-check at commit (a count, a slot) also adds its
//! `Guard` in `decide.rs`; a gate that only reads the plan and the snapshot does not.

pub mod account_margin;
pub mod cadence;
pub mod capital;
pub mod close;
pub mod common;
pub mod correlation;
pub mod drawdown;
pub mod drift;
pub mod exchange_clock;
pub mod funds;
pub mod kill_score;
pub mod leverage;
pub mod leverage_bracket;
pub mod liquidation_distance;
pub mod loss_streak;
pub mod mode;
pub mod policy;
pub mod portfolio;
pub mod price_collar;
pub mod projection;
pub mod sizing;
pub mod slots;
pub mod state_records;
pub mod throttle;
pub mod trading_state;

pub use common::{fits, Candidate, Ctx, Refusal};

use crate::config::{GateMode, GatesConfig};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};
use crate::types::Side;
use close::ClosingPosition;
use mode::Gatekeeper;
use portfolio::{HoldingKind, Portfolio, SharedView};
use projection::Projection;
use slots::{RotationChoice, SlotBudget, SlotUse};
use std::borrow::Cow;

/// Declares [`Gate`] and [`Gate::ALL`] from one list, so that no gate can be missing from ALL.
macro_rules! gates {
    ($($(#[$doc:meta])* $gate:ident,)*) => {
        /// Every gate a plan can meet, named for what it guards.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Gate {
            $($(#[$doc])* $gate,)*
        }

        impl Gate {
            /// Every gate, in declaration order.
            pub const ALL: &'static [Gate] = &[$(Gate::$gate,)*];
        }
    };
}

gates! {
    /// The operator's kill switch and REDUCING state (every plan).
    TradingState,
    /// Unreadable state records: fail closed for opens.
    StateRecords,
    /// The policy universe.
    Policy,
    /// The exchange's positions and equity must be known.
    ExchangeState,
    /// The local clock must agree with the exchange's.
    ExchangeClock,
    /// Intent-time drift of position count and exposure.
    Drift,
    /// The producer's kill score: scales or blocks the open.
    KillScore,
    /// Drawdown from the window's equity peak.
    DrawdownHalt,
    /// Losing closes in a row.
    LossStreak,
    /// Per-symbol cooldown.
    Cooldown,
    /// Opens per hour and per five minutes.
    ExecutionRate,
    /// Open permits per second.
    SubmitThrottle,
    /// Regime → desired slots.
    Regime,
    /// The open's size and price (`market_data`).
    Sizing,
    /// Leverage against the account's cap.
    LeverageCap,
    /// Leverage against the exchange's tier for the post-fill notional.
    LeverageBracket,
    /// Limit price against the mark.
    PriceCollar,
    /// Slot occupancy and the opposite-side rule.
    Slots,
    /// With every slot full: rotate out the weakest position, or refuse.
    Rotation,
    /// Optional long/short slot maxima.
    SideSlots,
    /// Correlation with the held positions.
    Correlation,
    /// Initial margin against equity.
    Margin,
    /// The projected liquidation price against the mark.
    LiquidationDistance,
    /// The account's maintenance margin against its margin balance.
    AccountMarginRatio,
    /// Position count and notional caps.
    FundCaps,
    /// The account's capital allocation.
    Capital,
    /// A close needs a position.
    PositionExists,
    /// A close's own kill-score rule.
    CloseKillScore,
    /// One exit lock per symbol.
    ExitLock,
}

/// How a gate's mode is set.
#[derive(Copy, Clone, Debug)]
pub enum ModeRule {
    /// Always enforced: the gate keeps the governor fail-closed. `Some(key)` is its `[gates]`
    /// key, which accepts `enforce` only.
    Enforced(Option<&'static str>),
    /// `enforce`, `shadow` or `off` from its `[gates]` key; the stage runner applies it.
    Configurable(&'static str, fn(&GatesConfig) -> GateMode),
    /// Read from its `[gates]` key by the gate itself (its shadow and off behaviour has more
    /// than one line: the regime and the slot table share `gates.slots`).
    OwnRule(&'static str, fn(&GatesConfig) -> GateMode),
}

impl ModeRule {
    /// The `[gates]` key, if the gate has one.
    pub fn key(self) -> Option<&'static str> {
        match self {
            ModeRule::Enforced(key) => key,
            ModeRule::Configurable(key, _) | ModeRule::OwnRule(key, _) => Some(key),
        }
    }
}

/// A gate's row in the table.
#[derive(Copy, Clone, Debug)]
pub struct GateSpec {
    /// The name of its trace line.
    pub trace: &'static str,
    /// How its mode is set.
    pub mode: ModeRule,
    /// The config section holding its settings, if any.
    pub section: Option<&'static str>,
    /// Every reason code it may refuse with.
    pub reasons: &'static [BlockReason],
}

impl Gate {
    /// The gate's row.
    pub fn spec(self) -> GateSpec {
        use BlockReason as R;
        use ModeRule::{Configurable, Enforced, OwnRule};
        let row = |trace, mode, section, reasons| GateSpec {
            trace,
            mode,
            section,
            reasons,
        };
        match self {
            Gate::TradingState => row(
                "trading_state",
                Enforced(Some("trading_state")),
                None,
                &[
                    R::KillSwitch,
                    R::TradingStateReducing,
                    R::DrawdownHalt,
                    R::AccountMarginRatio,
                ],
            ),
            Gate::StateRecords => row(
                "state_records",
                Enforced(None),
                None,
                &[R::StateRecordCorrupt],
            ),
            Gate::Policy => row(
                "policy",
                Configurable("policy", |g| g.policy),
                None,
                &[R::ActiveSlotsNoPolicy, R::ActiveSlotsNotInUniverse],
            ),
            Gate::ExchangeState => row(
                "exchange_state",
                Enforced(Some("exchange_state")),
                None,
                &[R::ExchangeStateUnavailable],
            ),
            Gate::ExchangeClock => row(
                "exchange_clock",
                Enforced(None),
                Some("binance"),
                &[R::ExchangeClockOffset],
            ),
            Gate::Drift => row(
                "drift",
                Configurable("drift", |g| g.drift),
                Some("drift"),
                &[R::StateDriftPositionCount, R::StateDriftExposure],
            ),
            Gate::KillScore => row(
                "kill_score",
                Configurable("kill_score", |g| g.kill_score),
                Some("kill_score"),
                &[R::KillScoreCritical],
            ),
            Gate::DrawdownHalt => row(
                "drawdown_halt",
                Configurable("drawdown_halt", |g| g.drawdown_halt),
                Some("drawdown"),
                &[R::DrawdownHalt],
            ),
            Gate::LossStreak => row(
                "loss_streak",
                Configurable("loss_streak", |g| g.loss_streak),
                Some("loss_streak"),
                &[R::SymbolLossStreak, R::LossStreakGlobal],
            ),
            Gate::Cooldown => row(
                "cooldown",
                Configurable("cooldown", |g| g.cooldown),
                Some("cadence"),
                &[R::SymbolCooldown],
            ),
            Gate::ExecutionRate => row(
                "execution_rate",
                Configurable("rate_limit", |g| g.rate_limit),
                Some("cadence"),
                &[R::RateLimitHour, R::RateLimit5min],
            ),
            Gate::SubmitThrottle => row(
                "submit_throttle",
                Configurable("submit_throttle", |g| g.submit_throttle),
                Some("throttle"),
                &[R::SubmitThrottle],
            ),
            Gate::Regime => row(
                "regime",
                OwnRule("slots", |g| g.slots),
                Some("regime"),
                &[R::MarketDataUnavailable],
            ),
            Gate::Sizing => row(
                "sizing",
                Enforced(Some("market_data")),
                Some("funds"),
                &[R::MarketDataUnavailable],
            ),
            Gate::LeverageCap => row(
                "leverage_cap",
                Configurable("leverage_cap", |g| g.leverage_cap),
                Some("leverage"),
                &[R::LeverageAboveCap],
            ),
            Gate::LeverageBracket => row(
                "leverage_bracket",
                Configurable("leverage_bracket", |g| g.leverage_bracket),
                None,
                &[R::LeverageAboveBracket],
            ),
            Gate::PriceCollar => row(
                "price_collar",
                Configurable("price_collar", |g| g.price_collar),
                Some("price_collar"),
                &[R::PriceOutOfBand, R::MarketDataUnavailable],
            ),
            Gate::Slots => row(
                "slots",
                OwnRule("slots", |g| g.slots),
                Some("slots"),
                &[
                    R::OppositePositionOpen,
                    R::SlotsFull,
                    R::ExitLockBusyDoubleClosePrevention,
                ],
            ),
            Gate::Rotation => row(
                "rotation",
                OwnRule("slots", |g| g.slots),
                Some("slots"),
                &[R::SlotsFull, R::ActiveSlotsWaitingRotationClose],
            ),
            Gate::SideSlots => row(
                "side_slots",
                Configurable("side_slots", |g| g.side_slots),
                Some("side_slots"),
                &[R::SideSlotsFull],
            ),
            Gate::Correlation => row(
                "correlation",
                Configurable("correlation", |g| g.correlation),
                Some("correlation"),
                &[R::CorrelationCap, R::MarketDataUnavailable],
            ),
            Gate::Margin => row(
                "margin",
                Configurable("margin", |g| g.margin),
                Some("funds"),
                &[R::MarginCap],
            ),
            Gate::LiquidationDistance => row(
                "liquidation_distance",
                Configurable("liquidation_distance", |g| g.liquidation_distance),
                Some("liquidation"),
                &[R::LiquidationTooClose, R::MarketDataUnavailable],
            ),
            Gate::AccountMarginRatio => row(
                "account_margin_ratio",
                Configurable("account_margin_ratio", |g| g.account_margin_ratio),
                Some("liquidation"),
                &[R::AccountMarginRatio, R::MarketDataUnavailable],
            ),
            Gate::FundCaps => row(
                "fund_caps",
                Configurable("fund_caps", |g| g.fund_caps),
                Some("funds"),
                &[
                    R::MaxPositions,
                    R::NotionalPerTradeExceeded,
                    R::TotalNotionalExceeded,
                ],
            ),
            Gate::Capital => row(
                "capital",
                Configurable("capital", |g| g.capital),
                Some("capital"),
                &[R::CapitalAllocationExceeded],
            ),
            Gate::PositionExists => row(
                "position_exists",
                Enforced(Some("close")),
                None,
                &[R::NoPosition, R::ExchangeStateUnavailable],
            ),
            Gate::CloseKillScore => row(
                "close_kill_score",
                Enforced(Some("close")),
                Some("kill_score"),
                &[R::KillScoreCritical],
            ),
            Gate::ExitLock => row(
                "exit_lock",
                Enforced(Some("close")),
                None,
                &[R::ExitLockBusyDoubleClosePrevention],
            ),
        }
    }
}

/// Gates every executed plan meets first, opens and closes alike.
pub const COMMON_PATH: &[Gate] = &[Gate::TradingState];

/// The open path, in priority order: integrity first, then the policy gates that need
/// nothing but the plan and the book, then sizing, then the slot table, then money.
pub const OPEN_PATH: &[Gate] = &[
    Gate::StateRecords,
    Gate::Policy,
    Gate::ExchangeState,
    Gate::ExchangeClock,
    Gate::Drift,
    Gate::KillScore,
    Gate::DrawdownHalt,
    Gate::LossStreak,
    Gate::Cooldown,
    Gate::ExecutionRate,
    Gate::SubmitThrottle,
    Gate::Regime,
    Gate::Sizing,
    Gate::LeverageCap,
    Gate::LeverageBracket,
    Gate::PriceCollar,
    Gate::Slots,
    Gate::Rotation,
    Gate::SideSlots,
    Gate::Correlation,
    Gate::Margin,
    Gate::LiquidationDistance,
    Gate::AccountMarginRatio,
    Gate::FundCaps,
    Gate::Capital,
];

/// The close path: closes skip fund caps, slots, correlation, margin, cooldown and rate
/// limits — reducing risk is never harder than taking it.
pub const CLOSE_PATH: &[Gate] = &[Gate::PositionExists, Gate::CloseKillScore, Gate::ExitLock];

/// What the stages of one decision learn and hand on to the stages after them.
pub struct Pipeline<'a, 'd> {
    /// The open's direction (opens only).
    pub side: Side,
    /// Rotation phase 2: the plan's own held slot is not counted against it.
    pub phase2: bool,
    /// The snapshot's portfolio view, shared with every decision on the same snapshot and
    /// built when a stage first needs it.
    shared: &'a SharedView<'d>,
    /// The exchange's view of the book (after `exchange_state`): the shared view, or this
    /// decision's own copy of it when a stage leaves something out (phase 2's own held slot,
    /// a rotation's closing position).
    pub view: Option<Cow<'a, Portfolio<'a>>>,
    /// The kill score's quantity scale (its floor until `kill_score` passes).
    pub qty_scale: f64,
    /// The regime's slot budget (after `regime`, when slot accounting runs).
    pub budget: Option<SlotBudget>,
    /// The sized open (after `sizing`).
    pub candidate: Option<Candidate>,
    /// How the open uses the slot table (after `slots`).
    pub slot_use: Option<SlotUse>,
    /// The rotation chosen when every slot is full.
    pub rotation: Option<RotationChoice>,
    /// The position a close acts on (after `position_exists`).
    pub closing: Option<ClosingPosition>,
    /// Occupied slots when the view was read, for the decision record.
    pub occupied: Option<u32>,
    /// The account after the open fills (computed by the first gate that reads it).
    pub projection: Option<Projection>,
    /// Runs the configurable gates under their modes; keeps their shadow refusals.
    pub gates: Gatekeeper,
}

impl<'a, 'd> Pipeline<'a, 'd> {
    /// A pipeline for a plan on `side` (closes: the position's side does not matter here),
    /// reading the portfolio from `shared`, the view of `ctx`'s snapshot.
    pub fn new(ctx: &Ctx<'a>, shared: &'a SharedView<'d>, side: Side, phase2: bool) -> Self {
        Pipeline {
            side,
            phase2,
            shared,
            view: None,
            qty_scale: ctx.cfg.kill_score.min_qty_scale,
            budget: None,
            candidate: None,
            slot_use: None,
            rotation: None,
            closing: None,
            occupied: None,
            projection: None,
            gates: Gatekeeper::default(),
        }
    }

    /// Runs `path` in order; the first refusal of an enforced gate ends it.
    pub fn run(&mut self, ctx: &Ctx<'a>, path: &[Gate], trace: &mut Trace) -> Result<(), Refusal> {
        path.iter()
            .try_for_each(|gate| self.stage(*gate, ctx, trace))
    }

    /// One gate under its mode.
    fn stage(&mut self, gate: Gate, ctx: &Ctx<'a>, trace: &mut Trace) -> Result<(), Refusal> {
        if self.skips(gate) {
            return Ok(());
        }
        let spec = gate.spec();
        let result = match spec.mode {
            ModeRule::Enforced(_) | ModeRule::OwnRule(..) => self.check(gate, ctx, trace),
            ModeRule::Configurable(_, mode) => {
                let mut keeper = std::mem::take(&mut self.gates);
                let result = keeper.run(
                    mode(&ctx.cfg.gates),
                    spec.trace,
                    trace,
                    |t| self.check(gate, ctx, t),
                    || (),
                );
                self.gates = keeper;
                result
            }
        };
        if let Err(refusal) = &result {
            debug_assert!(
                spec.reasons.contains(&refusal.reason),
                "gate {gate:?} refused with {:?}, which its row does not name",
                refusal.reason
            );
        }
        result
    }

    /// Stages that do not apply to this open write no line: a rotation is only looked for
    /// when every slot is full, and expanding a held symbol takes no new side slot.
    fn skips(&self, gate: Gate) -> bool {
        match gate {
            Gate::Rotation => self.slot_use != Some(SlotUse::Full),
            Gate::SideSlots => self.slot_use == Some(SlotUse::Expand),
            _ => false,
        }
    }

    fn view(&self) -> &Portfolio<'a> {
        self.view
            .as_ref()
            .expect("exchange_state runs before the gates that read the view")
    }

    fn candidate(&self) -> &Candidate {
        self.candidate
            .as_ref()
            .expect("sizing runs before the gates that read the open")
    }

    /// The open and the account after it, projected once per decision.
    fn projected(&mut self, ctx: &Ctx<'a>) -> (&Candidate, &Projection) {
        let cand = self
            .candidate
            .as_ref()
            .expect("sizing runs before the gates that read the open");
        let view = self
            .view
            .as_ref()
            .expect("exchange_state runs before the gates that read the view");
        let projected = self
            .projection
            .get_or_insert_with(|| projection::project(ctx, cand, view));
        (cand, projected)
    }

    /// The gate's check itself, with what the earlier stages learned.
    fn check(&mut self, gate: Gate, ctx: &Ctx<'a>, trace: &mut Trace) -> Result<(), Refusal> {
        match gate {
            Gate::TradingState => trading_state::check(ctx, trace),
            Gate::StateRecords => state_records::check(ctx, trace),
            Gate::Policy => policy::check(ctx, trace),
            Gate::ExchangeState => {
                let shared = portfolio::require_exchange(self.shared.get(ctx.snap), trace)?;
                let mut view = Cow::Borrowed(shared);
                if self.phase2 {
                    let me = &ctx.plan.plan_id;
                    view = Cow::Owned(
                        view.without(|h| matches!(&h.kind, HoldingKind::Held(id) if *id == me)),
                    );
                }
                self.occupied = Some(view.occupied_slots() as u32);
                self.view = Some(view);
                Ok(())
            }
            Gate::ExchangeClock => exchange_clock::check(ctx, trace),
            Gate::Drift => drift::check(ctx, self.view(), trace),
            Gate::KillScore => {
                self.qty_scale = kill_score::check(ctx, trace)?.qty_scale;
                Ok(())
            }
            Gate::DrawdownHalt => drawdown::check(ctx, self.view().equity, trace),
            Gate::LossStreak => loss_streak::check(ctx, trace),
            Gate::Cooldown => cadence::cooldown(ctx, trace),
            Gate::ExecutionRate => cadence::execution_rate(ctx, trace),
            Gate::SubmitThrottle => throttle::check(ctx, trace),
            Gate::Regime => self.regime(ctx, trace),
            Gate::Sizing => {
                self.candidate = Some(sizing::size(ctx, self.side, self.qty_scale, trace)?);
                Ok(())
            }
            Gate::LeverageCap => leverage::check(ctx, self.candidate(), trace),
            Gate::LeverageBracket => {
                let (cand, projected) = self.projected(ctx);
                leverage_bracket::check(ctx, cand, projected, trace)
            }
            Gate::PriceCollar => price_collar::check(ctx, trace),
            Gate::Slots => self.slots(ctx, trace),
            Gate::Rotation => {
                let choice = slots::rotation(ctx, self.view(), trace)?;
                // Never close a position for a candidate that would be refused anyway: the
                // gates after this one see the book without the position it would close.
                let after = self.view().without(|h| *h.symbol == choice.weakest);
                self.view = Some(Cow::Owned(after));
                self.rotation = Some(choice);
                Ok(())
            }
            Gate::SideSlots => slots::side_slots(ctx, self.candidate(), self.view(), trace),
            Gate::Correlation => correlation::check(ctx, self.candidate(), self.view(), trace),
            Gate::Margin => funds::margin(ctx, self.candidate(), self.view(), trace),
            Gate::LiquidationDistance => {
                let (cand, projected) = self.projected(ctx);
                liquidation_distance::check(ctx, cand, projected.complete(), trace)
            }
            Gate::AccountMarginRatio => {
                account_margin::check(ctx, self.projected(ctx).1.complete(), trace)
            }
            Gate::FundCaps => funds::caps(ctx, self.candidate(), self.view(), trace),
            Gate::Capital => capital::check(ctx, self.candidate(), self.view(), trace),
            Gate::PositionExists => {
                self.closing = Some(close::position_exists(ctx, trace)?);
                Ok(())
            }
            Gate::CloseKillScore => close::kill_score(ctx, trace),
            Gate::ExitLock => close::exit_lock(ctx, trace),
        }
    }

    /// The regime gate under `gates.slots`: not evaluated when slot accounting is disabled or
    /// the gate is off; a shadow refusal leaves the open without a slot budget.
    fn regime(&mut self, ctx: &Ctx<'a>, trace: &mut Trace) -> Result<(), Refusal> {
        let mode = ctx.cfg.gates.slots;
        if !ctx.cfg.slots.enabled || mode == GateMode::Off {
            let why = if ctx.cfg.slots.enabled {
                "gate off by configuration"
            } else {
                "slot accounting disabled"
            };
            trace.line("regime", Outcome::NotApplicable).note(why);
            return Ok(());
        }
        self.budget = self.gates.run(
            mode,
            "regime",
            trace,
            |t| slots::regime(ctx, t).map(Some),
            || None,
        )?;
        Ok(())
    }

    /// The slot table under `gates.slots`: only an enforced budget refuses; in shadow, a full
    /// table is recorded as the `slots_full` it would have been.
    fn slots(&mut self, ctx: &Ctx<'a>, trace: &mut Trace) -> Result<(), Refusal> {
        let mode = ctx.cfg.gates.slots;
        let enforced = self.budget.filter(|_| mode == GateMode::Enforce);
        let slot_promised = ctx
            .snap
            .book
            .slot_promised(&self.candidate().symbol, Some(&ctx.plan.plan_id));
        let being_closed_by = ctx
            .snap
            .book
            .live_exit_lock(&self.candidate().symbol, ctx.now)
            .map(|lock| &lock.holder);
        let slot_use = slots::occupancy(
            self.candidate(),
            self.view(),
            enforced,
            self.phase2,
            slot_promised,
            being_closed_by,
            trace,
        )?;
        if let (GateMode::Shadow, Some(b), SlotUse::NewSlot) = (mode, self.budget, slot_use) {
            let occupied = self.view().occupied_slots() as u32;
            if occupied >= b.desired {
                let refusal = Refusal::new(
                    BlockReason::SlotsFull,
                    format!("{occupied} of {} desired slots occupied", b.desired),
                );
                trace
                    .line("slots_shadow", Outcome::Pass)
                    .int("occupied", i64::from(occupied))
                    .int("desired", i64::from(b.desired));
                let refusal = common::refuse(trace, refusal);
                self.gates.record(trace, &refusal);
            }
        }
        self.slot_use = Some(slot_use);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn every_gate_is_in_exactly_one_path() {
        for gate in Gate::ALL {
            let places = [COMMON_PATH, OPEN_PATH, CLOSE_PATH]
                .iter()
                .map(|path| path.iter().filter(|g| *g == gate).count())
                .sum::<usize>();
            assert_eq!(
                places, 1,
                "{gate:?} is in {places} paths; a gate runs exactly once"
            );
        }
    }

    #[test]
    fn every_reason_code_belongs_to_a_gate_or_is_decided_outside_them() {
        // Refused outside the gates: a rotation lock that outlived its TTL (the sweeper).
        let outside = [BlockReason::ActiveSlotsRotationTimeout];
        for reason in BlockReason::ALL {
            let gates: Vec<Gate> = Gate::ALL
                .iter()
                .copied()
                .filter(|g| g.spec().reasons.contains(&reason))
                .collect();
            assert!(
                !gates.is_empty() || outside.contains(&reason),
                "{} is refused by no gate",
                reason.code()
            );
            assert!(
                gates.is_empty() || !outside.contains(&reason),
                "{} is listed as decided outside the gates, yet {gates:?} name it",
                reason.code()
            );
        }
    }

    #[test]
    fn every_gates_key_is_a_gate_mode_and_reads_its_own_field() {
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let keys: Vec<&String> = defaults["gates"].as_table().unwrap().keys().collect();
        for key in &keys {
            let owners: Vec<Gate> = Gate::ALL
                .iter()
                .copied()
                .filter(|g| g.spec().mode.key() == Some(key.as_str()))
                .collect();
            assert!(!owners.is_empty(), "gates.{key} is the mode of no gate");
        }
        for gate in Gate::ALL {
            let spec = gate.spec();
            let Some(key) = spec.mode.key() else { continue };
            assert!(
                keys.iter().any(|k| *k == key),
                "{gate:?}'s mode key gates.{key} is not in [gates]"
            );
            let (ModeRule::Configurable(_, read) | ModeRule::OwnRule(_, read)) = spec.mode else {
                continue;
            };
            let text = format!("[gates]\n{key} = \"shadow\"\n");
            let cfg = Config::load(Some(&text), &[]).unwrap();
            assert_eq!(
                read(&cfg.gates),
                GateMode::Shadow,
                "{gate:?} reads another key"
            );
        }
    }

    #[test]
    fn enforced_gates_are_exactly_the_integrity_keys_of_the_config() {
        let mut enforced: Vec<String> = Gate::ALL
            .iter()
            .filter_map(|g| match g.spec().mode {
                ModeRule::Enforced(Some(key)) => Some(format!("gates.{key}")),
                _ => None,
            })
            .collect();
        enforced.sort();
        enforced.dedup();
        let mut integrity: Vec<String> = GatesConfig::default()
            .integrity()
            .iter()
            .map(|(k, _)| (*k).to_owned())
            .collect();
        integrity.sort();
        assert_eq!(enforced, integrity);
    }

    #[test]
    fn every_section_named_by_a_gate_exists() {
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for gate in Gate::ALL {
            if let Some(section) = gate.spec().section {
                assert!(
                    defaults.get(section).is_some_and(toml::Value::is_table),
                    "{gate:?} names the config section [{section}], which does not exist"
                );
            }
        }
    }
}
