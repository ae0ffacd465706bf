//! Guards and effects as the Lua commit script reads them: flat JSON objects whose numbers
//! are either small integers (times in ms, counts) or decimal text Rust already checked, and
//! whose records are pre-rendered JSON the script stores as they are. They are serialized
//! straight from borrowed fields into one text per batch (no JSON tree per guard or effect).
//! Decision records and the fields of stream entries travel as script arguments of their own
//! ([`ScriptTexts`]): they are escaped once, never parsed by the script, and handed to `SET` and
//! `XADD` as they arrived (decoding them as JSON was the script's largest cost).

use governor_core::effects::{Effect, Guard};
use governor_core::snapshot::DecisionRecord;
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Symbol};
use serde::Serialize;

/// How long decision records and applied-result markers are kept (7 days).
pub const RECORD_TTL_SECS: u64 = 7 * 86_400;

/// What the encoding needs besides the effect itself.
pub struct OpContext<'a> {
    /// Decision time: TTLs are `expires_at - now`.
    pub now: Timestamp,
    /// Lifetime of block records.
    pub block_ttl_secs: u64,
    /// Written into every decision stream entry.
    pub governor_id: &'a str,
}

/// The script argument the first text arrives as (`ARGV[1]` is the key prefix, `ARGV[2]` the
/// commits' JSON).
const FIRST_TEXT_ARG: usize = 3;

/// The texts of a batch of commits that the script stores as they are — decision records,
/// and the field names and values of the stream entries it adds — passed as script arguments
/// of their own and referred to by number from its JSON, so that they are neither escaped a
/// second time here nor parsed there.
#[derive(Debug, Default)]
pub struct ScriptTexts<'a>(Vec<std::borrow::Cow<'a, str>>);

/// A run of script arguments: a stream entry's names and values, alternating.
#[derive(Debug, Serialize)]
pub(super) struct FieldsArgs {
    /// The argument number of the first name.
    fields_arg: usize,
    /// How many arguments (twice the number of fields).
    fields_len: usize,
}

impl<'a> ScriptTexts<'a> {
    /// Keeps `text`; returns the script argument number it will arrive as.
    fn add(&mut self, text: impl Into<std::borrow::Cow<'a, str>>) -> usize {
        self.0.push(text.into());
        FIRST_TEXT_ARG + self.0.len() - 1
    }

    /// Keeps a stream entry's names and values, alternating; returns where they will arrive.
    fn add_fields(
        &mut self,
        fields: impl IntoIterator<Item = std::borrow::Cow<'a, str>>,
    ) -> FieldsArgs {
        let before = self.0.len();
        self.0.extend(fields);
        FieldsArgs {
            fields_arg: FIRST_TEXT_ARG + before,
            fields_len: self.0.len() - before,
        }
    }

    /// The texts, in argument order from `ARGV[3]`.
    pub fn into_args(self) -> Vec<std::borrow::Cow<'a, str>> {
        self.0
    }
}

fn ttl_ms(expires_at: Timestamp, now: Timestamp) -> i64 {
    (expires_at.millis() - now.millis()).max(1)
}

/// The decisions stream entry of a record (docs/wire-contract.md).
pub fn decision_fields(r: &DecisionRecord, governor_id: &str) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        ("plan_id", r.plan_id.to_string()),
        ("symbol", r.symbol.to_string()),
        ("action", r.action.clone()),
        ("verdict", r.verdict.as_str().to_owned()),
        ("reason", opt(r.reason.map(|x| x.code().to_owned()))),
        ("qty", opt(r.qty.map(|q| q.to_string()))),
        ("regime", opt(r.regime.clone())),
        ("desired_slots", opt(r.desired_slots.map(|d| d.to_string()))),
        (
            "occupied_slots",
            opt(r.occupied_slots.map(|d| d.to_string())),
        ),
        ("trace", r.trace.json().into_owned()),
        (
            "shadow_reasons",
            r.shadow
                .iter()
                .map(|x| x.code())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("ts", r.decided_at.millis().to_string()),
        ("governor_id", governor_id.to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect()
}

/// A guard as `lua/commit.lua` reads it: `guard` names the check, the other keys are its
/// arguments. Serialized straight from borrowed fields (no JSON tree is built per guard).
#[derive(Serialize)]
#[serde(tag = "guard", rename_all = "snake_case")]
pub(super) enum GuardJson<'a> {
    Undecided {
        plan_id: &'a PlanId,
    },
    RotationSlotHeld {
        plan_id: &'a PlanId,
    },
    TradingStateIs {
        state: &'static str,
    },
    SlotAvailable {
        symbol: &'a Symbol,
        side: &'static str,
        desired: u32,
        unledgered: u32,
    },
    ExitLockFree {
        symbol: &'a Symbol,
        holder: &'a PlanId,
    },
    CooldownClear {
        symbol: &'a Symbol,
        since: i64,
    },
    OpensBelow {
        since: i64,
        limit: u32,
    },
    NoReservationSince {
        seq: u64,
    },
    ReservationExists {
        plan_id: &'a PlanId,
    },
    RotationExists {
        plan_id: &'a PlanId,
    },
    RotationAwaitingClose {
        plan_id: &'a PlanId,
    },
    NoOpenInFlight {
        symbol: &'a Symbol,
    },
    ResultNotApplied {
        plan_id: &'a PlanId,
    },
    NotInDoubt {
        plan_id: &'a PlanId,
    },
    LedgerSettled {
        symbol: &'a Symbol,
        version: u64,
    },
    SideSlotsBelow {
        symbol: &'a Symbol,
        side: &'static str,
        limit: u32,
        unledgered: u32,
    },
}

impl<'a> GuardJson<'a> {
    /// The guard `g` as the script reads it.
    pub(super) fn of(g: &'a Guard) -> Self {
        match g {
            Guard::Undecided(plan_id) => GuardJson::Undecided { plan_id },
            Guard::RotationSlotHeld(plan_id) => GuardJson::RotationSlotHeld { plan_id },
            Guard::TradingStateIs(s) => GuardJson::TradingStateIs { state: s.as_str() },
            Guard::SlotAvailable {
                symbol,
                side,
                desired,
                unledgered,
            } => GuardJson::SlotAvailable {
                symbol,
                side: side.as_str(),
                desired: *desired,
                unledgered: *unledgered,
            },
            Guard::ExitLockFree { symbol, holder } => GuardJson::ExitLockFree { symbol, holder },
            Guard::CooldownClear { symbol, since } => GuardJson::CooldownClear {
                symbol,
                since: since.millis(),
            },
            Guard::OpensBelow { since, limit } => GuardJson::OpensBelow {
                since: since.millis(),
                limit: *limit,
            },
            Guard::NoReservationSince(seq) => GuardJson::NoReservationSince { seq: *seq },
            Guard::ReservationExists(plan_id) => GuardJson::ReservationExists { plan_id },
            Guard::RotationExists(plan_id) => GuardJson::RotationExists { plan_id },
            Guard::RotationAwaitingClose(plan_id) => GuardJson::RotationAwaitingClose { plan_id },
            Guard::NoOpenInFlight(symbol) => GuardJson::NoOpenInFlight { symbol },
            Guard::ResultNotApplied(plan_id) => GuardJson::ResultNotApplied { plan_id },
            Guard::NotInDoubt(plan_id) => GuardJson::NotInDoubt { plan_id },
            Guard::LedgerSettled { symbol, version } => GuardJson::LedgerSettled {
                symbol,
                version: *version,
            },
            Guard::SideSlotsBelow {
                symbol,
                side,
                limit,
                unledgered,
            } => GuardJson::SideSlotsBelow {
                symbol,
                side: side.as_str(),
                limit: *limit,
                unledgered: *unledgered,
            },
        }
    }
}

/// A block record as stored (`governor:block:{plan_id}`); keys in the order they are stored.
#[derive(Serialize)]
struct BlockJson<'a> {
    detail: &'a str,
    reason: &'static str,
    ts: i64,
}

/// A rotation lock as stored (`rotation:lock:{plan_id}`); keys in the order they are stored.
#[derive(Serialize)]
struct RotationLockJson<'a> {
    close_plan_id: &'a PlanId,
    close_symbol: &'a Symbol,
    created_at: i64,
    new_plan_id: &'a PlanId,
    new_symbol: &'a Symbol,
}

/// An effect as `lua/commit.lua` reads it: `op` names the change, the other keys are its
/// arguments (pre-rendered JSON where the script stores a record as it is; decimal text where it
/// does arithmetic, so that no number is re-encoded by Lua). Serialized straight from borrowed
/// fields.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum OpJson<'a> {
    Record {
        plan_id: &'a PlanId,
        /// The record's JSON before its trace (up to `"trace":`) and after it.
        head_arg: usize,
        tail_arg: usize,
        /// The trace: the decision entry's `trace` value, stored in the record as it is.
        trace_arg: usize,
        ttl_secs: u64,
        #[serde(flatten)]
        fields: FieldsArgs,
    },
    Reserve {
        plan_id: &'a PlanId,
        symbol: &'a Symbol,
        side: &'static str,
        json: String,
        notional_micro: i64,
    },
    WritePermit {
        plan_id: &'a PlanId,
        json: String,
        ttl_ms: i64,
    },
    WriteBlock {
        plan_id: &'a PlanId,
        json: String,
        ttl_secs: u64,
    },
    TakeExitLock {
        symbol: &'a Symbol,
        holder: &'a PlanId,
        ttl_ms: i64,
    },
    ReleaseExitLock {
        symbol: &'a Symbol,
        holder: &'a PlanId,
    },
    CountOpen {
        symbol: &'a Symbol,
        at: i64,
        member: &'a PlanId,
    },
    StartRotation {
        plan_id: &'a PlanId,
        json: String,
        lock_json: String,
        ttl_ms: i64,
    },
    MarkRotationClosePermitted {
        plan_id: &'a PlanId,
    },
    HoldRotationSlot {
        plan_id: &'a PlanId,
    },
    EndRotation {
        plan_id: &'a PlanId,
    },
    PublishPlan {
        #[serde(flatten)]
        fields: FieldsArgs,
    },
    SetTradingState {
        to: &'static str,
    },
    FillOpen {
        symbol: &'a Symbol,
        side: &'static str,
        qty: String,
        price: String,
        leverage: String,
        opened_at: String,
        entry_score: Option<String>,
        entry_fees: String,
    },
    ReleaseReservation {
        plan_id: &'a PlanId,
    },
    ReducePosition {
        symbol: &'a Symbol,
        qty: String,
    },
    PruneOpens {
        before: i64,
    },
    MarkInDoubt {
        plan_id: &'a PlanId,
        json: String,
    },
    MarkResultApplied {
        plan_id: &'a PlanId,
    },
    Emit {
        #[serde(flatten)]
        fields: FieldsArgs,
    },
    RecordEquity {
        hour: String,
        equity: String,
        keep_from: String,
    },
    ResetEquity {
        hour: String,
        equity: String,
    },
    SetHalt {
        json: Option<String>,
    },
    RecordClose {
        at: i64,
        keep_from: i64,
        json: String,
    },
}

/// A record's JSON as the Redis store keeps it, in two parts: up to `"trace":`, and after the
/// trace. The script puts the trace between them as the array itself (the decision entry's
/// `trace` value), so the trace is rendered, sent and stored once instead of twice, and never
/// escaped into a string; [`RecordTrace`](governor_core::trace::RecordTrace) reads either form
/// back.
fn record_around_trace(r: &DecisionRecord) -> (String, String) {
    let mut shell = r.clone();
    shell.trace = Default::default();
    let mut head = stored(&shell, "a record");
    // The record's own `trace` key: a `"` that follows a `,` is never inside a JSON string
    // (there every `"` is escaped), so the first match is the key.
    const EMPTY_TRACE: &str = ",\"trace\":\"\"";
    let at = head
        .find(EMPTY_TRACE)
        .expect("a record's JSON has its trace key");
    let tail = head[at + EMPTY_TRACE.len()..].to_owned();
    head.truncate(at + EMPTY_TRACE.len() - 2);
    (head, tail)
}

/// Renders a value the script stores as it is.
fn stored<T: Serialize + ?Sized>(value: &T, what: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| panic!("{what} serializes: {e}"))
}

impl<'a> OpJson<'a> {
    /// The effect `e` as the script reads it; large texts go to `texts`.
    pub(super) fn of(e: &'a Effect, ctx: &OpContext<'_>, texts: &mut ScriptTexts<'a>) -> Self {
        use std::borrow::Cow;
        let now = ctx.now;
        match e {
            Effect::Record(r) => {
                let (head, tail) = record_around_trace(r);
                let (head_arg, tail_arg) = (texts.add(head), texts.add(tail));
                let fields = decision_fields(r, ctx.governor_id);
                let trace_value = fields
                    .iter()
                    .step_by(2)
                    .position(|k| k == "trace")
                    .map(|pair| 2 * pair + 1)
                    .expect("a decision stream entry has a trace field");
                let fields = texts.add_fields(fields.into_iter().map(Cow::Owned));
                OpJson::Record {
                    plan_id: &r.plan_id,
                    head_arg,
                    tail_arg,
                    trace_arg: fields.fields_arg + trace_value,
                    ttl_secs: RECORD_TTL_SECS,
                    fields,
                }
            }
            Effect::Reserve {
                plan_id,
                reservation,
            } => OpJson::Reserve {
                plan_id,
                symbol: &reservation.symbol,
                side: reservation.side.as_str(),
                json: stored(reservation, "a reservation"),
                notional_micro: (reservation.notional * 1e6).round() as i64,
            },
            Effect::WritePermit(p) => OpJson::WritePermit {
                plan_id: &p.plan_id,
                json: stored(p, "a permit"),
                ttl_ms: ttl_ms(p.expires_at, now),
            },
            Effect::WriteBlock {
                plan_id,
                reason,
                detail,
            } => OpJson::WriteBlock {
                plan_id,
                json: stored(
                    &BlockJson {
                        detail,
                        reason: reason.code(),
                        ts: now.millis(),
                    },
                    "a block",
                ),
                ttl_secs: ctx.block_ttl_secs,
            },
            Effect::TakeExitLock {
                symbol,
                holder,
                expires_at,
            } => OpJson::TakeExitLock {
                symbol,
                holder,
                ttl_ms: ttl_ms(*expires_at, now),
            },
            Effect::ReleaseExitLock { symbol, holder } => {
                OpJson::ReleaseExitLock { symbol, holder }
            }
            Effect::CountOpen {
                plan_id,
                symbol,
                at,
            } => OpJson::CountOpen {
                symbol,
                at: at.millis(),
                member: plan_id,
            },
            Effect::StartRotation(lock) => OpJson::StartRotation {
                plan_id: &lock.pending.plan_id,
                json: stored(lock, "a rotation"),
                lock_json: stored(
                    &RotationLockJson {
                        close_plan_id: &lock.close_plan_id,
                        close_symbol: &lock.close_symbol,
                        created_at: lock.created_at.millis(),
                        new_plan_id: &lock.pending.plan_id,
                        new_symbol: &lock.pending.symbol,
                    },
                    "a rotation lock",
                ),
                ttl_ms: ttl_ms(lock.expires_at, now),
            },
            Effect::MarkRotationClosePermitted { pending_plan_id } => {
                OpJson::MarkRotationClosePermitted {
                    plan_id: pending_plan_id,
                }
            }
            Effect::HoldRotationSlot { pending_plan_id } => OpJson::HoldRotationSlot {
                plan_id: pending_plan_id,
            },
            Effect::EndRotation { pending_plan_id } => OpJson::EndRotation {
                plan_id: pending_plan_id,
            },
            Effect::PublishPlan(fields) => OpJson::PublishPlan {
                fields: texts.add_fields(
                    fields
                        .iter()
                        .flat_map(|(k, v)| [Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())]),
                ),
            },
            Effect::SetTradingState { to, .. } => OpJson::SetTradingState { to: to.as_str() },
            Effect::FillOpen { symbol, fill, .. } => OpJson::FillOpen {
                symbol,
                side: fill.side.as_str(),
                qty: fill.qty.to_string(),
                price: fill.entry_price.to_string(),
                leverage: fill.leverage.to_string(),
                opened_at: fill.opened_at.millis().to_string(),
                entry_score: fill.entry_score.map(|s| s.to_string()),
                entry_fees: fill.entry_fees.to_string(),
            },
            Effect::ReleaseReservation { plan_id } => OpJson::ReleaseReservation { plan_id },
            Effect::ReducePosition { symbol, qty } => OpJson::ReducePosition {
                symbol,
                qty: qty.to_string(),
            },
            Effect::PruneOpens { before } => OpJson::PruneOpens {
                before: before.millis(),
            },
            Effect::MarkInDoubt { plan_id, order } => OpJson::MarkInDoubt {
                plan_id,
                json: stored(order, "an order in doubt"),
            },
            Effect::MarkResultApplied { plan_id } => OpJson::MarkResultApplied { plan_id },
            Effect::Emit(ev) => {
                let mut fields: Vec<Cow<'a, str>> = Vec::with_capacity(8 + 2 * ev.fields.len());
                fields.extend([
                    Cow::Borrowed("event"),
                    Cow::Borrowed(ev.event),
                    Cow::Borrowed("plan_id"),
                    Cow::Borrowed(ev.plan_id.as_str()),
                    Cow::Borrowed("symbol"),
                    Cow::Borrowed(ev.symbol_text()),
                    Cow::Borrowed("ts"),
                    Cow::Owned(ev.ts.millis().to_string()),
                ]);
                for (k, v) in &ev.fields {
                    fields.push(Cow::Borrowed(k));
                    fields.push(v.as_text());
                }
                OpJson::Emit {
                    fields: texts.add_fields(fields),
                }
            }
            Effect::RecordEquity {
                hour,
                equity,
                keep_from,
            } => OpJson::RecordEquity {
                hour: hour.to_string(),
                equity: equity.to_string(),
                keep_from: keep_from.to_string(),
            },
            Effect::ResetEquity { hour, equity } => OpJson::ResetEquity {
                hour: hour.to_string(),
                equity: equity.to_string(),
            },
            Effect::SetHalt(halt) => OpJson::SetHalt {
                json: halt.as_ref().map(|h| stored(h, "a halt")),
            },
            Effect::RecordClose { close, keep_from } => OpJson::RecordClose {
                at: close.at.millis(),
                keep_from: keep_from.millis(),
                json: stored(close, "a close"),
            },
        }
    }
}

/// One commit of a batch as the script reads it.
#[derive(Serialize)]
pub(super) struct CommitJson<'a> {
    /// Checked in order before the first write.
    pub(super) guards: Vec<GuardJson<'a>>,
    /// Applied in order.
    pub(super) ops: Vec<OpJson<'a>>,
}

/// A batch of commits as the script reads it (`ARGV[2]`).
#[derive(Serialize)]
pub(super) struct BatchJson<'a> {
    /// The commit time, in ms.
    pub(super) now: i64,
    /// The commits, in order.
    pub(super) commits: Vec<CommitJson<'a>>,
}
