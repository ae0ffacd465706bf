//! Property tests: random interleavings of opens, closes, results and clock advances from
//! several logical governors sharing one embedded store. Each governor snapshots and decides,
//! and commits later, so stale decisions race fresh ones exactly as separate instances would.

mod support;

use governor_core::decide::{decide, Decision};
use governor_core::plan::Plan;
use governor_core::reason::BlockReason;
use governor_core::snapshot::VerdictKind;
use governor_core::types::Side;
use governor_core::Config;
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::*;

const TRADED: [&str; 6] = [
    "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
];
const GOVERNORS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// Governor `g` snapshots and decides an open (plan ids come from a small pool, so the
    /// same id is submitted again and again).
    PrepareOpen {
        g: usize,
        id: u8,
        sym: usize,
        long: bool,
        notional: u16,
        score: u8,
    },
    /// Governor `g` snapshots and decides a close.
    PrepareClose {
        g: usize,
        id: u8,
        sym: usize,
        partial: bool,
    },
    /// Governor `g` commits what it decided (a lost race re-decides, as the service does).
    Commit { g: usize },
    /// The executor takes a live permit and the exchange fills it.
    Fill { id: u8, close: bool },
    /// The executor's order fails.
    Fail { id: u8 },
    /// A published rotation close comes back through the plan stream.
    Replan,
    /// Time passes.
    Advance { secs: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..GOVERNORS, 0u8..24, 0..TRADED.len(), any::<bool>(), 50u16..260, 40u8..100)
            .prop_map(|(g, id, sym, long, notional, score)| Op::PrepareOpen { g, id, sym, long, notional, score }),
        2 => (0..GOVERNORS, 0u8..24, 0..TRADED.len(), any::<bool>())
            .prop_map(|(g, id, sym, partial)| Op::PrepareClose { g, id, sym, partial }),
        5 => (0..GOVERNORS).prop_map(|g| Op::Commit { g }),
        3 => (0u8..24, any::<bool>()).prop_map(|(id, close)| Op::Fill { id, close }),
        1 => (0u8..24).prop_map(|id| Op::Fail { id }),
        1 => Just(Op::Replan),
        2 => (0u16..200).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// Reasons only the open path can give: a close must never carry one of them.
fn open_only(reason: BlockReason) -> bool {
    !matches!(
        reason,
        BlockReason::KillSwitch
            | BlockReason::NoPosition
            | BlockReason::ExitLockBusyDoubleClosePrevention
            | BlockReason::ExchangeStateUnavailable
    )
}

fn open_fields(
    w: &World,
    id: &str,
    sym: &str,
    long: bool,
    notional: f64,
    score: u8,
) -> Vec<(String, String)> {
    let action = if long { "OPEN_LONG" } else { "OPEN_SHORT" };
    let qty = (notional / w.mark(sym)).to_string();
    [
        ("plan_id", id),
        ("symbol", sym),
        ("action", action),
        ("decision", "EXECUTE"),
        ("qty", qty.as_str()),
        ("score", score.to_string().as_str()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn result_fields(
    id: &str,
    sym: &str,
    action: &str,
    executed: bool,
    qty: f64,
    price: f64,
) -> Vec<(String, String)> {
    let reduce = (!action.starts_with("OPEN")).to_string();
    let mut f: Vec<(String, String)> = [
        ("plan_id", id.to_owned()),
        ("symbol", sym.to_owned()),
        ("executed", executed.to_string()),
        ("reduceOnly", reduce),
        ("action", action.to_owned()),
        (
            "filled_qty",
            if executed {
                qty.to_string()
            } else {
                "0".into()
            },
        ),
        (
            "avg_price",
            if executed {
                price.to_string()
            } else {
                "0".into()
            },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if !executed {
        f.push(("error".into(), "-2019 Margin is insufficient".into()));
    }
    f
}

/// Decides `plan` as governor would, checking on the way that decide is deterministic.
fn prepare(w: &World, plan: &Plan) -> Decision {
    let snap = w.store().snapshot(&plan.plan_id, &w.inputs(), w.now);
    let cfg = w.gov.config();
    let d = decide(plan, &snap, cfg, w.now);
    let again = decide(plan, &snap, cfg, w.now);
    assert_eq!(d, again, "decide must be deterministic");
    assert_eq!(d.trace.to_json(), again.trace.to_json());
    d
}

fn check_invariants(w: &World) {
    let st = w.store().state();
    // Slots: the budget is the RANGE regime's 4 (the market does not change in this test).
    let slots = st.book.slots().len();
    let unledgered = w
        .exchange
        .borrow()
        .keys()
        .filter(|s| !st.book.positions.contains_key(*s))
        .count();
    assert!(
        slots + unledgered <= 4,
        "{slots} slots + {unledgered} unledgered > 4: {:?}",
        st.book
    );
    // Never two permits for one plan id.
    for (id, n) in &st.permits_granted {
        assert!(*n <= 1, "{id} got {n} permits");
    }
    // A plan id is decided once; only a PENDING rotation may later get its terminal decision.
    let mut per_id: BTreeMap<_, Vec<VerdictKind>> = BTreeMap::new();
    for r in &st.decision_log {
        per_id.entry(r.plan_id.clone()).or_default().push(r.verdict);
    }
    for (id, verdicts) in per_id {
        let ok =
            verdicts.len() == 1 || (verdicts.len() == 2 && verdicts[0] == VerdictKind::Pending);
        assert!(ok, "{id} decided as {verdicts:?}");
    }
    // Closes are never refused by an open-only gate.
    for r in &st.decision_log {
        let is_close = !r.action.starts_with("OPEN");
        if let (true, Some(reason)) = (is_close, r.reason) {
            assert!(
                !open_only(reason),
                "close {} blocked by {reason}",
                r.plan_id
            );
        }
    }
    // Once the clock has passed a reservation's TTL, no snapshot shows it.
    let any = pid("probe");
    let snap = w.store().snapshot(&any, &w.inputs(), w.now);
    for (id, r) in &snap.book.reservations {
        assert!(r.expires_at > w.now, "reservation {id} outlived its TTL");
    }
}

/// Rate limits and cooldown opened wide, so that slots fill up and races for the last slot
/// happen (with the defaults, 3 opens an hour never reach 4 slots).
fn racing_config() -> Config {
    let mut c = Config::default();
    c.cadence.max_exec_per_hour = 10_000;
    c.cadence.max_exec_per_5min = 10_000;
    c.cadence.symbol_cooldown_secs = 0;
    c
}

fn run(ops: Vec<Op>) {
    let mut w = World::new(racing_config());
    w.per_decision_correlation = true; // the scenarios cover the per-bar cache

    let mut in_flight: Vec<Option<(Plan, Decision)>> = vec![None; GOVERNORS];
    for op in ops {
        match op {
            Op::PrepareOpen {
                g,
                id,
                sym,
                long,
                notional,
                score,
            } => {
                let fields = open_fields(
                    &w,
                    &format!("o{id}"),
                    TRADED[sym],
                    long,
                    f64::from(notional),
                    score,
                );
                let plan = Plan::parse(&fields).expect("generated plans are valid");
                let d = prepare(&w, &plan);
                in_flight[g] = Some((plan, d));
            }
            Op::PrepareClose {
                g,
                id,
                sym,
                partial,
            } => {
                let action = if partial {
                    "PARTIAL_50"
                } else {
                    "FULL_CLOSE_PROPOSED"
                };
                let fields: Vec<(String, String)> = [
                    ("plan_id", format!("c{id}")),
                    ("symbol", TRADED[sym].into()),
                    ("action", action.into()),
                    ("decision", "EXECUTE".into()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                let plan = Plan::parse(&fields).expect("generated plans are valid");
                let d = prepare(&w, &plan);
                in_flight[g] = Some((plan, d));
            }
            Op::Commit { g } => {
                if let Some((plan, d)) = in_flight[g].take() {
                    if !d.replayed && w.store().commit(&d, w.now).is_err() {
                        // Lost a race: decide again on fresh state, like the governor loop.
                        w.gov.decide_plan(&plan, &w.inputs(), w.now);
                    }
                }
            }
            Op::Fill { id, close } => {
                let id = format!("{}{id}", if close { "c" } else { "o" });
                if let Some(permit) = w.store().take_permit(&pid(&id), w.now) {
                    let mark = w.mark(permit.symbol.as_str());
                    w.execute_on_exchange(&permit.symbol, &permit.action, permit.qty, mark);
                    let f = result_fields(
                        &id,
                        permit.symbol.as_str(),
                        &permit.action,
                        true,
                        permit.qty,
                        mark,
                    );
                    w.gov
                        .on_result(&f, &w.inputs(), w.now)
                        .expect("valid result");
                }
            }
            Op::Fail { id } => {
                let id = format!("o{id}");
                if let Some(permit) = w.store().take_permit(&pid(&id), w.now) {
                    let f =
                        result_fields(&id, permit.symbol.as_str(), &permit.action, false, 0.0, 0.0);
                    w.gov
                        .on_result(&f, &w.inputs(), w.now)
                        .expect("valid result");
                }
            }
            Op::Replan => {
                let published = w.store().state().published;
                if let Some(fields) = published.last() {
                    w.gov.submit(fields, &w.inputs(), w.now);
                    let id = &fields[0].1;
                    if let Some(permit) = w.store().take_permit(&pid(id), w.now) {
                        let mark = w.mark(permit.symbol.as_str());
                        w.execute_on_exchange(&permit.symbol, &permit.action, permit.qty, mark);
                        let f = result_fields(
                            id,
                            permit.symbol.as_str(),
                            &permit.action,
                            true,
                            permit.qty,
                            mark,
                        );
                        w.gov
                            .on_result(&f, &w.inputs(), w.now)
                            .expect("valid result");
                    }
                }
            }
            Op::Advance { secs } => w.advance(u64::from(secs)),
        }
        check_invariants(&w);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn shared_store_invariants_hold_under_any_interleaving(ops in prop::collection::vec(op(), 1..80)) {
        run(ops);
    }

    /// Any close action, however it is spelled (action or the harvest_action alias), parses to
    /// a close: a close proposal can never come out as UPDATE_SL or HOLD.
    #[test]
    fn a_close_is_always_parsed_as_a_close(
        kind in prop::sample::select(vec!["FULL_CLOSE_PROPOSED", "PARTIAL_75", "PARTIAL_50", "PARTIAL_25"]),
        via_alias in any::<bool>(),
        extra in prop::collection::btree_map("[a-z_]{1,12}", "[A-Za-z0-9_]{0,8}", 0..5),
    ) {
        let field = if via_alias { "harvest_action" } else { "action" };
        let mut fields: Vec<(String, String)> = vec![
            ("plan_id".into(), "p1".into()),
            ("symbol".into(), "ETHUSDT".into()),
            (field.into(), kind.into()),
            ("decision".into(), "EXECUTE".into()),
        ];
        for (k, v) in extra {
            if !fields.iter().any(|(n, _)| *n == k) && !["action", "harvest_action", "side", "qty", "reduceOnly"].contains(&k.as_str()) {
                fields.push((k, v));
            }
        }
        if let Ok(plan) = Plan::parse(&fields) {
            prop_assert!(plan.action.is_close(), "{kind} parsed as {:?}", plan.action);
            prop_assert_eq!(plan.action.as_str(), kind);
        }
    }
}

#[test]
fn open_side_helper_is_consistent() {
    // Guards the generator itself: OPEN_SHORT plans really are shorts.
    let w = World::new(Config::default());
    let plan = Plan::parse(&open_fields(&w, "x", "ETHUSDT", false, 100.0, 50)).unwrap();
    assert_eq!(plan.action, governor_core::plan::Action::Open(Side::Short));
}
