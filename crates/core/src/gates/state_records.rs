//! Quarantined records: an open is refused (`state_record_corrupt`) while a record it depends
//! on could not be read — its symbol's ledger position, reservation or capital allocation, or
//! a record of unknown scope. The trace names the key and the field. Every other plan, and
//! every close, is decided as usual: one bad record is never contagious. An integrity gate:
//! always enforced.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// The gate (opens only).
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let symbol = &ctx.plan.symbol;
    let mut bad = ctx.snap.book.corrupt_for(symbol);
    trace.line("state_records", Outcome::Pass);
    let Some(first) = bad.next() else {
        trace.last().int("corrupt_records", 0);
        return Ok(());
    };
    let more = bad.count();
    let field = first.field.as_deref().unwrap_or("-");
    trace
        .last()
        .int("corrupt_records", (more + 1) as i64)
        .text("key", &first.key)
        .text("field", field);
    Err(refuse(trace, Refusal::new(
            BlockReason::StateRecordCorrupt,
            format!(
                "{} field `{field}` could not be read ({}){}: opens on {symbol} wait until it is repaired",
                first.key,
                first.problem,
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Book, CorruptRecord};
    use crate::types::Symbol;

    fn verdict(corrupt: Vec<CorruptRecord>, symbol: &str) -> Result<(), BlockReason> {
        let book = Book {
            corrupt,
            ..Book::default()
        };
        crate::gates::common::check_open(
            symbol,
            &crate::gates::common::test_snapshot(book, None),
            check,
        )
    }

    fn bad(symbol: Option<&str>) -> CorruptRecord {
        CorruptRecord {
            key: "position:ledger:ZZZUSDT".into(),
            field: Some("position_amt".into()),
            value: Some("abc".into()),
            problem: "must be a plain decimal number".into(),
            symbol: symbol.map(|s| Symbol::parse(s).unwrap()),
        }
    }

    #[test]
    fn only_opens_that_depend_on_a_bad_record_are_refused() {
        let block = Err(BlockReason::StateRecordCorrupt);
        assert_eq!(verdict(vec![], "ZZZUSDT"), Ok(()));
        assert_eq!(verdict(vec![bad(Some("ZZZUSDT"))], "ZZZUSDT"), block);
        assert_eq!(
            verdict(vec![bad(Some("ZZZUSDT"))], "ETHUSDT"),
            Ok(()),
            "other symbols decide as usual"
        );
        assert_eq!(
            verdict(vec![bad(None)], "ETHUSDT"),
            block,
            "a record of unknown scope holds every open"
        );
    }
}
