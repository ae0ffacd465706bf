//! `replay --plans plans.jsonl`: the deployment's own plans (the lines `plans export` writes)
//! played at their own times instead of the sample signals. Each line becomes the stream entry
//! the service received — the same bytes, in the same order — so a plan that was malformed
//! live (a bad field, bytes that are not UTF-8) is dead-lettered in the replay as it was live.
//!
//! The plans the governor itself published on the plan stream (rotation and de-risk closes,
//! marked `rotation_trigger` / `derisk_trigger`) are not played: the replayed governor
//! publishes its own when its own decisions call for them, as the live one did.

use crate::streams::consumer::Entry;
use anyhow::{bail, Context};
use governor_core::time::Timestamp;
use serde_json::Value;
use std::path::Path;

/// One recorded plan entry.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedPlan {
    /// When the stream received it (its id's milliseconds).
    pub time: Timestamp,
    /// The entry as the service read it.
    pub entry: Entry,
}

/// A file of recorded plans, in stream order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedPlans {
    /// The plans a strategy sent, in time order.
    pub plans: Vec<RecordedPlan>,
    /// Entries the recorded governor published itself (rotation and de-risk closes), left
    /// out: the replayed governor publishes its own.
    pub governor_published: usize,
}

/// The flags by which the governor marks the close plans it publishes.
const GOVERNOR_MARKS: [&str; 2] = ["rotation_trigger", "derisk_trigger"];

/// Bytes from a field of the export: its text, or `{"hex": "…"}` for bytes that were not UTF-8.
fn bytes(v: &Value, what: &str) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) => {
            let hex = o
                .get("hex")
                .and_then(Value::as_str)
                .filter(|_| o.len() == 1)
                .ok_or_else(|| format!("{what} {v}: expected a string or {{\"hex\": \"…\"}}"))?;
            if hex.len() % 2 != 0 {
                return Err(format!(
                    "{what} {{\"hex\": {hex:?}}}: an odd number of digits"
                ));
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(&hex[i..i + 2], 16)
                        .map_err(|_| format!("{what} {{\"hex\": {hex:?}}}: not hexadecimal"))
                })
                .collect()
        }
        other => Err(format!(
            "{what} {other}: expected a string or {{\"hex\": \"…\"}}"
        )),
    }
}

/// One export line as the entry it was.
fn entry(line: &str) -> Result<(Timestamp, Entry), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or("\"id\": missing or not a string")?;
    let time = v
        .get("time")
        .and_then(Value::as_i64)
        .ok_or("\"time\": missing or not an integer (epoch ms)")?;
    let id_ms = id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse::<i64>().ok());
    if id_ms != Some(time) {
        return Err(format!(
            "\"time\" {time} is not the milliseconds of \"id\" {id:?}"
        ));
    }
    let pairs = v
        .get("fields")
        .and_then(Value::as_array)
        .ok_or("\"fields\": missing or not an array")?;
    let mut raw = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().enumerate() {
        match pair.as_array().map(Vec::as_slice) {
            Some([k, v]) => raw.push((
                bytes(k, &format!("field {i} name"))?,
                bytes(v, &format!("field {i} value"))?,
            )),
            _ => return Err(format!("field {i} {pair}: expected [name, value]")),
        }
    }
    let borrowed: Vec<(&[u8], &[u8])> = raw
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    Ok((Timestamp(time), Entry::from_raw(id.to_owned(), &borrowed)))
}

/// Whether the recorded governor published this entry itself.
fn governor_published(e: &Entry) -> bool {
    e.fields
        .iter()
        .any(|(k, v)| GOVERNOR_MARKS.contains(&k.as_str()) && v == "true")
}

/// Walks recorded plans bar by bar: each bar's plans, in order, and a count of those that
/// fall outside the replayed bars.
#[derive(Debug, Default)]
pub struct Cursor {
    next: usize,
    before_window: usize,
}

impl Cursor {
    /// The plans of the bar that closes at `timeline[i]` and lasts until the next bar (an hour
    /// for the last one); plans before `timeline[i]` not yet played are counted as before the
    /// window and skipped.
    pub fn bar<'a>(
        &mut self,
        plans: &'a RecordedPlans,
        timeline: &[Timestamp],
        i: usize,
    ) -> Vec<&'a RecordedPlan> {
        let t = timeline[i];
        let end = timeline.get(i + 1).copied().unwrap_or(t.plus_secs(3600));
        let mut out = Vec::new();
        while let Some(r) = plans.plans.get(self.next) {
            if r.time >= end {
                break;
            }
            self.next += 1;
            if r.time < t {
                self.before_window += 1;
            } else {
                out.push(r);
            }
        }
        out
    }

    /// Plans not played: before the first replayed bar, or not reached by the last.
    pub fn outside_window(&self, plans: &RecordedPlans) -> usize {
        self.before_window + (plans.plans.len() - self.next)
    }
}

impl RecordedPlans {
    /// Reads an export. A line that is not an export line (the file was cut or edited) is an
    /// error naming the line and what is wrong with it: a recorded plan is never guessed. A
    /// well-formed line holding a malformed plan is kept — the replay dead-letters it.
    pub fn parse(text: &str) -> anyhow::Result<RecordedPlans> {
        let mut out = RecordedPlans::default();
        let mut last = i64::MIN;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (time, entry) = entry(line).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
            if time.millis() < last {
                bail!(
                    "line {}: time {} is earlier than the line before ({last}): the export is \
                     in stream order",
                    n + 1,
                    time.millis()
                );
            }
            last = time.millis();
            if governor_published(&entry) {
                out.governor_published += 1;
            } else {
                out.plans.push(RecordedPlan { time, entry });
            }
        }
        Ok(out)
    }

    /// Reads an export file.
    pub fn load(path: &Path) -> anyhow::Result<RecordedPlans> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the recorded plans {}", path.display()))?;
        RecordedPlans::parse(&text).with_context(|| format!("in {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_line_becomes_the_entry_the_service_read() {
        let text = concat!(
            r#"{"id":"1000-0","time":1000,"fields":[["plan_id","p1"],["qty",{"hex":"ff41"}]]}"#,
            "\n\n",
            r#"{"id":"2000-1","time":2000,"fields":[["plan_id","rot_a_b"],["rotation_trigger","true"]]}"#,
            "\n",
        );
        let r = RecordedPlans::parse(text).unwrap();
        assert_eq!(r.governor_published, 1);
        assert_eq!(r.plans.len(), 1);
        let p = &r.plans[0];
        assert_eq!(p.time, Timestamp(1000));
        assert_eq!(p.entry.id, "1000-0");
        assert_eq!(p.entry.fields[1], ("qty".to_owned(), "\\xffA".to_owned()));
        assert_eq!(
            p.entry.undecodable.len(),
            1,
            "bad bytes stay a schema error"
        );
    }

    #[test]
    fn a_line_that_is_not_an_export_line_is_an_error_naming_it() {
        let cases = [
            ("{", "line 1: not JSON"),
            (r#"{"time":1,"fields":[]}"#, "\"id\": missing"),
            (r#"{"id":"1-0","fields":[]}"#, "\"time\": missing"),
            (
                r#"{"id":"5-0","time":6,"fields":[]}"#,
                "is not the milliseconds",
            ),
            (
                r#"{"id":"1-0","time":1,"fields":[["a"]]}"#,
                "field 0 [\"a\"]",
            ),
            (
                r#"{"id":"1-0","time":1,"fields":[["a",{"hex":"f"}]]}"#,
                "odd number",
            ),
            (
                r#"{"id":"1-0","time":1,"fields":[["a",{"hex":"zz"}]]}"#,
                "not hexadecimal",
            ),
            (
                r#"{"id":"1-0","time":1,"fields":[["a",3]]}"#,
                "field 0 value 3",
            ),
        ];
        for (line, expected) in cases {
            let err = RecordedPlans::parse(line).unwrap_err().to_string();
            assert!(err.contains(expected), "{line}: {err}");
        }
        let out_of_order =
            "{\"id\":\"5-0\",\"time\":5,\"fields\":[]}\n{\"id\":\"4-0\",\"time\":4,\"fields\":[]}";
        let err = RecordedPlans::parse(out_of_order).unwrap_err().to_string();
        assert!(err.starts_with("line 2: time 4 is earlier"), "{err}");
    }
}
