//! The strict plan schema of docs/wire-contract.md and its parser.
//!
//! The incident this file exists for: a producer wrote `harvest_action`, a consumer read
//! `action`, got an empty string, defaulted it, and every close became a stop-loss tweak. Here a
//! missing, empty, unknown or contradictory field is an error that names the field and the value;
//! nothing is defaulted and nothing is guessed.

use crate::fields::Fields;
pub use crate::fields::{parse_bool, parse_decimal, parse_integer, FieldError};
use crate::types::{PlanId, Side, Symbol};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The largest plan accepted, in bytes of field names plus values.
pub const MAX_PLAN_BYTES: usize = 4096;
/// The most fields a plan may have.
pub const MAX_PLAN_FIELDS: usize = 32;

/// How much of a position a close takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CloseKind {
    /// `FULL_CLOSE_PROPOSED`: the whole position.
    Full,
    /// `PARTIAL_75`.
    Partial75,
    /// `PARTIAL_50`.
    Partial50,
    /// `PARTIAL_25`.
    Partial25,
}

impl CloseKind {
    /// The share of the position this close takes (1.0 for a full close).
    pub fn fraction(self) -> f64 {
        match self {
            CloseKind::Full => 1.0,
            CloseKind::Partial75 => 0.75,
            CloseKind::Partial50 => 0.50,
            CloseKind::Partial25 => 0.25,
        }
    }
}

/// What a plan asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Open (or expand) a position in this direction.
    Open(Side),
    /// Reduce or close a position.
    Close(CloseKind),
    /// Move the stop-loss: not executed through the governor.
    UpdateSl,
    /// Do nothing: not executed through the governor.
    Hold,
}

impl Action {
    /// The canonical wire name (`OPEN_LONG`, `FULL_CLOSE_PROPOSED`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Open(Side::Long) => "OPEN_LONG",
            Action::Open(Side::Short) => "OPEN_SHORT",
            Action::Close(CloseKind::Full) => "FULL_CLOSE_PROPOSED",
            Action::Close(CloseKind::Partial75) => "PARTIAL_75",
            Action::Close(CloseKind::Partial50) => "PARTIAL_50",
            Action::Close(CloseKind::Partial25) => "PARTIAL_25",
            Action::UpdateSl => "UPDATE_SL",
            Action::Hold => "HOLD",
        }
    }

    /// Whether this action opens risk.
    pub fn is_open(self) -> bool {
        matches!(self, Action::Open(_))
    }

    /// Whether this action closes risk.
    pub fn is_close(self) -> bool {
        matches!(self, Action::Close(_))
    }
}

/// Where the plan's action came from, recorded in the trace so that aliasing is never silent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionSource {
    /// The `action` field, canonical.
    Action,
    /// `action` was absent and `harvest_action` supplied it.
    HarvestActionAlias,
    /// An alias (`OPEN`, `NEW_TRADE`, `EXPAND_POSITION`) resolved with `side`.
    OpenAlias(String),
}

/// The rotation fields of a close plan the governor itself published (phase 1 of a rotation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RotationClose {
    /// The symbol the rotation makes room for.
    pub new_symbol: Symbol,
    /// The pending plan waiting for this close.
    pub new_plan_id: PlanId,
}

/// A parsed, validated plan. Every field has been checked; optional fields are `None` only
/// when the producer left them out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The plan's id, also the order's client id.
    pub plan_id: PlanId,
    /// The instrument.
    pub symbol: Symbol,
    /// What the plan asks for.
    pub action: Action,
    /// Where `action` came from.
    pub action_source: ActionSource,
    /// `decision` = `EXECUTE`: only such plans are evaluated.
    pub execute: bool,
    /// The raw `decision` value (kept for the skip record).
    pub decision: String,
    /// Quantity in base units (required on opens).
    pub qty: Option<f64>,
    /// `mark_price` as the producer saw it.
    pub mark_price: Option<f64>,
    /// `price` (a limit price) if given.
    pub price: Option<f64>,
    /// Leverage 1-125, else the configured default.
    pub leverage: Option<u32>,
    /// The upstream model's kill score, 0-1.
    pub kill_score: Option<f64>,
    /// The candidate's score (rotation compares it), ≥ 0.
    pub score: Option<f64>,
    /// `reduceOnly`, if the producer set it.
    pub reduce_only: Option<bool>,
    /// When the upstream formed its intent (unix seconds).
    pub intent_created_at: Option<f64>,
    /// Open positions the producer saw at intent time.
    pub snapshot_position_count: Option<u32>,
    /// Exposure (total notional / equity) the producer saw at intent time.
    pub snapshot_exposure_pct: Option<f64>,
    /// Set on the close plans a rotation publishes.
    pub rotation: Option<RotationClose>,
    /// Fields this schema does not know: kept for the trace, otherwise ignored.
    pub extra: BTreeMap<String, String>,
}

impl Plan {
    /// The price to value this plan at: the plan's mark, else its limit price.
    pub fn stated_price(&self) -> Option<f64> {
        self.mark_price.or(self.price)
    }
}

/// Why a plan was rejected: every problem found, not just the first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct PlanRejection {
    /// The problems, in field order.
    pub errors: Vec<FieldError>,
}

impl PlanRejection {
    /// `<what> rejected: <every problem>`, for the plan and the harvest-proposal parsers.
    pub fn describe(&self, what: &str) -> String {
        let parts: Vec<String> = self.errors.iter().map(|e| e.to_string()).collect();
        format!("{what} rejected: {}", parts.join("; "))
    }
}

impl fmt::Display for PlanRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("plan"))
    }
}

const KNOWN_FIELDS: &[&str] = &[
    "plan_id",
    "symbol",
    "action",
    "harvest_action",
    "decision",
    "side",
    "qty",
    "mark_price",
    "price",
    "leverage",
    "kill_score",
    "score",
    "candidate_score",
    "reduceOnly",
    "intent_created_at",
    "snapshot_position_count",
    "snapshot_exposure_pct",
    "rotation_trigger",
    "new_symbol",
    "new_plan_id",
];

fn parse_side(raw: &str) -> Result<Side, String> {
    match raw {
        "BUY" | "LONG" => Ok(Side::Long),
        "SELL" | "SHORT" => Ok(Side::Short),
        _ => Err("must be BUY, LONG, SELL or SHORT".to_owned()),
    }
}

/// An action name before `side` is applied to aliases.
enum RawAction {
    Known(Action),
    NeedsSide(&'static str),
}

fn parse_action_name(raw: &str) -> Result<RawAction, String> {
    Ok(match raw {
        "OPEN_LONG" => RawAction::Known(Action::Open(Side::Long)),
        "OPEN_SHORT" => RawAction::Known(Action::Open(Side::Short)),
        "OPEN" => RawAction::NeedsSide("OPEN"),
        "NEW_TRADE" => RawAction::NeedsSide("NEW_TRADE"),
        "EXPAND_POSITION" => RawAction::NeedsSide("EXPAND_POSITION"),
        "FULL_CLOSE_PROPOSED" => RawAction::Known(Action::Close(CloseKind::Full)),
        "PARTIAL_75" => RawAction::Known(Action::Close(CloseKind::Partial75)),
        "PARTIAL_50" => RawAction::Known(Action::Close(CloseKind::Partial50)),
        "PARTIAL_25" => RawAction::Known(Action::Close(CloseKind::Partial25)),
        "UPDATE_SL" => RawAction::Known(Action::UpdateSl),
        "HOLD" => RawAction::Known(Action::Hold),
        _ => {
            return Err(
                "unknown action; expected OPEN_LONG, OPEN_SHORT, OPEN, NEW_TRADE, \
                 EXPAND_POSITION (with side), FULL_CLOSE_PROPOSED, PARTIAL_75, PARTIAL_50, \
                 PARTIAL_25, UPDATE_SL or HOLD"
                    .to_owned(),
            )
        }
    })
}

impl Plan {
    /// Parses a plan from its stream fields (name, value), strictly, reporting every problem.
    pub fn parse<K: AsRef<str>, V: AsRef<str>>(fields: &[(K, V)]) -> Result<Plan, PlanRejection> {
        let mut f = Fields::read(fields, MAX_PLAN_FIELDS, MAX_PLAN_BYTES, "<plan>")
            .map_err(|errors| PlanRejection { errors })?;

        let plan_id = {
            let raw = f.require("plan_id", "every plan needs an id");
            f.typed("plan_id", raw, PlanId::parse)
        };
        let symbol = {
            let raw = f.require("symbol", "every plan names its symbol");
            f.typed("symbol", raw, Symbol::parse)
        };
        let decision = f.require("decision", "EXECUTE to evaluate, anything else to skip");
        let side = {
            let raw = f.get("side");
            f.typed("side", raw, parse_side)
        };
        let (action, action_source) = parse_action(&mut f, side);

        let qty = f.number("qty", |v| v > 0.0, "a decimal > 0");
        let mark_price = f.number("mark_price", |v| v > 0.0, "a decimal > 0");
        let price = f.number("price", |v| v > 0.0, "a decimal > 0");
        let leverage = {
            let raw = f.get("leverage");
            f.typed("leverage", raw, |r| match parse_integer(r) {
                Ok(v) if (1..=125).contains(&v) => Ok(v as u32),
                _ => Err("must be an integer from 1 to 125".to_owned()),
            })
        };
        let kill_score = f.number("kill_score", |v| (0.0..=1.0).contains(&v), "from 0 to 1");
        let score = f.number("score", |v| v >= 0.0, "a decimal >= 0");
        let candidate_score = f.number("candidate_score", |v| v >= 0.0, "a decimal >= 0");
        let score = match (score, candidate_score) {
            (Some(a), Some(b)) if a != b => {
                let both = format!("score={a}, candidate_score={b}");
                f.fail("candidate_score", Some(&both), "contradicts `score`");
                None
            }
            (a, b) => a.or(b),
        };
        let reduce_only = {
            let raw = f.get("reduceOnly");
            f.typed("reduceOnly", raw, parse_bool)
        };
        let intent_created_at = f.number("intent_created_at", |v| v > 0.0, "unix seconds > 0");
        let snapshot_position_count = {
            let raw = f.get("snapshot_position_count");
            f.typed("snapshot_position_count", raw, |r| {
                parse_integer(r)
                    .ok()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| "must be an integer >= 0".to_owned())
            })
        };
        let snapshot_exposure_pct =
            f.number("snapshot_exposure_pct", |v| v >= 0.0, "a decimal >= 0");
        let rotation = parse_rotation(&mut f);

        if let Some(action) = action {
            check_action_fields(&mut f, action, qty, reduce_only, rotation.is_some());
        }

        f.refuse_near_misses(KNOWN_FIELDS);
        let extra = f
            .unread()
            .filter(|(k, _)| !KNOWN_FIELDS.contains(k))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();

        if !f.errors.is_empty() {
            return Err(PlanRejection { errors: f.errors });
        }
        // Every required value is present once no error was recorded.
        match (plan_id, symbol, decision, action, action_source) {
            (Some(plan_id), Some(symbol), Some(decision), Some(action), Some(action_source)) => {
                Ok(Plan {
                    plan_id,
                    symbol,
                    action,
                    action_source,
                    execute: decision == "EXECUTE",
                    decision: decision.to_owned(),
                    qty,
                    mark_price,
                    price,
                    leverage,
                    kill_score,
                    score,
                    reduce_only,
                    intent_created_at,
                    snapshot_position_count,
                    snapshot_exposure_pct,
                    rotation,
                    extra,
                })
            }
            _ => unreachable!("a required field was missing without an error being recorded"),
        }
    }
}

fn parse_action(f: &mut Fields<'_>, side: Option<Side>) -> (Option<Action>, Option<ActionSource>) {
    let action_raw = f.get("action");
    let harvest_raw = f.get("harvest_action");
    let (raw, field, source) = match (action_raw, harvest_raw) {
        (Some(a), Some(h)) if a != h => {
            let both = format!("action={a}, harvest_action={h}");
            f.fail(
                "harvest_action",
                Some(&both),
                "contradicts `action`; refusing to guess",
            );
            return (None, None);
        }
        (Some(a), _) => (a, "action", ActionSource::Action),
        (None, Some(h)) => (h, "harvest_action", ActionSource::HarvestActionAlias),
        (None, None) => {
            if !f.has("action") && !f.has("harvest_action") {
                f.fail(
                    "action",
                    None,
                    "every plan needs an action (or harvest_action)",
                );
            }
            return (None, None);
        }
    };
    match parse_action_name(raw) {
        Err(problem) => {
            f.fail(field, Some(raw), problem);
            (None, None)
        }
        Ok(RawAction::Known(Action::Open(s))) => {
            if side.is_some_and(|given| given != s) {
                f.fail("side", f.raw("side"), format!("contradicts {raw}"));
                return (None, None);
            }
            (Some(Action::Open(s)), Some(source))
        }
        Ok(RawAction::Known(action)) => (Some(action), Some(source)),
        Ok(RawAction::NeedsSide(alias)) => match side {
            Some(s) => (
                Some(Action::Open(s)),
                Some(ActionSource::OpenAlias(alias.to_owned())),
            ),
            None => {
                if !f.has("side") {
                    f.fail("side", None, format!("required with action {alias}"));
                }
                (None, None)
            }
        },
    }
}

fn parse_rotation(f: &mut Fields<'_>) -> Option<RotationClose> {
    let trigger = {
        let raw = f.get("rotation_trigger");
        f.typed("rotation_trigger", raw, parse_bool)
    };
    let new_symbol = {
        let raw = f.get("new_symbol");
        f.typed("new_symbol", raw, Symbol::parse)
    };
    let new_plan_id = {
        let raw = f.get("new_plan_id");
        f.typed("new_plan_id", raw, PlanId::parse)
    };
    if trigger != Some(true) {
        return None;
    }
    match (new_symbol, new_plan_id) {
        (Some(new_symbol), Some(new_plan_id)) => Some(RotationClose {
            new_symbol,
            new_plan_id,
        }),
        (s, p) => {
            for (name, present) in [("new_symbol", s.is_some()), ("new_plan_id", p.is_some())] {
                if !present && !f.has(name) {
                    f.fail(name, None, "required when rotation_trigger=true");
                }
            }
            None
        }
    }
}

fn check_action_fields(
    f: &mut Fields<'_>,
    action: Action,
    qty: Option<f64>,
    reduce_only: Option<bool>,
    is_rotation: bool,
) {
    match action {
        Action::Open(_) => {
            if qty.is_none() && !f.has("qty") {
                f.fail("qty", None, "required on opens (a decimal > 0)");
            }
            if reduce_only == Some(true) {
                f.fail("reduceOnly", Some("true"), "an open cannot be reduce-only");
            }
            if is_rotation {
                f.fail(
                    "rotation_trigger",
                    Some("true"),
                    "only close plans carry rotation fields",
                );
            }
        }
        Action::Close(_) => {
            if reduce_only == Some(false) {
                f.fail("reduceOnly", Some("false"), "must be true on closes");
            }
        }
        Action::UpdateSl | Action::Hold => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn base_open() -> Vec<(String, String)> {
        fields(&[
            ("plan_id", "p1"),
            ("symbol", "BTCUSDT"),
            ("action", "OPEN_LONG"),
            ("decision", "EXECUTE"),
            ("qty", "0.001"),
        ])
    }

    fn with(mut base: Vec<(String, String)>, k: &str, v: &str) -> Vec<(String, String)> {
        base.retain(|(name, _)| name != k);
        base.push((k.to_owned(), v.to_owned()));
        base
    }

    fn only_error(result: Result<Plan, PlanRejection>) -> FieldError {
        let rejection = result.expect_err("must be rejected");
        assert_eq!(rejection.errors.len(), 1, "{rejection}");
        rejection.errors[0].clone()
    }

    #[test]
    fn one_number_grammar_for_decimals_and_integers() {
        // (text, decimal?, integer?), by the grammar written in docs/wire-contract.md.
        let cases = [
            ("5", true, true),
            ("-5", true, true),
            ("0.5", true, false),
            ("5e3", true, false),
            ("5E-3", true, false),
            ("1.25e+2", true, false),
            ("+5", false, false),
            (".5", false, false),
            ("5.", false, false),
            ("5e", false, false),
            (" 5 ", false, false),
            ("0x10", false, false),
            ("NaN", false, false),
            ("inf", false, false),
            ("1e400", false, false), // the shape is fine; it is not finite
            ("", false, false),
            ("-", false, false),
            ("5..0", false, false),
            ("٣", false, false), // a digit, but not an ASCII one
        ];
        for (raw, decimal, integer) in cases {
            assert_eq!(parse_decimal(raw).is_ok(), decimal, "decimal {raw:?}");
            assert_eq!(parse_integer(raw).is_ok(), integer, "integer {raw:?}");
        }
        assert_eq!(
            parse_integer("99999999999999999999"),
            Err("is out of range".to_owned())
        );
    }

    #[test]
    fn leverage_follows_the_same_grammar_as_every_number() {
        for raw in ["+5", "5.", "5.0", " 5", "05e0"] {
            let e = only_error(Plan::parse(&with(base_open(), "leverage", raw)));
            assert_eq!(e.field, "leverage", "{raw}");
        }
        let plan = Plan::parse(&with(base_open(), "leverage", "20")).unwrap();
        assert_eq!(plan.leverage, Some(20));
    }

    #[test]
    fn a_near_miss_of_a_contract_field_is_refused_and_an_unknown_field_is_kept() {
        for (typo, meant) in [
            ("levarage", "leverage"),
            ("Qty", "qty"),
            ("reduce_only", "reduceOnly"),
            ("killScore", "kill_score"),
        ] {
            let e = only_error(Plan::parse(&with(base_open(), typo, "1")));
            assert_eq!(e.field, typo);
            assert_eq!(
                e.problem,
                format!("unknown field `{typo}` (did you mean `{meant}`?)")
            );
        }
        let plan = Plan::parse(&with(base_open(), "strategy_id", "s-7")).unwrap();
        assert_eq!(
            plan.extra.get("strategy_id").map(String::as_str),
            Some("s-7")
        );
    }

    #[test]
    fn a_minimal_open_parses() {
        let plan = Plan::parse(&base_open()).unwrap();
        assert_eq!(plan.action, Action::Open(Side::Long));
        assert_eq!(plan.qty, Some(0.001));
        assert!(plan.execute);
        assert_eq!(plan.action_source, ActionSource::Action);
    }

    #[test]
    fn harvest_action_alone_is_accepted_and_the_alias_is_recorded() {
        let plan = Plan::parse(&fields(&[
            ("plan_id", "c1"),
            ("symbol", "ETHUSDT"),
            ("harvest_action", "FULL_CLOSE_PROPOSED"),
            ("decision", "EXECUTE"),
        ]))
        .unwrap();
        assert_eq!(plan.action, Action::Close(CloseKind::Full));
        assert_eq!(plan.action_source, ActionSource::HarvestActionAlias);
    }

    #[test]
    fn action_contradicting_harvest_action_is_rejected_naming_both() {
        let err = only_error(Plan::parse(&with(
            base_open(),
            "harvest_action",
            "PARTIAL_50",
        )));
        assert_eq!(err.field, "harvest_action");
        assert_eq!(
            err.value.as_deref(),
            Some("action=OPEN_LONG, harvest_action=PARTIAL_50")
        );
    }

    #[test]
    fn unknown_action_is_an_error_naming_field_and_value() {
        let err = only_error(Plan::parse(&with(base_open(), "action", "UNKNOWN")));
        assert_eq!(err.field, "action");
        assert_eq!(err.value.as_deref(), Some("UNKNOWN"));
        assert!(err.to_string().contains("unknown action"), "{err}");
    }

    #[test]
    fn empty_action_is_an_error_not_a_default() {
        let err = only_error(Plan::parse(&with(base_open(), "action", "")));
        assert_eq!(err.field, "action");
        assert_eq!(err.value.as_deref(), Some(""));
    }

    #[test]
    fn non_finite_and_non_plain_numbers_are_rejected() {
        for bad in [
            "NaN", "nan", "inf", "-inf", "infinity", "1e400", "0x10", " 5 ", "5 ", "",
        ] {
            let err = only_error(Plan::parse(&with(base_open(), "qty", bad)));
            assert_eq!(err.field, "qty", "value {bad:?}");
            assert_eq!(err.value.as_deref(), Some(bad));
        }
    }

    #[test]
    fn qty_must_be_positive_and_is_required_on_opens() {
        let err = only_error(Plan::parse(&with(base_open(), "qty", "0")));
        assert!(err.problem.contains("> 0"));
        let mut no_qty = base_open();
        no_qty.retain(|(k, _)| k != "qty");
        let err = only_error(Plan::parse(&no_qty));
        assert_eq!((err.field.as_str(), err.value), ("qty", None));
    }

    #[test]
    fn open_aliases_need_and_use_side() {
        for alias in ["OPEN", "NEW_TRADE", "EXPAND_POSITION"] {
            let plan =
                Plan::parse(&with(with(base_open(), "action", alias), "side", "SELL")).unwrap();
            assert_eq!(plan.action, Action::Open(Side::Short));
            assert_eq!(
                plan.action_source,
                ActionSource::OpenAlias(alias.to_owned())
            );
            let err = only_error(Plan::parse(&with(base_open(), "action", alias)));
            assert_eq!(err.field, "side");
        }
    }

    #[test]
    fn side_contradicting_the_action_is_rejected() {
        let err = only_error(Plan::parse(&with(base_open(), "side", "SHORT")));
        assert_eq!(err.field, "side");
    }

    #[test]
    fn reduce_only_false_on_a_close_is_rejected() {
        let close = with(
            with(base_open(), "action", "PARTIAL_50"),
            "reduceOnly",
            "false",
        );
        let err = only_error(Plan::parse(&close));
        assert_eq!(err.field, "reduceOnly");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = fields(&[
            ("plan_id", "bad id with spaces"),
            ("symbol", "btc"),
            ("action", "OPEN_LONG"),
            ("decision", "EXECUTE"),
            ("qty", "NaN"),
            ("kill_score", "1.5"),
        ]);
        let rejection = Plan::parse(&bad).unwrap_err();
        let named: Vec<&str> = rejection.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["plan_id", "symbol", "qty", "kill_score"]);
    }

    #[test]
    fn oversized_plans_are_rejected_before_parsing() {
        let mut big = base_open();
        for i in 0..40 {
            big.push((format!("x{i}"), "1".to_owned()));
        }
        let err = only_error(Plan::parse(&big));
        assert_eq!(err.field, "<plan>");
        let huge = with(base_open(), "note", &"x".repeat(MAX_PLAN_BYTES));
        assert_eq!(only_error(Plan::parse(&huge)).field, "<plan>");
    }

    #[test]
    fn duplicate_fields_are_rejected() {
        let mut dup = base_open();
        dup.push(("qty".to_owned(), "2".to_owned()));
        assert_eq!(only_error(Plan::parse(&dup)).field, "qty");
        // The value read is the last one written: a bad repeat is reported as well.
        let mut bad = base_open();
        bad.push(("qty".to_owned(), "NaN".to_owned()));
        let errors = Plan::parse(&bad).unwrap_err().errors;
        let values: Vec<(&str, Option<&str>)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            values,
            [("qty", Some("NaN")), ("qty", Some("NaN"))],
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_fields_are_kept_not_rejected() {
        let plan = Plan::parse(&with(base_open(), "model_version", "v7")).unwrap();
        assert_eq!(
            plan.extra.get("model_version").map(String::as_str),
            Some("v7")
        );
    }

    #[test]
    fn rotation_fields_are_required_together() {
        let close = fields(&[
            ("plan_id", "rot_abcdefgh_ETHUSDT"),
            ("symbol", "ETHUSDT"),
            ("action", "FULL_CLOSE_PROPOSED"),
            ("decision", "EXECUTE"),
            ("reduceOnly", "true"),
            ("rotation_trigger", "true"),
            ("new_symbol", "SOLUSDT"),
        ]);
        let err = only_error(Plan::parse(&close));
        assert_eq!((err.field.as_str(), err.value), ("new_plan_id", None));
    }

    #[test]
    fn non_execute_decisions_parse_as_skips() {
        let plan = Plan::parse(&with(base_open(), "decision", "SKIP")).unwrap();
        assert!(!plan.execute);
    }
}
