//! An executor's world for end-to-end tests: a real redis-server, the local Binance server, a
//! governor plan worker deciding on Binance's market data, and executors placing orders under
//! its permits, each with the outcomes it reported.

use super::fake_binance::{FakeBinance, KEY, SECRET};
use super::redis_server::RedisServer;
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use governor_core::Config;
use quantum_governor::clock::wall_clock;
use quantum_governor::exchange::binance::market::BinanceMarket;
use quantum_governor::exchange::binance::{BinanceClient, BinanceVenue, Credentials};
use quantum_governor::executor::{Executor, ExecutorOptions, Outcome};
use quantum_governor::inputs::InputsSource;
use quantum_governor::service::workers::PlanWorker;
use quantum_governor::store::redis::RedisStore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const UNIVERSE: [&str; 3] = ["ETHUSDT", "SOLUSDT", "BNBUSDT"];

/// A clock 61 s ahead: every permit (TTL 60 s) has expired by it.
pub fn late_clock() -> Timestamp {
    Timestamp(wall_clock().millis() + 61_000)
}

/// The world; dropping it stops every thread it started.
pub struct Rig {
    pub redis: RedisServer,
    pub fake: FakeBinance,
    pub cfg: Arc<Config>,
    pub venue: BinanceVenue,
    pub stop: Arc<AtomicBool>,
    pub threads: Vec<std::thread::JoinHandle<()>>,
    /// (executor, entry id, outcome) as the executors reported them.
    pub outcomes: Arc<Mutex<Vec<(String, String, Outcome)>>>,
}

impl Rig {
    /// The default world: permissive cadence and correlation, Binance's defaults.
    pub fn new() -> Rig {
        Rig::with(|_| {}, |c| c)
    }

    /// A world whose config and Binance client the test adjusts.
    pub fn with(
        tweak_cfg: impl FnOnce(&mut Config),
        tweak_client: impl FnOnce(BinanceClient) -> BinanceClient,
    ) -> Rig {
        Rig::build(tweak_cfg, tweak_client, |_| {})
    }

    /// A world whose config, Binance client and Binance stand-in (before the governor first
    /// asks it anything) the test adjusts.
    pub fn build(
        tweak_cfg: impl FnOnce(&mut Config),
        tweak_client: impl FnOnce(BinanceClient) -> BinanceClient,
        tweak_fake: impl FnOnce(&FakeBinance),
    ) -> Rig {
        let redis = RedisServer::start();
        let fake = FakeBinance::start(Some(&std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/klines"
        ))));
        let mut cfg = Config::default();
        cfg.cadence.max_exec_per_5min = 100;
        cfg.cadence.max_exec_per_hour = 100;
        cfg.cadence.symbol_cooldown_secs = 0;
        cfg.correlation.max = 1.0;
        tweak_cfg(&mut cfg);
        tweak_fake(&fake);
        let venue = BinanceVenue {
            client: Arc::new(tweak_client(BinanceClient::new(
                &fake.url,
                Some(Credentials::new(KEY, SECRET)),
            ))),
        };
        super::set_universe(&redis.url(), &UNIVERSE);
        let mut rig = Rig {
            redis,
            fake,
            cfg: Arc::new(cfg),
            venue,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            outcomes: Arc::default(),
        };
        rig.start_governor();
        rig
    }

    pub fn start_governor(&mut self) {
        let symbols: Vec<Symbol> = UNIVERSE
            .iter()
            .chain(["BTCUSDT"].iter())
            .map(|s| Symbol::parse(s).unwrap())
            .collect();
        // The governor's market data has a client of its own: a ban or a fault the test
        // provokes on the executor's requests does not blind the governor.
        let own = BinanceVenue {
            client: Arc::new(BinanceClient::new(
                &self.fake.url,
                Some(Credentials::new(KEY, SECRET)),
            )),
        };
        let inputs: Arc<dyn InputsSource> = Arc::new(BinanceMarket::new(
            own,
            Arc::new(move || symbols.clone()),
            100,
        ));
        let mut worker =
            PlanWorker::connect(&self.redis.url(), self.cfg.clone(), inputs, "gov-1", 30_000)
                .unwrap();
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                worker.step(100).unwrap();
            }
        }));
    }

    /// Starts an executor in `group`; the flag it returns stops it.
    pub fn start_executor(
        &mut self,
        group: &str,
        name: &str,
        clock: fn() -> Timestamp,
    ) -> Arc<AtomicBool> {
        let opts = ExecutorOptions {
            permit_wait: Duration::from_secs(5),
            group: group.to_owned(),
            ..ExecutorOptions::default()
        };
        let mut ex = Executor::connect(
            &self.redis.url(),
            self.cfg.clone(),
            self.venue.clone(),
            name,
            opts,
            clock,
        )
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (own_stop, all_stop, outcomes, name) = (
            stop.clone(),
            self.stop.clone(),
            self.outcomes.clone(),
            name.to_owned(),
        );
        self.threads.push(std::thread::spawn(move || {
            while !own_stop.load(Ordering::Relaxed) && !all_stop.load(Ordering::Relaxed) {
                for (id, o) in ex.step(100).unwrap() {
                    outcomes.lock().unwrap().push((name.clone(), id, o));
                }
            }
        }));
        stop
    }

    pub fn plan(&self, fields: &[(&str, &str)]) {
        let mut conn = redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let mut cmd = redis::cmd("XADD");
        cmd.arg("quantum:stream:apply.plan").arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        cmd.query::<String>(&mut conn).unwrap();
    }

    pub fn open(&self, id: &str, symbol: &str, qty: &str) {
        self.plan(&[
            ("plan_id", id),
            ("symbol", symbol),
            ("action", "OPEN_LONG"),
            ("decision", "EXECUTE"),
            ("qty", qty),
            ("score", "70"),
        ]);
    }

    pub fn store(&self) -> RedisStore {
        RedisStore::open(&self.redis.url(), "quantum:", 3600, "reader").unwrap()
    }

    pub fn wait(&self, what: &str, ok: impl Fn(&Rig) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; outcomes {:?}",
                self.outcomes.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn results(&self) -> Vec<std::collections::BTreeMap<String, String>> {
        self.store()
            .read_stream("stream:apply.result")
            .unwrap()
            .into_iter()
            .map(|f| f.into_iter().collect())
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
