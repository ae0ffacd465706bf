//! A consumer in a Redis Streams consumer group: read new entries, reclaim the ones a dead
//! consumer left pending, dead-letter the ones delivered too often, acknowledge what was
//! handled. Fields are kept in order and with duplicates, as they were written (the strict
//! parser must see a duplicated field to refuse it). Field names and values arrive as bytes:
//! one that is not valid UTF-8 is never dropped — it is kept escaped (`\xff`) and makes the
//! entry a schema error naming the field ([`Entry::checked`]).

use crate::store::redis::link::{needs_reconnect, Link, RedisTarget};
use crate::store::StoreError;
use governor_core::fields::escape_bytes;
use governor_core::plan::{FieldError, PlanRejection};
use redis::Value;

/// One stream entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Its stream id.
    pub id: String,
    /// Its fields, in order; bytes that are not UTF-8 escaped as `\xNN` (for the dead letter).
    pub fields: Vec<(String, String)>,
    /// The fields whose name or value was not valid UTF-8.
    pub undecodable: Vec<FieldError>,
}

impl Entry {
    /// The fields, if every name and value was valid UTF-8; else the schema error naming each
    /// field that was not. Every parser of stream entries goes through this.
    pub fn checked(&self) -> Result<&[(String, String)], PlanRejection> {
        if self.undecodable.is_empty() {
            Ok(&self.fields)
        } else {
            Err(PlanRejection {
                errors: self.undecodable.clone(),
            })
        }
    }
}

/// The bytes of a bulk string (or a simple string) reply.
fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// What reclaiming found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reclaimed {
    /// Entries taken over from an idle consumer, to handle again.
    pub claimed: Vec<Entry>,
    /// Entries delivered more than the allowed number of times (acknowledged after being
    /// dead-lettered by the caller), with their delivery counts.
    pub poisoned: Vec<(Entry, usize)>,
    /// Ids that were pending but trimmed from the stream before anyone acknowledged them.
    pub trimmed: Vec<String>,
}

/// A consumer of one stream in one group, on its own connection.
pub struct GroupConsumer {
    target: RedisTarget,
    conn: Option<Link>,
    /// The stream key.
    pub stream: String,
    /// The group name.
    pub group: String,
    /// This consumer's name.
    pub consumer: String,
    /// Set when every consumer of the group keeps a heartbeat: dead ones are taken over fast.
    takeover: Option<Takeover>,
    /// The last look for idle entries ([`Self::reclaim_if_due`]).
    idle_look: Periodic,
}

/// Fast takeover of dead consumers' entries (see [`super::heartbeat`]).
struct Takeover {
    /// The key prefix the heartbeats live under.
    prefix: String,
    /// The last look at the group (it is looked at twice per heartbeat period at most).
    look: Periodic,
}

/// A look at the group's pending entries that is not repeated within a period: the pending
/// list is scanned by Redis on every look, and doing it for every batch of new entries cost as
/// much Redis time as reading them.
#[derive(Default)]
struct Periodic {
    last: Option<std::time::Instant>,
}

impl Periodic {
    /// Whether a look is due, `every` after the last; if so, it is counted as taken now.
    fn due(&mut self, every: std::time::Duration) -> bool {
        if self.last.is_some_and(|at| at.elapsed() < every) {
            return false;
        }
        self.last = Some(std::time::Instant::now());
        true
    }

    /// Makes the next look due at once (the last one stopped at its count: more may wait).
    fn again_now(&mut self) {
        self.last = None;
    }
}

fn text(v: &Value) -> Option<String> {
    redis::from_redis_value::<String>(v).ok()
}

impl Entry {
    /// An entry from its id and its fields as the bytes Redis holds: names and values that are
    /// not UTF-8 are kept escaped and recorded in [`Entry::undecodable`].
    pub fn from_raw(id: String, pairs: &[(&[u8], &[u8])]) -> Entry {
        let mut fields = Vec::with_capacity(pairs.len());
        let mut undecodable = Vec::new();
        for (name, value) in pairs {
            let (name_text, value_text) = (escape_bytes(name), escape_bytes(value));
            let problem = match (std::str::from_utf8(name), std::str::from_utf8(value)) {
                (Err(_), _) => Some("the field name is not valid UTF-8"),
                (_, Err(_)) => Some("the value is not valid UTF-8"),
                _ => None,
            };
            if let Some(problem) = problem {
                undecodable.push(FieldError {
                    field: name_text.clone(),
                    value: Some(value_text.clone()),
                    problem: problem.to_owned(),
                });
            }
            fields.push((name_text, value_text));
        }
        Entry {
            id,
            fields,
            undecodable,
        }
    }
}

/// Parses `[id, [field, value, …]]`.
fn entry(v: &Value) -> Option<Entry> {
    let Value::Array(parts) = v else { return None };
    let id = text(parts.first()?)?;
    let Value::Array(kv) = parts.get(1)? else {
        return None; // a deleted entry (XCLAIM/XAUTOCLAIM of a trimmed id)
    };
    let pairs: Vec<(&[u8], &[u8])> = kv
        .chunks(2)
        .map(|pair| {
            (
                pair.first().and_then(bytes).unwrap_or_default(),
                pair.get(1).and_then(bytes).unwrap_or_default(),
            )
        })
        .collect();
    Some(Entry::from_raw(id, &pairs))
}

fn entries(v: &Value) -> Vec<Entry> {
    match v {
        Value::Array(items) => items.iter().filter_map(entry).collect(),
        _ => Vec::new(),
    }
}

impl GroupConsumer {
    /// A consumer (connecting lazily).
    pub fn new(url: &str, stream: &str, group: &str, consumer: &str) -> Result<Self, StoreError> {
        Ok(GroupConsumer {
            target: RedisTarget::parse(url)?,
            conn: None,
            stream: stream.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            takeover: None,
            idle_look: Periodic::default(),
        })
    }

    /// Takes over the pending entries of consumers whose heartbeat under `prefix` expired. Only
    /// for a group whose every consumer keeps a heartbeat (the `serve` processes): a consumer
    /// without one would look dead.
    pub fn enable_takeover(&mut self, prefix: &str) {
        self.takeover = Some(Takeover {
            prefix: prefix.to_owned(),
            look: Periodic::default(),
        });
    }

    /// The heartbeat prefix when a look at the group for dead consumers is due.
    fn takeover_due(&mut self) -> Option<String> {
        let t = self.takeover.as_mut()?;
        let every = std::time::Duration::from_millis(super::heartbeat::HEARTBEAT_EVERY_MS / 2);
        t.look.due(every).then(|| t.prefix.clone())
    }

    /// Takes over dead consumers' entries if a look is due (see [`Self::enable_takeover`]).
    pub fn take_over_if_due(
        &mut self,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError> {
        match self.takeover_due() {
            Some(prefix) => self.take_over_dead(
                &prefix,
                super::heartbeat::TAKEOVER_MIN_IDLE_MS,
                max_deliveries,
                count,
            ),
            None => Ok(Reclaimed::default()),
        }
    }

    fn call<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        if self.conn.is_none() {
            // The stream's key stands for the account's prefix: same hash tag, same slot.
            let c = self
                .target
                .connect(&self.stream, std::time::Duration::from_secs(2))?;
            self.conn = Some(c);
        }
        let result = cmd.query(self.conn.as_mut().expect("connected above"));
        if let Err(e) = &result {
            if needs_reconnect(e) {
                self.conn = None;
            }
        }
        result.map_err(StoreError::from)
    }

    /// Creates the group (and the stream) if missing, reading from the stream's start so that
    /// nothing published before the first governor started is lost.
    pub fn ensure_group(&mut self) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM");
        match self.call::<()>(&cmd) {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// New entries for this consumer, waiting up to `block_ms`.
    pub fn read(&mut self, count: usize, block_ms: usize) -> Result<Vec<Entry>, StoreError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">");
        let reply: Value = self.call(&cmd)?;
        // [[stream, [entries…]]] or nil on timeout.
        let Value::Array(streams) = reply else {
            return Ok(Vec::new());
        };
        Ok(streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(parts) => parts.get(1).map(entries),
                _ => None,
            })
            .flatten()
            .collect())
    }

    /// [`Self::reclaim`], if a look is due: at most once per tenth of `min_idle_ms` (and at
    /// least once a second), so an idle entry is reclaimed within 1.1 × `min_idle_ms`; at once
    /// again when the last look stopped at `count`.
    pub fn reclaim_if_due(
        &mut self,
        min_idle_ms: u64,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError> {
        let every = std::time::Duration::from_millis((min_idle_ms / 10).min(1000));
        if !self.idle_look.due(every) {
            return Ok(Reclaimed::default());
        }
        let found = self.reclaim(min_idle_ms, max_deliveries, count)?;
        if found.claimed.len() + found.poisoned.len() >= count {
            self.idle_look.again_now();
        }
        Ok(found)
    }

    /// Takes over entries idle for more than `min_idle_ms` (a consumer died or hung): those
    /// delivered more than `max_deliveries` times are returned as poisoned instead.
    pub fn reclaim(
        &mut self,
        min_idle_ms: u64,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError> {
        let mut out = Reclaimed::default();
        // The poisoned ones are sorted out here; XAUTOCLAIM below claims the rest.
        let _claimed_below =
            self.idle_pending(min_idle_ms, None, max_deliveries, count, &mut out)?;
        let mut claim = redis::cmd("XAUTOCLAIM");
        claim
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(min_idle_ms)
            .arg("0")
            .arg("COUNT")
            .arg(count);
        let reply: Value = self.call(&claim)?;
        if let Value::Array(parts) = reply {
            let poisoned: Vec<&str> = out.poisoned.iter().map(|(e, _)| e.id.as_str()).collect();
            let claimed: Vec<Entry> = parts.get(1).map(entries).unwrap_or_default();
            let claimed = claimed
                .into_iter()
                .filter(|e| !poisoned.contains(&e.id.as_str()))
                .collect();
            out.claimed = claimed;
            if let Some(Value::Array(deleted)) = parts.get(2) {
                out.trimmed.extend(deleted.iter().filter_map(text));
            }
        }
        out.trimmed.sort();
        out.trimmed.dedup();
        Ok(out)
    }

    /// Takes over the pending entries of the group's consumers whose heartbeat (under
    /// `prefix`, see [`super::heartbeat`]) has expired, once idle for `min_idle_ms`; a consumer
    /// with a live heartbeat keeps its entries however long it takes. At most `count` entries.
    /// Entries delivered `max_deliveries` times already are returned as poisoned, not claimed:
    /// a plan that kills every governor that takes it must not go round the fleet forever.
    pub fn take_over_dead(
        &mut self,
        prefix: &str,
        min_idle_ms: u64,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError> {
        let mut summary = redis::cmd("XPENDING");
        summary.arg(&self.stream).arg(&self.group);
        let reply: Value = self.call(&summary)?;
        let holders: Vec<String> = match reply {
            Value::Array(parts) => match parts.get(3) {
                Some(Value::Array(consumers)) => consumers
                    .iter()
                    .filter_map(|c| match c {
                        Value::Array(pair) => pair.first().and_then(text),
                        _ => None,
                    })
                    .filter(|c| *c != self.consumer)
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let mut out = Reclaimed::default();
        for holder in holders {
            let taken = out.claimed.len() + out.poisoned.len();
            if taken >= count {
                break;
            }
            let mut alive = redis::cmd("EXISTS");
            alive.arg(super::heartbeat::key(prefix, &holder));
            if self.call::<i64>(&alive)? == 1 {
                continue;
            }
            let ids = self.idle_pending(
                min_idle_ms,
                Some(&holder),
                max_deliveries,
                count - taken,
                &mut out,
            )?;
            if ids.is_empty() {
                continue;
            }
            // XCLAIM re-checks the idle time: an entry another live consumer claimed a moment
            // ago is idle no longer and stays with it. An entry trimmed meanwhile comes back
            // as nothing and is dead-lettered by the idle rule's pass.
            let mut claim = redis::cmd("XCLAIM");
            claim
                .arg(&self.stream)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(min_idle_ms)
                .arg(&ids);
            out.claimed.extend(entries(&self.call::<Value>(&claim)?));
        }
        Ok(out)
    }

    /// The ids of pending entries idle for `min_idle_ms` (of `holder` only, when given), at
    /// most `count`: those delivered `max_deliveries` times already go to `out.poisoned`
    /// instead (with their fields), or to `out.trimmed` when the stream no longer has them.
    fn idle_pending(
        &mut self,
        min_idle_ms: u64,
        holder: Option<&str>,
        max_deliveries: usize,
        count: usize,
        out: &mut Reclaimed,
    ) -> Result<Vec<String>, StoreError> {
        let mut pending = redis::cmd("XPENDING");
        pending
            .arg(&self.stream)
            .arg(&self.group)
            .arg("IDLE")
            .arg(min_idle_ms)
            .arg("-")
            .arg("+")
            .arg(count);
        if let Some(holder) = holder {
            pending.arg(holder);
        }
        let mut ids = Vec::new();
        let Value::Array(items) = self.call::<Value>(&pending)? else {
            return Ok(ids);
        };
        for item in items {
            let Value::Array(p) = item else { continue };
            let (Some(id), Some(times)) = (
                p.first().and_then(text),
                p.get(3)
                    .and_then(|v| redis::from_redis_value::<usize>(v).ok()),
            ) else {
                continue;
            };
            if times < max_deliveries {
                ids.push(id);
                continue;
            }
            let mut range = redis::cmd("XRANGE");
            range.arg(&self.stream).arg(&id).arg(&id);
            let found: Value = self.call(&range)?;
            match entries(&found).into_iter().next() {
                Some(e) => out.poisoned.push((e, times)),
                None => out.trimmed.push(id),
            }
        }
        Ok(ids)
    }

    /// Acknowledges handled entries.
    pub fn ack(&mut self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.stream).arg(&self.group).arg(ids);
        self.call::<usize>(&cmd).map(drop)
    }
}
