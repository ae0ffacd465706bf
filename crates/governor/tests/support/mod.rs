//! A small world for scenario tests: a governor on the embedded store, synthetic but
//! realistic hourly markets with controlled correlation, and helpers to open, close and fill.
#![allow(dead_code)] // each test file uses its own subset of the helpers

pub mod browser;
pub mod embedded_server;
pub mod executor_rig;
pub mod fake_binance;
pub mod race;
pub mod redis_cluster;
pub mod redis_server;

/// The `quantum-governor` binary, run from the repository root (so `data/klines` resolves),
/// with none of the caller's own settings or keys (`GOV_*`, `P26_MODE`, `BINANCE_*`).
pub fn governor_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quantum-governor"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for (k, _) in std::env::vars() {
        if k.starts_with("GOV_") || k.starts_with("BINANCE_") || k == "P26_MODE" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The stdout of a finished command that must have succeeded (its stderr says why not).
pub fn succeeded(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `serve` on the Redis at `redis_url` with its executor and one worker, trading on the local
/// Binance server at `binance_url` with the test keys; `env` adds settings.
pub fn serve_on_binance(
    redis_url: &str,
    binance_url: &str,
    env: &[(&str, &str)],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> std::process::Child {
    let mut cmd = governor_command();
    cmd.args([
        "serve",
        "--redis",
        redis_url,
        "--exchange",
        "binance",
        "--with-executor",
        "--workers",
        "1",
    ])
    .env("GOV_BINANCE_BASE_URL", binance_url)
    .env("BINANCE_TESTNET_API_KEY", fake_binance::KEY)
    .env("BINANCE_TESTNET_API_SECRET", fake_binance::SECRET);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(stdout).stderr(stderr).spawn().unwrap()
}

/// Writes the policy universe (`quantum:policy:current` → `universe_symbols`) on `url`.
pub fn set_universe(url: &str, symbols: &[&str]) {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("HSET")
        .arg("quantum:policy:current")
        .arg("universe_symbols")
        .arg(serde_json::to_string(symbols).unwrap())
        .query::<()>(&mut conn)
        .unwrap();
}

use governor_core::book::LedgerPosition;
use governor_core::market::brackets::{parse_binance, BracketTable, LeverageBrackets};
use governor_core::market::correlation::CorrelationCache;
use governor_core::market::{Kline, BAR_MS};
use governor_core::snapshot::{ExchangePosition, ExchangeState};
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Side, Symbol, TradingState};
use governor_core::{Config, Decision, Verdict};
use quantum_governor::market_data::summaries_at;
use quantum_governor::store::memory::StoreState;
use quantum_governor::store::redis::RedisStore;
use quantum_governor::{Governor, MarketInputs, MemoryStore, Submission};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The symbols of the test universe (BTCUSDT is the regime reference and is not traded).
pub const SYMBOLS: [&str; 13] = [
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "LTCUSDT",
    "DOTUSDT", "LINKUSDT", "AVAXUSDT", "TRXUSDT", "ATOMUSDT",
];

/// BTCUSDT's real leverage brackets, from the bundled data file: the tiers every synthetic
/// test symbol trades under (the tests need tiers for symbols Binance never listed).
pub fn btc_brackets() -> LeverageBrackets {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/klines/leverage-brackets.json"),
    )
    .expect("the bundled bracket file");
    parse_binance(&text).expect("valid tiers")[&sym("BTCUSDT")].clone()
}

/// `symbols`, each with BTCUSDT's tiers.
pub fn brackets_for<'a>(symbols: impl IntoIterator<Item = &'a Symbol>) -> BracketTable {
    let tiers = btc_brackets();
    symbols
        .into_iter()
        .map(|s| (s.clone(), tiers.clone()))
        .collect()
}

/// Bars per synthetic series.
pub const BARS: usize = 240;

pub fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

pub fn pid(s: &str) -> PlanId {
    PlanId::parse(s).unwrap()
}

/// A deterministic generator of roughly normal draws (sum of uniforms), one per seed.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

/// Hourly klines whose log returns are `drift + vol × (w × common + √(1-w²) × own)`.
pub fn series(
    start: f64,
    drift: f64,
    vol: f64,
    common: &[f64],
    w: f64,
    own_seed: u64,
) -> Vec<Kline> {
    let mut own = Noise::new(own_seed);
    let mut price = start;
    let mut out = Vec::with_capacity(common.len());
    for (i, c) in common.iter().enumerate() {
        let r = drift + vol * (w * c + (1.0 - w * w).sqrt() * own.normal());
        let open = price;
        price *= r.exp();
        out.push(Kline {
            open_time: Timestamp(i as i64 * BAR_MS),
            open,
            high: open.max(price) * 1.001,
            low: open.min(price) * 0.999,
            close: price,
            volume: 1.0,
        });
    }
    out
}

/// The regime the reference symbol shows.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Market {
    /// BTC drifts +0.1 %/h with little noise: RANGE, 4 slots.
    Range,
    /// BTC climbs +0.5 %/h: TREND_STRONG, 6 slots.
    TrendStrong,
}

pub fn klines(market: Market) -> BTreeMap<Symbol, Vec<Kline>> {
    let mut common = Noise::new(7);
    let common: Vec<f64> = (0..BARS).map(|_| common.normal()).collect();
    let mut out = BTreeMap::new();
    let btc_drift = match market {
        Market::Range => 0.001,
        Market::TrendStrong => 0.005,
    };
    out.insert(
        sym("BTCUSDT"),
        series(100.0, btc_drift, 0.0003, &common, 0.0, 1),
    );
    for (i, s) in SYMBOLS.iter().enumerate().skip(1) {
        // Independent series: pairwise correlations stay far below the 0.80 cap.
        out.insert(
            sym(s),
            series(10.0 + i as f64, 0.0, 0.004, &common, 0.0, 100 + i as u64),
        );
    }
    out
}

/// What a scenario needs to see and set in a store besides the governor's own calls: read the
/// whole state back, and write what operators and other services write.
pub trait Inspect: Send + Sync {
    fn state_at(&self, now: Timestamp) -> StoreState;
    fn set_policy(&self, raw: Option<&str>);
    fn set_trading_state(&self, state: TradingState);
    fn put_position(&self, symbol: &Symbol, p: &LedgerPosition);
}

impl Inspect for MemoryStore {
    fn state_at(&self, _now: Timestamp) -> StoreState {
        self.state()
    }
    fn set_policy(&self, raw: Option<&str>) {
        self.update(|st| st.policy_universe = raw.map(str::to_owned));
    }
    fn set_trading_state(&self, state: TradingState) {
        self.update(|st| st.trading_state = state);
    }
    fn put_position(&self, symbol: &Symbol, p: &LedgerPosition) {
        self.update(|st| st.book_mut().positions.insert(symbol.clone(), p.clone()));
    }
}

impl Inspect for RedisStore {
    fn state_at(&self, now: Timestamp) -> StoreState {
        self.state(now).expect("redis answers")
    }
    fn set_policy(&self, raw: Option<&str>) {
        self.set_policy_universe(raw).expect("redis answers");
    }
    fn set_trading_state(&self, state: TradingState) {
        RedisStore::set_trading_state(self, state).expect("redis answers");
    }
    fn put_position(&self, symbol: &Symbol, p: &LedgerPosition) {
        self.put_ledger_position(symbol, p).expect("redis answers");
    }
}

/// A governor world at the close of the last synthetic bar.
pub struct World {
    pub gov: Governor,
    pub inspect: Arc<dyn Inspect>,
    /// The embedded store, when the world runs on it.
    pub mem: Option<Arc<MemoryStore>>,
    /// The Redis server, when the world runs on Redis (stopped with the world).
    pub redis: Option<redis_server::RedisServer>,
    /// The exchange's positions: kept apart from the ledger, as a real exchange is.
    pub exchange: RefCell<BTreeMap<Symbol, ExchangePosition>>,
    pub klines: BTreeMap<Symbol, Vec<Kline>>,
    pub equity: f64,
    pub exchange_down: bool,
    pub per_decision_correlation: bool,
    /// Symbols whose leverage brackets the market does not know.
    pub no_brackets: Vec<Symbol>,
    pub now: Timestamp,
}

impl World {
    pub fn new(cfg: Config) -> World {
        Self::with_market(cfg, Market::Range)
    }

    pub fn with_market(cfg: Config, market: Market) -> World {
        let store = Arc::new(MemoryStore::new(cfg.block_ttl_secs));
        Self::assemble(cfg, market, store.clone(), store.clone(), Some(store), None)
    }

    /// The same world on a real redis-server of its own.
    pub fn on_redis(cfg: Config) -> World {
        Self::on_redis_with_market(cfg, Market::Range)
    }

    pub fn on_redis_with_market(cfg: Config, market: Market) -> World {
        let server = redis_server::RedisServer::start();
        let store = Arc::new(
            RedisStore::open(
                &server.url(),
                "qgtest:{acct1}:",
                cfg.block_ttl_secs,
                "test-gov",
            )
            .unwrap(),
        );
        Self::assemble(cfg, market, store.clone(), store, None, Some(server))
    }

    fn assemble(
        cfg: Config,
        market: Market,
        store: Arc<dyn quantum_governor::store::StateStore>,
        inspect: Arc<dyn Inspect>,
        mem: Option<Arc<MemoryStore>>,
        redis: Option<redis_server::RedisServer>,
    ) -> World {
        let universe: Vec<&str> = SYMBOLS.to_vec();
        inspect.set_policy(Some(&serde_json::to_string(&universe).unwrap()));
        World {
            gov: Governor::new(Arc::new(cfg), store),
            inspect,
            mem,
            redis,
            exchange: RefCell::new(BTreeMap::new()),
            klines: klines(market),
            equity: 10_000.0,
            exchange_down: false,
            per_decision_correlation: false,
            no_brackets: Vec::new(),
            now: Timestamp(BARS as i64 * BAR_MS),
        }
    }

    /// The embedded store (tests that drive it directly).
    pub fn store(&self) -> &MemoryStore {
        self.mem
            .as_ref()
            .expect("this test runs on the embedded store")
    }

    /// The whole state, read back from whichever store runs.
    pub fn state(&self) -> StoreState {
        self.inspect.state_at(self.now)
    }

    pub fn mark(&self, s: &str) -> f64 {
        self.klines[&sym(s)].last().unwrap().close
    }

    /// The exchange's view, positions marked at the last close.
    pub fn inputs(&self) -> MarketInputs {
        let positions = self
            .exchange
            .borrow()
            .iter()
            .map(|(s, p)| {
                let mark = self
                    .klines
                    .get(s)
                    .and_then(|k| k.last())
                    .map_or(p.entry_price, |k| k.close);
                (
                    s.clone(),
                    ExchangePosition {
                        mark_price: mark,
                        ..p.clone()
                    },
                )
            })
            .collect();
        MarketInputs {
            exchange: (!self.exchange_down).then_some(ExchangeState {
                equity_usdt: self.equity,
                positions,
                clock: governor_core::snapshot::ExchangeClock::Local,
            }),
            market: summaries_at(&self.klines, &self.brackets(), self.now, 400).into(),
            // The service computes correlations once per bar; `per_decision_correlation` makes
            // the gate compute them itself, the path taken when no cache is given.
            correlations: (!self.per_decision_correlation).then(|| {
                Arc::new(CorrelationCache::build(
                    &summaries_at(&self.klines, &self.brackets(), self.now, 400),
                    100,
                ))
            }),
        }
    }

    /// Every symbol's tiers (BTCUSDT's), unless a test took a symbol's away.
    fn brackets(&self) -> BracketTable {
        brackets_for(
            self.klines
                .keys()
                .filter(|s| !self.no_brackets.contains(*s)),
        )
    }

    /// Puts a position in the ledger directly (an account that already holds it).
    pub fn hold(&self, s: &str, side: Side, notional: f64, entry_score: Option<f64>) {
        self.hold_at(s, side, notional, self.mark(s), entry_score, 2);
    }

    pub fn hold_at(
        &self,
        s: &str,
        side: Side,
        notional: f64,
        entry: f64,
        entry_score: Option<f64>,
        leverage: u32,
    ) {
        let qty = notional / self.mark(s);
        let opened_at = self.now.minus_secs(3600);
        let live = ExchangePosition {
            side,
            qty,
            entry_price: entry,
            mark_price: entry,
            leverage,
        };
        self.exchange.borrow_mut().insert(sym(s), live);
        let p = LedgerPosition {
            side,
            qty,
            entry_price: entry,
            leverage,
            opened_at,
            entry_score,
            entry_fees: 0.0,
        };
        self.inspect.put_position(&sym(s), &p);
    }

    pub fn set_state(&self, state: TradingState) {
        self.inspect.set_trading_state(state);
    }

    pub fn set_policy(&self, raw: Option<&str>) {
        self.inspect.set_policy(raw);
    }

    pub fn advance(&mut self, secs: u64) {
        self.now = self.now.plus_secs(secs);
    }

    /// Lets the store expire what time has ended (reservations, locks).
    pub fn tick(&self) {
        self.gov.tick(self.now).expect("the store answers");
    }

    pub fn submit(&self, fields: &[(&str, &str)]) -> Submission {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        self.gov.submit(&fields, &self.inputs(), self.now)
    }

    /// An open worth `notional` USDT at the current mark.
    pub fn open(
        &self,
        id: &str,
        s: &str,
        side: Side,
        notional: f64,
        score: Option<f64>,
    ) -> Decision {
        let qty = (notional / self.mark(s)).to_string();
        let score = score.map(|x| x.to_string());
        let action = match side {
            Side::Long => "OPEN_LONG",
            Side::Short => "OPEN_SHORT",
        };
        let mut f = vec![
            ("plan_id", id),
            ("symbol", s),
            ("action", action),
            ("decision", "EXECUTE"),
            ("qty", qty.as_str()),
        ];
        if let Some(score) = &score {
            f.push(("score", score));
        }
        decided(self.submit(&f))
    }

    pub fn close(&self, id: &str, s: &str, action: &str) -> Decision {
        decided(self.submit(&[
            ("plan_id", id),
            ("symbol", s),
            ("action", action),
            ("decision", "EXECUTE"),
        ]))
    }

    /// Reports the permitted order of `id` as executed at the mark.
    pub fn fill(&self, id: &str) -> quantum_governor::governor::ResultOutcome {
        let st = self.state();
        let permit = st
            .permits
            .get(&pid(id))
            .unwrap_or_else(|| panic!("no permit for {id}"));
        let mark = self.mark(permit.symbol.as_str());
        let price = mark.to_string();
        let qty = permit.qty.to_string();
        self.execute_on_exchange(&permit.symbol, &permit.action, permit.qty, mark);
        let reduce = (!permit.action.starts_with("OPEN")).to_string();
        let fields: Vec<(String, String)> = [
            ("plan_id", id),
            ("symbol", permit.symbol.as_str()),
            ("executed", "true"),
            ("reduceOnly", reduce.as_str()),
            ("action", permit.action.as_str()),
            ("filled_qty", qty.as_str()),
            ("avg_price", price.as_str()),
            ("ts", "0"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        self.gov
            .on_result(&fields, &self.inputs(), self.now)
            .expect("a well-formed result")
    }

    /// What the exchange does when the order executes.
    pub fn execute_on_exchange(&self, symbol: &Symbol, action: &str, qty: f64, price: f64) {
        let mut ex = self.exchange.borrow_mut();
        let side = match action {
            "OPEN_LONG" => Some(Side::Long),
            "OPEN_SHORT" => Some(Side::Short),
            _ => None,
        };
        match side {
            Some(side) => {
                let p = ex.entry(symbol.clone()).or_insert(ExchangePosition {
                    side,
                    qty: 0.0,
                    entry_price: price,
                    mark_price: price,
                    leverage: 5,
                });
                p.qty += qty;
            }
            None => {
                let gone = ex.get_mut(symbol).map(|p| {
                    p.qty -= qty;
                    p.qty <= 1e-12
                });
                if gone == Some(true) {
                    ex.remove(symbol);
                }
            }
        }
    }

    pub fn events(&self, kind: &str) -> usize {
        self.state()
            .events
            .iter()
            .filter(|e| e.event == kind)
            .count()
    }
}

pub fn decided(s: Submission) -> Decision {
    match s {
        Submission::Decided { decision, .. } => *decision,
        other => panic!("expected a decision, got {other:?}"),
    }
}

pub fn reason(d: &Decision) -> &'static str {
    match &d.verdict {
        Verdict::Block { reason, .. } => reason.code(),
        Verdict::Pending { .. } => "pending",
        Verdict::Allow { .. } => "allow",
        Verdict::Skip { .. } => "skip",
    }
}

/// The trace line of `gate`, as JSON.
pub fn trace_line(d: &Decision, gate: &str) -> serde_json::Value {
    let trace: serde_json::Value = serde_json::from_str(&d.trace.to_json()).unwrap();
    trace
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["gate"] == gate)
        .cloned()
        .unwrap_or_else(|| panic!("no {gate} line in {trace}"))
}

/// The traded symbols of the Redis tests and benchmark: 30, independent.
pub fn thirty_symbols() -> Vec<String> {
    (0..30).map(|i| format!("S{i:02}USDT")).collect()
}

/// Writes 400 hourly bars of BTCUSDT (drifting gently: RANGE, 4 slots) and the 30 symbols as
/// `<SYMBOL>-1h.csv` files, the format `serve --data` reads, with `leverage-brackets.json`
/// giving each BTCUSDT's tiers. Returns every symbol written.
pub fn write_thirty_symbols(dir: &std::path::Path) -> Vec<String> {
    let mut common = Noise::new(3);
    let common: Vec<f64> = (0..400).map(|_| common.normal()).collect();
    let mut names = vec!["BTCUSDT".to_owned()];
    names.extend(thirty_symbols());
    for (i, s) in names.iter().enumerate() {
        let klines = if i == 0 {
            series(100.0, 0.001, 0.0003, &common, 0.0, 1)
        } else {
            series(9.0 + i as f64, 0.0, 0.004, &common, 0.0, 999 + i as u64)
        };
        let mut csv = String::from("open_time_ms,open,high,low,close,volume\n");
        for k in klines {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                k.open_time.millis(),
                k.open,
                k.high,
                k.low,
                k.close,
                k.volume
            ));
        }
        std::fs::write(dir.join(format!("{s}-1h.csv")), csv).unwrap();
    }
    let tiers = serde_json::to_value(btc_brackets()).unwrap();
    let file: Vec<serde_json::Value> = names
        .iter()
        .map(|s| serde_json::json!({ "symbol": s, "brackets": tiers }))
        .collect();
    std::fs::write(
        dir.join("leverage-brackets.json"),
        serde_json::to_string(&file).unwrap(),
    )
    .unwrap();
    names
}

/// Where a scenario runs: the embedded store, or a real redis-server started for it.
pub enum Stores {
    Memory,
    Redis,
}

impl Stores {
    pub fn world(&self, cfg: Config) -> World {
        self.world_market(cfg, Market::Range)
    }

    pub fn world_market(&self, cfg: Config, market: Market) -> World {
        match self {
            Stores::Memory => World::with_market(cfg, market),
            Stores::Redis => World::on_redis_with_market(cfg, market),
        }
    }
}

/// Runs each named scenario on both stores, with the same expectations.
#[allow(unused_macros)] // test files that run on one store only do not use it
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name(&super::Stores::Memory) } )*
        }
        mod redis {
            $( #[test] fn $name() { super::$name(&super::Stores::Redis) } )*
        }
    };
}
