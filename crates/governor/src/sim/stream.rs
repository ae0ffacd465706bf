//! A stream with consumer groups, in memory and on the simulated clock, with the semantics the
//! workers rely on from Redis Streams: ids that only grow (the clock's milliseconds, then a
//! sequence), delivery of new entries to one consumer of a group, a pending list per group until
//! acknowledgement, reclaim of entries idle longer than a bound (counting deliveries, and
//! returning the over-delivered ones as poisoned), and acknowledgement by any consumer. Faults
//! are injected per consumer: a consumer can be made to die at its next acknowledgement (after
//! its commit, before its entries leave the pending list).
//!
//! While the store is out (an [`OutageSwitch`] shared with the store) a consumer's reads,
//! reclaims and acknowledgements are refused, or happen with their answers lost: entries
//! delivered to a consumer that never saw them stay pending until they are reclaimed.
//!
//! Not simulated yet: trimming (`MAXLEN`), blocking reads (a read returns what there is), and
//! heartbeats (no consumer is known dead before its entries are idle).

use super::clock;
use super::outage::OutageSwitch;
use crate::store::StoreError;
use crate::streams::consumer::{Entry, Reclaimed};
use crate::streams::group::GroupStream;
use governor_core::time::Timestamp;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// An entry's place in a group's pending list.
#[derive(Clone, Debug)]
struct Pending {
    consumer: String,
    delivered_at: Timestamp,
    deliveries: usize,
}

/// One consumer group: how far it has read, and what it has not acknowledged.
#[derive(Debug, Default)]
struct Group {
    /// Entries before this index were delivered to some consumer.
    next: usize,
    /// By entry id.
    pending: BTreeMap<String, Pending>,
}

#[derive(Debug, Default)]
struct State {
    key: String,
    /// Out with the store, when given.
    outage: Option<std::sync::Arc<OutageSwitch>>,
    /// `(id, fields)` in id order.
    entries: Vec<(String, Vec<(String, String)>)>,
    /// The last id's milliseconds and sequence (none before the first entry).
    last: Option<(i64, u64)>,
    groups: BTreeMap<String, Group>,
}

/// The stream, shared by its producers and consumers (one simulation thread).
#[derive(Clone, Debug, Default)]
pub struct SimStream(Rc<RefCell<State>>);

impl SimStream {
    /// An empty stream named `key`.
    pub fn new(key: &str) -> Self {
        SimStream(Rc::new(RefCell::new(State {
            key: key.to_owned(),
            ..State::default()
        })))
    }

    /// The stream, out whenever `switch` says (its consumers' calls; producers still add).
    pub fn out_with(self, switch: std::sync::Arc<OutageSwitch>) -> Self {
        self.0.borrow_mut().outage = Some(switch);
        self
    }

    /// Adds an entry at the simulated time; returns its id. Ids only grow: after a clock jump
    /// back, the entry takes the last id's milliseconds and the next sequence (as Redis does).
    pub fn add(&self, fields: &[(impl AsRef<str>, impl AsRef<str>)]) -> String {
        let mut s = self.0.borrow_mut();
        let now = clock::now().millis();
        let (ms, seq) = match s.last {
            Some((ms, seq)) if now <= ms => (ms, seq + 1),
            _ => (now, 0),
        };
        s.last = Some((ms, seq));
        let id = format!("{ms}-{seq}");
        let fields = fields
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        s.entries.push((id.clone(), fields));
        id
    }

    /// Consumer `name` of `group` (the group is created at the stream's start if missing).
    pub fn consumer(&self, group: &str, name: &str) -> SimConsumer {
        self.0
            .borrow_mut()
            .groups
            .entry(group.to_owned())
            .or_default();
        SimConsumer {
            stream: self.clone(),
            key: self.0.borrow().key.clone(),
            group: group.to_owned(),
            name: name.to_owned(),
            die_at_next_ack: false,
        }
    }

    /// The ids pending in `group`, with their consumers.
    pub fn pending(&self, group: &str) -> Vec<(String, String)> {
        self.0
            .borrow()
            .groups
            .get(group)
            .map_or_else(Vec::new, |g| {
                g.pending
                    .iter()
                    .map(|(id, p)| (id.clone(), p.consumer.clone()))
                    .collect()
            })
    }
}

/// An entry as a consumer receives it: through the same decoding as one read from Redis.
fn delivered(id: &str, fields: &[(String, String)]) -> Entry {
    let pairs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    Entry::from_raw(id.to_owned(), &pairs)
}

/// One consumer of a [`SimStream`]'s group.
#[derive(Debug)]
pub struct SimConsumer {
    stream: SimStream,
    key: String,
    group: String,
    name: String,
    /// Set by the simulation: the next acknowledgement fails as if the process died first.
    pub die_at_next_ack: bool,
}

impl SimConsumer {
    /// Runs `f` on the stream's entries and this consumer's group.
    fn with_group<T>(
        &self,
        f: impl FnOnce(&[(String, Vec<(String, String)>)], &mut Group) -> T,
    ) -> T {
        let mut s = self.stream.0.borrow_mut();
        let State {
            entries, groups, ..
        } = &mut *s;
        let g = groups
            .get_mut(&self.group)
            .expect("created with the consumer");
        f(entries, g)
    }

    /// A call of this consumer, through the store's outage if the stream has one.
    fn through<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let outage = self.stream.0.borrow().outage.clone();
        match outage {
            Some(switch) => switch.call(|| f(self)),
            None => f(self),
        }
    }
}

impl GroupStream for SimConsumer {
    fn stream(&self) -> &str {
        &self.key
    }

    fn group(&self) -> &str {
        &self.group
    }

    fn read(&mut self, count: usize, _block_ms: usize) -> Result<Vec<Entry>, StoreError> {
        self.through(|c| c.read_now(count))
    }

    fn reclaim_if_due(
        &mut self,
        min_idle_ms: u64,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError> {
        self.through(|c| c.reclaim_now(min_idle_ms, max_deliveries, count))
    }

    fn take_over_if_due(
        &mut self,
        _max_deliveries: usize,
        _count: usize,
    ) -> Result<Reclaimed, StoreError> {
        Ok(Reclaimed::default())
    }

    fn ack(&mut self, ids: &[String]) -> Result<(), StoreError> {
        if self.die_at_next_ack {
            return Err(StoreError::Unavailable(format!(
                "simulated: {} died before acknowledging {} entries",
                self.name,
                ids.len()
            )));
        }
        self.through(|c| {
            c.with_group(|_, g| {
                for id in ids {
                    g.pending.remove(id);
                }
            });
            Ok(())
        })
    }
}

impl SimConsumer {
    /// XREADGROUP `>`: the next `count` new entries, now pending with this consumer.
    fn read_now(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let now = clock::now();
        self.with_group(|entries, g| {
            let end = (g.next + count).min(entries.len());
            let out = entries[g.next..end]
                .iter()
                .map(|(id, fields)| {
                    g.pending.insert(
                        id.clone(),
                        Pending {
                            consumer: self.name.clone(),
                            delivered_at: now,
                            deliveries: 1,
                        },
                    );
                    delivered(id, fields)
                })
                .collect();
            g.next = end;
            Ok(out)
        })
    }

    /// XAUTOCLAIM: entries idle at least `min_idle_ms` move to this consumer; those delivered
    /// `max_deliveries` times already come back as poisoned.
    fn reclaim_now(
        &mut self,
        min_idle_ms: u64,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError> {
        let now = clock::now();
        self.with_group(|entries, g| {
            let mut out = Reclaimed::default();
            let idle: Vec<String> = g
                .pending
                .iter()
                .filter(|(_, p)| {
                    // At least `min_idle_ms`, as XAUTOCLAIM counts it.
                    i128::from(now.millis() - p.delivered_at.millis()) >= i128::from(min_idle_ms)
                })
                .map(|(id, _)| id.clone())
                .take(count)
                .collect();
            for id in idle {
                let p = g.pending.get_mut(&id).expect("listed above");
                let fields = &entries
                    .iter()
                    .find(|(e, _)| *e == id)
                    .expect("entries are never trimmed here")
                    .1;
                if p.deliveries < max_deliveries {
                    p.consumer = self.name.clone();
                    p.delivered_at = now;
                    p.deliveries += 1;
                    out.claimed.push(delivered(&id, fields));
                } else {
                    out.poisoned.push((delivered(&id, fields), p.deliveries));
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn ids_grow_with_the_clock_and_past_a_jump_back() {
        let s = SimStream::new("plans");
        clock::set(Timestamp(5_000));
        assert_eq!(s.add(&[("k", "v")]), "5000-0");
        assert_eq!(s.add(&[("k", "v")]), "5000-1");
        clock::set(Timestamp(4_000));
        assert_eq!(s.add(&[("k", "v")]), "5000-2", "never below the last id");
        clock::set(Timestamp(6_000));
        assert_eq!(s.add(&[("k", "v")]), "6000-0");
    }

    #[test]
    fn a_group_delivers_each_entry_once_and_keeps_it_pending_until_acknowledged() {
        clock::set(Timestamp(1_000));
        let s = SimStream::new("plans");
        for i in 0..3 {
            s.add(&[("plan_id", &format!("p{i}"))]);
        }
        let (mut a, mut b) = (s.consumer("g", "a"), s.consumer("g", "b"));
        let first = a.read(2, 0).unwrap();
        assert_eq!(ids(&first), ["1000-0", "1000-1"]);
        assert_eq!(first[0].fields, [("plan_id".to_owned(), "p0".to_owned())]);
        assert_eq!(ids(&b.read(10, 0).unwrap()), ["1000-2"]);
        assert!(a.read(10, 0).unwrap().is_empty(), "nothing new");
        // Any consumer of the group may acknowledge (XACK names no consumer).
        b.ack(&["1000-0".to_owned()]).unwrap();
        let pending = s.pending("g");
        assert_eq!(
            pending,
            [
                ("1000-1".to_owned(), "a".to_owned()),
                ("1000-2".to_owned(), "b".to_owned())
            ]
        );
        // Another group reads the same entries from the start.
        let mut other = s.consumer("h", "x");
        assert_eq!(other.read(10, 0).unwrap().len(), 3);
    }

    #[test]
    fn entries_idle_at_least_the_bound_are_claimed_and_the_over_delivered_poisoned() {
        clock::set(Timestamp(0));
        let s = SimStream::new("plans");
        s.add(&[("plan_id", "p0")]);
        let (mut a, mut b) = (s.consumer("g", "a"), s.consumer("g", "b"));
        a.read(1, 0).unwrap();
        clock::advance(999);
        assert!(b.reclaim_if_due(1_000, 3, 10).unwrap().claimed.is_empty());
        clock::advance(1);
        let claimed = b.reclaim_if_due(1_000, 3, 10).unwrap().claimed;
        assert_eq!(ids(&claimed), ["0-0"], "idle for exactly the bound");
        assert_eq!(s.pending("g"), [("0-0".to_owned(), "b".to_owned())]);
        // Delivered twice now; a third delivery is allowed, a fourth is not.
        clock::advance(1_000);
        assert_eq!(a.reclaim_if_due(1_000, 3, 10).unwrap().claimed.len(), 1);
        clock::advance(1_000);
        let last = b.reclaim_if_due(1_000, 3, 10).unwrap();
        assert!(last.claimed.is_empty());
        assert_eq!(last.poisoned.len(), 1);
        assert_eq!(last.poisoned[0].1, 3, "with its delivery count");
    }

    /// While the store refuses, a read delivers nothing and leaves the entry new; while it
    /// loses answers, the read delivers it (pending with the reader) and errs, and only a
    /// reclaim once it is idle brings it back; an acknowledgement whose answer is lost did
    /// acknowledge.
    #[test]
    fn an_outage_refuses_reads_or_leaves_what_they_delivered_pending() {
        use super::super::outage::Outage;
        clock::set(Timestamp(0));
        let switch = std::sync::Arc::new(OutageSwitch::default());
        let s = SimStream::new("plans").out_with(switch.clone());
        s.add(&[("plan_id", "p0")]);
        let (mut a, mut b) = (s.consumer("g", "a"), s.consumer("g", "b"));
        switch.set(Some(Outage::Refuses));
        assert!(a.read(10, 0).is_err());
        assert!(s.pending("g").is_empty(), "nothing delivered");
        switch.set(Some(Outage::LosesAnswers));
        assert!(a.read(10, 0).is_err());
        assert_eq!(s.pending("g"), [("0-0".to_owned(), "a".to_owned())]);
        switch.set(None);
        assert!(b.read(10, 0).unwrap().is_empty(), "delivered already");
        clock::advance(1_000);
        let claimed = b.reclaim_if_due(1_000, 3, 10).unwrap().claimed;
        assert_eq!(ids(&claimed), ["0-0"]);
        switch.set(Some(Outage::LosesAnswers));
        assert!(b.ack(&["0-0".to_owned()]).is_err());
        assert!(s.pending("g").is_empty(), "acknowledged all the same");
    }

    #[test]
    fn a_consumer_that_dies_at_its_acknowledgement_leaves_its_entries_pending() {
        clock::set(Timestamp(0));
        let s = SimStream::new("plans");
        s.add(&[("plan_id", "p0")]);
        let mut a = s.consumer("g", "a");
        let got = a.read(1, 0).unwrap();
        a.die_at_next_ack = true;
        let died = a.ack(&[got[0].id.clone()]).unwrap_err();
        assert!(
            died.to_string().contains("a died before acknowledging"),
            "{died}"
        );
        assert_eq!(s.pending("g").len(), 1);
    }
}
