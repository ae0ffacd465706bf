//! The heat gate on Redis: a consumer in the `p26_heat_gate` group of `harvest.proposal`.

use super::{calibrated_fields, compare_line, heat_input, proposal_name, Enforcement, HEAT_GROUP};
use crate::inputs::InputsSource;
use crate::logfmt;
use crate::store::redis::RedisStore;
use crate::store::StoreError;
use crate::streams::consumer::{Entry, GroupConsumer};
use crate::streams::{group_member, next_batch, run_forever};
use governor_core::config::HeatMode;
use governor_core::heat::{calibrate, HarvestProposal};
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use governor_core::Config;
use std::collections::BTreeMap;
use std::sync::Arc;

const CALIBRATED_LUA: &str = include_str!("lua/calibrated.lua");

/// The stream and key names of the heat gate under a prefix.
#[derive(Clone, Debug)]
pub struct HeatKeys {
    /// Proposals in.
    pub proposals: String,
    /// Calibrated proposals out.
    pub calibrated: String,
    /// Counters: proposals, downgraded, rejected, and one per enforcement outcome.
    pub stats: String,
}

impl HeatKeys {
    /// The contract's names under `prefix`.
    pub fn new(prefix: &str) -> Self {
        HeatKeys {
            proposals: format!("{prefix}stream:harvest.proposal"),
            calibrated: format!("{prefix}stream:harvest.calibrated"),
            stats: format!("{prefix}heat:stats"),
        }
    }
}

/// One heat gate consumer with its own connections.
pub struct HeatWorker {
    cfg: Arc<Config>,
    store: Arc<RedisStore>,
    consumer: GroupConsumer,
    inputs: Arc<dyn InputsSource>,
    keys: HeatKeys,
    script: redis::Script,
    clock: fn() -> Timestamp,
    reclaim_idle_ms: u64,
}

impl HeatWorker {
    /// Connects (lazily) and makes sure the consumer group exists.
    pub fn connect(
        url: &str,
        cfg: Arc<Config>,
        inputs: Arc<dyn InputsSource>,
        name: &str,
        clock: fn() -> Timestamp,
        reclaim_idle_ms: u64,
    ) -> Result<Self, StoreError> {
        let keys = HeatKeys::new(&cfg.key_prefix);
        let (consumer, store) = group_member(url, &cfg, &keys.proposals, HEAT_GROUP, name)?;
        Ok(HeatWorker {
            cfg,
            store,
            consumer,
            inputs,
            keys,
            script: redis::Script::new(CALIBRATED_LUA),
            clock,
            reclaim_idle_ms,
        })
    }

    /// The raw `sigma` of `quantum:marketstate:{symbol}` for each symbol that has one.
    fn marketstate_sigma(
        &self,
        symbols: &[Symbol],
    ) -> Result<BTreeMap<Symbol, String>, StoreError> {
        if symbols.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut pipe = redis::pipe();
        for s in symbols {
            pipe.cmd("HGET")
                .arg(self.store.key(&format!("marketstate:{s}")))
                .arg("sigma");
        }
        let values: Vec<Option<String>> = self.store.with_conn(|c| pipe.query(c))?;
        Ok(symbols
            .iter()
            .cloned()
            .zip(values)
            .filter_map(|(s, v)| Some((s, v?)))
            .collect())
    }

    /// Dead-letters a proposal the parser refused, counts it and acknowledges it, atomically.
    fn reject(&self, entry: &Entry, error: String, now: Timestamp) -> Result<(), StoreError> {
        logfmt::line(
            "HEAT_REJECTED",
            &[("id", entry.id.clone()), ("error", error.clone())],
        );
        let mut xadd = redis::cmd("XADD");
        xadd.arg(self.store.key("stream:governor.deadletter"))
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*");
        for (k, v) in entry
            .fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "error" | "dead_lettered_at" | "source"))
        {
            xadd.arg(k).arg(v);
        }
        xadd.arg("error")
            .arg(&error)
            .arg("source")
            .arg("harvest.proposal")
            .arg("dead_lettered_at")
            .arg(now.millis());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .add_command(xadd)
            .ignore()
            .cmd("HINCRBY")
            .arg(&self.keys.stats)
            .arg("rejected")
            .arg(1)
            .ignore()
            .cmd("XACK")
            .arg(&self.keys.proposals)
            .arg(HEAT_GROUP)
            .arg(&entry.id)
            .ignore();
        self.store.with_conn(|c| pipe.query::<()>(c))
    }

    /// Calibrates, publishes (and in enforce mode writes) one parsed proposal.
    fn calibrate_one(
        &self,
        entry: &Entry,
        proposal: &HarvestProposal,
        now: Timestamp,
    ) -> Result<Enforcement, StoreError> {
        let inputs = self.inputs.inputs(now);
        let held: Vec<Symbol> = inputs
            .exchange
            .as_ref()
            .map(|x| x.positions.keys().cloned().collect())
            .unwrap_or_default();
        let sigma = self.marketstate_sigma(&held)?;
        // A ledger record that cannot be read may be a position the book does not show: the
        // heat of such a book is unknown, and the proposal passes on uncalibrated.
        let book_whole = !self
            .store
            .book(now)?
            .corrupt
            .iter()
            .any(|r| r.key.starts_with("position:ledger:"));
        let input = heat_input(
            inputs.exchange.as_ref().filter(|_| book_whole),
            &inputs.market,
            &sigma,
            now,
            self.cfg.regime.max_kline_age_secs,
        );
        let c = calibrate(proposal.action, &input, &self.cfg.heat);
        let fields = calibrated_fields(proposal, &c, self.cfg.heat.mode, &entry.id);
        let mut inv = self.script.prepare_invoke();
        inv.key(&self.keys.calibrated)
            .key(
                self.store
                    .key(&format!("harvest:proposal:{}", proposal.symbol)),
            )
            .key(&self.keys.proposals)
            .key(&self.keys.stats)
            .arg(HEAT_GROUP)
            .arg(&entry.id)
            .arg(u8::from(self.cfg.heat.mode == HeatMode::Enforce))
            .arg(proposal.action.as_str())
            .arg(c.calibrated.as_str())
            .arg(u8::from(c.is_calibrated()))
            .arg(u8::from(c.downgraded()));
        for (k, v) in &fields {
            inv.arg(k).arg(v);
        }
        let outcome: String = self.store.with_conn(|conn| inv.invoke(conn))?;
        let enforced = match outcome.as_str() {
            "shadow" => Enforcement::Shadow,
            "uncalibrated" => Enforcement::Uncalibrated,
            "written" => Enforcement::Written,
            "stale_proposal" => Enforcement::StaleProposal,
            "missing_proposal" => Enforcement::MissingProposal,
            other => {
                return Err(StoreError::corrupt(format!(
                    "calibrated.lua answered {other:?}"
                )))
            }
        };
        crate::logfmt::write_stdout(&compare_line(
            &proposal_name(proposal, &entry.id),
            &c,
            enforced,
        ));
        Ok(enforced)
    }

    /// Handles one batch; returns how many entries were handled.
    pub fn step(&mut self, block_ms: usize) -> Result<usize, StoreError> {
        let now = (self.clock)();
        let batch = next_batch(
            self.store.as_ref(),
            &mut self.consumer,
            self.reclaim_idle_ms,
            now,
            block_ms,
        )?;
        for entry in &batch {
            match entry.checked().and_then(HarvestProposal::parse) {
                Ok(p) => self.calibrate_one(entry, &p, now).map(drop)?,
                Err(rejection) => self.reject(entry, rejection.describe("proposal"), now)?,
            }
        }
        Ok(batch.len())
    }

    /// Runs until the process ends.
    pub fn run(mut self) {
        run_forever("heat", std::time::Duration::ZERO, || self.step(500));
    }
}

/// The counters of the heat gate (`{prefix}heat:stats`).
pub fn stats(store: &RedisStore) -> Result<BTreeMap<String, u64>, StoreError> {
    let key = HeatKeys::new(store.prefix()).stats;
    store.with_conn(|c| redis::cmd("HGETALL").arg(&key).query(c))
}

/// Runs the heat gate as its own process on Redis (`quantum-governor heat --redis URL`), with
/// the paper account and recorded market of `opts` as its view of positions and ATR.
pub fn serve(cfg: &Config, opts: &crate::service::ServeOptions) -> anyhow::Result<()> {
    use crate::{clock::wall_clock, streams::Health};
    let cfg = Arc::new(cfg.clone());
    let admin = Arc::new(RedisStore::open(
        &opts.redis_url,
        &cfg.key_prefix,
        cfg.block_ttl_secs,
        &format!("{}/admin", opts.name),
    )?);
    crate::streams::await_redis(&admin, "heat")?;
    let (inputs, _) = crate::service::account_and_market(&cfg, opts, admin)?;
    logfmt::line(
        "HEAT_GATE_STARTED",
        &[
            ("name", opts.name.clone()),
            (
                "mode",
                match cfg.heat.mode {
                    HeatMode::Shadow => "shadow",
                    HeatMode::Enforce => "enforce",
                }
                .to_owned(),
            ),
            ("prefix", cfg.key_prefix.clone()),
            (
                "exchange",
                match opts.exchange {
                    crate::service::ExchangeChoice::Paper => "paper",
                    crate::service::ExchangeChoice::Binance(_) => "binance",
                }
                .to_owned(),
            ),
        ],
    );
    let mut health = Health::default();
    let worker = loop {
        match HeatWorker::connect(
            &opts.redis_url,
            cfg.clone(),
            inputs.clone(),
            &opts.name,
            wall_clock,
            opts.reclaim_idle_ms,
        ) {
            Ok(w) => break w,
            Err(e) => {
                health.failed("heat", &e);
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
    };
    worker.run();
    Ok(())
}
