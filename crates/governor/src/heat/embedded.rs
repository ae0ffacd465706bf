//! The heat gate without a server: proposals from a JSON-lines file (one object of stream
//! fields per line), the account and market from a state file (the `evaluate` format plus
//! `marketstate`). Each proposal's calibrated entry is written as a JSON line to `out`, a
//! refused line as a dead-letter line (its fields and `error`), the `SHADOW-COMPARE` and
//! `HEAT_REJECTED` lines to `log`. Nothing is skipped silently.

use super::{calibrated_fields, compare_line, heat_input, proposal_name, Enforcement};
use crate::state_file::LoadedState;
use anyhow::Context;
use governor_core::config::HeatMode;
use governor_core::heat::{calibrate, HarvestProposal};
use governor_core::Config;
use serde_json::{Map, Value};
use std::io::{BufRead, Write};

/// What one embedded run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbeddedCounts {
    /// Proposals calibrated (or passed on uncalibrated).
    pub published: usize,
    /// Of those, changed by the ladder.
    pub downgraded: usize,
    /// Lines refused (not JSON, not an object of strings, or refused by the parser).
    pub rejected: usize,
}

/// A line's fields, in order, or why they are not stream fields.
fn object(fields: &[(String, String)]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// Calibrates every proposal of `proposals` against `state`. In `enforce` mode the output says
/// what would be written to each proposal hash (`enforced=written`); there is no hash here.
pub fn run(
    cfg: &Config,
    state: &LoadedState,
    proposals: impl BufRead,
    mut out: impl Write,
    mut log: impl Write,
) -> anyhow::Result<EmbeddedCounts> {
    let input = heat_input(
        state.inputs.exchange.as_ref(),
        &state.inputs.market,
        &state.marketstate_sigma,
        state.now,
        cfg.regime.max_kline_age_secs,
    );
    let mut counts = EmbeddedCounts::default();
    for (n, line) in proposals.lines().enumerate() {
        let line = line.context("reading proposals")?;
        if line.trim().is_empty() {
            continue;
        }
        let id = format!("line-{}", n + 1);
        let (fields, parsed) =
            match crate::json_fields::object_fields(&line, crate::json_fields::Scalars::TextOnly) {
                Ok(fields) => {
                    let parsed =
                        HarvestProposal::parse(&fields).map_err(|e| e.describe("proposal"));
                    (fields, parsed)
                }
                Err(e) => (vec![("line".to_owned(), line.clone())], Err(e)),
            };
        match parsed {
            Ok(p) => {
                let c = calibrate(p.action, &input, &cfg.heat);
                let enforced = match (c.is_calibrated(), cfg.heat.mode) {
                    (false, _) => Enforcement::Uncalibrated,
                    (true, HeatMode::Shadow) => Enforcement::Shadow,
                    (true, HeatMode::Enforce) => Enforcement::Written,
                };
                let mut fields = calibrated_fields(&p, &c, cfg.heat.mode, &id);
                fields.push(("enforced".to_owned(), enforced.as_str().to_owned()));
                writeln!(out, "{}", object(&fields))?;
                log.write_all(compare_line(&proposal_name(&p, &id), &c, enforced).as_bytes())?;
                counts.published += 1;
                counts.downgraded += usize::from(c.downgraded());
            }
            Err(error) => {
                let mut dead = fields;
                dead.push(("error".to_owned(), format!("{id}: {error}")));
                writeln!(out, "{}", object(&dead))?;
                let fields = [("id", id), ("error", error)];
                log.write_all(crate::logfmt::format("HEAT_REJECTED", &fields).as_bytes())?;
                counts.rejected += 1;
            }
        }
    }
    out.flush()?;
    Ok(counts)
}
