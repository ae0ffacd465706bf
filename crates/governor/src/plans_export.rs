//! `quantum-governor plans export --redis URL [--from T] [--to T]`: the deployment's recorded
//! plan stream as JSON lines, each entry untouched — its stream id, its time (the id's
//! milliseconds) and its fields in their order, duplicates and all. A value that is not UTF-8
//! is written as `{"hex": "…"}` rather than changed: what the service received is what the
//! export holds.

use crate::streams::Streams;
use anyhow::Context;
use governor_core::time::Timestamp;
use serde_json::{json, Value};
use std::io::Write;

/// Entries read per `XRANGE` call.
const PAGE: usize = 1_000;

/// A value as JSON: the text, or its bytes in hex when it is not UTF-8.
fn value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            json!({ "hex": hex })
        }
    }
}

/// One entry as its export line.
fn line(id: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> anyhow::Result<Value> {
    let ms: i64 = id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse().ok())
        .with_context(|| format!("stream id {id:?} is not <ms>-<seq>"))?;
    let fields: Vec<Value> = fields
        .iter()
        .map(|(k, v)| json!([value(k), value(v)]))
        .collect();
    Ok(json!({ "id": id, "time": ms, "fields": fields }))
}

/// Writes every plan entry of `prefix`'s plan stream between `from` and `to` (inclusive) to
/// `out`, oldest first, paging through the stream; returns how many.
pub fn export(
    redis_url: &str,
    prefix: &str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    let key = Streams::new(prefix).plans;
    let mut conn = crate::store::redis::link::RedisTarget::parse(redis_url)
        .and_then(|t| t.connect(prefix, std::time::Duration::from_secs(5)))
        .with_context(|| format!("connecting to {redis_url}"))?;
    let end = to.map_or("+".to_owned(), |t| format!("{}-{}", t.millis(), u64::MAX));
    let mut start = from.map_or("-".to_owned(), |t| format!("{}-0", t.millis()));
    let mut n = 0;
    loop {
        type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);
        let page: Vec<Entry> = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&start)
            .arg(&end)
            .arg("COUNT")
            .arg(PAGE)
            .query(&mut conn)
            .with_context(|| format!("XRANGE {key}"))?;
        for (id, fields) in &page {
            writeln!(out, "{}", line(id, fields)?).context("writing the export")?;
            n += 1;
        }
        match page.last() {
            Some((id, _)) if page.len() == PAGE => start = format!("({id}"),
            _ => return Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_written_as_received() {
        let fields = vec![
            (b"plan_id".to_vec(), b"p1".to_vec()),
            (b"qty".to_vec(), b"1".to_vec()),
            (b"qty".to_vec(), vec![0xff, 0x00]),
        ];
        let v = line("1700000000123-4", &fields).unwrap();
        assert_eq!(
            v,
            json!({"id": "1700000000123-4", "time": 1700000000123i64,
                   "fields": [["plan_id", "p1"], ["qty", "1"], ["qty", {"hex": "ff00"}]]})
        );
        assert!(line("not-an-id", &fields).is_err());
    }
}
