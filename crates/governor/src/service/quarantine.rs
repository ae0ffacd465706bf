//! Reports the store's quarantined records (see [`CorruptRecord`]): each one, once, as a
//! `STATE_RECORD_CORRUPT` log line and event naming its key, field and problem, and again as
//! `STATE_RECORD_REPAIRED` when it reads cleanly — plus ledger keys that are not UTF-8, which
//! the ledger index skips. The sweeper runs it every second; `/metrics` and `/v1/stats` show
//! the records of the moment.

use crate::logfmt;
use crate::store::redis::RedisStore;
use crate::store::StoreError;
use governor_core::book::CorruptRecord;
use governor_core::effects::Event;
use governor_core::time::Timestamp;
use governor_core::types::PlanId;
use std::collections::BTreeMap;

/// What was reported already, by a description that identifies the record.
#[derive(Default)]
pub struct QuarantineReporter {
    reported: BTreeMap<String, (String, Option<String>)>,
}

fn id(r: &CorruptRecord) -> String {
    format!("{} {}", r.key, r.field.as_deref().unwrap_or(""))
}

impl QuarantineReporter {
    /// Reports what is new in `records` and `unreadable_keys`, and what was repaired.
    pub fn report(
        &mut self,
        store: &RedisStore,
        records: &[CorruptRecord],
        unreadable_keys: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut current: BTreeMap<String, (String, Option<String>, String)> = records
            .iter()
            .map(|r| (id(r), (r.key.clone(), r.field.clone(), r.problem.clone())))
            .collect();
        for key in unreadable_keys {
            current.insert(
                key.clone(),
                (
                    key.clone(),
                    None,
                    "the key is not valid UTF-8: it is not indexed".to_owned(),
                ),
            );
        }
        for (id, (key, field, problem)) in &current {
            if !self.reported.contains_key(id) {
                let fields = vec![
                    ("key", key.clone()),
                    ("field", field.clone().unwrap_or_default()),
                    ("problem", problem.clone()),
                ];
                logfmt::line("STATE_RECORD_CORRUPT", &fields);
                store.emit(&event("STATE_RECORD_CORRUPT", fields, now))?;
                self.reported
                    .insert(id.clone(), (key.clone(), field.clone()));
            }
        }
        let repaired: Vec<String> = self
            .reported
            .keys()
            .filter(|id| !current.contains_key(*id))
            .cloned()
            .collect();
        for id in repaired {
            let (key, field) = self.reported.remove(&id).expect("listed above");
            let fields = vec![("key", key), ("field", field.unwrap_or_default())];
            logfmt::line("STATE_RECORD_REPAIRED", &fields);
            store.emit(&event("STATE_RECORD_REPAIRED", fields, now))?;
        }
        Ok(())
    }
}

fn event(name: &'static str, fields: Vec<(&'static str, String)>, now: Timestamp) -> Event {
    Event {
        event: name,
        plan_id: PlanId::parse("sweeper").expect("a valid plan id"),
        symbol: None,
        ts: now,
        fields: fields.into_iter().map(|(k, v)| (k, v.into())).collect(),
    }
}
