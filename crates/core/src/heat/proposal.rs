//! The harvest proposal as the heat gate reads it from `harvest.proposal`.
//!
//! The old heat gate read `action` while the harvest service wrote `harvest_action`: every
//! close became an empty string and silently a no-op. Here `harvest_action` is the only input
//! field; a proposal without it, with an unknown value, or with an `action` that says
//! something else is refused with the field named — never calibrated.

use crate::fields::Fields;
pub use crate::harvest_action::HarvestAction;
use crate::plan::PlanRejection;
use crate::types::{PlanId, Symbol};
use std::collections::BTreeMap;

/// A proposal has at most this many fields.
pub const MAX_PROPOSAL_FIELDS: usize = 32;
/// A proposal has at most this many bytes (names + values).
pub const MAX_PROPOSAL_BYTES: usize = 4096;

/// A parsed, validated harvest proposal.
#[derive(Clone, Debug, PartialEq)]
pub struct HarvestProposal {
    /// The proposal's id (`plan_id`), when the producer gave one.
    pub plan_id: Option<PlanId>,
    /// The position's symbol.
    pub symbol: Symbol,
    /// What harvest proposes (`harvest_action`).
    pub action: HarvestAction,
    /// The harvest model's kill score, 0-1.
    pub kill_score: Option<f64>,
    /// The proposed new stop-loss price.
    pub new_sl_proposed: Option<f64>,
    /// The position's net R multiple.
    pub r_net: Option<f64>,
    /// Every field as received, in order, for the calibrated copy and the dead-letter record.
    pub fields: Vec<(String, String)>,
}

impl HarvestProposal {
    /// Parses a proposal from its stream fields, strictly, reporting every problem.
    pub fn parse<K: AsRef<str>, V: AsRef<str>>(
        fields: &[(K, V)],
    ) -> Result<HarvestProposal, PlanRejection> {
        let mut f = Fields::read(
            fields,
            MAX_PROPOSAL_FIELDS,
            MAX_PROPOSAL_BYTES,
            "<proposal>",
        )
        .map_err(|errors| PlanRejection { errors })?;
        let plan_id = {
            let raw = f.get("plan_id");
            f.typed("plan_id", raw, PlanId::parse)
        };
        let symbol = {
            let raw = f.require("symbol", "every proposal names its position's symbol");
            f.typed("symbol", raw, Symbol::parse)
        };
        let action = {
            let raw = f.require(
                "harvest_action",
                "the proposal's action is read from `harvest_action` only (an `action` field \
                 alone is the field-name mismatch that turned every close into a no-op)",
            );
            f.typed("harvest_action", raw, HarvestAction::parse)
        };
        if let (Some(action), Some(other)) = (action, f.raw("action")) {
            if other != action.as_str() {
                let both = format!("harvest_action={action}, action={other}");
                f.fail(
                    "action",
                    Some(&both),
                    "contradicts `harvest_action`; refusing to guess",
                );
            }
        }
        let kill_score = f.number("kill_score", |v| (0.0..=1.0).contains(&v), "from 0 to 1");
        let new_sl_proposed = f.number("new_sl_proposed", |v| v > 0.0, "a decimal > 0");
        let r_net = f.number("R_net", |_| true, "a finite decimal");
        f.refuse_near_misses(&[
            "plan_id",
            "symbol",
            "harvest_action",
            "action",
            "kill_score",
            "new_sl_proposed",
            "R_net",
            "reason_codes",
        ]);
        if !f.errors.is_empty() {
            return Err(PlanRejection { errors: f.errors });
        }
        match (symbol, action) {
            (Some(symbol), Some(action)) => Ok(HarvestProposal {
                plan_id,
                symbol,
                action,
                kill_score,
                new_sl_proposed,
                r_net,
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
                    .collect(),
            }),
            _ => unreachable!("a required field was missing without an error being recorded"),
        }
    }

    /// The fields by name (the last value wins; duplicates were refused by the parser).
    pub fn field_map(&self) -> BTreeMap<&str, &str> {
        self.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<HarvestProposal, PlanRejection> {
        HarvestProposal::parse(pairs)
    }

    #[test]
    fn a_proposal_carrying_only_action_is_refused_naming_harvest_action() {
        let err = parse(&[("symbol", "BTCUSDT"), ("action", "FULL_CLOSE_PROPOSED")]).unwrap_err();
        assert_eq!(err.errors.len(), 1, "{err}");
        assert_eq!(err.errors[0].field, "harvest_action");
        assert!(err.to_string().contains("harvest_action"), "{err}");
    }

    #[test]
    fn harvest_action_is_read_exactly() {
        let p = parse(&[
            ("plan_id", "h1"),
            ("symbol", "BTCUSDT"),
            ("harvest_action", "FULL_CLOSE_PROPOSED"),
            ("kill_score", "0.4"),
            ("R_net", "-1.5"),
            ("reason_codes", "tp_hit"),
        ])
        .unwrap();
        assert_eq!(p.action, HarvestAction::Close(crate::plan::CloseKind::Full));
        assert_eq!(p.plan_id.unwrap().as_str(), "h1");
        assert_eq!(p.r_net, Some(-1.5));
        assert_eq!(p.fields.len(), 6, "unknown fields are kept");
    }

    #[test]
    fn every_problem_is_reported_with_its_field_and_value() {
        let err = parse(&[
            ("symbol", "btc"),
            ("harvest_action", "CLOSE_ALL"),
            ("kill_score", "NaN"),
            ("new_sl_proposed", "-3"),
        ])
        .unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["symbol", "harvest_action", "kill_score", "new_sl_proposed"]
        );
        assert_eq!(err.errors[1].value.as_deref(), Some("CLOSE_ALL"));
    }

    #[test]
    fn an_action_contradicting_harvest_action_is_refused_and_an_equal_one_accepted() {
        let err = parse(&[
            ("symbol", "BTCUSDT"),
            ("harvest_action", "PARTIAL_50"),
            ("action", "HOLD"),
        ])
        .unwrap_err();
        assert_eq!(err.errors[0].field, "action");
        assert!(parse(&[
            ("symbol", "BTCUSDT"),
            ("harvest_action", "PARTIAL_50"),
            ("action", "PARTIAL_50"),
        ])
        .is_ok());
    }

    #[test]
    fn empty_or_duplicated_harvest_action_is_an_error_not_absent() {
        let empty = parse(&[("symbol", "BTCUSDT"), ("harvest_action", "")]).unwrap_err();
        assert_eq!(empty.errors[0].field, "harvest_action");
        let twice = parse(&[
            ("symbol", "BTCUSDT"),
            ("harvest_action", "HOLD"),
            ("harvest_action", "FULL_CLOSE_PROPOSED"),
        ])
        .unwrap_err();
        assert!(twice.to_string().contains("more than once"), "{twice}");
    }
}
