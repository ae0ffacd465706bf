//! The `quantum-governor` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use governor_core::Config;
use quantum_governor::evaluate::evaluate;
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
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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
