//! The service on Redis: governor workers in the `governor` consumer group of the plan stream,
//! the result monitor in `governor-results`, a sweeper for what expires, and a reconciler that
//! keeps the ledger equal to the exchange. Each worker has its own connections; any number of
//! processes can run side by side, the commit guards keep them from overcommitting. Ledger
//! positions other services write are found by the sweeper within a second; the sweeper also
//! runs the drawdown monitor (equity peaks, halt and auto-resume).
//!
//! While Redis is unreachable nothing is acknowledged and nothing is permitted: every worker
//! logs `STORE_UNAVAILABLE` once, retries, and says `STORE_RECOVERED` when Redis answers again.

pub mod accounts;
pub mod quarantine;
pub mod reconcile;
pub mod workers;

use crate::clock::wall_clock;
use crate::exchange::binance::setup;
use crate::exchange::paper_market;
use crate::inputs::InputsSource;
use crate::store::StoreError;
use crate::streams::{consumer, Streams, RESULT_GROUP};

/// What `serve` needs to start.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The Redis URL.
    pub redis_url: String,
    /// Recorded klines for paper mode.
    pub data_dir: std::path::PathBuf,
    /// Paper account capital (USDT).
    pub capital: f64,
    /// Plan workers in this process.
    pub workers: usize,
    /// This process's name in the consumer groups and the decision stream.
    pub name: String,
    /// Pending entries idle this long are reclaimed from their consumer.
    pub reclaim_idle_ms: u64,
    /// Serve the HTTP API and dashboard on this address too.
    pub http: Option<String>,
    /// The admin bearer token of trading-state changes (`GOV_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Where positions, equity, prices and orders come from.
    pub exchange: ExchangeChoice,
    /// Run a permit-checked executor in this process too.
    pub with_executor: bool,
}

/// The exchange behind `serve` and `execute`.
#[derive(Clone, Debug)]
pub enum ExchangeChoice {
    /// Recorded klines on the wall clock; the ledger mirror as the account; fills at the mark.
    Paper,
    /// Binance USDT-M futures.
    Binance(crate::exchange::binance::BinanceVenue),
}

/// The inputs every decision reads, and the paper market behind them in paper mode.
pub type AccountAndMarket = (
    std::sync::Arc<dyn InputsSource>,
    Option<std::sync::Arc<paper_market::PaperMarket>>,
);

/// Where the account (positions, equity, marks) and the market come from for every service on
/// Redis — the governor, the heat gate — so that each sees the same account: the paper market
/// on the wall clock (its account the ledger mirror, returned too for the paper executor), or
/// Binance's own account and klines.
pub fn account_and_market(
    cfg: &governor_core::Config,
    opts: &ServeOptions,
    store: std::sync::Arc<crate::store::redis::RedisStore>,
) -> anyhow::Result<AccountAndMarket> {
    Ok(match &opts.exchange {
        ExchangeChoice::Paper => {
            let market = std::sync::Arc::new(paper_market::PaperMarket::load(
                &opts.data_dir,
                wall_clock(),
                opts.capital,
                store,
                cfg.correlation.window as usize,
            )?);
            (market.clone(), Some(market))
        }
        ExchangeChoice::Binance(venue) => {
            let universe = move || store.policy();
            (
                setup::inputs(cfg, venue, std::sync::Arc::new(universe)),
                None,
            )
        }
    })
}

/// Runs the governor without a server: the embedded store, the paper market on the wall
/// clock, plans over HTTP (`POST /v1/plans`), the sweeper and drawdown monitor every second.
/// The policy universe is the recording's symbols.
pub fn serve_embedded(
    cfg: &governor_core::Config,
    opts: &ServeOptions,
    http: &str,
) -> anyhow::Result<()> {
    use crate::governor::Governor;
    use crate::store::memory::MemoryStore;
    use std::sync::Arc;
    let cfg = Arc::new(cfg.clone());
    let store = Arc::new(MemoryStore::new(cfg.block_ttl_secs));
    let market = paper_market::PaperMarket::load(
        &opts.data_dir,
        wall_clock(),
        opts.capital,
        store.clone(),
        cfg.correlation.window as usize,
    )?;
    let names: Vec<String> = market.symbols().iter().map(|s| s.to_string()).collect();
    store.update(|st| {
        st.policy_universe = Some(serde_json::to_string(&names).expect("strings serialize"))
    });
    let inputs: Arc<dyn InputsSource> = Arc::new(market);
    let gov = Governor::new(cfg.clone(), store);
    let (sweeper, sweeper_inputs) = (gov.clone(), inputs.clone());
    let supervisor = crate::supervisor::Supervisor::for_process();
    supervisor.spawn("sweeper", move || {
        crate::streams::run_forever("sweeper", std::time::Duration::from_secs(1), || {
            let now = wall_clock();
            sweeper.tick(now)?;
            sweeper.observe(&sweeper_inputs.inputs(now), now)
        })
    });
    crate::logfmt::line(
        "GOVERNOR_STARTED",
        &[
            ("name", opts.name.clone()),
            ("store", "embedded".to_owned()),
        ],
    );
    crate::server::serve_http(
        http,
        crate::server::AppState {
            gov,
            inputs,
            clock: wall_clock,
            admin_token: opts.admin_token.as_deref().map(Into::into),
            accepts_plans: true,
            redis: None,
            supervisor: Some(supervisor),
        },
    )
}

/// Keeps trying `connect` (Redis not up yet, a group not created yet) until it succeeds,
/// logging the store's state once per change.
fn connect_retrying<T>(who: &str, mut connect: impl FnMut() -> Result<T, StoreError>) -> T {
    let mut health = crate::streams::Health::default();
    loop {
        match connect() {
            Ok(t) => {
                health.ok(who);
                return t;
            }
            Err(e) => {
                health.failed(who, &e);
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
    }
}

/// One account of a `serve` process: its config (key prefix, limits), its options (exchange,
/// workers), and its name when the process serves several (`--accounts`).
#[derive(Clone, Debug)]
pub struct ServedAccount {
    /// The account's name from the accounts file; `None` for the only account of a process.
    pub name: Option<String>,
    /// Its config.
    pub cfg: governor_core::Config,
    /// Its options.
    pub opts: ServeOptions,
}

/// Runs the service until the process is stopped. Start-up problems that more time can fix
/// (Redis not up yet) are retried; bad data or config is an error.
pub fn serve(cfg: &governor_core::Config, opts: &ServeOptions) -> anyhow::Result<()> {
    serve_accounts(vec![ServedAccount {
        name: None,
        cfg: cfg.clone(),
        opts: opts.clone(),
    }])
}

/// Runs the service for every account until the process is stopped. Each account starts on a
/// thread of its own, so that one whose Redis is down at start does not hold up the others; an
/// account whose deployment is wrong (a prefix without a hash tag on a cluster, bad data) stops
/// the process with the reason. Every thread of every account is supervised together.
pub fn serve_accounts(accounts: Vec<ServedAccount>) -> anyhow::Result<()> {
    if accounts.len() > 1 && accounts.iter().any(|a| a.opts.http.is_some()) {
        anyhow::bail!(
            "--http serves one account: run it with that account's --config, not --accounts"
        );
    }
    // A slow reader of the logs must not hold up the decisions.
    let _flush_log_on_return = crate::logfmt::write_in_background();
    // Every thread is supervised: restarted after an end or a panic, shown on /readyz while
    // down, and the process exits (for its own supervisor to restart it) if one keeps dying.
    let supervisor = crate::supervisor::Supervisor::for_process();
    let (started, starts) = std::sync::mpsc::channel();
    for account in accounts {
        let (supervisor, started) = (supervisor.clone(), started.clone());
        std::thread::spawn(move || {
            let result = start_account(&account, &supervisor).map_err(|e| match &account.name {
                Some(name) => anyhow::anyhow!("account {name:?}: {e:#}"),
                None => e,
            });
            let _ = started.send(result);
        });
    }
    drop(started);
    let mut handles = Vec::new();
    for result in starts {
        handles.extend(result?);
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// Starts one account's threads under `supervisor`: plan workers, result monitor, heartbeat,
/// sweeper, HTTP, executor and reconciler; returns their handles.
fn start_account(
    account: &ServedAccount,
    supervisor: &crate::supervisor::Supervisor,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    use crate::governor::Governor;
    use crate::store::redis::RedisStore;
    use std::sync::Arc;
    let opts = &account.opts;
    let cfg = Arc::new(account.cfg.clone());
    // The name of one of the account's threads (the account's name first when it has one).
    let thread = |what: &str| match &account.name {
        Some(a) => format!("{a}/{what}"),
        None => what.to_owned(),
    };
    let open = |who: &str| -> anyhow::Result<Arc<RedisStore>> {
        Ok(Arc::new(RedisStore::open(
            &opts.redis_url,
            &cfg.key_prefix,
            cfg.block_ttl_secs,
            &format!("{}/{who}", opts.name),
        )?))
    };
    let admin = open("admin")?;
    crate::streams::await_redis(&admin, &thread("startup"))?;
    let (inputs, paper) = account_and_market(&cfg, opts, admin.clone())?;
    let mut health = crate::streams::Health::default();
    loop {
        let toml = cfg.to_toml();
        match admin.with_conn(|c| {
            redis::cmd("SET")
                .arg(admin.key("governor:config"))
                .arg(&toml)
                .query::<()>(c)
        }) {
            Ok(()) => break,
            Err(e) => {
                health.failed(&thread("startup"), &e);
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
    }
    let streams = Streams::new(&cfg.key_prefix);
    crate::logfmt::line(
        "GOVERNOR_STARTED",
        &[
            ("name", opts.name.clone()),
            ("workers", opts.workers.to_string()),
            ("prefix", cfg.key_prefix.clone()),
        ],
    );
    let mut handles = Vec::new();
    for i in 0..opts.workers {
        let name = format!("{}-w{i}", opts.name);
        let (url, cfg, inputs, reclaim) = (
            opts.redis_url.clone(),
            cfg.clone(),
            inputs.clone(),
            opts.reclaim_idle_ms,
        );
        handles.push(supervisor.spawn(&thread(&name), move || {
            let mut worker = connect_retrying(&name, || {
                workers::PlanWorker::connect(&url, cfg.clone(), inputs.clone(), &name, reclaim)
            });
            worker.consumer.enable_takeover(&cfg.key_prefix);
            worker.run()
        }));
    }
    let results_store = open("results")?;
    {
        let (url, stream, name) = (
            opts.redis_url.clone(),
            streams.results.clone(),
            format!("{}-results", opts.name),
        );
        let (cfg, inputs, reclaim) = (cfg.clone(), inputs.clone(), opts.reclaim_idle_ms);
        let prefix = cfg.key_prefix.clone();
        handles.push(supervisor.spawn(&thread("results"), move || {
            let consumer = connect_retrying("results", || {
                let mut c = consumer::GroupConsumer::new(&url, &stream, RESULT_GROUP, &name)?;
                c.ensure_group()?;
                c.enable_takeover(&prefix);
                Ok(c)
            });
            workers::ResultWorker {
                gov: Governor::new(cfg.clone(), results_store.clone()),
                consumer,
                inputs: inputs.clone(),
                clock: wall_clock,
                reclaim_idle_ms: reclaim,
            }
            .run()
        }));
    }
    {
        // One heartbeat per consumer of this process, kept by a thread of its own: the
        // other governors take a dead process's pending entries over within seconds.
        let mut consumers: Vec<String> = (0..opts.workers)
            .map(|i| format!("{}-w{i}", opts.name))
            .collect();
        consumers.push(format!("{}-results", opts.name));
        let target = crate::store::redis::link::RedisTarget::parse(&opts.redis_url)?;
        let prefix = cfg.key_prefix.clone();
        handles.push(supervisor.spawn(&thread("heartbeat"), move || {
            crate::streams::heartbeat::run(
                &target,
                &prefix,
                &consumers,
                crate::streams::heartbeat::HEARTBEAT_TTL_MS,
            )
        }));
    }
    let sweeper = open("sweeper")?;
    let monitor = Governor::new(cfg.clone(), sweeper.clone());
    let monitor_inputs = inputs.clone();
    let mut reporter = quarantine::QuarantineReporter::default();
    handles.push(supervisor.spawn(&thread("sweeper"), move || {
        crate::streams::run_forever("sweeper", std::time::Duration::from_secs(1), || {
            let now = wall_clock();
            crate::store::StateStore::expire(sweeper.as_ref(), now)?;
            monitor.observe(&monitor_inputs.inputs(now), now)?;
            let index = sweeper.refresh_ledger_index()?;
            let book = sweeper.book(now)?;
            reporter.report(&sweeper, &book.corrupt, &index.unreadable, now)
        })
    }));
    if let Some(addr) = opts.http.clone() {
        let state = crate::server::AppState {
            gov: Governor::new(cfg.clone(), open("http")?),
            inputs: inputs.clone(),
            clock: wall_clock,
            admin_token: opts.admin_token.as_deref().map(Into::into),
            accepts_plans: false,
            redis: Some(admin.clone()),
            supervisor: Some(supervisor.clone()),
        };
        handles.push(supervisor.spawn(&thread("http"), move || {
            if let Err(e) = crate::server::serve_http(&addr, state.clone()) {
                crate::logfmt::line("HTTP_FAILED", &[("error", e.to_string())]);
            }
        }));
    }
    let venue = {
        let (exchange, paper) = (opts.exchange.clone(), paper.clone());
        move || -> Box<dyn crate::exchange::Exchange + Send + Sync> {
            match (&exchange, &paper) {
                (ExchangeChoice::Binance(venue), _) => Box::new(venue.clone()),
                (ExchangeChoice::Paper, Some(market)) => Box::new(
                    crate::exchange::paper_live::LivePaper::new(market.clone(), wall_clock),
                ),
                (ExchangeChoice::Paper, None) => {
                    unreachable!("paper mode loads the paper market")
                }
            }
        }
    };
    if opts.with_executor {
        let name = format!("{}-executor", opts.name);
        let executor_opts = crate::executor::ExecutorOptions {
            reclaim_idle_ms: opts.reclaim_idle_ms,
            ..Default::default()
        };
        let (url, cfg, venue) = (opts.redis_url.clone(), cfg.clone(), venue.clone());
        handles.push(supervisor.spawn(&thread(&name), move || {
            connect_retrying(&name, || {
                crate::executor::Executor::connect(
                    &url,
                    cfg.clone(),
                    venue(),
                    &name,
                    executor_opts.clone(),
                    wall_clock,
                )
            })
            .run()
        }));
    }
    let reconciler = open("reconciler")?;
    let reconciler_venue = venue();
    let reconciler_cfg = cfg.clone();
    handles.push(supervisor.spawn(&thread("reconciler"), move || {
        crate::streams::run_forever("reconciler", std::time::Duration::from_secs(5), || {
            reconcile::reconcile_once(
                &reconciler,
                &reconciler_venue,
                &reconciler_cfg,
                wall_clock(),
            )
        })
    }));
    Ok(handles)
}
