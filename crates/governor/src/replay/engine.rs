//! The replay loop.

use super::accounts::{account_stat, extremes_at, prices_at};
pub use super::accounts::{AccountStat, LiquidationRow, UngovernedCounts};
use super::heat::{calibrate_exit, CalibrationRow, HeatReplay};
use super::recorded::{Cursor, RecordedPlans};
use super::signals::{ExitPlanner, SignalConfig};
use super::tape::Tape;
use super::twin::{TwinKey, Twins};
use crate::exchange::paper::{PaperCosts, PaperExchange};
use crate::exchange::{Exchange, OrderRequest};
use crate::governor::{Governor, Submission};
use crate::inputs::MarketInputs;
use crate::market_data::closed_by;
use crate::orders::{result_fields, Known, ResolvedBy};
use crate::store::memory::MemoryStore;
use crate::store::StateStore;
use crate::streams::consumer::Entry;
use anyhow::{bail, Context};
use governor_core::config::RegimeReference;
use governor_core::effects::{Effect, Event};
use governor_core::market::brackets::BracketTable;
use governor_core::market::correlation::{aligned_correlation, CorrelationCache};
use governor_core::market::regime::{classify, desired_slots};
use governor_core::market::{Kline, SymbolMarket, BAR_MS};
use governor_core::plan::{Action, CloseKind};
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Side, Symbol, TradingState};
use governor_core::{Config, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// What to replay and how.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// A directory of `<SYMBOL>-1h.csv` files.
    pub data_dir: PathBuf,
    /// Where the journal and the report go.
    pub out_dir: PathBuf,
    /// First bar close to replay (inclusive).
    pub from: Option<Timestamp>,
    /// Last bar close to replay (inclusive).
    pub to: Option<Timestamp>,
    /// Starting capital of both accounts (USDT); the incident's account had 13,661.
    pub initial_equity: f64,
    /// The sample signal source's knobs.
    pub signals: SignalConfig,
    /// Fill assumptions of the paper exchange.
    pub costs: PaperCosts,
    /// Windows in which a simulated operator holds the kill switch at HALTED.
    pub halts: Vec<(Timestamp, Timestamp)>,
    /// A simulated operator resumes trading this many hours after an auto-disarm to REDUCING
    /// (without it, the first critical kill score would end all opens for the rest of the run).
    pub resume_after_hours: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// What the heat gate does with the harvest planner's close proposals.
    pub heat: HeatReplay,
    /// Write `decisions.jsonl` (and `calibrations.jsonl`, `rejected.jsonl`) into `out_dir`.
    pub write_journal: bool,
    /// The deployment's recorded plans, played at their own times instead of the sample
    /// signals (`replay --plans`).
    pub plans: Option<Arc<RecordedPlans>>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            data_dir: PathBuf::from("data/klines"),
            out_dir: PathBuf::from("out"),
            from: None,
            to: None,
            initial_equity: 13_661.0,
            signals: SignalConfig::default(),
            costs: PaperCosts::default(),
            halts: Vec::new(),
            resume_after_hours: 24,
            progress: false,
            heat: HeatReplay::default(),
            write_journal: true,
            plans: None,
        }
    }
}

/// The state of both accounts after one bar.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BarStat {
    /// Bar close time.
    pub t: Timestamp,
    /// The regime (of the reference symbol) at this bar.
    pub regime: String,
    /// Desired slots at this bar.
    pub desired: u32,
    /// Occupied slots in the governor's slot table after this bar.
    pub occupied: u32,
    /// The trading state after this bar.
    pub trading_state: String,
    /// The governed account.
    pub governed: AccountStat,
    /// The ungoverned account.
    pub ungoverned: AccountStat,
}

/// How a rotation ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RotationRow {
    /// When phase 1 happened.
    pub t: Timestamp,
    /// The pending plan.
    pub plan_id: String,
    /// The symbol it made room for, and its side.
    pub new_symbol: String,
    /// Long or short.
    pub new_side: String,
    /// The position it closed, and its side.
    pub close_symbol: String,
    /// Long or short.
    pub close_side: String,
    /// ALLOW (completed), or the block reason that ended it.
    pub outcome: String,
    /// The new symbol's return in its direction over the 24 h after the rotation.
    pub new_return_24h: Option<f64>,
    /// The closed position's return in its direction over the same 24 h.
    pub old_return_24h: Option<f64>,
}

/// Everything the replay produced.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayResult {
    /// Symbols replayed.
    pub symbols: Vec<String>,
    /// Every bar, in time order.
    pub bars: Vec<BarStat>,
    /// Plans submitted to the governor (including rotation closes it published).
    pub plans: usize,
    /// Decisions by verdict.
    pub verdicts: BTreeMap<String, usize>,
    /// Blocks by reason code.
    pub blocks: BTreeMap<String, usize>,
    /// What gates in shadow mode would have blocked, by reason code (they blocked nothing).
    pub shadow_blocks: BTreeMap<String, usize>,
    /// Times the drawdown halt switched trading to REDUCING.
    pub drawdown_halts: usize,
    /// Times the account margin ratio's de-risk line switched trading to REDUCING.
    pub derisk_halts: usize,
    /// Close plans the de-risk monitor published.
    pub derisk_closes: usize,
    /// The account margin ratio above which opens are refused (for the report's chart).
    pub max_account_margin_ratio: f64,
    /// The de-risk line (for the report's chart).
    pub derisk_at: f64,
    /// Each regime's share of the replayed bars under the current thresholds and under ones
    /// calibrated on the same history to the default targets (`None`: no reference symbol, or
    /// the history cannot give the targets).
    pub regime_calibration: Option<Vec<crate::calibrate::ShareRow>>,
    /// Schema rejections (dead letters).
    pub rejected: usize,
    /// Rotations and how they ended.
    pub rotations: Vec<RotationRow>,
    /// Orders refused by the paper exchange under a permit (the governor's account).
    pub governed_order_errors: usize,
    /// The ungoverned account's order counts.
    pub ungoverned: UngovernedCounts,
    /// Positions the paper exchange liquidated in the governed account.
    pub liquidations_governed: Vec<LiquidationRow>,
    /// Positions the paper exchange liquidated in the ungoverned account.
    pub liquidations_ungoverned: Vec<LiquidationRow>,
    /// Symbols of the correlation heatmap and their matrix (last 100 aligned 1 h returns).
    pub heatmap: (Vec<String>, Vec<Vec<Option<f64>>>),
    /// Whether the heatmap shows the final portfolio (else the whole universe: fewer than 2 held).
    pub heatmap_is_portfolio: bool,
    /// Whether the ledger equals the paper exchange's positions at the end.
    pub ledger_matches_exchange: bool,
    /// Opens permitted while the trading state was HALTED (the governor guarantees 0).
    pub opens_permitted_while_halted: usize,
    /// Every close proposal the heat gate calibrated (empty with `--heat off`).
    pub calibrations: Vec<CalibrationRow>,
    /// Where the journal was written.
    pub journal: PathBuf,
    /// Starting capital.
    pub initial_equity: f64,
    /// What `--plans` played (`None` on the sample signals).
    pub recorded: Option<RecordedCounts>,
    /// Every decision, in commit order (the journal's lines; a candidate config is compared
    /// on them).
    #[serde(skip)]
    pub decisions: Vec<std::sync::Arc<governor_core::snapshot::DecisionRecord>>,
}

/// What `replay --plans` did with the recorded entries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RecordedCounts {
    /// Entries played at their times (dead-lettered ones included).
    pub played: usize,
    /// Close plans the recorded governor published itself, not played (the replayed governor
    /// publishes its own).
    pub governor_published: usize,
    /// Entries before the first replayed bar or after the last, not played.
    pub outside_window: usize,
}

fn forward_return(
    klines: &BTreeMap<Symbol, Vec<Kline>>,
    symbol: &str,
    side: Side,
    t: Timestamp,
) -> Option<f64> {
    let series = klines.get(&Symbol::parse(symbol).ok()?)?;
    let at = closed_by(series, t).last()?;
    let later = closed_by(series, Timestamp(t.0 + 24 * BAR_MS)).last()?;
    (later.open_time.0 - at.open_time.0 == 24 * BAR_MS)
        .then(|| (later.close / at.close - 1.0) * side.sign())
}

/// The replay's two accounts and the governor.
struct Pipeline<'a> {
    cfg: &'a Config,
    gov: Governor,
    store: Arc<MemoryStore>,
    governed: PaperExchange,
    /// The governed account as the exchange reports it, taken once between changes to it
    /// (an order, a liquidation, new prices) rather than once per plan.
    account_view: Option<governor_core::snapshot::ExchangeState>,
    market: Arc<BTreeMap<Symbol, Arc<SymbolMarket>>>,
    correlations: Option<Arc<CorrelationCache>>,
    published_seen: usize,
    plans: usize,
    order_errors: usize,
    rotations: Vec<RotationRow>,
    halted_opens: usize,
    liquidations_governed: Vec<LiquidationRow>,
}

impl Pipeline<'_> {
    /// The governed account as the exchange reports it.
    fn account(&mut self) -> governor_core::snapshot::ExchangeState {
        self.account_view
            .get_or_insert_with(|| self.governed.snapshot())
            .clone()
    }

    fn inputs(&mut self) -> MarketInputs {
        MarketInputs {
            exchange: Some(self.account()),
            market: self.market.clone(),
            correlations: self.correlations.clone(),
        }
    }

    /// Liquidates what the bar closing at `t` reached in the governed account. The governor learns of
    /// its account's liquidations as it would from the exchange: the position is gone from
    /// the ledger, with a `POSITION_LIQUIDATED` event.
    fn liquidate(
        &mut self,
        extremes: &BTreeMap<Symbol, (f64, f64)>,
        brackets: &BracketTable,
        t: Timestamp,
    ) {
        let mode = self.cfg.liquidation.margin_mode;
        self.account_view = None;
        let (done, _) = self.governed.liquidate(extremes, brackets, mode);
        for l in &done {
            let id = PlanId::parse("paper-liquidation").expect("a valid plan id");
            let event = Event::new("POSITION_LIQUIDATED", &id, &l.symbol, t)
                .with("side", l.side.as_str())
                .with("qty", l.qty)
                .with("price", l.price)
                .with("loss", l.realized_pnl - l.fee);
            let effects = [
                Effect::ReducePosition {
                    symbol: l.symbol.clone(),
                    qty: f64::MAX,
                },
                Effect::Emit(event),
            ];
            self.store
                .apply(&[], &effects, t)
                .expect("the embedded store is always available");
            self.liquidations_governed.push(LiquidationRow::of(t, l));
        }
    }

    /// Submits a plan to the governor and carries out what it allows.
    fn submit(&mut self, fields: &[(String, String)], t: Timestamp) {
        self.plans += 1;
        let inputs = self.inputs();
        let submission = self.gov.submit(fields, &inputs, t);
        self.follow(submission, t);
        self.submit_published(t);
    }

    /// A recorded stream entry, handled as the plan worker handles it: at its own time, after
    /// the sweeper's expiries; dead-lettered when a name or value was not UTF-8 (else the
    /// parser judges it).
    fn submit_recorded(&mut self, entry: &Entry, at: Timestamp) {
        self.gov
            .tick(at)
            .expect("the embedded store is always available");
        match entry.checked() {
            Ok(fields) => self.submit(fields, at),
            Err(rejection) => {
                self.plans += 1;
                self.store
                    .dead_letter(&entry.fields, rejection.to_string(), at);
            }
        }
    }

    fn follow(&mut self, submission: Submission, t: Timestamp) {
        let Submission::Decided { decision, fence } = submission else {
            return;
        };
        if fence.is_none() {
            return; // a replay of an earlier decision: nothing new to do
        }
        match &decision.verdict {
            Verdict::Allow { .. } => {
                if decision.record.action.starts_with("OPEN")
                    && self.store.read(|s| s.trading_state) == TradingState::Halted
                {
                    self.halted_opens += 1;
                }
                self.execute(&decision.record.plan_id, t);
            }
            Verdict::Pending { .. } => {
                let pending = decision.record.plan_id.clone();
                let rot = self.store.read(|s| s.book.rotations.get(&pending).cloned());
                if let Some(rot) = rot {
                    let new_side = match rot.pending.action {
                        Action::Open(side) => side,
                        _ => Side::Long,
                    };
                    let close_side = self
                        .governed
                        .positions()
                        .get(&rot.close_symbol)
                        .map_or(Side::Long, |p| p.side);
                    self.rotations.push(RotationRow {
                        t,
                        plan_id: pending.to_string(),
                        new_symbol: rot.pending.symbol.to_string(),
                        new_side: new_side.as_str().to_owned(),
                        close_symbol: rot.close_symbol.to_string(),
                        close_side: close_side.as_str().to_owned(),
                        outcome: "PENDING".to_owned(),
                        new_return_24h: None,
                        old_return_24h: None,
                    });
                }
            }
            Verdict::Block { .. } | Verdict::Skip { .. } => {}
        }
    }

    /// Plans the governor published (rotation and de-risk closes) go back through the plan
    /// stream.
    fn submit_published(&mut self, t: Timestamp) {
        loop {
            let next = self
                .store
                .read(|s| s.published.get(self.published_seen).cloned());
            let Some(fields) = next else { break };
            self.published_seen += 1;
            self.submit(&fields, t);
        }
    }

    /// The permit-checked executor: takes the permit once, places the order, reports.
    fn execute(&mut self, plan_id: &PlanId, t: Timestamp) {
        let Some(permit) = self.store.take_permit(plan_id, t) else {
            return; // expired or already used: never executed
        };
        let action = match permit.action.as_str() {
            "OPEN_LONG" => Action::Open(Side::Long),
            "OPEN_SHORT" => Action::Open(Side::Short),
            "PARTIAL_75" => Action::Close(CloseKind::Partial75),
            "PARTIAL_50" => Action::Close(CloseKind::Partial50),
            "PARTIAL_25" => Action::Close(CloseKind::Partial25),
            _ => Action::Close(CloseKind::Full),
        };
        let (side, reduce_only, leverage) = match action {
            Action::Open(side) => {
                let lev = self
                    .store
                    .read(|s| s.book.reservations.get(plan_id).map(|r| r.leverage))
                    .unwrap_or(self.cfg.funds.default_leverage);
                (side, false, lev)
            }
            _ => {
                let side = self
                    .governed
                    .positions()
                    .get(&permit.symbol)
                    .map_or(Side::Long, |p| p.side);
                (side, true, 1)
            }
        };
        let order = OrderRequest {
            client_id: plan_id.clone(),
            symbol: permit.symbol.clone(),
            side,
            qty: permit.qty,
            reduce_only,
            leverage,
        };
        self.account_view = None;
        let known = match self.governed.place_order(&order) {
            Ok(fill) => Known::Filled(fill),
            Err(e) => {
                self.order_errors += 1;
                Known::NotFilled(e.to_string())
            }
        };
        // The same result entry the executor publishes, the paper fee and PnL included.
        let fields = result_fields(
            plan_id,
            &permit.symbol,
            &permit.action,
            reduce_only,
            &known,
            ResolvedBy::Answer,
            t,
        );
        let inputs = self.inputs();
        if let Ok(outcome) = self.gov.on_result(&fields, &inputs, t) {
            if let Some(phase2) = outcome.phase2 {
                self.follow(phase2, t);
            }
        }
    }
}

/// Runs the replay, writes the journal (`decisions.jsonl`) into `out_dir`, and returns what
/// the summary and the report need.
pub fn run(cfg: &Config, opts: &ReplayOptions) -> anyhow::Result<ReplayResult> {
    run_on(&opts.load_recording()?, cfg, opts)
}

/// A recorded market loaded once, and the ungoverned twins run on it: what every run over the
/// same data shares (the report's comparison runs, a candidate config, a sweep's threads).
pub struct Recording {
    /// The market, indexed.
    pub tape: Tape,
    twins: Twins,
}

impl ReplayOptions {
    /// The market these options replay (`data_dir` between `from` and `to`), loaded once for
    /// every run that shares it.
    pub fn load_recording(&self) -> anyhow::Result<Recording> {
        Ok(Recording {
            tape: Tape::load(&self.data_dir, self.from, self.to)?,
            twins: Twins::default(),
        })
    }

    /// What the ungoverned twin of a run with `cfg` depends on.
    fn twin_key(&self, cfg: &Config, reference: Option<Symbol>) -> TwinKey {
        TwinKey {
            signals: self.signals.clone(),
            reference,
            default_leverage: cfg.funds.default_leverage,
            margin_mode: cfg.liquidation.margin_mode,
            costs: self.costs,
            initial_equity: self.initial_equity,
            plans: self.plans.clone(),
        }
    }
}

/// [`run`] on a recording already loaded (`opts.data_dir`, `from` and `to` are its own): the
/// runs that compare configs on the same data share one, and its ungoverned twin.
pub fn run_on(
    recording: &Recording,
    cfg: &Config,
    opts: &ReplayOptions,
) -> anyhow::Result<ReplayResult> {
    let tape = &recording.tape;
    let (klines, brackets, timeline) = (&tape.klines, &tape.brackets, &tape.timeline);
    let reference = match &cfg.regime.reference {
        RegimeReference::Symbol(s) => {
            if !klines.contains_key(s) {
                bail!(
                    "the regime reference {s} has no klines in {} (set regime.reference)",
                    opts.data_dir.display()
                );
            }
            Some(s.clone())
        }
        RegimeReference::Candidate => None,
    };
    let universe: BTreeSet<Symbol> = klines.keys().cloned().collect();
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;

    let store = Arc::new(MemoryStore::new(cfg.block_ttl_secs));
    let names: Vec<&str> = universe.iter().map(Symbol::as_str).collect();
    store.update(|st| {
        st.policy_universe = Some(serde_json::to_string(&names).expect("strings serialize"))
    });
    let mut p = Pipeline {
        cfg,
        gov: Governor::new(Arc::new(cfg.clone()), store.clone()),
        store: store.clone(),
        governed: PaperExchange::new(opts.initial_equity, opts.costs),
        account_view: None,
        market: Arc::default(),
        correlations: None,
        published_seen: 0,
        plans: 0,
        order_errors: 0,
        rotations: Vec::new(),
        halted_opens: 0,
        liquidations_governed: Vec::new(),
    };
    let mut exits_gov = ExitPlanner::default();
    let window = cfg.correlation.window as usize;
    let mode = cfg.liquidation.margin_mode;
    let mut peak_gov = opts.initial_equity;
    let twin = recording
        .twins
        .get(tape, &opts.twin_key(cfg, reference.clone()));
    let mut reducing_since: Option<Timestamp> = None;
    let mut calibrations = Vec::new();
    let mut bars = Vec::with_capacity(timeline.len());
    let progress = if opts.progress {
        let bar = indicatif::ProgressBar::new(timeline.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} replay [{bar:40}] {pos}/{len} bars {elapsed}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let mut recorded_cursor = Cursor::default();
    for (i, &t) in timeline.iter().enumerate() {
        // The simulated operator: scheduled halts, and resuming a day after an auto-disarm.
        let halted = opts.halts.iter().any(|(a, b)| *a <= t && t < *b);
        store.update(|st| match (halted, st.trading_state) {
            (true, _) => st.trading_state = TradingState::Halted,
            (false, TradingState::Halted) => st.trading_state = TradingState::Active,
            _ => {}
        });
        // A drawdown halt resumes by itself (or waits for a real operator): not this one's.
        let (state, self_halted) = store.read(|s| (s.trading_state, s.book.halt.is_some()));
        match (state, reducing_since) {
            (TradingState::Reducing, _) if self_halted => reducing_since = None,
            (TradingState::Reducing, None) => reducing_since = Some(t),
            (TradingState::Reducing, Some(since))
                if t.0 - since.0 >= opts.resume_after_hours as i64 * BAR_MS =>
            {
                store.update(|st| st.trading_state = TradingState::Active);
                reducing_since = None;
            }
            (TradingState::Active, _) => reducing_since = None,
            _ => {}
        }

        let (marks, fills) = prices_at(klines, t);
        p.account_view = None;
        p.governed.set_prices(marks, fills);
        p.liquidate(&extremes_at(klines, t), brackets, t);
        let (market, correlations) = tape.market_at(t, window);
        p.market = Arc::new(market);
        p.correlations = Some(correlations);
        p.gov
            .tick(t)
            .expect("the embedded store is always available");
        let inputs = p.inputs();
        p.gov
            .observe(&inputs, t)
            .expect("the embedded store is always available");
        p.submit_published(t); // de-risk closes the monitor published

        let account = p.account();
        let sample_exits = if opts.plans.is_some() {
            Vec::new() // the recorded plans hold the deployment's own closes
        } else {
            exits_gov.proposals(&opts.signals, &account, t)
        };
        for mut plan in sample_exits {
            if opts.heat != HeatReplay::Off {
                if let Some((row, c)) = calibrate_exit(cfg, &plan, &account, &p.market, t) {
                    if opts.heat == HeatReplay::Enforce && c.is_calibrated() {
                        for (k, v) in plan.iter_mut() {
                            if k == "harvest_action" {
                                *v = c.calibrated.as_str().to_owned();
                            }
                        }
                    }
                    calibrations.push(row);
                }
            }
            p.submit(&plan, t);
        }

        let (regime, desired) = match reference.as_ref().and_then(|r| p.market.get(r)) {
            Some(m) => {
                let reading = classify(m.features.as_ref(), &cfg.regime);
                let desired =
                    desired_slots(reading.regime, &cfg.slots, cfg.funds.max_open_positions);
                (reading.regime.as_str().to_owned(), desired)
            }
            None => ("UNKNOWN".to_owned(), cfg.slots.base.min(cfg.slots.hard_cap)),
        };
        match &opts.plans {
            None => {
                for plan in &twin.opens[i] {
                    p.submit(plan, t);
                }
            }
            Some(recorded) => {
                // The recorded plans of this bar, each at its own time.
                for r in recorded_cursor.bar(recorded, timeline, i) {
                    p.submit_recorded(&r.entry, r.time);
                }
            }
        }

        let (occupied, state) = store.read(|s| (s.book.slots().len() as u32, s.trading_state));
        bars.push(BarStat {
            t,
            regime,
            desired,
            occupied,
            trading_state: state.as_str().to_owned(),
            governed: account_stat(&p.governed, &mut peak_gov, brackets, mode),
            ungoverned: twin.bars[i].clone(),
        });
        progress.inc(1);
    }
    progress.finish_and_clear();
    let last = *timeline.last().expect("not empty");
    p.gov
        .tick(last.plus_secs(cfg.slots.rotation_lock_ttl_secs.max(cfg.permit_ttl_secs) + 1))
        .expect("the embedded store is always available");

    let journal = opts.out_dir.join("decisions.jsonl");
    if opts.write_journal {
        write_journal(&store, &journal)?;
        write_lines(&calibrations, &opts.out_dir.join("calibrations.jsonl"))?;
        // What the parser refused, as the live dead-letter stream would hold it.
        let rejected = store.read(|st| st.dead_letters.clone());
        write_lines(&rejected, &opts.out_dir.join("rejected.jsonl"))?;
    }
    let (shadow_blocks, drawdown_halts, derisk_halts, derisk_closes) = store.read(|st| {
        let mut shadow: BTreeMap<String, usize> = BTreeMap::new();
        for reason in st.decisions.values().flat_map(|r| &r.shadow) {
            *shadow.entry(reason.code().to_owned()).or_default() += 1;
        }
        let halts_for = |reason: &str| {
            st.events
                .iter()
                .filter(|e| e.event == "TRADING_STATE_CHANGED")
                .filter(|e| e.field("reason").as_deref() == Some(reason))
                .count()
        };
        let closes = st
            .events
            .iter()
            .filter(|e| e.event == "DERISK_CLOSE_PUBLISHED")
            .count();
        (
            shadow,
            halts_for("drawdown_halt"),
            halts_for("account_margin_ratio"),
            closes,
        )
    });
    let (verdicts, blocks, rejected, ledger_matches) = store.read(|st| {
        let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
        let mut blocks: BTreeMap<String, usize> = BTreeMap::new();
        for r in st.decisions.values() {
            *verdicts.entry(r.verdict.as_str().to_owned()).or_default() += 1;
            if let (governor_core::snapshot::VerdictKind::Block, Some(reason)) =
                (r.verdict, r.reason)
            {
                *blocks.entry(reason.code().to_owned()).or_default() += 1;
            }
        }
        let ledger: BTreeMap<&Symbol, (Side, f64)> = st
            .book
            .positions
            .iter()
            .map(|(s, l)| (s, (l.side, l.qty)))
            .collect();
        let paper: BTreeMap<&Symbol, (Side, f64)> = p
            .governed
            .positions()
            .iter()
            .map(|(s, q)| (s, (q.side, q.qty)))
            .collect();
        let matches = ledger.len() == paper.len()
            && ledger.iter().all(|(s, (side, qty))| {
                paper
                    .get(s)
                    .is_some_and(|(ps, pq)| ps == side && (pq - qty).abs() <= qty.abs() * 1e-9)
            });
        (verdicts, blocks, st.dead_letters.len(), matches)
    });
    let mut rotations = std::mem::take(&mut p.rotations);
    store.read(|st| {
        for row in &mut rotations {
            if let Some(record) = PlanId::parse(&row.plan_id)
                .ok()
                .and_then(|id| st.decisions.get(&id))
            {
                row.outcome = match record.reason {
                    None => record.verdict.as_str().to_owned(),
                    Some(reason) => reason.code().to_owned(),
                };
            }
        }
    });
    for row in &mut rotations {
        let side = |s: &str| {
            if s == "SHORT" {
                Side::Short
            } else {
                Side::Long
            }
        };
        row.new_return_24h = forward_return(klines, &row.new_symbol, side(&row.new_side), row.t);
        row.old_return_24h =
            forward_return(klines, &row.close_symbol, side(&row.close_side), row.t);
    }
    let held: Vec<Symbol> = p.governed.positions().keys().cloned().collect();
    let heatmap_is_portfolio = held.len() >= 2;
    let heat_symbols: Vec<Symbol> = if heatmap_is_portfolio {
        held
    } else {
        universe.iter().cloned().collect()
    };
    let matrix = heat_symbols
        .iter()
        .map(|a| {
            heat_symbols
                .iter()
                .map(|b| {
                    let (ma, mb) = (p.market.get(a)?, p.market.get(b)?);
                    aligned_correlation(&ma.returns, &mb.returns, window).rho
                })
                .collect()
        })
        .collect();
    Ok(ReplayResult {
        symbols: universe.iter().map(|s| s.to_string()).collect(),
        bars,
        plans: p.plans,
        verdicts,
        blocks,
        shadow_blocks,
        drawdown_halts,
        derisk_halts,
        derisk_closes,
        max_account_margin_ratio: cfg.liquidation.max_account_margin_ratio,
        regime_calibration: reference.as_ref().and_then(|r| {
            let history = crate::calibrate::feature_history(closed_by(&klines[r], last));
            crate::calibrate::Calibration::of(r.clone(), history, &cfg.regime, Default::default())
                .ok()
                .map(|c| c.rows())
        }),
        derisk_at: cfg.liquidation.derisk_at,
        rejected,
        rotations,
        governed_order_errors: p.order_errors,
        ungoverned: twin.counts.clone(),
        liquidations_governed: p.liquidations_governed,
        liquidations_ungoverned: twin.liquidations.clone(),
        heatmap: (heat_symbols.iter().map(|s| s.to_string()).collect(), matrix),
        heatmap_is_portfolio,
        ledger_matches_exchange: ledger_matches,
        opens_permitted_while_halted: p.halted_opens,
        calibrations,
        journal,
        initial_equity: opts.initial_equity,
        decisions: store.read(|st| st.decision_log.clone()),
        recorded: opts.plans.as_ref().map(|r| {
            let outside = recorded_cursor.outside_window(r);
            RecordedCounts {
                played: r.plans.len() - outside,
                governor_published: r.governor_published,
                outside_window: outside,
            }
        }),
    })
}

/// One JSON line per row.
fn write_lines<T: Serialize>(rows: &[T], path: &std::path::Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for row in rows {
        serde_json::to_writer(&mut out, row)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// One JSON line per decision, in commit order, with the trace as JSON (not a string).
fn write_journal(store: &MemoryStore, path: &std::path::Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    store.read(|st| -> anyhow::Result<()> {
        for r in &st.decision_log {
            crate::journal::write_record(r, &mut out)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}
