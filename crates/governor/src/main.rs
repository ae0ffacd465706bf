//! The `quantum-governor` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use governor_core::time::Timestamp;
use governor_core::Config;
use quantum_governor::civil;
use quantum_governor::evaluate::evaluate;
use quantum_governor::replay::{self, ReplayOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Pre-trade risk governor for Binance USDT-M perpetuals.
#[derive(Parser)]
#[command(name = "quantum-governor", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: replay recorded klines through sample signals and the whole governed
    /// pipeline (embedded store, paper exchange), side by side with the same signals
    /// ungoverned; prints a summary and writes report.html and decisions.jsonl.
    Replay {
        /// A directory of <SYMBOL>-1h.csv files.
        #[arg(long, default_value = "data/klines")]
        data: PathBuf,
        /// A TOML config file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where report.html and decisions.jsonl go.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// First bar close to replay: YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or epoch ms.
        #[arg(long, value_parser = civil::parse_utc)]
        from: Option<Timestamp>,
        /// Last bar close to replay (same formats).
        #[arg(long, value_parser = civil::parse_utc)]
        to: Option<Timestamp>,
        /// Starting capital of both accounts, in USDT.
        #[arg(long, default_value_t = 13_661.0)]
        capital: f64,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// The portfolio heat gate on the close proposals: off, shadow (record what it would
        /// change) or enforce. Unless off, the report compares enforce against off.
        #[arg(long, value_enum, default_value_t = replay::HeatReplay::Shadow)]
        heat: replay::HeatReplay,
        /// The leverage the sample signals ask for (1–125): both accounts trade it, so a high
        /// one shows what over-leverage does to the ungoverned account.
        #[arg(long, default_value_t = 5)]
        signal_leverage: u32,
        /// Sweep a config key over values, KEY=V1,V2,… (repeat for a grid, at most 256 runs):
        /// writes sweep.csv and each run's journal under runs/ instead of one replay.
        #[arg(long)]
        sweep: Vec<String>,
        /// Threads for a sweep (default: every core). The results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// The deployment's recorded plans (`plans export` output), played at their own times
        /// instead of the sample signals: both accounts trade them.
        #[arg(long)]
        plans: Option<PathBuf>,
        /// A second TOML config: the same data and plans are replayed under it too, and the
        /// report's config diff lists every plan it decides differently (environment
        /// variables override both files alike).
        #[arg(long, conflicts_with = "sweep")]
        candidate: Option<PathBuf>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The deployment's recorded plans.
    Plans {
        #[command(subcommand)]
        command: PlansCommand,
    },
    /// Calibrate settings on recorded history.
    Calibrate {
        #[command(subcommand)]
        command: CalibrateCommand,
    },
    /// The service. With --redis: governor workers in the `governor` consumer group, the
    /// result monitor, the sweeper and the reconciler. Without: the embedded store, plans over
    /// HTTP (POST /v1/plans). Paper exchange on recorded data; the HTTP API and dashboard on
    /// --http.
    Serve {
        /// The Redis URL, e.g. redis://127.0.0.1:6379/ (leave out to run embedded). On a Redis Cluster: any node's URL, or the nodes' URLs separated by commas; the key
        /// prefix must then carry a hash tag (quantum:{acct1}:).
        #[arg(long)]
        redis: Option<String>,
        /// Serve the HTTP API and the dashboard here (embedded mode: 127.0.0.1:8080 unless
        /// given; Redis mode: only when given).
        #[arg(long)]
        http: Option<String>,
        /// A TOML config file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve several accounts from this TOML file (`[[account]]`: name, key_prefix,
        /// api_key_env and api_secret_env, and a `config` table of overrides on top of --config
        /// and the environment). Redis mode only.
        #[arg(long, requires = "redis", conflicts_with = "http")]
        accounts: Option<PathBuf>,
        /// Where positions, equity and prices come from: `paper` (recorded data on the wall
        /// clock) or `binance` (USDT-M futures; key and secret from the environment).
        #[arg(long, default_value = "paper")]
        exchange: String,
        /// Run a permit-checked executor in this process too (Redis mode).
        #[arg(long)]
        with_executor: bool,
        /// Recorded klines for paper mode.
        #[arg(long, default_value = "data/klines")]
        data: PathBuf,
        /// Paper account capital in USDT.
        #[arg(long, default_value_t = 13_661.0)]
        capital: f64,
        /// Plan workers in this process (each with its own connections).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// This process's name in the consumer groups (default: quantum-governor-<pid>).
        #[arg(long)]
        name: Option<String>,
        /// Reclaim entries another consumer left pending for this long (ms). Keep it well above
        /// the slowest decision: a smaller value steals work still in flight.
        #[arg(long, default_value_t = quantum_governor::streams::RECLAIM_IDLE_MS)]
        reclaim_idle_ms: u64,
    },
    /// The portfolio heat gate (P2.6). With --redis: a consumer in the `p26_heat_gate` group
    /// of `harvest.proposal` (mode from P26_MODE / heat.mode). Without: calibrates a file of
    /// proposals (one JSON object of fields per line) against a state file, one JSON line out
    /// per line in; exits 1 when a proposal was refused.
    Heat {
        /// The Redis URL; leave out to run embedded on --proposals. On a Redis Cluster: any node's URL, or the nodes' URLs separated by commas; the key
        /// prefix must then carry a hash tag (quantum:{acct1}:).
        #[arg(long, conflicts_with_all = ["proposals", "state", "out"])]
        redis: Option<String>,
        /// A TOML config file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Recorded klines for the paper account and ATR (Redis mode).
        #[arg(long, default_value = "data/klines")]
        data: PathBuf,
        /// Paper account capital in USDT (Redis mode).
        #[arg(long, default_value_t = 13_661.0)]
        capital: f64,
        /// Where positions, equity and marks come from (Redis mode): `paper` (the ledger and
        /// recorded prices) or `binance` (the real account, as `serve --exchange binance`).
        #[arg(long, default_value = "paper")]
        exchange: String,
        /// This process's name in the consumer group (default: heat-<pid>).
        #[arg(long)]
        name: Option<String>,
        /// Reclaim entries another consumer left pending for this long (ms).
        #[arg(long, default_value_t = quantum_governor::streams::RECLAIM_IDLE_MS)]
        reclaim_idle_ms: u64,
        /// Embedded: the proposals, one JSON object of stream fields per line (`-`: stdin).
        #[arg(long, required_unless_present = "redis")]
        proposals: Option<PathBuf>,
        /// Embedded: the account and market (the evaluate format, plus `marketstate`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Embedded: where the calibrated lines go (default: stdout; logs go to stderr).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The permit-checked executor as its own process: consumes plans (group `executor`),
    /// takes each permit once, places the order, applies and publishes its result.
    Execute {
        /// The Redis URL. On a Redis Cluster: any node's URL, or the nodes' URLs separated by commas; the key
        /// prefix must then carry a hash tag (quantum:{acct1}:).
        #[arg(long)]
        redis: String,
        /// `paper` (fills at the recorded market's mark on the wall clock) or `binance`.
        #[arg(long, default_value = "paper")]
        exchange: String,
        /// A TOML config file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Recorded klines for paper mode.
        #[arg(long, default_value = "data/klines")]
        data: PathBuf,
        /// Paper account capital in USDT.
        #[arg(long, default_value_t = 13_661.0)]
        capital: f64,
        /// This process's name in the consumer group (default: executor-<pid>).
        #[arg(long)]
        name: Option<String>,
        /// How long to wait for the governor's permit (ms).
        #[arg(long, default_value_t = 5_000)]
        permit_wait_ms: u64,
        /// Reclaim entries another executor left pending for this long (ms).
        #[arg(long, default_value_t = quantum_governor::streams::RECLAIM_IDLE_MS)]
        reclaim_idle_ms: u64,
    },
    /// A past decision's trace as a table, gate by gate: from Redis, or from a replay journal.
    Explain {
        /// The plan id.
        plan_id: String,
        /// The Redis URL of the deployment. On a Redis Cluster: any node's URL, or the nodes' URLs separated by commas; the key
        /// prefix must then carry a hash tag (quantum:{acct1}:).
        #[arg(long, required_unless_present = "journal", conflicts_with = "journal")]
        redis: Option<String>,
        /// A replay journal (`out/decisions.jsonl`).
        #[arg(long)]
        journal: Option<PathBuf>,
        /// A TOML config file (for the key prefix; environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the record as JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Deterministic simulation: three governors and the result monitor running the service's
    /// own loops on simulated streams, over the embedded store, on a simulated clock, with faults
    /// injected between steps and the invariants checked after every step. The last line
    /// counts seeds, steps, faults by kind and `violations=V`; the exit code is 1 when V > 0.
    Sim {
        /// A directory of <SYMBOL>-1h.csv files (the market, frozen at the run's start).
        #[arg(long, default_value = "data/klines")]
        data: PathBuf,
        /// How many seeds to run, from --first-seed.
        #[arg(long, default_value_t = 10_000)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Run this one seed only, and print its whole log.
        #[arg(long)]
        seed: Option<u64>,
        /// Steps per seed before the faults stop.
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// The schedule seeds draw their steps from: 5 (the exchange's faults, the reconciler,
        /// duplicated and reordered messages, the store briefly out, three executors holding
        /// their permits across steps, one paused while the others go on), 4 (one executor,
        /// within a step), 3 (without the store's outages, reordering and pauses), 2 (without
        /// duplicated messages) or 1 (no exchange faults); a kept seed replays under the
        /// schedule it was found with.
        #[arg(long, default_value = "5", value_parser = quantum_governor::sim::world::Schedule::parse)]
        schedule: quantum_governor::sim::world::Schedule,
    },
    /// Decide one plan (JSON object of plan fields) against a state file; prints the decision
    /// and its trace as JSON. Commits nothing.
    Evaluate {
        /// The plan: a JSON object of stream fields.
        plan: PathBuf,
        /// The account and market to decide against (format in the README).
        #[arg(long)]
        state: Option<PathBuf>,
        /// A TOML config file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective config, or every invalid key with its value and allowed range.
    Check {
        /// A TOML config file (environment variables override it).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PlansCommand {
    /// Writes the plan stream (`<prefix>stream:apply.plan`) to stdout as JSON lines, each entry
    /// untouched: `{"id", "time", "fields": [[key, value], …]}` (a value that is not UTF-8 as
    /// `{"hex": …}`).
    Export {
        /// The Redis URL, e.g. redis://127.0.0.1:6379/. On a Redis Cluster: any node's URL, or the nodes' URLs separated by commas; the key
        /// prefix must then carry a hash tag (quantum:{acct1}:).
        #[arg(long)]
        redis: String,
        /// A TOML config file (environment variables override it): the key prefix.
        #[arg(long)]
        config: Option<PathBuf>,
        /// First entry time: YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or epoch ms.
        #[arg(long, value_parser = civil::parse_utc)]
        from: Option<Timestamp>,
        /// Last entry time (same formats, inclusive).
        #[arg(long, value_parser = civil::parse_utc)]
        to: Option<Timestamp>,
    },
}

#[derive(Subcommand)]
enum CalibrateCommand {
    /// Regime thresholds that give each targeted regime its share of the recorded history,
    /// printed as a `[regime]` snippet with the shares under the current and the calibrated
    /// thresholds side by side. Nothing is changed: paste the snippet into a config to use it.
    Regime {
        /// A directory of <SYMBOL>-1h.csv files.
        #[arg(long, default_value = "data/klines")]
        data: PathBuf,
        /// A TOML config file (environment variables override it): the current thresholds.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The symbol to read (default: regime.reference).
        #[arg(long)]
        symbol: Option<String>,
        /// Shares to aim for, e.g. TREND_STRONG=0.15,VOLATILITY_SPIKE=0.05,CHOP=0.30.
        #[arg(long, default_value = "")]
        target: String,
    },
}

/// File (if any) + the process environment → the effective config, or every problem.
fn load_config(
    file: Option<&Path>,
) -> anyhow::Result<Result<Config, Vec<governor_core::config::ConfigError>>> {
    let text = file
        .map(|p| {
            std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))
        })
        .transpose()?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    Ok(Config::load(text.as_deref(), &env))
}

fn config_or_exit(file: Option<&Path>) -> anyhow::Result<Result<Config, ExitCode>> {
    Ok(match load_config(file)? {
        Ok(c) => Ok(c),
        Err(errors) => {
            eprintln!("invalid configuration ({} problems):", errors.len());
            for e in errors {
                eprintln!("  {e}");
            }
            Err(ExitCode::from(2))
        }
    })
}

/// `replay --sweep`: every combination on all cores (or `threads`), a progress bar with the
/// time left, one line per finished run, and `sweep.csv`.
fn run_sweep(
    cfg: &Config,
    opts: &ReplayOptions,
    raw_axes: &[String],
    threads: Option<usize>,
    quiet: bool,
    started: std::time::Instant,
) -> anyhow::Result<ExitCode> {
    use replay::sweep::{sweep, Axis};
    let axes: Vec<Axis> = raw_axes
        .iter()
        .map(|a| Axis::parse(a).map_err(|e| anyhow::anyhow!(e)))
        .collect::<anyhow::Result<_>>()?;
    let runs: usize = axes.iter().map(|a| a.values.len()).product();
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(runs as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} sweep [{bar:40}] {pos}/{len} runs {elapsed} (eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    };
    let keys: Vec<&str> = axes.iter().map(|a| a.key.as_str()).collect();
    let opts = ReplayOptions {
        progress: false,
        ..opts.clone()
    };
    let swept = sweep(cfg, &axes, &opts, threads, &|i, row| {
        let set: Vec<String> = keys
            .iter()
            .zip(&row.values)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        bar.suspend(|| {
            println!(
                "run {i:03} {}: return {:+.2}%, max drawdown {:.2}%, liquidations {}",
                set.join(" "),
                row.return_pct * 100.0,
                row.max_drawdown * 100.0,
                row.liquidations
            )
        });
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let report = replay::frontier::write(&opts.out_dir, &axes, &swept)?;
    println!(
        "sweep: {} runs on {threads} threads\nsweep.csv: {}\nreport: {}\n({:.2} s)",
        swept.rows.len(),
        opts.out_dir.join("sweep.csv").display(),
        report.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `execute`: the executor on Redis with the chosen exchange, until the process ends.
#[allow(clippy::too_many_arguments)]
fn run_executor(
    cfg: &std::sync::Arc<Config>,
    redis: &str,
    exchange: &str,
    data: &Path,
    capital: f64,
    name: Option<String>,
    permit_wait_ms: u64,
    reclaim_idle_ms: u64,
) -> anyhow::Result<ExitCode> {
    use quantum_governor::clock::wall_clock;
    use quantum_governor::executor::{Executor, ExecutorOptions};
    let name = name.unwrap_or_else(|| format!("executor-{}", std::process::id()));
    let opts = ExecutorOptions {
        permit_wait: std::time::Duration::from_millis(permit_wait_ms),
        reclaim_idle_ms,
        ..ExecutorOptions::default()
    };
    quantum_governor::logfmt::line(
        "EXECUTOR_STARTED",
        &[("name", name.clone()), ("exchange", exchange.to_owned())],
    );
    let store = std::sync::Arc::new(quantum_governor::store::redis::RedisStore::open(
        redis,
        &cfg.key_prefix,
        cfg.block_ttl_secs,
        &name,
    )?);
    quantum_governor::streams::await_redis(&store, &name)?;
    match exchange {
        "binance" => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            let venue = quantum_governor::exchange::binance::setup::venue(cfg, &env)?;
            Executor::connect(redis, cfg.clone(), venue, &name, opts, wall_clock)?.run();
        }
        "paper" => {
            let market =
                std::sync::Arc::new(quantum_governor::exchange::paper_market::PaperMarket::load(
                    data,
                    wall_clock(),
                    capital,
                    store,
                    cfg.correlation.window as usize,
                )?);
            let venue = quantum_governor::exchange::paper_live::LivePaper::new(market, wall_clock);
            Executor::connect(redis, cfg.clone(), venue, &name, opts, wall_clock)?.run();
        }
        other => anyhow::bail!("--exchange {other}: `paper` or `binance`"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `heat` without Redis: a file of proposals against a state file.
fn run_heat_embedded(
    cfg: &Config,
    proposals: &Path,
    state: Option<PathBuf>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use std::io::BufReader;
    let state =
        quantum_governor::state_file::load(state.as_deref(), cfg.correlation.window as usize)?;
    let input: Box<dyn std::io::BufRead> = if proposals == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(proposals)
            .with_context(|| format!("reading {}", proposals.display()))?;
        Box::new(BufReader::new(file))
    };
    let sink: Box<dyn std::io::Write> = match &out {
        None => Box::new(std::io::stdout()),
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
    };
    let counts =
        quantum_governor::heat::embedded::run(cfg, &state, input, sink, std::io::stderr())?;
    eprintln!(
        "heat: {} calibrated ({} changed by the ladder), {} refused",
        counts.published, counts.downgraded, counts.rejected
    );
    Ok(if counts.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The exchange named by `--exchange`: `paper`, or `binance` (on Redis only).
fn exchange_choice(
    cfg: &governor_core::Config,
    name: &str,
    on_redis: bool,
) -> anyhow::Result<quantum_governor::service::ExchangeChoice> {
    match (name, on_redis) {
        ("paper", _) => Ok(quantum_governor::service::ExchangeChoice::Paper),
        ("binance", true) => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            Ok(quantum_governor::service::ExchangeChoice::Binance(
                quantum_governor::exchange::binance::setup::venue(cfg, &env)?,
            ))
        }
        ("binance", false) => {
            anyhow::bail!("--exchange binance needs --redis (embedded mode is paper only)")
        }
        (other, _) => anyhow::bail!("--exchange {other}: `paper` or `binance`"),
    }
}

/// `serve --accounts FILE`: every account of the file, each with its config (the process's with
/// its overrides) and its exchange (Binance with its own credentials, or paper).
fn serve_accounts(
    base: &Config,
    file: &Path,
    exchange: &str,
    opts: quantum_governor::service::ServeOptions,
) -> anyhow::Result<ExitCode> {
    use quantum_governor::service::{accounts, ExchangeChoice, ServedAccount};
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the accounts file {}", file.display()))?;
    let accounts = match accounts::load(&text, base) {
        Ok(a) => a,
        Err(errors) => {
            eprintln!(
                "invalid accounts file {} ({} problems):",
                file.display(),
                errors.len()
            );
            for e in errors {
                eprintln!("  {e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut served = Vec::new();
    for account in accounts {
        let exchange = match exchange {
            "paper" => ExchangeChoice::Paper,
            "binance" => {
                let env = account.exchange_env(&env).map_err(anyhow::Error::msg)?;
                ExchangeChoice::Binance(
                    quantum_governor::exchange::binance::setup::venue(&account.cfg, &env)
                        .with_context(|| format!("account {:?}", account.name))?,
                )
            }
            other => anyhow::bail!("--exchange {other}: `paper` or `binance`"),
        };
        served.push(ServedAccount {
            name: Some(account.name),
            cfg: account.cfg,
            opts: quantum_governor::service::ServeOptions {
                exchange,
                ..opts.clone()
            },
        });
    }
    quantum_governor::service::serve_accounts(served)?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            redis,
            http,
            config,
            accounts,
            exchange,
            with_executor,
            data,
            capital,
            workers,
            name,
            reclaim_idle_ms,
        } => {
            let cfg = match config_or_exit(config.as_deref())? {
                Ok(cfg) => cfg,
                Err(code) => return Ok(code),
            };
            if with_executor && redis.is_none() {
                anyhow::bail!(
                    "--with-executor needs --redis: the executor consumes the plan stream"
                );
            }
            if !(capital.is_finite() && capital > 0.0) || workers == 0 {
                anyhow::bail!("--capital must be a finite number above 0 and --workers at least 1");
            }
            let choice = match accounts {
                // Each account's own, from its credentials: see `serve_accounts`.
                Some(_) => quantum_governor::service::ExchangeChoice::Paper,
                None => exchange_choice(&cfg, &exchange, redis.is_some())?,
            };
            let admin_token = std::env::var("GOV_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            let opts = quantum_governor::service::ServeOptions {
                redis_url: redis.clone().unwrap_or_default(),
                data_dir: data,
                capital,
                workers,
                name: name.unwrap_or_else(|| format!("quantum-governor-{}", std::process::id())),
                reclaim_idle_ms,
                http: http.clone(),
                admin_token,
                exchange: choice,
                with_executor,
            };
            if let Some(file) = accounts {
                return serve_accounts(&cfg, &file, &exchange, opts);
            }
            match redis {
                Some(_) => quantum_governor::service::serve(&cfg, &opts)?,
                None => {
                    let addr = http.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
                    quantum_governor::service::serve_embedded(&cfg, &opts, &addr)?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            data,
            config,
            out,
            from,
            to,
            capital,
            quiet,
            heat,
            signal_leverage,
            sweep,
            threads,
            plans,
            candidate,
        } => {
            let cfg = match config_or_exit(config.as_deref())? {
                Ok(cfg) => cfg,
                Err(code) => return Ok(code),
            };
            if !(capital.is_finite() && capital > 0.0) {
                anyhow::bail!("--capital {capital}: must be a finite number of USDT above 0");
            }
            if !(1..=125).contains(&signal_leverage) {
                anyhow::bail!("--signal-leverage {signal_leverage}: must be from 1 to 125");
            }
            let defaults = ReplayOptions::default();
            let opts = ReplayOptions {
                signals: replay::SignalConfig {
                    leverage: signal_leverage,
                    ..defaults.signals
                },
                data_dir: data,
                out_dir: out.clone(),
                from,
                to,
                initial_equity: capital,
                progress: !quiet,
                heat,
                plans: match plans {
                    Some(path) => Some(std::sync::Arc::new(replay::recorded::RecordedPlans::load(
                        &path,
                    )?)),
                    None => None,
                },
                ..defaults
            };
            let started = std::time::Instant::now();
            if !sweep.is_empty() {
                return run_sweep(&cfg, &opts, &sweep, threads, quiet, started);
            }
            let recording = opts.load_recording()?;
            let (result, heat_compare) = replay::run_with_comparison(&recording, &cfg, &opts)?;
            let drawdown = replay::drawdown::compare(&recording, &cfg, &opts, &result)?;
            let candidate_diff = match &candidate {
                None => None,
                Some(path) => {
                    let candidate_cfg = match config_or_exit(Some(path))? {
                        Ok(c) => c,
                        Err(code) => return Ok(code),
                    };
                    Some(replay::config_diff::run_candidate(
                        &recording,
                        &cfg,
                        &candidate_cfg,
                        &opts,
                        &result,
                    )?)
                }
            };
            let summary = replay::summary::summarize(&result);
            let report = out.join("report.html");
            std::fs::write(
                &report,
                replay::report::render(
                    &result,
                    &summary,
                    &replay::report::Comparisons {
                        heat: heat_compare.clone(),
                        drawdown: Some(drawdown.clone()),
                        candidate: candidate_diff.clone(),
                    },
                ),
            )
            .with_context(|| format!("writing {}", report.display()))?;
            print!("{}", replay::summary::render(&summary, &result));
            println!(
                "drawdown halt (limit {:.1}%): shadow would have stopped {} opens; enforced it stopped {} and halted {} times; governed PnL shadow {:+.2} / enforced {:+.2}",
                drawdown.limit * 100.0,
                drawdown.shadow.opens_stopped,
                drawdown.enforce.opens_stopped,
                drawdown.enforce.halts,
                drawdown.shadow.account.pnl,
                drawdown.enforce.account.pnl
            );
            if !result.shadow_blocks.is_empty() {
                println!(
                    "gates in shadow would have blocked: {:?}",
                    result.shadow_blocks
                );
            }
            if let Some(d) = &candidate_diff {
                println!(
                    "candidate config: {} settings differ; {} of {} plans decided differently; governed PnL current {:+.2} / candidate {:+.2}, max drawdown {:.2}% / {:.2}% (journal: {})",
                    d.settings.len(),
                    d.changed.len(),
                    d.plans_compared,
                    d.current.pnl,
                    d.candidate.pnl,
                    d.current.max_drawdown * 100.0,
                    d.candidate.max_drawdown * 100.0,
                    out.join("candidate").join("decisions.jsonl").display()
                );
                for (transition, n) in &d.transitions {
                    println!("  {transition:<60} {n:>6}");
                }
            }
            if let Some(h) = &heat_compare {
                println!(
                    "heat gate ({:?}): {} proposals, {} would change; governed PnL off {:+.2} / enforced {:+.2}, max drawdown {:.2}% / {:.2}%",
                    h.mode,
                    h.proposals,
                    h.downgrades.values().sum::<usize>(),
                    h.off.pnl,
                    h.enforce.pnl,
                    h.off.max_drawdown * 100.0,
                    h.enforce.max_drawdown * 100.0
                );
            }
            println!(
                "report: {}\njournal: {}\n({:.2} s)",
                report.display(),
                result.journal.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Heat {
            redis,
            config,
            data,
            capital,
            exchange,
            name,
            reclaim_idle_ms,
            proposals,
            state,
            out,
        } => {
            let cfg = match config_or_exit(config.as_deref())? {
                Ok(cfg) => cfg,
                Err(code) => return Ok(code),
            };
            match (redis, proposals) {
                (Some(redis_url), _) => {
                    let opts = quantum_governor::service::ServeOptions {
                        redis_url,
                        data_dir: data,
                        capital,
                        workers: 1,
                        name: name.unwrap_or_else(|| format!("heat-{}", std::process::id())),
                        reclaim_idle_ms,
                        http: None,
                        admin_token: None,
                        exchange: exchange_choice(&cfg, &exchange, true)?,
                        with_executor: false,
                    };
                    quantum_governor::heat::redis::serve(&cfg, &opts)?;
                    Ok(ExitCode::SUCCESS)
                }
                (None, Some(proposals)) => run_heat_embedded(&cfg, &proposals, state, out),
                (None, None) => unreachable!("clap requires --proposals without --redis"),
            }
        }
        Command::Plans {
            command:
                PlansCommand::Export {
                    redis,
                    config,
                    from,
                    to,
                },
        } => {
            let cfg = match config_or_exit(config.as_deref())? {
                Ok(cfg) => cfg,
                Err(code) => return Ok(code),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = quantum_governor::plans_export::export(
                &redis,
                &cfg.key_prefix,
                from,
                to,
                &mut out,
            )?;
            std::io::Write::flush(&mut out)?;
            eprintln!("exported {n} plans");
            Ok(ExitCode::SUCCESS)
        }
        Command::Calibrate {
            command:
                CalibrateCommand::Regime {
                    data,
                    config,
                    symbol,
                    target,
                },
        } => {
            let cfg = match config_or_exit(config.as_deref())? {
                Ok(cfg) => cfg,
                Err(code) => return Ok(code),
            };
            let targets = governor_core::market::calibrate::Targets::parse(&target)
                .map_err(|e| anyhow::anyhow!("--target {e}"))?;
            let symbol = symbol
                .map(|s| {
                    governor_core::types::Symbol::parse(&s)
                        .map_err(|e| anyhow::anyhow!("--symbol {s:?}: {e}"))
                })
                .transpose()?;
            let c = quantum_governor::calibrate::regime(&data, &cfg.regime, symbol, targets)?;
            print!("{}", c.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match config_or_exit(file.as_deref())? {
            Ok(cfg) => {
                println!("# effective configuration (file, then environment overrides)");
                print!("{}", cfg.to_toml());
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        Command::Execute {
            redis,
            exchange,
            config,
            data,
            capital,
            name,
            permit_wait_ms,
            reclaim_idle_ms,
        } => {
            let cfg = match config_or_exit(config.as_deref())? {
                Ok(cfg) => std::sync::Arc::new(cfg),
                Err(code) => return Ok(code),
            };
            run_executor(
                &cfg,
                &redis,
                &exchange,
                &data,
                capital,
                name,
                permit_wait_ms,
                reclaim_idle_ms,
            )
        }
        Command::Explain {
            plan_id,
            redis,
            journal,
            config,
            json,
        } => {
            let record = match (redis, journal) {
                (_, Some(journal)) => quantum_governor::explain::from_journal(&journal, &plan_id)?,
                (Some(url), None) => {
                    let cfg = match config_or_exit(config.as_deref())? {
                        Ok(cfg) => cfg,
                        Err(code) => return Ok(code),
                    };
                    let store = quantum_governor::store::redis::RedisStore::open(
                        &url,
                        &cfg.key_prefix,
                        cfg.block_ttl_secs,
                        "explain",
                    )?;
                    let id = governor_core::types::PlanId::parse(&plan_id)
                        .map_err(|e| anyhow::anyhow!("plan id {plan_id:?}: {e}"))?;
                    quantum_governor::store::StateStore::decision(&store, &id)?
                        .map(|r| quantum_governor::journal::record_json(&r))
                }
                (None, None) => unreachable!("clap requires --redis or --journal"),
            };
            match record {
                Some(r) if json => println!("{}", serde_json::to_string_pretty(&r)?),
                Some(r) => print!("{}", quantum_governor::explain::render(&r)),
                None => {
                    eprintln!("no decision for plan id {plan_id:?}");
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim {
            data,
            seeds,
            first_seed,
            seed,
            steps,
            schedule,
        } => simulate(&data, schedule, seed, first_seed, seeds, steps),
        Command::Evaluate {
            plan,
            state,
            config,
        } => match config_or_exit(config.as_deref())? {
            Ok(cfg) => {
                let out = evaluate(&plan, state.as_deref(), &cfg)?;
                println!("{}", serde_json::to_string_pretty(&out)?);
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
    }
}

/// The `sim` command: one seed with its log, or many with the failures' seeds and steps.
fn simulate(
    data: &Path,
    schedule: quantum_governor::sim::world::Schedule,
    seed: Option<u64>,
    first_seed: u64,
    seeds: u64,
    steps: usize,
) -> anyhow::Result<ExitCode> {
    use quantum_governor::sim::{run, world};
    let market = world::Market::load(data)
        .with_context(|| format!("loading the market from {}", data.display()))?;
    let cfg = world::wide_open(Config::default());
    let summary = match seed {
        Some(seed) => {
            let (taken, faults, failure) =
                run::run_seed(&market, &cfg, schedule, seed, steps, true);
            let failure = failure.expect("a kept log");
            print!("{}", failure.log);
            run::Summary {
                seeds: 1,
                steps: taken as u64,
                faults,
                failures: if failure.violations.is_empty() {
                    Vec::new()
                } else {
                    vec![failure]
                },
            }
        }
        None => run::run(
            &market,
            &cfg,
            &run::Options {
                schedule,
                first_seed,
                seeds,
                steps,
            },
        ),
    };
    for f in &summary.failures {
        let at = f
            .step
            .map_or("when it settled".to_owned(), |s| format!("after step {s}"));
        println!(
            "seed {} broke invariants {at} (run it again: quantum-governor sim --schedule {} --seed {} --steps {steps}):",
            f.seed,
            schedule.name(),
            f.seed
        );
        for v in &f.violations {
            println!("  {}: {}", v.invariant, v.detail);
        }
    }
    println!("{}", summary.line());
    Ok(if summary.violations() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
