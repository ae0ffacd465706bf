//! `replay --sweep KEY=V1,V2 [--sweep KEY2=…]`: the same data and signals replayed under every
//! combination of the values (a grid, at most [`MAX_RUNS`] runs), on all cores, with results
//! and journals that do not depend on the number of threads: each run is a pure function of its
//! config, and rows are written in grid order whatever order they finish in.

use super::engine::{run_on, Recording, ReplayOptions, ReplayResult};
use super::summary::summarize;

use anyhow::{bail, Context};
use governor_core::Config;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// No sweep runs more than this many configs (the grid's size is checked before any runs).
pub const MAX_RUNS: usize = 256;

/// One swept key and its values, as given.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// The config key (`section.field`).
    pub key: String,
    /// Its values, as written.
    pub values: Vec<String>,
}

impl Axis {
    /// Reads `KEY=V1,V2,…`; the error names what is missing.
    pub fn parse(raw: &str) -> Result<Axis, String> {
        let (key, values) = raw
            .split_once('=')
            .ok_or_else(|| format!("--sweep {raw:?}: expected KEY=V1,V2,…"))?;
        let values: Vec<String> = values
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        if key.trim().is_empty() || values.is_empty() {
            return Err(format!("--sweep {raw:?}: expected KEY=V1,V2,…"));
        }
        Ok(Axis {
            key: key.trim().to_owned(),
            values,
        })
    }
}

/// One run of the grid: its values (one per axis) and its config.
#[derive(Clone, Debug)]
pub struct Point {
    /// The values, in axis order.
    pub values: Vec<String>,
    /// `base` with them set.
    pub cfg: Config,
}

/// Every combination of the axes' values applied to `base`, the first axis varying slowest.
/// Refused before anything runs: a grid above [`MAX_RUNS`], a key that is not a config key, a
/// value the config does not accept (each error names the key and the value).
pub fn grid(base: &Config, axes: &[Axis]) -> Result<Vec<Point>, String> {
    let size = axes.iter().map(|a| a.values.len()).product::<usize>();
    if size > MAX_RUNS {
        return Err(format!(
            "the sweep is {size} runs ({}); at most {MAX_RUNS}",
            axes.iter()
                .map(|a| format!("{} × {}", a.key, a.values.len()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut keys = BTreeSet::new();
    if let Some(dup) = axes.iter().find(|a| !keys.insert(&a.key)) {
        return Err(format!("--sweep {}: the key is swept twice", dup.key));
    }
    let mut points = vec![Point {
        values: Vec::new(),
        cfg: base.clone(),
    }];
    for axis in axes {
        let mut next = Vec::with_capacity(points.len() * axis.values.len());
        for p in &points {
            for v in &axis.values {
                let mut values = p.values.clone();
                values.push(v.clone());
                next.push(Point {
                    values,
                    cfg: p.cfg.with_setting(&axis.key, v)?,
                });
            }
        }
        points = next;
    }
    Ok(points)
}

/// What one run of the sweep did.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The swept values.
    pub values: Vec<String>,
    /// The governed account at the end.
    pub final_equity: f64,
    /// final / initial − 1.
    pub return_pct: f64,
    /// Deepest drawdown (fraction).
    pub max_drawdown: f64,
    /// Largest notional / equity.
    pub max_notional_on_equity: f64,
    /// Largest margin usage.
    pub max_margin_usage: f64,
    /// Positions the paper exchange liquidated.
    pub liquidations: usize,
    /// Blocks by reason.
    pub blocks: BTreeMap<String, usize>,
    /// Rotations started.
    pub rotations: usize,
    /// Of the rotations whose 24 h outcome is known, the share where the new position did
    /// better than the one it replaced (`None` when none is known).
    pub rotation_hit_rate: Option<f64>,
}

impl Row {
    fn of(values: Vec<String>, r: &ReplayResult) -> Row {
        let s = summarize(r);
        let judged: Vec<bool> = r
            .rotations
            .iter()
            .filter_map(|x| Some(x.new_return_24h? > x.old_return_24h?))
            .collect();
        Row {
            values,
            final_equity: s.governed.final_equity,
            return_pct: s.governed.final_equity / r.initial_equity - 1.0,
            max_drawdown: s.governed.max_drawdown,
            max_notional_on_equity: s.governed.max_leverage_on_equity,
            max_margin_usage: s.governed.max_margin_usage,
            liquidations: s.governed.liquidations,
            blocks: s.blocks.clone(),
            rotations: r.rotations.len(),
            rotation_hit_rate: (!judged.is_empty())
                .then(|| judged.iter().filter(|w| **w).count() as f64 / judged.len() as f64),
        }
    }

    /// Return over drawdown (infinite for a run that never drew down and gained).
    pub fn return_over_drawdown(&self) -> f64 {
        if self.max_drawdown > 0.0 {
            self.return_pct / self.max_drawdown
        } else if self.return_pct > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }
}

/// Runs every point on `recording` on `threads` threads (at least 1); each run writes its journal
/// into `out/runs/NNN/` when `opts.write_journal`. Rows come back in grid order. `done` is told
/// after each run (the progress bar and the one-line summaries).
pub fn run_all(
    recording: &Recording,
    points: &[Point],
    opts: &ReplayOptions,
    threads: usize,
    done: &(dyn Fn(usize, &Row) + Sync),
) -> anyhow::Result<Vec<Row>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<anyhow::Result<Row>>>> =
        Mutex::new((0..points.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(points.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = points.get(i) else { break };
                let opts = ReplayOptions {
                    out_dir: opts.out_dir.join("runs").join(format!("{i:03}")),
                    progress: false,
                    ..opts.clone()
                };
                let row = run_on(recording, &p.cfg, &opts)
                    .with_context(|| format!("run {i} ({})", p.values.join(", ")))
                    .map(|r| Row::of(p.values.clone(), &r));
                if let Ok(row) = &row {
                    done(i, row);
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(row);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every point ran"))
        .collect()
}

/// `sweep.csv`: one row per run, the swept values first, then the outcome, then the blocks by
/// reason (one column per reason any run saw).
pub fn csv(axes: &[Axis], rows: &[Row]) -> String {
    let reasons: BTreeSet<&String> = rows.iter().flat_map(|r| r.blocks.keys()).collect();
    let mut o = String::new();
    let mut header: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
    header.extend(
        [
            "final_equity",
            "return",
            "max_drawdown",
            "return_over_drawdown",
            "max_notional_over_equity",
            "max_margin_usage",
            "liquidations",
            "rotations",
            "rotation_hit_rate",
        ]
        .map(str::to_owned),
    );
    header.extend(reasons.iter().map(|r| format!("blocks_{r}")));
    let _ = writeln!(o, "{}", header.join(","));
    for r in rows {
        let mut cells: Vec<String> = r.values.clone();
        cells.extend([
            format!("{:.2}", r.final_equity),
            format!("{:.6}", r.return_pct),
            format!("{:.6}", r.max_drawdown),
            format!("{:.4}", r.return_over_drawdown()),
            format!("{:.4}", r.max_notional_on_equity),
            format!("{:.6}", r.max_margin_usage),
            r.liquidations.to_string(),
            r.rotations.to_string(),
            r.rotation_hit_rate
                .map_or(String::new(), |h| format!("{h:.4}")),
        ]);
        cells.extend(
            reasons
                .iter()
                .map(|k| r.blocks.get(*k).copied().unwrap_or(0).to_string()),
        );
        let _ = writeln!(o, "{}", cells.join(","));
    }
    o
}

/// What a sweep found.
#[derive(Clone, Debug, PartialEq)]
pub struct Swept {
    /// One row per run, in grid order.
    pub rows: Vec<Row>,
    /// The run whose config is the one in force, when the grid holds it.
    pub current: Option<usize>,
}

/// Runs the sweep and writes `sweep.csv` into `opts.out_dir` (the frontier page is written by
/// the `frontier` module from what this returns).
pub fn sweep(
    base: &Config,
    axes: &[Axis],
    opts: &ReplayOptions,
    threads: usize,
    done: &(dyn Fn(usize, &Row) + Sync),
) -> anyhow::Result<Swept> {
    if axes.is_empty() {
        bail!("a sweep needs at least one --sweep KEY=V1,V2");
    }
    let points = grid(base, axes).map_err(|e| anyhow::anyhow!(e))?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;
    let rows = run_all(&opts.load_recording()?, &points, opts, threads, done)?;
    let path = opts.out_dir.join("sweep.csv");
    std::fs::write(&path, csv(axes, &rows))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Swept {
        rows,
        current: points.iter().position(|p| p.cfg == *base),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_is_every_combination_and_a_bad_one_is_refused_before_running() {
        let axes = [
            Axis::parse("correlation.max=0.7,0.8").unwrap(),
            Axis::parse("slots.base=3,4,5").unwrap(),
        ];
        let g = grid(&Config::default(), &axes).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g[1].values, ["0.7", "4"]);
        assert_eq!((g[1].cfg.correlation.max, g[1].cfg.slots.base), (0.7, 4));
        assert_eq!(g[5].values, ["0.8", "5"]);
        let too_many = [
            Axis::parse(&format!("slots.base={}", vec!["4"; 17].join(","))).unwrap(),
            Axis::parse(&format!("correlation.max={}", vec!["0.8"; 16].join(","))).unwrap(),
        ];
        let err = grid(&Config::default(), &too_many).unwrap_err();
        assert!(err.starts_with("the sweep is 272 runs"), "{err}");
        let err = grid(&Config::default(), &[Axis::parse("slots.bse=1").unwrap()]).unwrap_err();
        assert!(err.contains("unknown field `bse`"), "{err}");
        let twice = [
            Axis::parse("slots.base=3").unwrap(),
            Axis::parse("slots.base=4").unwrap(),
        ];
        assert!(grid(&Config::default(), &twice)
            .unwrap_err()
            .contains("swept twice"));
        assert!(Axis::parse("slots.base")
            .unwrap_err()
            .contains("expected KEY=V1,V2"));
        assert!(Axis::parse("slots.base=")
            .unwrap_err()
            .contains("expected KEY=V1,V2"));
    }
}
