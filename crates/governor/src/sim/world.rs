//! One simulated deployment: governors running the service's plan-worker loop and a result
//! monitor running its result loop, on simulated streams, over one embedded store, on the
//! simulated clock, with a market frozen at the run's start. Each step does one thing the
//! deployment does (a producer publishes, a governor steps, an order is answered, time passes,
//! the sweeper runs) or injects one fault (a governor dies after its commit and before its
//! acknowledgement; the clock jumps past every TTL).
//!
//! The executor is a stand-in: it takes a live permit as the executor does (single use), marks
//! the order in doubt and books its outcome through the executor's own functions (`orders`),
//! but it is not the executor's loop, and its exchange cannot fail in the ways a real one does
//! (an unknown answer, a 5xx after the fill, a partial fill). Nor does the reconciler run.

use super::clock;
use super::invariants::{self, Violation};
use super::rng::Rng;
use super::stream::{SimConsumer, SimStream};
use crate::exchange::Fill;
use crate::governor::Governor;
use crate::inputs::{InputsSource, MarketInputs};
use crate::orders::{mark_in_doubt, result_fields, settle_result, Known, ResolvedBy};
use crate::service::workers::{PlanWorker, ResultWorker};
use crate::store::memory::MemoryStore;
use crate::store::StateStore;
use crate::streams::{PLAN_GROUP, RESULT_GROUP};
use governor_core::book::OrderInDoubt;
use governor_core::time::Timestamp;
use governor_core::types::PlanId;
use governor_core::Config;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Governors in every run.
pub const GOVERNORS: usize = 3;
/// Pending entries idle this long are reclaimed (the service's default).
const IDLE_MS: u64 = crate::streams::RECLAIM_IDLE_MS;

/// The market every run decides on: the inputs at the run's start, and the traded symbols with
/// their marks.
pub struct Market {
    inputs: MarketInputs,
    traded: Vec<(String, f64)>,
    start: Timestamp,
}

impl Market {
    /// The market as `inputs` showed it at `start`; its first `n` symbols (in name order) are
    /// traded.
    fn frozen(inputs: MarketInputs, start: Timestamp, n: usize) -> Self {
        let traded = inputs
            .market
            .iter()
            .take(n)
            .map(|(s, m)| (s.to_string(), m.last_close))
            .collect();
        Market {
            inputs,
            traded,
            start,
        }
    }
}

impl Market {
    /// The recorded market in `dir` (as the paper market reads it), frozen at a fixed start,
    /// 2026-01-01 00:00 UTC (so a seed replays the same on any day), with eight traded symbols.
    pub fn load(dir: &std::path::Path) -> anyhow::Result<Self> {
        let start = Timestamp(1_767_225_600_000);
        let ledger = Arc::new(MemoryStore::new(3600));
        let paper =
            crate::exchange::paper_market::PaperMarket::load(dir, start, 13_661.0, ledger, 100)?;
        Ok(Market::frozen(paper.inputs(start), start, 8))
    }
}

/// `cfg` with the rate limits and the cooldown opened wide, so that slots fill up and the
/// governors race for the last one (with the defaults, 3 opens an hour rarely fill 4 slots).
pub fn wide_open(mut cfg: Config) -> Config {
    cfg.cadence.max_exec_per_hour = 10_000;
    cfg.cadence.max_exec_per_5min = 10_000;
    cfg.cadence.symbol_cooldown_secs = 0;
    cfg
}

/// The market's inputs, the same at every moment.
struct Frozen(MarketInputs);

impl InputsSource for Frozen {
    fn inputs(&self, _now: Timestamp) -> MarketInputs {
        self.0.clone()
    }
}

/// One run's deployment.
pub struct World {
    store: Arc<MemoryStore>,
    cfg: Arc<Config>,
    inputs: Arc<dyn InputsSource>,
    traded: Vec<(String, f64)>,
    plans: SimStream,
    results: SimStream,
    governors: Vec<PlanWorker<SimConsumer>>,
    result_monitor: ResultWorker<SimConsumer>,
    /// Every plan id that entered the plan stream (the producers' and the governors' closes).
    published: Vec<PlanId>,
    /// How many of the store's published plans are on the plan stream already.
    forwarded: usize,
    produced: usize,
    restarts: usize,
    swept_at: Timestamp,
    /// Failures no fault explains (a store error, a refused result), reported with the
    /// invariants at the next check.
    unexpected: Vec<Violation>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
}

impl World {
    /// A fresh deployment on `market` under `cfg`, the clock at the market's start.
    pub fn new(market: &Market, cfg: Config) -> Self {
        clock::set(market.start);
        let store = Arc::new(MemoryStore::new(cfg.block_ttl_secs));
        let universe: Vec<&str> = market.traded.iter().map(|(s, _)| s.as_str()).collect();
        store.update(|st| {
            st.policy_universe = Some(serde_json::to_string(&universe).expect("strings serialize"))
        });
        let cfg = Arc::new(cfg);
        let inputs: Arc<dyn InputsSource> = Arc::new(Frozen(market.inputs.clone()));
        let plans = SimStream::new(&format!("{}stream:apply.plan", cfg.key_prefix));
        let results = SimStream::new(&format!("{}stream:apply.result", cfg.key_prefix));
        let result_monitor = ResultWorker {
            gov: Governor::new(cfg.clone(), store.clone()),
            consumer: results.consumer(RESULT_GROUP, "results"),
            inputs: inputs.clone(),
            clock: clock::now,
            reclaim_idle_ms: IDLE_MS,
        };
        let mut w = World {
            store,
            cfg,
            inputs,
            traded: market.traded.clone(),
            plans,
            results,
            governors: Vec::new(),
            result_monitor,
            published: Vec::new(),
            forwarded: 0,
            produced: 0,
            restarts: 0,
            swept_at: Timestamp(i64::MIN),
            unexpected: Vec::new(),
            faults: BTreeMap::new(),
        };
        w.governors = (0..GOVERNORS)
            .map(|i| w.governor(&format!("g{i}")))
            .collect();
        w
    }

    fn governor(&self, name: &str) -> PlanWorker<SimConsumer> {
        PlanWorker {
            gov: Governor::new(self.cfg.clone(), self.store.clone()),
            views: None,
            consumer: self.plans.consumer(PLAN_GROUP, name),
            inputs: self.inputs.clone(),
            clock: clock::now,
            name: name.to_owned(),
            reclaim_idle_ms: IDLE_MS,
        }
    }

    /// One step chosen by `rng`; returns what it did, for the run's log.
    pub fn step(&mut self, rng: &mut Rng) -> String {
        let did = match rng.below(100) {
            0..=24 => self.produce(rng),
            25..=54 => self.step_governor(rng.below(GOVERNORS as u64) as usize),
            55..=58 => {
                let g = rng.below(GOVERNORS as u64) as usize;
                self.governors[g].consumer.die_at_next_ack = true;
                self.fault("crash_after_commit");
                format!("{} will die after its next commit", self.governors[g].name)
            }
            59..=72 => self.answer_a_permit(rng),
            73..=80 => self.step_results(),
            81..=90 => {
                let ms = rng.between(1, 5_000);
                clock::advance(ms as i64);
                format!("{ms} ms pass")
            }
            91..=93 => {
                let ms = rng.between(130_000, 400_000);
                clock::advance(ms as i64);
                self.fault("clock_jump");
                format!("the clock jumps {ms} ms")
            }
            _ => self.sweep(),
        };
        self.forward_published();
        did
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    /// Records a failure no injected fault explains; returns the step's description.
    fn unexpected(&mut self, what: String) -> String {
        self.unexpected.push(Violation {
            invariant: "no_unexplained_failure",
            detail: what.clone(),
        });
        what
    }

    /// A producer publishes one to three opens on the traded symbols.
    fn produce(&mut self, rng: &mut Rng) -> String {
        let n = rng.between(1, 3);
        let mut ids = Vec::new();
        for _ in 0..n {
            let (symbol, mark) = self.traded[rng.below(self.traded.len() as u64) as usize].clone();
            let id = format!("s{}", self.produced);
            self.produced += 1;
            let action = if rng.below(3) == 0 {
                "OPEN_SHORT"
            } else {
                "OPEN_LONG"
            };
            let qty = (rng.between(50, 400) as f64 / mark).to_string();
            let score = rng.between(30, 95).to_string();
            self.plans.add(&[
                ("plan_id", id.as_str()),
                ("symbol", symbol.as_str()),
                ("action", action),
                ("decision", "EXECUTE"),
                ("qty", qty.as_str()),
                ("score", score.as_str()),
            ]);
            self.published.push(PlanId::parse(&id).expect("a valid id"));
            ids.push(format!("{id} {action} {symbol}"));
        }
        format!("published {}", ids.join(", "))
    }

    /// The governors' own closes (rotations) go onto the plan stream, as the commit script's
    /// XADD puts them there.
    fn forward_published(&mut self) {
        let new: Vec<Vec<(String, String)>> = self
            .store
            .read(|st| st.published[self.forwarded..].to_vec());
        self.forwarded += new.len();
        for fields in new {
            self.plans.add(&fields);
            if let Some((_, id)) = fields.iter().find(|(k, _)| k == "plan_id") {
                if let Ok(id) = PlanId::parse(id) {
                    self.published.push(id);
                }
            }
        }
    }

    /// Governor `g` steps once; one that dies is replaced by a fresh process (memory lost).
    fn step_governor(&mut self, g: usize) -> String {
        let name = self.governors[g].name.clone();
        let dying = self.governors[g].consumer.die_at_next_ack;
        match self.governors[g].step(0) {
            Ok(counts) => format!("{name} acked {}", counts.acked),
            Err(e) if !dying => self.unexpected(format!("{name} failed: {e}")),
            Err(e) => {
                self.restarts += 1;
                let fresh = format!("g{g}r{}", self.restarts);
                self.governors[g] = self.governor(&fresh);
                format!("{name} failed ({e}); {fresh} starts in its place")
            }
        }
    }

    /// The stand-in executor takes one live permit (single use), writes its order's in-doubt
    /// record, and answers it as the executor does (the ledger at once, then `apply.result`):
    /// filled two times in three, refused otherwise. One time in ten it dies after the order
    /// and before its result: the order stays in doubt (a reconciler would settle it).
    fn answer_a_permit(&mut self, rng: &mut Rng) -> String {
        let live: Vec<PlanId> = self.store.read(|st| st.permits.keys().cloned().collect());
        if live.is_empty() {
            return "no permit to execute".to_owned();
        }
        let id = &live[rng.below(live.len() as u64) as usize];
        let now = clock::now();
        let Some(permit) = self.store.take_permit(id, now) else {
            return format!("the permit of {id} had lapsed");
        };
        let in_doubt = OrderInDoubt {
            symbol: permit.symbol.clone(),
            action: permit.action.clone(),
            since: now,
            send_deadline: permit.expires_at,
            why: "about to be sent".to_owned(),
        };
        if let Err(e) = mark_in_doubt(self.store.as_ref(), id, in_doubt, now) {
            return self.unexpected(format!("the executor could not mark {id} in doubt: {e}"));
        }
        if rng.below(10) == 0 {
            self.fault("crash_after_order");
            return format!("the executor died after sending {id}'s order");
        }
        let is_close = !permit.action.starts_with("OPEN");
        let known = if rng.below(3) < 2 {
            Known::Filled(Fill {
                qty: permit.qty,
                avg_price: permit.notional / permit.qty,
                fee: Some(0.0),
                realized_pnl: Some(0.0),
            })
        } else {
            Known::NotFilled("-2019 Margin is insufficient".to_owned())
        };
        let fields = result_fields(
            id,
            &permit.symbol,
            &permit.action,
            is_close,
            &known,
            ResolvedBy::Answer,
            now,
        );
        if let Err(e) = settle_result(self.store.as_ref(), &self.cfg, &fields, now) {
            return self.unexpected(format!("the executor could not book {id}'s result: {e}"));
        }
        self.results.add(&fields);
        match known {
            Known::Filled(_) => format!("{id} filled"),
            Known::NotFilled(_) => format!("{id} refused"),
        }
    }

    fn step_results(&mut self) -> String {
        match self.result_monitor.step(0) {
            Ok(n) => format!("result monitor applied {n}"),
            Err(e) => self.unexpected(format!("result monitor failed: {e}")),
        }
    }

    fn sweep(&mut self) -> String {
        let now = clock::now();
        match StateStore::expire(self.store.as_ref(), now) {
            Ok(()) => {
                self.swept_at = now;
                "the sweeper ran".to_owned()
            }
            Err(e) => self.unexpected(format!("the sweeper failed: {e}")),
        }
    }

    /// The invariants that hold after every step, and the failures no fault explains.
    pub fn check(&mut self) -> Vec<Violation> {
        let mut out = std::mem::take(&mut self.unexpected);
        out.extend(
            self.store
                .read(|st| invariants::after_step(st, self.swept_at)),
        );
        out
    }

    /// Faults stop: time passes in steps of the idle bound, and every part runs, until the
    /// streams are drained and no rotation or reservation waits for its TTL (40 steps, 20
    /// minutes, at most); then every published plan must have ended decided.
    pub fn settle(&mut self) -> Vec<Violation> {
        for _ in 0..40 {
            clock::advance(IDLE_MS as i64 + 1);
            for g in &mut self.governors {
                g.consumer.die_at_next_ack = false;
            }
            for g in 0..GOVERNORS {
                self.step_governor(g);
            }
            self.step_results();
            self.sweep();
            self.forward_published();
            let drained = self.plans.pending(PLAN_GROUP).is_empty()
                && self.results.pending(RESULT_GROUP).is_empty();
            let waiting = self
                .store
                .read(|st| !st.book.rotations.is_empty() || !st.book.reservations.is_empty());
            if drained && !waiting && self.all_read() {
                break;
            }
        }
        let mut out = self.check();
        out.extend(
            self.store
                .read(|st| invariants::every_plan_decided(st, &self.published)),
        );
        out
    }

    /// Whether every governor has read to the end of the plan stream (a fresh step reads
    /// nothing new).
    fn all_read(&mut self) -> bool {
        (0..GOVERNORS).all(|g| matches!(self.governors[g].step(0), Ok(c) if c.acked == 0))
    }
}
