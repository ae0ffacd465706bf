//! The drawdown halt in the replay: the same signals with the halt enforced and in shadow,
//! side by side — how often it would have stopped opens, how often it switched trading to
//! REDUCING, and the governed account either way.

use super::engine::{run_on, Recording, ReplayOptions, ReplayResult};
use super::outcome::AccountOutcome;

use governor_core::config::GateMode;
use governor_core::Config;
use serde::Serialize;

/// One run's view of the drawdown halt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrawdownRun {
    /// Opens the halt refused (enforce) or would have refused (shadow).
    pub opens_stopped: usize,
    /// Times it switched trading to REDUCING (0 in shadow).
    pub halts: usize,
    /// The governed account.
    pub account: AccountOutcome,
}

/// The report's drawdown section.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrawdownComparison {
    /// The configured limit (a fraction).
    pub limit: f64,
    /// The rolling window (hours).
    pub window_hours: f64,
    /// The halt in shadow.
    pub shadow: DrawdownRun,
    /// The halt enforced.
    pub enforce: DrawdownRun,
}

fn view(r: &ReplayResult, mode: GateMode) -> DrawdownRun {
    let code = governor_core::reason::BlockReason::DrawdownHalt.code();
    let counts = if mode == GateMode::Shadow {
        &r.shadow_blocks
    } else {
        &r.blocks
    };
    DrawdownRun {
        opens_stopped: counts.get(code).copied().unwrap_or(0),
        halts: r.drawdown_halts,
        account: AccountOutcome::of(&r.bars, r.initial_equity),
    }
}

/// Runs whichever of shadow/enforce `main` (run with `cfg` on `recording`) was not, and compares.
pub fn compare(
    recording: &Recording,
    cfg: &Config,
    opts: &ReplayOptions,
    main: &ReplayResult,
) -> anyhow::Result<DrawdownComparison> {
    let quiet = ReplayOptions {
        write_journal: false,
        progress: false,
        ..opts.clone()
    };
    let with_mode = |mode: GateMode| -> anyhow::Result<ReplayResult> {
        let mut c = cfg.clone();
        c.gates.drawdown_halt = mode;
        run_on(recording, &c, &quiet)
    };
    let (shadow, enforce) = match cfg.gates.drawdown_halt {
        GateMode::Enforce => (
            view(&with_mode(GateMode::Shadow)?, GateMode::Shadow),
            view(main, GateMode::Enforce),
        ),
        GateMode::Shadow => (
            view(main, GateMode::Shadow),
            view(&with_mode(GateMode::Enforce)?, GateMode::Enforce),
        ),
        GateMode::Off => (
            view(&with_mode(GateMode::Shadow)?, GateMode::Shadow),
            view(&with_mode(GateMode::Enforce)?, GateMode::Enforce),
        ),
    };
    Ok(DrawdownComparison {
        limit: cfg.drawdown.limit,
        window_hours: cfg.drawdown.window_secs as f64 / 3600.0,
        shadow,
        enforce,
    })
}
