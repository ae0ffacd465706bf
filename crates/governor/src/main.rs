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
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The service on Redis: governor workers in the `governor` consumer group, the result
    /// monitor, the sweeper and the reconciler (paper exchange on recorded data).
    Serve {
        /// The Redis URL, e.g. redis://127.0.0.1:6379/.
        #[arg(long)]
        redis: String,
        /// A TOML config file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where positions, equity and prices come from: `paper` (recorded data on the wall
        /// clock). `binance` comes with the Binance adapter.
        #[arg(long, default_value = "paper")]
        exchange: String,
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
        #[arg(long, default_value_t = quantum_governor::service::RECLAIM_IDLE_MS)]
        reclaim_idle_ms: u64,
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

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            redis,
            config,
            exchange,
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
            if exchange != "paper" {
                anyhow::bail!("--exchange {exchange}: only `paper` is available in this build (the Binance adapter is not built yet)");
            }
            if !(capital.is_finite() && capital > 0.0) || workers == 0 {
                anyhow::bail!("--capital must be a finite number above 0 and --workers at least 1");
            }
            let opts = quantum_governor::service::ServeOptions {
                redis_url: redis,
                data_dir: data,
                capital,
                workers,
                name: name.unwrap_or_else(|| format!("quantum-governor-{}", std::process::id())),
                reclaim_idle_ms,
            };
            quantum_governor::service::serve(&cfg, &opts)?;
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
        } => {
            let cfg = match config_or_exit(config.as_deref())? {
                Ok(cfg) => cfg,
                Err(code) => return Ok(code),
            };
            if !(capital.is_finite() && capital > 0.0) {
                anyhow::bail!("--capital {capital}: must be a finite number of USDT above 0");
            }
            let opts = ReplayOptions {
                data_dir: data,
                out_dir: out.clone(),
                from,
                to,
                initial_equity: capital,
                progress: !quiet,
                ..ReplayOptions::default()
            };
            let started = std::time::Instant::now();
            let result = replay::run(&cfg, &opts)?;
            let summary = replay::summary::summarize(&result);
            let report = out.join("report.html");
            std::fs::write(&report, replay::report::render(&result, &summary))
                .with_context(|| format!("writing {}", report.display()))?;
            print!("{}", replay::summary::render(&summary, &result));
            println!(
                "report: {}\njournal: {}\n({:.2} s)",
                report.display(),
                result.journal.display(),
                started.elapsed().as_secs_f64()
            );
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
