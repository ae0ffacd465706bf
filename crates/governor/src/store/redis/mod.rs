//! The Redis state store: the deployment's keys (docs/wire-contract.md) under a configurable prefix, a
//! read script that gathers a snapshot in one round trip, and one commit script that checks
//! every guard before its first write and then applies every effect, atomically. Scripts are
//! loaded once and called with EVALSHA (redis-rs reloads them after NOSCRIPT).
//!
//! The connection is synchronous and re-established on the next call after a failure; while
//! Redis is unreachable every call answers [`StoreError`], so nothing is committed and nothing
//! is acknowledged.

pub mod link;
pub mod ops;

use super::memory::{BlockRecord, DeadLetter, StoreState};
use super::{StateStore, StoreError};
use governor_core::book::{Book, CorruptRecord, ExitLock, LedgerPosition, RotationLock};
use governor_core::decide::Decision;
use governor_core::effects::{Effect, Guard, GuardFailed, Permit};
use governor_core::expiry::expire;
use governor_core::plan::{parse_decimal, parse_integer};
use governor_core::results::{settle, ExecutionResult, SettlePolicy, Settlement};
use governor_core::snapshot::{CapitalState, DecisionRecord, Policy, StoredState};
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Side, Symbol, TradingState};
use governor_core::Plan;
use ops::OpContext;
use serde_json::Value;
use std::sync::Mutex;

const READ_LUA: &str = include_str!("lua/read.lua");
const COMMIT_LUA: &str = include_str!("lua/commit.lua");

/// How long an executor waits for replicas to confirm its take of a permit.
pub const REPLICA_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The Redis store.
pub struct RedisStore {
    target: link::RedisTarget,
    conn: Mutex<Option<link::Link>>,
    prefix: String,
    block_ttl_secs: u64,
    governor_id: String,
    /// Replicas that must hold a permit's take on a cluster (`permit_replicas`).
    permit_replicas: u32,
    read: redis::Script,
    commit: redis::Script,
}

/// An answer or record that does not read as it must.
fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(e)
}

/// Reads the kill switch the way the commit script does: unreadable means HALTED.
pub fn trading_state_of(raw: Option<&str>) -> TradingState {
    match raw {
        None => TradingState::Active,
        Some(v) => TradingState::parse_kill_key(v).unwrap_or(TradingState::Halted),
    }
}

fn flat_pairs(v: &Value) -> Vec<(String, String)> {
    let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
    items
        .chunks(2)
        .filter_map(|c| {
            Some((
                c.first()?.as_str()?.to_owned(),
                c.get(1)?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

/// A field of a record that could not be read: its name and value.
type BadField = (String, Option<String>);

/// Reads one ledger hash; the error names the field, its value and the problem.
fn ledger_position(
    fields: &[(String, String)],
) -> Result<LedgerPosition, (Option<BadField>, String)> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| (Some((name.to_owned(), None)), "is missing".to_owned()))
    };
    let fail =
        |name: &str, raw: &str, e: String| (Some((name.to_owned(), Some(raw.to_owned()))), e);
    let number = |name: &str| {
        let raw = get(name)?;
        parse_decimal(raw).map_err(|e| fail(name, raw, e))
    };
    let integer = |name: &str| {
        let raw = get(name)?;
        parse_integer(raw).map_err(|e| fail(name, raw, e))
    };
    let side = match get("side")? {
        "LONG" => Side::Long,
        "SHORT" => Side::Short,
        other => return Err(fail("side", other, "must be LONG or SHORT".to_owned())),
    };
    let optional = |name: &str| match fields.iter().find(|(k, _)| k == name) {
        Some(_) => number(name).map(Some),
        None => Ok(None),
    };
    let leverage = integer("leverage")?;
    let leverage = u32::try_from(leverage)
        .ok()
        .filter(|l| (1..=125).contains(l))
        .ok_or_else(|| {
            fail(
                "leverage",
                &leverage.to_string(),
                "must be from 1 to 125".to_owned(),
            )
        })?;
    Ok(LedgerPosition {
        side,
        qty: number("position_amt")?.abs(),
        entry_price: number("entry_price")?,
        leverage,
        opened_at: Timestamp(integer("opened_at")?),
        entry_score: optional("entry_score")?,
        // Written by this governor's settlement; a ledger another service wrote has none.
        entry_fees: optional("entry_fees")?.unwrap_or(0.0),
    })
}

/// The symbol a malformed record's key scopes it to: the symbol itself, or one written in the
/// wrong case (`zzzusdt`); `None` when it names none (it then holds every open).
fn symbol_scope(raw: &str) -> Option<Symbol> {
    Symbol::parse(raw)
        .or_else(|_| Symbol::parse(&raw.to_uppercase()))
        .ok()
}

/// The records a read could not use, in the order found.
#[derive(Default)]
struct Quarantine(Vec<CorruptRecord>);

impl Quarantine {
    /// JSON records of a hash keyed by plan id; one that cannot be read is quarantined (of
    /// unknown scope: its symbol is inside what could not be read).
    fn by_plan<T: serde::de::DeserializeOwned>(
        &mut self,
        hash: &str,
        pairs: Vec<(String, String)>,
    ) -> std::collections::BTreeMap<PlanId, T> {
        let mut out = std::collections::BTreeMap::new();
        for (id, json) in pairs {
            let read = PlanId::parse(&id).and_then(|p| {
                Ok((
                    p,
                    serde_json::from_str::<T>(&json).map_err(|e| e.to_string())?,
                ))
            });
            match read {
                Ok((plan_id, record)) => {
                    out.insert(plan_id, record);
                }
                Err(problem) => {
                    self.record(format!("{hash} {id}"), None, Some(&json), problem, None)
                }
            }
        }
        out
    }

    fn record(
        &mut self,
        key: String,
        field: Option<&str>,
        value: Option<&str>,
        problem: String,
        symbol: Option<Symbol>,
    ) {
        let short = |v: &str| v.chars().take(120).collect::<String>();
        self.0.push(CorruptRecord {
            key,
            field: field.map(short),
            value: value.map(short),
            problem,
            symbol,
        });
    }
}

/// What indexing the ledger hashes found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LedgerIndex {
    /// Hashes newly added to the index.
    pub added: usize,
    /// Keys that are not UTF-8 (escaped): never indexed, reported.
    pub unreadable: Vec<String>,
}

/// Keys with their string values.
type KeyValues = Vec<(String, String)>;

/// How much of the state one call of the read script reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadScope {
    /// Everything a decision needs.
    Everything,
    /// The ledger positions only (the paper exchange's view, the reconciler's ledger).
    LedgerOnly,
}

/// What the read script returns, parsed.
struct Read {
    trading_state: TradingState,
    policy: Policy,
    /// The earlier decision of each plan id asked for, in order.
    priors: Vec<Option<DecisionRecord>>,
    book: Book,
    capital: CapitalState,
}

impl RedisStore {
    /// Connects lazily to `url` (one server, any node of a cluster, or a comma-separated list
    /// of cluster nodes: [`link`]); keys start with `prefix`. `governor_id` goes into every
    /// decision stream entry.
    pub fn open(
        url: &str,
        prefix: &str,
        block_ttl_secs: u64,
        governor_id: &str,
    ) -> Result<Self, StoreError> {
        Ok(RedisStore {
            target: link::RedisTarget::parse(url)?,
            conn: Mutex::new(None),
            prefix: prefix.to_owned(),
            block_ttl_secs,
            governor_id: governor_id.to_owned(),
            permit_replicas: 0,
            read: redis::Script::new(READ_LUA),
            commit: redis::Script::new(COMMIT_LUA),
        })
    }

    /// On a cluster, permits taken through this store are used only once `n` replicas hold
    /// the take (the config's `permit_replicas`; 0, the default, waits for none).
    pub fn with_permit_replicas(mut self, n: u32) -> Self {
        self.permit_replicas = n;
        self
    }

    /// Puts a permit taken but not usable back where it was, with its own expiry, unless it
    /// lapsed or another permit took its place.
    fn put_back(
        &self,
        key: &str,
        raw: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if expires_at <= now {
            return Ok(());
        }
        self.with_conn(|c| {
            redis::cmd("SET")
                .arg(key)
                .arg(raw)
                .arg("PXAT")
                .arg(expires_at.millis())
                .arg("NX")
                .query::<Option<String>>(c)
        })
        .map(drop)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix + suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Runs `f` on the connection, connecting first if needed; a failure drops the connection
    /// so the next call reconnects.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut link::Link) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let conn = self
                .target
                .connect(&self.prefix, std::time::Duration::from_secs(2))?;
            *slot = Some(conn);
        }
        let conn = slot.as_mut().expect("connected above");
        match f(conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                if link::needs_reconnect(&e) {
                    *slot = None;
                }
                Err(e.into())
            }
        }
    }

    /// Waits until the server answers and says whether it is a cluster; refuses, on a
    /// cluster, a key prefix without a hash tag. What every process on Redis checks at start:
    /// `Err` is a deployment to fix, not an outage to wait out.
    pub fn await_server(&self, mut on_outage: impl FnMut(&StoreError)) -> Result<bool, String> {
        loop {
            match self.with_conn(|c| Ok(c.is_cluster())) {
                Ok(cluster) => return link::check_prefix(cluster, &self.prefix).map(|()| cluster),
                Err(e) => {
                    if self.target.is_cluster() == Some(true) {
                        link::check_prefix(true, &self.prefix)?;
                    }
                    on_outage(&e);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    fn read_state(
        &self,
        plan_ids: &[&str],
        symbols: &[&str],
        now: Timestamp,
    ) -> Result<Read, StoreError> {
        self.read_scoped(plan_ids, symbols, now, ReadScope::Everything)
    }

    /// Reads `scope` of the state in one script call and parses it, quarantining what cannot
    /// be read; what the scope leaves out is read as empty.
    fn read_scoped(
        &self,
        plan_ids: &[&str],
        symbols: &[&str],
        now: Timestamp,
        scope: ReadScope,
    ) -> Result<Read, StoreError> {
        let raw: String = self.with_conn(|c| {
            // The prefix as the script's one key: a cluster routes the call to its slot.
            let mut call = self.read.key(&self.prefix);
            call.arg(&self.prefix);
            call.arg(plan_ids.join("\n"))
                .arg(symbols.join("\n"))
                .arg(now.millis());
            if scope == ReadScope::LedgerOnly {
                call.arg("ledger");
            }
            call.invoke(c)
        })?;
        let v: Value = serde_json::from_str(&raw).map_err(err)?;
        // Every record is read on its own: one that cannot be read is quarantined (named, and
        // holding only the opens that depend on it), never a reason to fail the whole read.
        let mut book = Book::default();
        let mut bad = Quarantine::default();
        book.reservations = bad.by_plan("governor:reservations", flat_pairs(&v["reservations"]));
        book.rotations = bad.by_plan("governor:rotations", flat_pairs(&v["rotations"]));
        book.in_doubt = bad.by_plan("governor:in_doubt", flat_pairs(&v["in_doubt"]));
        for (symbol, version) in flat_pairs(&v["ledger_versions"]) {
            match (Symbol::parse(&symbol), version.parse::<u64>()) {
                (Ok(s), Ok(n)) => {
                    book.ledger_versions.insert(s, n);
                }
                _ => bad.record(
                    "governor:ledger_versions".to_owned(),
                    Some(&symbol),
                    Some(&version),
                    "not a symbol and a count".to_owned(),
                    symbol_scope(&symbol),
                ),
            }
        }
        for item in v["ledger"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let raw = item[0].as_str().unwrap_or_default();
            let key = format!("position:ledger:{raw}");
            let parsed = Symbol::parse(raw)
                .map_err(|e| (None, e))
                .and_then(|s| Ok((s, ledger_position(&flat_pairs(&item[1]))?)));
            match parsed {
                Ok((symbol, pos)) => {
                    book.positions.insert(symbol, pos);
                }
                Err((Some((field, value)), problem)) => bad.record(
                    key,
                    Some(&field),
                    value.as_deref(),
                    problem,
                    symbol_scope(raw),
                ),
                Err((None, problem)) => bad.record(
                    key,
                    None,
                    None,
                    format!("the key does not name a symbol: {problem}"),
                    symbol_scope(raw),
                ),
            }
        }
        for item in v["exit_locks"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let (Some(symbol), Some(holder), Some(pttl)) =
                (item[0].as_str(), item[1].as_str(), item[2].as_i64())
            else {
                continue;
            };
            let expires_at = if pttl < 0 {
                Timestamp(i64::MAX)
            } else {
                Timestamp(now.millis() + pttl)
            };
            match (Symbol::parse(symbol), PlanId::parse(holder)) {
                (Ok(s), Ok(holder)) => {
                    book.exit_locks.insert(
                        s,
                        ExitLock {
                            holder,
                            expires_at,
                            fence: 0,
                        },
                    );
                }
                _ => bad.record(
                    format!("exit:lock:{symbol}"),
                    None,
                    Some(holder),
                    "not a symbol held by a plan id".to_owned(),
                    symbol_scope(symbol),
                ),
            }
        }
        for (symbol, at) in flat_pairs(&v["cooldown"]) {
            match (Symbol::parse(&symbol), parse_integer(&at)) {
                (Ok(s), Ok(at)) => {
                    book.last_open_at.insert(s, Timestamp(at));
                }
                _ => bad.record(
                    "governor:cooldown".to_owned(),
                    Some(&symbol),
                    Some(&at),
                    "not a symbol and a time in ms".to_owned(),
                    symbol_scope(&symbol),
                ),
            }
        }
        let mut opens: Vec<Timestamp> = flat_pairs(&v["opens"])
            .into_iter()
            .filter_map(|(_, score)| score.parse::<f64>().ok().map(|s| Timestamp(s as i64)))
            .collect();
        opens.sort();
        book.open_times = opens;
        book.reservation_seq = text(&v["seq"]).and_then(|s| s.parse().ok()).unwrap_or(0);
        for (hour, equity) in flat_pairs(&v["equity"]) {
            match (parse_integer(&hour), parse_decimal(&equity)) {
                (Ok(h), Ok(e)) => {
                    book.equity_peaks.insert(h, e);
                }
                _ => bad.record(
                    "governor:equity".to_owned(),
                    Some(&hour),
                    Some(&equity),
                    "not an hour and an equity".to_owned(),
                    None,
                ),
            }
        }
        if let Some(halt) = text(&v["halt"]) {
            match serde_json::from_str(halt) {
                Ok(h) => book.halt = Some(h),
                Err(e) => bad.record(
                    "governor:halt".to_owned(),
                    None,
                    Some(halt),
                    e.to_string(),
                    None,
                ),
            }
        }
        for member in v["closes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let raw = text(member).unwrap_or_default();
            match serde_json::from_str(raw) {
                Ok(close) => book.closes.push(close),
                Err(e) => bad.record(
                    "governor:closes".to_owned(),
                    None,
                    Some(raw),
                    e.to_string(),
                    None,
                ),
            }
        }
        let mut priors = Vec::with_capacity(plan_ids.len());
        for (i, id) in plan_ids.iter().enumerate() {
            priors.push(match text(&v["decisions"][i]) {
                Some(s) => Some(
                    serde_json::from_str(s)
                        .map_err(|e| err(format!("decision record of {id}: {e}")))?,
                ),
                None => None,
            });
        }
        let mut capital = CapitalState {
            portfolio_usdt: text(&v["capital"]).and_then(|s| parse_decimal(s).ok()),
            ..CapitalState::default()
        };
        for (symbol, alloc) in flat_pairs(&v["allocations"]) {
            let pct = serde_json::from_str::<Value>(&alloc)
                .ok()
                .and_then(|j| j["allocation_pct"].as_f64())
                .filter(|p| p.is_finite() && (0.0..=1.0).contains(p));
            match (pct, Symbol::parse(&symbol)) {
                (Some(p), Ok(sym)) => {
                    capital.allocation_pct.insert(sym, p);
                }
                _ => bad.record(
                    format!("capital:allocation:{symbol}"),
                    Some("allocation_pct"),
                    Some(&alloc),
                    "not a JSON object with a finite allocation_pct from 0 to 1".to_owned(),
                    symbol_scope(&symbol),
                ),
            }
        }
        book.corrupt = bad.0;
        Ok(Read {
            trading_state: trading_state_of(text(&v["kill"])),
            policy: Policy::from_field(text(&v["universe"])),
            priors,
            book,
            capital,
        })
    }

    /// Runs the commit script on one commit: `Ok(Ok(fence))`, or `Ok(Err(index))` of the
    /// failed guard.
    fn run_commit(
        &self,
        guards: &[Guard],
        effects: &[Effect],
        now: Timestamp,
    ) -> Result<Result<u64, usize>, StoreError> {
        let mut answers = self.run_batch(std::iter::once((guards, effects.iter())), now)?;
        answers
            .pop()
            .ok_or_else(|| StoreError::corrupt("the commit script answered no commit"))
    }

    /// Runs the commit script on a batch of commits, in order, in one call (see
    /// `lua/commit.lua`): one answer per commit tried — fences, then the failed guard's index
    /// if one failed (the commits after it are not tried).
    fn run_batch<'e>(
        &self,
        commits: impl Iterator<Item = (&'e [Guard], impl Iterator<Item = &'e Effect>)>,
        now: Timestamp,
    ) -> Result<Vec<Result<u64, usize>>, StoreError> {
        let ctx = OpContext {
            now,
            block_ttl_secs: self.block_ttl_secs,
            governor_id: &self.governor_id,
        };
        let mut tried = 0;
        let mut texts = ops::ScriptTexts::default();
        let batch = ops::BatchJson {
            now: now.millis(),
            commits: commits
                .map(|(guards, effects)| {
                    tried += 1;
                    ops::CommitJson {
                        guards: guards.iter().map(ops::GuardJson::of).collect(),
                        ops: effects
                            .map(|e| ops::OpJson::of(e, &ctx, &mut texts))
                            .collect(),
                    }
                })
                .collect(),
        };
        let req = serde_json::to_string(&batch).expect("a batch serializes");
        let texts = texts.into_args();
        let reply: Vec<i64> = self.with_conn(|c| {
            let mut call = self.commit.key(&self.prefix);
            call.arg(&self.prefix);
            call.arg(&req);
            for text in &texts {
                call.arg(text.as_ref());
            }
            call.invoke(c)
        })?;
        batch_answers(&reply, tried)
    }

    fn expire_now(&self, book: &Book, now: Timestamp) -> Result<(), StoreError> {
        for item in expire(book, now) {
            // A failed guard means another sweeper, or a result, handled this item first.
            let _handled_elsewhere = self.run_commit(&item.guards, &item.effects, now)?;
        }
        Ok(())
    }

    /// The book as the store holds it now (the reconciler's view).
    pub fn book(&self, now: Timestamp) -> Result<Book, StoreError> {
        Ok(self.read_state(&[], &[], now)?.book)
    }

    /// The ledger as the executor wrote it (for the exchange mirror and the reconciler): the
    /// ledger alone is read, not the whole state.
    pub fn ledger(
        &self,
        now: Timestamp,
    ) -> Result<std::collections::BTreeMap<Symbol, LedgerPosition>, StoreError> {
        Ok(self
            .read_scoped(&[], &[], now, ReadScope::LedgerOnly)?
            .book
            .positions)
    }

    /// Finds ledger hashes other services wrote (`position:ledger:*`) and adds them to the
    /// index the snapshot reads, so that a position the executor recorded counts. Uses SCAN
    /// (never KEYS) and runs in the sweeper, off the decision path.
    pub fn refresh_ledger_index(&self) -> Result<LedgerIndex, StoreError> {
        let pattern = self.key("position:ledger:*");
        let index = self.key("governor:ledger");
        let skip = self.key("position:ledger:").len();
        self.with_conn(|c| {
            let mut cursor: u64 = 0;
            let mut out = LedgerIndex::default();
            loop {
                // Keys as bytes: one that is not UTF-8 must not stop the indexing of the rest.
                let (next, keys): (u64, Vec<Vec<u8>>) = c.query_home(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500),
                )?;
                for k in keys {
                    match std::str::from_utf8(&k) {
                        Ok(key) if key.len() > skip => {
                            let added: usize =
                                redis::cmd("SADD").arg(&index).arg(&key[skip..]).query(c)?;
                            out.added += added;
                        }
                        _ => out.unreadable.push(governor_core::fields::escape_bytes(&k)),
                    }
                }
                if next == 0 {
                    return Ok(out);
                }
                cursor = next;
            }
        })
    }

    /// Deletes a ledger position (the reconciler's release of a phantom).
    pub fn remove_ledger_position(&self, symbol: &Symbol, qty: f64) -> Result<(), StoreError> {
        let reduce = Effect::ReducePosition {
            symbol: symbol.clone(),
            qty,
        };
        self.run_commit(&[], &[reduce], Timestamp(0))?
            .map(drop)
            .map_err(|_| err("no guard can fail here"))
    }

    /// Publishes an event on the events stream (reconciler drift, operator changes).
    pub fn emit(&self, event: &governor_core::effects::Event) -> Result<(), StoreError> {
        self.run_commit(&[], &[Effect::Emit(event.clone())], event.ts)?
            .map(drop)
            .map_err(|_| err("no guard can fail here"))
    }

    /// Writes the dashboard views (`slots:available`, `slots:desired`, `slots:regime`).
    pub fn set_views(&self, desired: u32, occupied: u32, regime: &str) -> Result<(), StoreError> {
        self.with_conn(|c| {
            redis::pipe()
                .cmd("SET")
                .arg(self.key("slots:desired"))
                .arg(desired)
                .ignore()
                .cmd("SET")
                .arg(self.key("slots:available"))
                .arg(desired.saturating_sub(occupied))
                .ignore()
                .cmd("SET")
                .arg(self.key("slots:regime"))
                .arg(regime)
                .ignore()
                .query(c)
        })
    }

    /// Sets the kill switch (`quantum:kill`), as an operator does.
    pub fn set_trading_state(&self, state: TradingState) -> Result<(), StoreError> {
        self.with_conn(|c| {
            redis::cmd("SET")
                .arg(self.key("kill"))
                .arg(state.as_str())
                .query(c)
        })
    }

    /// The policy universe as the decisions read it: through the core's strict parser, so
    /// that a universe holding one invalid symbol is `Invalid` (with the symbol), never a
    /// shorter list.
    pub fn policy(&self) -> Result<Policy, StoreError> {
        let key = self.key("policy:current");
        let raw: Option<String> = self.with_conn(|c| {
            redis::cmd("HGET")
                .arg(&key)
                .arg("universe_symbols")
                .query(c)
        })?;
        Ok(Policy::from_field(raw.as_deref()))
    }

    /// Sets the policy universe (`quantum:policy:current` / `universe_symbols`), raw text; `None`
    /// deletes it.
    pub fn set_policy_universe(&self, raw: Option<&str>) -> Result<(), StoreError> {
        let key = self.key("policy:current");
        self.with_conn(|c| match raw {
            Some(r) => redis::cmd("HSET")
                .arg(&key)
                .arg("universe_symbols")
                .arg(r)
                .query(c),
            None => redis::cmd("DEL").arg(&key).query(c),
        })
    }

    /// Writes a ledger position as the executor does (`quantum:position:ledger:{symbol}`).
    pub fn put_ledger_position(
        &self,
        symbol: &Symbol,
        p: &LedgerPosition,
    ) -> Result<(), StoreError> {
        let fill = Effect::FillOpen {
            plan_id: PlanId::parse("operator").expect("valid"),
            symbol: symbol.clone(),
            fill: p.clone(),
        };
        self.run_commit(
            &[],
            &[
                Effect::ReducePosition {
                    symbol: symbol.clone(),
                    qty: f64::MAX,
                },
                fill,
            ],
            Timestamp(0),
        )?
        .map(drop)
        .map_err(|_| err("no guard can fail here"))
    }

    /// The whole state read back (for tests, `explain` and operators' tools).
    pub fn state(&self, now: Timestamp) -> Result<StoreState, StoreError> {
        let read = self.read_state(&[], &[], now)?;
        let p = self.prefix.clone();
        let [decisions, permits, blocks, counts]: [KeyValues; 4] = self.with_conn(|c| {
            let scan = |c: &mut link::Link,
                        pattern: String|
             -> redis::RedisResult<Vec<(String, String)>> {
                let keys: Vec<String> = c.query_home(redis::cmd("KEYS").arg(pattern))?;
                let mut out = Vec::new();
                for k in keys {
                    let v: Option<String> = redis::cmd("GET").arg(&k).query(c)?;
                    if let Some(v) = v {
                        out.push((k, v));
                    }
                }
                Ok(out)
            };
            Ok([
                scan(c, format!("{p}governor:decision:*"))?,
                scan(c, format!("{p}permit:*"))?,
                scan(c, format!("{p}governor:block:*"))?,
                scan(c, format!("{p}governor:permits_granted:*"))?,
            ])
        })?;
        let mut st = StoreState {
            trading_state: read.trading_state,
            policy_universe: match &read.policy {
                Policy::Missing => None,
                _ => self.with_conn(|c| {
                    redis::cmd("HGET")
                        .arg(self.key("policy:current"))
                        .arg("universe_symbols")
                        .query(c)
                })?,
            },
            capital: read.capital,
            book: read.book.into(),
            ..StoreState::default()
        };
        let id_of = |k: &str, pre: &str| PlanId::parse(&k[p.len() + pre.len()..]).map_err(err);
        for (k, v) in decisions {
            let r: DecisionRecord = serde_json::from_str(&v).map_err(err)?;
            st.decisions
                .insert(id_of(&k, "governor:decision:")?, std::sync::Arc::new(r));
        }
        for (k, v) in permits {
            let permit: Permit = serde_json::from_str(&v).map_err(err)?;
            // Redis expires permits on its own clock; at `now` a lapsed one is gone already.
            if permit.expires_at > now {
                st.permits.insert(id_of(&k, "permit:")?, permit);
            }
        }
        for (k, v) in blocks {
            let b: Value = serde_json::from_str(&v).map_err(err)?;
            let reason = serde_json::from_value(b["reason"].clone()).map_err(err)?;
            st.blocks.insert(
                id_of(&k, "governor:block:")?,
                BlockRecord {
                    reason,
                    detail: b["detail"].as_str().unwrap_or_default().to_owned(),
                    ts: Timestamp(b["ts"].as_i64().unwrap_or_default()),
                    expires_at: Timestamp(i64::MAX),
                },
            );
        }
        for (k, v) in counts {
            st.permits_granted.insert(
                id_of(&k, "governor:permits_granted:")?,
                v.parse().unwrap_or(0),
            );
        }
        st.events = self
            .read_stream("stream:governor.events")?
            .into_iter()
            .map(|f| {
                let get = |n: &str| {
                    f.iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let symbol = get("symbol");
                Ok(governor_core::effects::Event {
                    event: event_name(&get("event")),
                    plan_id: PlanId::parse(&get("plan_id"))
                        .map_err(|e| err(format!("an event's plan_id: {e}")))?,
                    symbol: match symbol.as_str() {
                        "" => None,
                        s => Some(
                            Symbol::parse(s)
                                .map_err(|e| err(format!("an event's symbol {s:?}: {e}")))?,
                        ),
                    },
                    ts: Timestamp(get("ts").parse().unwrap_or(0)),
                    fields: Vec::new(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        st.published = self
            .read_stream("stream:apply.plan")?
            .into_iter()
            .filter(|f| {
                f.iter()
                    .any(|(k, v)| k == "rotation_trigger" && v == "true")
            })
            .collect();
        for f in self.read_stream("stream:governor.deadletter")? {
            let error = f
                .iter()
                .find(|(k, _)| k == "error")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            st.dead_letters.push(DeadLetter {
                fields: f
                    .into_iter()
                    .filter(|(k, _)| k != "error" && k != "dead_lettered_at")
                    .collect(),
                error,
                ts: now,
            });
        }
        for f in self.read_stream("stream:governor.decisions")? {
            let id = f
                .iter()
                .find(|(k, _)| k == "plan_id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if let Some(r) = PlanId::parse(&id).ok().and_then(|id| st.decisions.get(&id)) {
                let verdict = f
                    .iter()
                    .find(|(k, _)| k == "verdict")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let mut r = DecisionRecord::clone(r);
                r.verdict = serde_json::from_value(Value::String(verdict)).map_err(err)?;
                st.decision_log.push(std::sync::Arc::new(r));
            }
        }
        Ok(st)
    }

    /// Every entry of a stream, oldest first, as field pairs.
    pub fn read_stream(&self, suffix: &str) -> Result<Vec<Vec<(String, String)>>, StoreError> {
        let key = self.key(suffix);
        let reply: redis::streams::StreamRangeReply =
            self.with_conn(|c| redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query(c))?;
        Ok(reply
            .ids
            .into_iter()
            .map(|entry| {
                let mut fields: Vec<(String, String)> = entry
                    .map
                    .into_iter()
                    .filter_map(|(k, v)| redis::from_redis_value::<String>(&v).ok().map(|v| (k, v)))
                    .collect();
                fields.sort_by_key(|(k, _)| field_order(k));
                fields
            })
            .collect())
    }
}

/// Stream entries come back as a map: put the plan fields in a readable, stable order.
fn field_order(k: &str) -> (usize, String) {
    const FIRST: [&str; 5] = ["event", "plan_id", "symbol", "action", "decision"];
    (
        FIRST.iter().position(|f| *f == k).unwrap_or(FIRST.len()),
        k.to_owned(),
    )
}

/// Event names are static in the core; map what the stream holds back onto them.
fn event_name(raw: &str) -> &'static str {
    const NAMES: [&str; 12] = [
        "PLAN_ALLOWED",
        "PLAN_BLOCKED",
        "ROTATION_LOCK_CREATED",
        "ROTATION_COMPLETE",
        "ROTATION_TIMEOUT",
        "TRADING_STATE_CHANGED",
        "RECONCILE_DRIFT",
        "RESERVATION_EXPIRED",
        "STATE_RECORD_CORRUPT",
        "STATE_RECORD_REPAIRED",
        "DERISK_CLOSE_PUBLISHED",
        "POSITION_LIQUIDATED",
    ];
    NAMES
        .iter()
        .find(|n| **n == raw)
        .copied()
        .unwrap_or("UNKNOWN")
}

impl StateStore for RedisStore {
    fn state(
        &self,
        plans: &[&Plan],
        now: Timestamp,
    ) -> Result<(StoredState, Vec<Option<DecisionRecord>>), StoreError> {
        let ids: Vec<&str> = plans.iter().map(|p| p.plan_id.as_str()).collect();
        let symbols: Vec<&str> = plans.iter().map(|p| p.symbol.as_str()).collect();
        let mut read = self.read_state(&ids, &symbols, now)?;
        let stale = read.book.reservations.values().any(|r| r.expires_at <= now)
            || read.book.rotations.values().any(|r| r.expires_at <= now);
        if stale {
            self.expire_now(&read.book, now)?;
            read = self.read_state(&ids, &symbols, now)?;
        }
        let state = StoredState {
            trading_state: read.trading_state,
            policy: read.policy,
            book: std::sync::Arc::new(read.book),
            capital: read.capital,
        };
        Ok((state, read.priors))
    }

    fn commit_many(
        &self,
        decisions: &[&Decision],
        now: Timestamp,
    ) -> Result<Vec<Result<u64, GuardFailed>>, StoreError> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        let effects: Vec<Vec<std::borrow::Cow<'_, Effect>>> = decisions
            .iter()
            .map(|d| d.commit_effects().collect())
            .collect();
        let commits = decisions
            .iter()
            .zip(&effects)
            .map(|(d, e)| (d.guards.as_slice(), e.iter().map(|c| c.as_ref())));
        let answers = self.run_batch(commits, now)?;
        Ok(answers
            .into_iter()
            .zip(decisions)
            .map(|(answer, d)| answer.map_err(|i| GuardFailed(d.guards[i].clone())))
            .collect())
    }

    fn commit(
        &self,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<Result<u64, GuardFailed>, StoreError> {
        let effects: Vec<Effect> = decision.commit_effects().map(|e| e.into_owned()).collect();
        Ok(self
            .run_commit(&decision.guards, &effects, now)?
            .map_err(|i| GuardFailed(decision.guards[i].clone())))
    }

    fn settle(
        &self,
        result: &ExecutionResult,
        policy: &SettlePolicy,
        now: Timestamp,
    ) -> Result<Settlement, StoreError> {
        let read = self.read_state(&[], &[], now)?;
        let settlement = settle(result, &read.book, false, policy, now);
        match self.run_commit(&settlement.guards, &settlement.effects, now)? {
            Ok(_) => Ok(settlement),
            Err(_) => Ok(settle(result, &read.book, true, policy, now)),
        }
    }

    fn expire(&self, now: Timestamp) -> Result<(), StoreError> {
        let read = self.read_state(&[], &[], now)?;
        self.expire_now(&read.book, now)
    }

    fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        let stream = self.key("stream:governor.decisions");
        let ids: Vec<String> = self.with_conn(|c| {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(&stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(limit)
                .query(c)?;
            Ok(reply
                .ids
                .iter()
                .filter_map(|e| e.get::<String>("plan_id"))
                .collect())
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // A stream entry without its record (expired after 7 days) is skipped.
            if let Some(r) = self.decision(&PlanId::parse(&id).map_err(err)?)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn decision(&self, plan_id: &PlanId) -> Result<Option<DecisionRecord>, StoreError> {
        let key = self.key(&format!("governor:decision:{plan_id}"));
        let raw: Option<String> = self.with_conn(|c| redis::cmd("GET").arg(&key).query(c))?;
        raw.map(|json| serde_json::from_str(&json).map_err(|e| err(format!("{key}: {e}"))))
            .transpose()
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(|c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }

    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let key = self.key("stream:governor.deadletter");
        self.with_conn(|c| redis::cmd("XLEN").arg(&key).query(c))
    }

    fn apply(
        &self,
        guards: &[Guard],
        effects: &[Effect],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.run_commit(guards, effects, now)?.is_ok())
    }

    fn dead_letter(
        &self,
        fields: &[(String, String)],
        error: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let key = self.key("stream:governor.deadletter");
        self.with_conn(|c| {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&key).arg("MAXLEN").arg("~").arg(100_000).arg("*");
            for (k, v) in fields
                .iter()
                .filter(|(k, _)| k != "error" && k != "dead_lettered_at")
            {
                cmd.arg(k).arg(v);
            }
            cmd.arg("error")
                .arg(&error)
                .arg("dead_lettered_at")
                .arg(now.millis());
            cmd.query::<String>(c).map(drop)
        })
    }

    /// Takes the permit (GETDEL: one use, by one executor). On a cluster it is used only once
    /// `permit_replicas` replicas hold the take ([`RedisStore::with_permit_replicas`]); else it
    /// is put back unused and the answer is [`StoreError::NotReplicated`].
    fn take_permit(&self, plan_id: &PlanId, now: Timestamp) -> Result<Option<Permit>, StoreError> {
        let key = self.key(&format!("permit:{plan_id}"));
        let taken = self.with_conn(|c| {
            let raw: Option<String> = redis::cmd("GETDEL").arg(&key).query(c)?;
            let replicas = if c.is_cluster() {
                self.permit_replicas
            } else {
                0
            };
            let confirmed = match &raw {
                Some(_) if replicas > 0 => c.confirm_replicated(replicas, REPLICA_WAIT)?,
                _ => true,
            };
            Ok((raw, confirmed))
        })?;
        let (Some(raw), confirmed) = taken else {
            return Ok(None);
        };
        let permit: Permit =
            serde_json::from_str(&raw).map_err(|e| err(format!("permit {plan_id}: {e}")))?;
        if !confirmed {
            self.put_back(&key, &raw, permit.expires_at, now)?;
            return Err(StoreError::NotReplicated(format!(
                "the take of permit {plan_id}: fewer than {} replica(s) confirmed it within {} ms; \
                 put back unused",
                self.permit_replicas,
                REPLICA_WAIT.as_millis()
            )));
        }
        Ok((permit.expires_at > now).then_some(permit))
    }

    fn is_decided(&self, plan_id: &PlanId) -> Result<bool, StoreError> {
        let key = self.key(&format!("governor:decision:{plan_id}"));
        self.with_conn(|c| redis::cmd("EXISTS").arg(&key).query::<bool>(c))
    }

    fn rotation_plan(&self, pending: &PlanId) -> Result<Option<Plan>, StoreError> {
        let key = self.key("governor:rotations");
        let raw: Option<String> =
            self.with_conn(|c| redis::cmd("HGET").arg(&key).arg(pending.as_str()).query(c))?;
        raw.map(|r| {
            serde_json::from_str::<RotationLock>(&r)
                .map(|l| l.pending)
                .map_err(err)
        })
        .transpose()
    }
}
/// Reads the commit script's answer `{n, fence_1, ..., fence_n, failed}` for a batch of
/// `tried` commits: n fences, then the failed guard (0-based) of commit n + 1 when `failed` is
/// not 0. Anything else is a corrupt answer: it is never read as a success.
fn batch_answers(reply: &[i64], tried: usize) -> Result<Vec<Result<u64, usize>>, StoreError> {
    let bad = || {
        StoreError::corrupt(format!(
            "commit script answered {reply:?} for {tried} commits"
        ))
    };
    let (&n, rest) = reply.split_first().ok_or_else(bad)?;
    let n = usize::try_from(n).map_err(|_| bad())?;
    if n > tried || rest.len() != n + 1 {
        return Err(bad());
    }
    let mut out: Vec<Result<u64, usize>> = rest[..n]
        .iter()
        .map(|&f| u64::try_from(f).map(Ok).map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    match rest[n] {
        0 if n == tried => {}
        i if i > 0 && n < tried => out.push(Err(i as usize - 1)),
        _ => return Err(bad()),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::batch_answers;

    #[test]
    fn the_commit_scripts_answer_is_read_strictly() {
        // Three commits: all applied; two applied and the third's second guard failed.
        assert_eq!(
            batch_answers(&[3, 7, 8, 9, 0], 3),
            Ok(vec![Ok(7), Ok(8), Ok(9)])
        );
        assert_eq!(
            batch_answers(&[2, 7, 8, 2], 3),
            Ok(vec![Ok(7), Ok(8), Err(1)])
        );
        assert_eq!(batch_answers(&[0, 1], 3), Ok(vec![Err(0)]));
        // Anything else is corrupt, never a success: a short answer, more commits than sent,
        // a failure marker when all were applied, none when one was not, a negative fence.
        for bad in [
            &[][..],
            &[3, 7, 8, 0][..],
            &[4, 1, 2, 3, 4, 0][..],
            &[3, 7, 8, 9, 1][..],
            &[2, 7, 8, 0][..],
            &[1, -5, 0][..],
            &[-1, 0][..],
        ] {
            assert!(batch_answers(bad, 3).is_err(), "{bad:?}");
        }
    }
}
