//! UTC calendar dates for the command line and the report, without a date library
//! (Howard Hinnant's days-from-civil algorithms).

use governor_core::time::Timestamp;

/// `YYYY-MM-DD` of a timestamp (UTC).
pub fn date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM` of a timestamp (UTC): the form `parse_utc` reads.
pub fn datetime(ms: i64) -> String {
    let in_day = ms.rem_euclid(86_400_000);
    format!(
        "{}T{:02}:{:02}",
        date(ms),
        in_day / 3_600_000,
        in_day % 3_600_000 / 60_000
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` (UTC) or milliseconds since the epoch.
pub fn parse_utc(raw: &str) -> Result<Timestamp, String> {
    let bad =
        || format!("{raw:?}: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or epoch milliseconds");
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse().map(Timestamp).map_err(|_| bad());
    }
    let (day, time) = raw.split_once('T').unwrap_or((raw, "00:00"));
    let parts: Vec<&str> = day.split('-').collect();
    let hm: Vec<&str> = time.trim_end_matches('Z').split(':').collect();
    let num = |s: &str, lo: i64, hi: i64| s.parse::<i64>().ok().filter(|v| (lo..=hi).contains(v));
    match (parts.as_slice(), hm.as_slice()) {
        ([y, m, d], [hh, mm]) => {
            let (y, m, d) = (
                num(y, 1970, 9999).ok_or_else(bad)?,
                num(m, 1, 12).ok_or_else(bad)?,
                num(d, 1, 31).ok_or_else(bad)?,
            );
            let (hh, mm) = (
                num(hh, 0, 23).ok_or_else(bad)?,
                num(mm, 0, 59).ok_or_else(bad)?,
            );
            let ms = (days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60) * 1000;
            if date(ms) != format!("{y:04}-{m:02}-{d:02}") {
                return Err(bad());
            }
            Ok(Timestamp(ms))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datetime_reads_back() {
        let t = parse_utc("2025-06-02T10:17").unwrap();
        assert_eq!(datetime(t.millis()), "2025-06-02T10:17");
        assert_eq!(datetime(-60_000), "1969-12-31T23:59");
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_747_872_000_000), "2025-05-22");
        assert_eq!(date(951_782_400_000), "2000-02-29");
        assert_eq!(parse_utc("2025-05-22"), Ok(Timestamp(1_747_872_000_000)));
        assert_eq!(
            parse_utc("2025-05-22T01:00"),
            Ok(Timestamp(1_747_875_600_000))
        );
        assert_eq!(parse_utc("1747872000000"), Ok(Timestamp(1_747_872_000_000)));
        assert!(parse_utc("2025-02-30").is_err());
        assert!(parse_utc("yesterday").is_err());
    }
}
