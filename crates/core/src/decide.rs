//! `decide(plan, snapshot, config, now) -> Decision`: every gate in priority
//! order, composed purely. The decision carries its verdict, the effects the store must apply,
//! the guards those effects rely on, and the trace.

use std::borrow::Cow;

use crate::book::{Reservation, RotationLock, RotationPhase};
use crate::config::Config;
use crate::config::GateMode;
use crate::effects::{Effect, Event, Guard, Permit};
use crate::gates::mode::Gatekeeper;
use crate::gates::portfolio::{Portfolio, SharedView};
use crate::gates::slots::{self, RotationChoice, SlotBudget, SlotUse};
use crate::gates::{
    throttle, Candidate, Ctx, Pipeline, Refusal, CLOSE_PATH, COMMON_PATH, OPEN_PATH,
};
use crate::plan::{Action, ActionSource, CloseKind, Plan};
use crate::reason::BlockReason;
use crate::snapshot::{DecisionRecord, Snapshot, VerdictKind};
use crate::time::Timestamp;
use crate::trace::{Fact, Outcome, RecordTrace, Trace};
use crate::types::{PlanId, Side, TradingState};
use std::sync::Arc;

/// The answer for one plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// A permit for this (possibly scaled) quantity.
    Allow {
        /// Permitted quantity.
        qty: f64,
        /// Permitted notional in USDT.
        notional: f64,
    },
    /// Refused.
    Block {
        /// The stable reason.
        reason: BlockReason,
        /// The numbers behind it.
        detail: String,
    },
    /// Waiting for a rotation close (`active_slots_waiting_rotation_close`).
    Pending {
        /// The close plan that will free the slot.
        close_plan_id: PlanId,
    },
    /// Not evaluated: `decision` ≠ EXECUTE or a non-executing action.
    Skip {
        /// Why.
        why: String,
    },
}

impl Verdict {
    /// The verdict's kind as the decisions stream spells it.
    pub fn kind(&self) -> VerdictKind {
        match self {
            Verdict::Allow { .. } => VerdictKind::Allow,
            Verdict::Block { .. } => VerdictKind::Block,
            Verdict::Pending { .. } => VerdictKind::Pending,
            Verdict::Skip { .. } => VerdictKind::Skip,
        }
    }

    /// The block or pending reason.
    pub fn reason(&self) -> Option<BlockReason> {
        match self {
            Verdict::Block { reason, .. } => Some(*reason),
            Verdict::Pending { .. } => Some(BlockReason::ActiveSlotsWaitingRotationClose),
            _ => None,
        }
    }
}

/// A decision: what to answer, what to change, what must still hold, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The answer.
    pub verdict: Verdict,
    /// True when this repeats an earlier decision for the same plan id (no effects).
    pub replayed: bool,
    /// The store changes, applied all or none.
    pub effects: Vec<Effect>,
    /// What the store re-checks atomically before applying them.
    pub guards: Vec<Guard>,
    /// Gate by gate, why (shared with the record, which renders it only when written out).
    pub trace: Arc<Trace>,
    /// The record of this decision (a replay's record is the stored one), shared with the
    /// commit that stores it.
    pub record: Arc<DecisionRecord>,
}

impl Decision {
    /// The record as the store writes it at commit.
    pub fn committed_record(&self) -> DecisionRecord {
        DecisionRecord::clone(&self.record)
    }

    /// Everything a commit applies, in order: the decision's record first, then its effects.
    /// Every store commits exactly this, so none adds effects of its own.
    pub fn commit_effects(&self) -> impl Iterator<Item = Cow<'_, Effect>> {
        std::iter::once(Cow::Owned(Effect::Record(self.record.clone())))
            .chain(self.effects.iter().map(Cow::Borrowed))
    }
}

/// What the decision learned along the way, for the record.
#[derive(Default)]
struct Summary {
    regime: Option<String>,
    desired: Option<u32>,
    occupied: Option<u32>,
    /// Runs the policy gates under their modes; keeps their shadow refusals.
    gates: Gatekeeper,
}

/// Decides one plan. Pure: same inputs, same decision, byte-identical trace.
pub fn decide(plan: &Plan, snap: &Snapshot, cfg: &Config, now: Timestamp) -> Decision {
    decide_on(plan, snap, &SharedView::of(snap), cfg, now)
}

/// [`decide`], with the portfolio view of `snap` shared with other plans decided on the same
/// snapshot: a batch builds it once for the plans it decides before one changes the book.
/// The decision is the one [`decide`] makes.
///
/// # Panics
/// When `view` is not the view of `snap` ([`SharedView::get`]).
pub fn decide_on(
    plan: &Plan,
    snap: &Snapshot,
    view: &SharedView<'_>,
    cfg: &Config,
    now: Timestamp,
) -> Decision {
    let ctx = Ctx {
        plan,
        snap,
        cfg,
        now,
    };
    let mut trace = Trace::for_decision();
    schema_line(plan, &mut trace);

    let phase2 = match &snap.prior {
        None => false,
        Some(prior) => {
            let held = snap
                .book
                .rotations
                .get(&plan.plan_id)
                .is_some_and(|r| r.phase == RotationPhase::SlotHeld);
            if prior.verdict == VerdictKind::Pending && held {
                true
            } else {
                return replay(prior, now);
            }
        }
    };
    trace
        .line("idempotency", Outcome::Pass)
        .flag("decided_before", phase2)
        .note(if phase2 {
            "rotation phase 2: the close executed and its slot is held for this plan"
        } else {
            "first decision for this plan id"
        });

    if !plan.execute || matches!(plan.action, Action::UpdateSl | Action::Hold) {
        let why = if plan.execute {
            format!(
                "{} is not executed through the governor",
                plan.action.as_str()
            )
        } else {
            format!("decision = {:?}, not EXECUTE", plan.decision)
        };
        trace
            .line("execute_only", Outcome::NotApplicable)
            .note(why.clone());
        return finish(
            &ctx,
            trace,
            Verdict::Skip { why },
            Vec::new(),
            Vec::new(),
            Summary::default(),
        );
    }
    trace.line("execute_only", Outcome::Pass);

    let mut summary = Summary::default();
    let common = Pipeline::new(&ctx, view, Side::Long, phase2).run(&ctx, COMMON_PATH, &mut trace);
    let outcome = common.and_then(|()| match plan.action {
        Action::Close(kind) => close_path(&ctx, view, kind, &mut trace),
        Action::Open(side) => open_path(&ctx, view, side, phase2, &mut trace, &mut summary),
        Action::UpdateSl | Action::Hold => unreachable!("skipped above"),
    });
    match outcome {
        Ok(Answer {
            verdict,
            effects,
            guards,
        }) => finish(&ctx, trace, verdict, effects, guards, summary),
        Err(refusal) => block(&ctx, trace, refusal, phase2, summary),
    }
}

/// What a path that did not block answers with.
struct Answer {
    verdict: Verdict,
    effects: Vec<Effect>,
    guards: Vec<Guard>,
}

/// The plan as read: its action, where the action came from, the fields it had that the
/// governor does not read.
fn schema_line(plan: &Plan, trace: &mut Trace) {
    let source = match &plan.action_source {
        ActionSource::Action => Fact::Name("action"),
        ActionSource::HarvestActionAlias => {
            Fact::Name("harvest_action (alias: `action` was absent)")
        }
        ActionSource::OpenAlias(alias) => Fact::Text(format!("{alias} + side").into()),
    };
    let line = trace
        .line("schema", Outcome::Pass)
        .name("action", plan.action.as_str())
        .facts([("action_from", source)]);
    if !plan.extra.is_empty() {
        let names: Vec<&str> = plan.extra.keys().map(String::as_str).collect();
        line.text("ignored_fields", names.join(","));
    }
}

fn replay(prior: &DecisionRecord, now: Timestamp) -> Decision {
    let verdict = match prior.verdict {
        VerdictKind::Allow => Verdict::Allow {
            qty: prior.qty.unwrap_or(0.0),
            notional: prior.notional.unwrap_or(0.0),
        },
        VerdictKind::Pending => Verdict::Pending {
            close_plan_id: PlanId::parse(&prior.detail).unwrap_or_else(|_| prior.plan_id.clone()),
        },
        VerdictKind::Skip => Verdict::Skip {
            why: prior.detail.clone(),
        },
        VerdictKind::Block | VerdictKind::Reject => Verdict::Block {
            reason: prior.reason.unwrap_or(BlockReason::KillSwitch),
            detail: prior.detail.clone(),
        },
    };
    let mut trace = Trace::default();
    trace
        .line("idempotency", Outcome::Pass)
        .flag("decided_before", true)
        .int("decided_at", prior.decided_at.millis())
        .int("asked_again_at", now.millis())
        .name("verdict", prior.verdict.as_str())
        .note("this plan id was decided before: the same decision, no new effects");
    Decision {
        verdict,
        replayed: true,
        effects: Vec::new(),
        guards: Vec::new(),
        trace: Arc::new(trace),
        record: Arc::new(prior.clone()),
    }
}

fn close_path<'a>(
    ctx: &Ctx<'a>,
    view: &'a SharedView<'_>,
    kind: CloseKind,
    trace: &mut Trace,
) -> Result<Answer, Refusal> {
    let mut pipeline = Pipeline::new(ctx, view, Side::Long, false);
    pipeline.run(ctx, CLOSE_PATH, trace)?;
    let position = pipeline
        .closing
        .expect("position_exists is on the close path");
    let plan = ctx.plan;
    let qty = match kind {
        CloseKind::Full => position.qty,
        partial => plan
            .qty
            .unwrap_or(position.qty * partial.fraction())
            .min(position.qty),
    };
    let notional = qty * position.mark;
    trace
        .line("close_size", Outcome::Pass)
        .num("fraction", kind.fraction())
        .num("qty", qty)
        .num("notional", notional)
        .note("closes skip fund caps, slots, correlation, margin, cooldown and rate limits");
    let now = ctx.now;
    let mut effects = vec![
        Effect::TakeExitLock {
            symbol: plan.symbol.clone(),
            holder: plan.plan_id.clone(),
            expires_at: now.plus_secs(ctx.cfg.exit_lock_ttl_secs),
        },
        permit(ctx, qty, notional, None),
    ];
    // A rotation's close: its timeout must now leave the lock to this close.
    if let Some((pending, _)) = ctx.snap.book.rotation_by_close(&plan.plan_id) {
        effects.push(Effect::MarkRotationClosePermitted {
            pending_plan_id: pending.clone(),
        });
    }
    let guards = vec![
        Guard::TradingStateIs(ctx.snap.trading_state),
        Guard::ExitLockFree {
            symbol: plan.symbol.clone(),
            holder: plan.plan_id.clone(),
        },
        Guard::NoOpenInFlight(plan.symbol.clone()),
    ];
    Ok(Answer {
        verdict: Verdict::Allow { qty, notional },
        effects,
        guards,
    })
}

fn permit(ctx: &Ctx<'_>, qty: f64, notional: f64, regime: Option<&str>) -> Effect {
    Effect::WritePermit(Permit {
        plan_id: ctx.plan.plan_id.clone(),
        symbol: ctx.plan.symbol.clone(),
        action: ctx.plan.action.as_str().to_owned(),
        qty,
        notional,
        regime: regime.map(str::to_owned),
        fence: 0,
        granted_at: ctx.now,
        expires_at: ctx.now.plus_secs(ctx.cfg.permit_ttl_secs),
    })
}

fn open_path<'a>(
    ctx: &Ctx<'a>,
    view: &'a SharedView<'_>,
    side: Side,
    phase2: bool,
    trace: &mut Trace,
    summary: &mut Summary,
) -> Result<Answer, Refusal> {
    let mut pipeline = Pipeline::new(ctx, view, side, phase2);
    let passed = pipeline.run(ctx, OPEN_PATH, trace);
    summary.occupied = pipeline.occupied;
    if let Some(b) = pipeline.budget {
        summary.regime = Some(b.reading.regime.as_str().to_owned());
        summary.desired = Some(b.desired);
    }
    summary.gates = std::mem::take(&mut pipeline.gates);
    passed?;
    let cand = pipeline
        .candidate
        .as_ref()
        .expect("sizing is on the open path");
    if let Some(choice) = &pipeline.rotation {
        return Ok(start_rotation(ctx, choice, trace));
    }
    let slot_use = pipeline.slot_use.expect("slots is on the open path");
    let view = pipeline
        .view
        .as_ref()
        .expect("exchange_state is on the open path");
    Ok(allow_open(
        ctx,
        cand,
        slot_use,
        pipeline.budget,
        view,
        phase2,
    ))
}

fn allow_open(
    ctx: &Ctx<'_>,
    cand: &Candidate,
    slot_use: SlotUse,
    budget: Option<SlotBudget>,
    view: &Portfolio,
    phase2: bool,
) -> Answer {
    let plan = ctx.plan;
    let now = ctx.now;
    let cadence = &ctx.cfg.cadence;
    let regime = budget.map(|b| b.reading.regime.as_str());
    // Sized for everything an open may add (a rotation's, the decision's event) and every
    // guard (with the one `finish` puts first): no regrowth on the decision path.
    let mut effects = Vec::with_capacity(8);
    effects.extend([
        Effect::Reserve {
            plan_id: plan.plan_id.clone(),
            reservation: Reservation {
                symbol: cand.symbol.clone(),
                side: cand.side,
                qty: cand.qty,
                notional: cand.notional,
                leverage: cand.leverage,
                score: plan.score,
                granted_at: now,
                expires_at: now.plus_secs(ctx.cfg.permit_ttl_secs),
                fence: 0,
            },
        },
        permit(ctx, cand.qty, cand.notional, regime),
        Effect::CountOpen {
            plan_id: plan.plan_id.clone(),
            symbol: cand.symbol.clone(),
            at: now,
        },
    ]);
    // Only what an enforced gate checked is guarded: a shadow gate's condition may not hold.
    let modes = &ctx.cfg.gates;
    let enforced = |m: GateMode| m == GateMode::Enforce;
    let mut guards = Vec::with_capacity(12);
    guards.push(Guard::TradingStateIs(TradingState::Active));
    if enforced(modes.cooldown) {
        guards.push(Guard::CooldownClear {
            symbol: cand.symbol.clone(),
            since: now.minus_secs(cadence.symbol_cooldown_secs),
        });
    }
    if enforced(modes.rate_limit) {
        guards.push(Guard::OpensBelow {
            since: now.minus_secs(3600),
            limit: cadence.max_exec_per_hour,
        });
        guards.push(Guard::OpensBelow {
            since: now.minus_secs(300),
            limit: cadence.max_exec_per_5min,
        });
    }
    if enforced(modes.submit_throttle) {
        guards.push(Guard::OpensBelow {
            since: throttle::window_start(now),
            limit: ctx.cfg.throttle.max_permits_per_sec,
        });
    }
    let money = [
        modes.correlation,
        modes.margin,
        modes.fund_caps,
        modes.capital,
    ];
    if money.into_iter().any(enforced) {
        guards.push(Guard::NoReservationSince(ctx.snap.book.reservation_seq));
    }
    if let (SlotUse::NewSlot, Some(b), true) = (slot_use, budget, enforced(modes.slots)) {
        guards.push(Guard::SlotAvailable {
            symbol: cand.symbol.clone(),
            side: cand.side,
            desired: b.desired,
            unledgered: view.unledgered_outside_book(None),
        });
    }
    if slot_use == SlotUse::Expand {
        // No close may have taken the symbol's exit lock since: it would take this open's
        // fill with it.
        guards.push(Guard::ExitLockFree {
            symbol: cand.symbol.clone(),
            holder: plan.plan_id.clone(),
        });
    }
    if let (SlotUse::NewSlot | SlotUse::RotationHeld, true) = (slot_use, enforced(modes.side_slots))
    {
        if let Some((limit, _, unledgered)) = slots::side_count(ctx, cand, view) {
            guards.push(Guard::SideSlotsBelow {
                symbol: cand.symbol.clone(),
                side: cand.side,
                limit,
                unledgered,
            });
        }
    }
    if phase2 {
        effects.push(Effect::EndRotation {
            pending_plan_id: plan.plan_id.clone(),
        });
        let rot = ctx.snap.book.rotations.get(&plan.plan_id);
        let mut event = Event::new("ROTATION_COMPLETE", &plan.plan_id, &plan.symbol, now)
            .with("new_symbol", &plan.symbol);
        if let Some(rot) = rot {
            event = event
                .with("close_symbol", &rot.close_symbol)
                .with("close_plan_id", &rot.close_plan_id)
                .with("lock_age", format!("{:.3}", now.secs_since(rot.created_at)));
        }
        effects.push(Effect::Emit(event));
    }
    Answer {
        verdict: Verdict::Allow {
            qty: cand.qty,
            notional: cand.notional,
        },
        effects,
        guards,
    }
}

fn start_rotation(ctx: &Ctx<'_>, choice: &RotationChoice, trace: &mut Trace) -> Answer {
    let plan = ctx.plan;
    let now = ctx.now;
    let ttl = ctx.cfg.slots.rotation_lock_ttl_secs;
    let close_fields: Vec<(String, String)> = [
        ("plan_id", choice.close_plan_id.to_string()),
        ("symbol", choice.weakest.to_string()),
        ("action", "FULL_CLOSE_PROPOSED".to_owned()),
        ("decision", "EXECUTE".to_owned()),
        ("reduceOnly", "true".to_owned()),
        ("qty", choice.weakest_qty.to_string()),
        ("rotation_trigger", "true".to_owned()),
        ("new_symbol", plan.symbol.to_string()),
        ("new_plan_id", plan.plan_id.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    trace
        .line(
            "rotation_phase1",
            Outcome::Pending(BlockReason::ActiveSlotsWaitingRotationClose),
        )
        .id("close_symbol", &choice.weakest)
        .id("close_plan_id", &choice.close_plan_id)
        .num("weakest_score", choice.weakest_score)
        .num("candidate_score", choice.candidate_score)
        .int("rotation_lock_ttl_secs", ttl as i64)
        .note("close plan published; the slot it frees is held for this plan only");
    let effects = vec![
        Effect::TakeExitLock {
            symbol: choice.weakest.clone(),
            holder: choice.close_plan_id.clone(),
            expires_at: now.plus_secs(ttl),
        },
        Effect::StartRotation(Box::new(RotationLock {
            pending: plan.clone(),
            close_symbol: choice.weakest.clone(),
            close_plan_id: choice.close_plan_id.clone(),
            created_at: now,
            expires_at: now.plus_secs(ttl),
            phase: RotationPhase::AwaitingClose,
        })),
        Effect::PublishPlan(close_fields),
        Effect::Emit(
            Event::new("ROTATION_LOCK_CREATED", &plan.plan_id, &plan.symbol, now)
                .with("new_symbol", &plan.symbol)
                .with("close_symbol", &choice.weakest)
                .with("close_plan_id", &choice.close_plan_id)
                .with("weakest_score", choice.weakest_score)
                .with("new_score", choice.candidate_score),
        ),
    ];
    let guards = vec![
        Guard::TradingStateIs(TradingState::Active),
        Guard::ExitLockFree {
            symbol: choice.weakest.clone(),
            holder: choice.close_plan_id.clone(),
        },
    ];
    Answer {
        verdict: Verdict::Pending {
            close_plan_id: choice.close_plan_id.clone(),
        },
        effects,
        guards,
    }
}

fn block(
    ctx: &Ctx<'_>,
    trace: Trace,
    refusal: Refusal,
    phase2: bool,
    summary: Summary,
) -> Decision {
    let plan = ctx.plan;
    let now = ctx.now;
    let mut effects = vec![Effect::WriteBlock {
        plan_id: plan.plan_id.clone(),
        reason: refusal.reason,
        detail: refusal.detail.clone(),
    }];
    if phase2 {
        effects.push(Effect::EndRotation {
            pending_plan_id: plan.plan_id.clone(),
        });
    }
    let disarm = refusal.reason == BlockReason::KillScoreCritical
        && plan.action.is_open()
        && ctx.cfg.kill_score.auto_disarm
        && ctx.snap.trading_state == TradingState::Active;
    if disarm {
        let why = format!("auto-disarm: {}", refusal.detail);
        effects.push(Effect::SetTradingState {
            to: TradingState::Reducing,
            reason: why.clone(),
        });
        effects.push(Effect::Emit(
            Event::new("TRADING_STATE_CHANGED", &plan.plan_id, &plan.symbol, now)
                .with("from", TradingState::Active.as_str())
                .with("to", TradingState::Reducing.as_str())
                .with("reason", why)
                .with("by", "governor"),
        ));
    }
    let mut guards = Vec::new();
    let halt = refusal.reason == BlockReason::DrawdownHalt
        && ctx.snap.trading_state == TradingState::Active
        && ctx.snap.book.halt.is_none();
    if halt {
        effects.extend(crate::halt::halt_effects(
            BlockReason::DrawdownHalt,
            &plan.plan_id,
            &plan.symbol,
            &refusal.detail,
            now,
        ));
        guards.push(Guard::TradingStateIs(TradingState::Active));
    }
    let verdict = Verdict::Block {
        reason: refusal.reason,
        detail: refusal.detail,
    };
    finish(ctx, trace, verdict, effects, guards, summary)
}

/// Adds what every decision carries: its record, its event, and the guard that the plan id is
/// decided once (or, in phase 2, that its rotation still holds the slot).
fn finish(
    ctx: &Ctx<'_>,
    trace: Trace,
    verdict: Verdict,
    mut effects: Vec<Effect>,
    mut guards: Vec<Guard>,
    summary: Summary,
) -> Decision {
    let plan = ctx.plan;
    let trace = Arc::new(trace);
    let phase2 = ctx.snap.prior.is_some();
    guards.insert(
        0,
        if phase2 {
            Guard::RotationSlotHeld(plan.plan_id.clone())
        } else {
            Guard::Undecided(plan.plan_id.clone())
        },
    );
    let (qty, notional) = match &verdict {
        Verdict::Allow { qty, notional } => (Some(*qty), Some(*notional)),
        _ => (None, None),
    };
    let detail = match &verdict {
        Verdict::Block { detail, .. } => detail.clone(),
        Verdict::Pending { close_plan_id } => close_plan_id.to_string(),
        Verdict::Skip { why } => why.clone(),
        Verdict::Allow { .. } => String::new(),
    };
    let record = DecisionRecord {
        plan_id: plan.plan_id.clone(),
        symbol: plan.symbol.clone(),
        action: plan.action.as_str().to_owned(),
        verdict: verdict.kind(),
        reason: verdict.reason(),
        detail,
        qty,
        notional,
        regime: summary.regime,
        desired_slots: summary.desired,
        occupied_slots: summary.occupied,
        decided_at: ctx.now,
        // Rendered as JSON only where it is written out: that is the store's work.
        trace: RecordTrace::Lines(trace.clone()),
        shadow: summary.gates.shadow,
    };
    let event = match &verdict {
        Verdict::Allow { qty, .. } => Some(
            Event::new("PLAN_ALLOWED", &plan.plan_id, &plan.symbol, ctx.now)
                .with("action", plan.action.as_str())
                .with("qty", *qty),
        ),
        Verdict::Block { reason, .. } => Some(
            Event::new("PLAN_BLOCKED", &plan.plan_id, &plan.symbol, ctx.now)
                .with("action", plan.action.as_str())
                .with("reason", reason.code()),
        ),
        Verdict::Pending { .. } | Verdict::Skip { .. } => None,
    };
    if let Some(event) = event {
        effects.push(Effect::Emit(event));
    }
    Decision {
        verdict,
        replayed: false,
        effects,
        guards,
        trace,
        record: Arc::new(record),
    }
}
