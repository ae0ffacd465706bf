//! The recorded-klines CSV format (`open_time_ms,open,high,low,close,volume`), parsed strictly.
//!
//! Every row is checked: finite positive prices, non-negative volume, OHLC consistency,
//! strictly increasing hour-aligned timestamps. A bad row is an error naming the file, the line
//! and what is wrong; nothing is skipped silently. Gaps are allowed (other data has them);
//! consumers align on timestamps.

use super::kline::{Kline, BAR_MS};
use crate::plan::parse_decimal;
use crate::time::Timestamp;
use std::fmt;

/// The header every klines file starts with.
pub const HEADER: &str = "open_time_ms,open,high,low,close,volume";

/// A problem in a klines file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CsvError {
    /// The file's name as the caller gave it.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.problem)
    }
}

/// Parses a whole klines file (oldest first).
pub fn parse_klines(file: &str, text: &str) -> Result<Vec<Kline>, CsvError> {
    let err = |line: usize, problem: String| CsvError {
        file: file.to_owned(),
        line,
        problem,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim_end() == HEADER => {}
        Some((_, h)) => return Err(err(1, format!("header is {h:?}, expected {HEADER:?}"))),
        None => return Err(err(1, "the file is empty".to_owned())),
    }
    let mut out: Vec<Kline> = Vec::new();
    for (i, raw) in lines {
        let n = i + 1;
        let row = raw.trim_end_matches('\r');
        if row.is_empty() {
            continue;
        }
        let cols: Vec<&str> = row.split(',').collect();
        if cols.len() != 6 {
            return Err(err(n, format!("{} columns, expected 6", cols.len())));
        }
        let open_time: i64 = cols[0]
            .parse()
            .map_err(|_| err(n, format!("open_time_ms {:?} is not an integer", cols[0])))?;
        if open_time % BAR_MS != 0 {
            return Err(err(
                n,
                format!("open_time_ms {open_time} is not on an hour"),
            ));
        }
        let mut v = [0.0; 5];
        for (k, name) in ["open", "high", "low", "close", "volume"]
            .iter()
            .enumerate()
        {
            v[k] = parse_decimal(cols[k + 1])
                .map_err(|e| err(n, format!("{name} {:?}: {e}", cols[k + 1])))?;
        }
        let [open, high, low, close, volume] = v;
        if !(open > 0.0 && high > 0.0 && low > 0.0 && close > 0.0) {
            return Err(err(n, "prices must be > 0".to_owned()));
        }
        if !(volume >= 0.0) {
            return Err(err(n, format!("volume {volume} is negative")));
        }
        if !(low <= open.min(close) && high >= open.max(close) && low <= high) {
            return Err(err(
                n,
                format!("OHLC inconsistent: open {open} high {high} low {low} close {close}"),
            ));
        }
        if let Some(prev) = out.last() {
            if open_time <= prev.open_time.0 {
                return Err(err(
                    n,
                    format!(
                        "open_time_ms {open_time} does not follow {} (timestamps must increase)",
                        prev.open_time.0
                    ),
                ));
            }
        }
        out.push(Kline {
            open_time: Timestamp(open_time),
            open,
            high,
            low,
            close,
            volume,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "open_time_ms,open,high,low,close,volume\n\
        1747872000000,109609.6,110146.4,109153.4,109925.4,16028.352\n\
        1747875600000,109925.3,110549.9,109640.3,109892.5,12972.009\n";

    #[test]
    fn parses_the_recorded_format() {
        let k = parse_klines("BTC.csv", GOOD).unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k[1].open_time, Timestamp(1_747_875_600_000));
        assert_eq!(k[1].close, 109892.5);
    }

    fn bad(row: &str) -> CsvError {
        let text = format!("{HEADER}\n1747872000000,1,2,0.5,1.5,10\n{row}\n");
        parse_klines("X.csv", &text).unwrap_err()
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let e = bad("1747875600000,1,2,0.5,NaN,10");
        assert_eq!((e.file.as_str(), e.line), ("X.csv", 3));
        assert!(e.to_string().starts_with("X.csv:3: close \"NaN\""), "{e}");
        assert!(bad("1747875600000,1,0.9,0.5,1.5,10")
            .problem
            .contains("OHLC inconsistent"));
        assert!(bad("1747872000000,1,2,0.5,1.5,10")
            .problem
            .contains("must increase"));
        assert!(bad("1747875600001,1,2,0.5,1.5,10")
            .problem
            .contains("not on an hour"));
        assert!(bad("1747875600000,1,2,0.5,1.5")
            .problem
            .contains("5 columns"));
        assert!(bad("1747875600000,1,2,0.5,1.5,-1")
            .problem
            .contains("negative"));
    }

    #[test]
    fn a_wrong_header_is_refused() {
        let e = parse_klines("Y.csv", "time,o,h,l,c,v\n").unwrap_err();
        assert_eq!(e.line, 1);
    }
}
