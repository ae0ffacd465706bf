//! Strict reading of stream fields, shared by the plan, result and harvest-proposal parsers:
//! duplicates, near misses of contract fields, oversize entries and empty values are errors,
//! every problem is collected with its field and value, nothing is defaulted. Also the one
//! number grammar of every edge, and the escaping of bytes that are not UTF-8.

use serde::Serialize;
use smallvec::SmallVec;
use std::fmt;

/// How many fields an entry holds without an allocation: a plan has a dozen or so.
const INLINE_FIELDS: usize = 16;

/// The fields of one stream entry by name, and the problems found while reading them.
pub(crate) struct Fields<'a> {
    /// (name, raw value, read) in the order written, each name once (a duplicate is recorded
    /// as an error and its last value kept). A dozen short names: a scan beats building a map.
    /// `read` marks a field the parser asked for by name: a contract field, so it is no near
    /// miss of one and not one of the producer's own.
    entries: SmallVec<[(&'a str, &'a str, bool); INLINE_FIELDS]>,
    /// Every problem so far, in the order found.
    pub(crate) errors: Vec<FieldError>,
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as the producer wrote it (`<plan>` for whole-plan problems).
    pub field: String,
    /// The value as received (shortened when very long), `None` when the field was absent.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "field `{}` = {:?}: {}", self.field, v, self.problem),
            None => write!(f, "field `{}` is missing: {}", self.field, self.problem),
        }
    }
}

/// Whether `raw` is written in the contract's number grammar (`docs/wire-contract.md`):
/// `[-]digits[.digits][(e|E)[+|-]digits]` for a decimal, `[-]digits` when `integer`. No leading
/// `+`, no bare `.5` or `5.`, no spaces, no hex, no `NaN`/`inf` — one spelling of each number,
/// the same on the stream, over HTTP, in results, files and Binance's answers.
fn number_shape(raw: &str, integer: bool) -> bool {
    let b = raw.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if integer {
        return i == b.len();
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// Parses a decimal in the contract's grammar ([`number_shape`]), finite only: rejects what
/// Rust or Lua would otherwise accept as a number (`NaN`, `inf`, `0x10`, `" 5 "`, `+5`, `.5`,
/// `1e400`).
pub fn parse_decimal(raw: &str) -> Result<f64, String> {
    if !number_shape(raw, false) {
        return Err("must be a plain decimal number ([-]digits[.digits][e[±]digits])".to_owned());
    }
    let value: f64 = raw
        .parse()
        .map_err(|_| "must be a plain decimal number".to_owned())?;
    if !value.is_finite() {
        return Err("must be finite".to_owned());
    }
    Ok(value)
}

/// Parses a whole number in the contract's grammar (`[-]digits`: no `+`, no point, no
/// exponent), within `i64`.
pub fn parse_integer(raw: &str) -> Result<i64, String> {
    if !number_shape(raw, true) {
        return Err("must be a whole number ([-]digits)".to_owned());
    }
    raw.parse().map_err(|_| "is out of range".to_owned())
}

/// Parses `true`/`false` exactly.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be `true` or `false`".to_owned()),
    }
}

/// `bytes` as text, each byte that is not part of valid UTF-8 written `\xNN`: how a field
/// that is not UTF-8 is shown in an error and a dead letter (never dropped, never guessed).
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The contract field that `name` is a near miss of, if any: the same once case, `_` and `-`
/// are ignored (`Qty`, `reduce_only`, `killScore`), or a small edit away (one edit for names of
/// 5 to 7 characters, two from 8: `levarage`). Unknown fields are allowed — producers add their
/// own — but one this close to a contract field is far more likely a typo that would silently
/// leave a default in force, the old system's worst incident.
pub fn near_miss<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    if known.contains(&name) {
        return None;
    }
    let allowed_for = |len: usize| match len {
        0..=4 => 0,
        5..=7 => 1,
        _ => 2,
    };
    // An ASCII name's folded length is its length less its separators: known without folding
    // it, so a name no contract field is near in length is settled with no work at all.
    let separators = |s: &str| s.bytes().filter(|b| matches!(b, b'_' | b'-')).count();
    let ascii_len = name.is_ascii().then(|| name.len() - separators(name));
    let mut folded: Option<Folded> = None;
    known.iter().copied().find(|k| {
        // The edit distance is at least the difference in length: most names are ruled out
        // by that alone, before anything is folded or compared.
        let ascii_target = k.is_ascii().then(|| k.len() - separators(k));
        if let (Some(target), Some(len)) = (ascii_target, ascii_len) {
            if len.abs_diff(target) > allowed_for(target) {
                return false;
            }
        }
        let folded = folded.get_or_insert_with(|| fold(name));
        let target = fold(k);
        if folded.len().abs_diff(target.len()) > allowed_for(target.len()) {
            return false;
        }
        *folded == target || edit_distance(folded, &target) <= allowed_for(target.len())
    })
}

/// A name's characters with `_` and `-` left out and letters lowered: inline for the
/// contract's names, so that comparing them allocates nothing.
type Folded = SmallVec<[char; 32]>;

fn fold(s: &str) -> Folded {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Edit distance counting insertions, deletions, substitutions and swaps of neighbours, with
/// three rolling rows of the table.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    type Row = SmallVec<[usize; 36]>;
    let mut before: Row = (0..=b.len()).collect(); // row i - 2
    let mut last: Row = before.clone(); // row i - 1
    let mut row: Row = smallvec::smallvec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            row[j] = best;
        }
        std::mem::swap(&mut before, &mut last);
        std::mem::swap(&mut last, &mut row);
    }
    last[b.len()]
}

/// Long values are shortened in error messages so that a flood of junk stays readable.
fn shorten(value: &str) -> String {
    const KEEP: usize = 80;
    if value.len() <= KEEP {
        return value.to_owned();
    }
    let mut end = KEEP;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

impl<'a> Fields<'a> {
    /// Indexes `fields`; an entry with more than `max_fields` fields or `max_bytes` bytes is
    /// refused whole (reported under `whole`, e.g. `<plan>`).
    pub(crate) fn read<K: AsRef<str>, V: AsRef<str>>(
        fields: &'a [(K, V)],
        max_fields: usize,
        max_bytes: usize,
        whole: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields {
            entries: SmallVec::new(),
            errors: Vec::new(),
        };
        let bytes: usize = fields
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum();
        if fields.len() > max_fields || bytes > max_bytes {
            f.fail(
                whole,
                Some(&format!("{} fields, {} bytes", fields.len(), bytes)),
                format!("at most {max_fields} fields and {max_bytes} bytes are accepted"),
            );
            return Err(f.errors);
        }
        for (k, v) in fields {
            let (k, v) = (k.as_ref(), v.as_ref());
            match f.entries.iter_mut().find(|(name, _, _)| *name == k) {
                Some(entry) => {
                    entry.1 = v;
                    f.fail(k, Some(v), "appears more than once");
                }
                None => f.entries.push((k, v, false)),
            }
        }
        Ok(f)
    }

    /// The raw value of `field` as written (empty included), if the entry has it.
    pub(crate) fn raw(&self, field: &str) -> Option<&'a str> {
        self.entries
            .iter()
            .find(|(name, _, _)| *name == field)
            .map(|(_, value, _)| *value)
    }

    /// Whether the entry has `field` at all.
    pub(crate) fn has(&self, field: &str) -> bool {
        self.raw(field).is_some()
    }

    /// Every (name, raw value) the parser did not ask for by name, in the order written.
    pub(crate) fn unread(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.entries
            .iter()
            .filter(|(_, _, read)| !read)
            .map(|(name, value, _)| (*name, *value))
    }

    /// Refuses every field that is a near miss of one of `known` ([`near_miss`]), in the
    /// order of their names.
    pub(crate) fn refuse_near_misses(&mut self, known: &[&str]) {
        debug_assert!(
            self.entries
                .iter()
                .all(|(name, _, read)| !read || known.contains(name)),
            "a field read by name is missing from the known fields"
        );
        let mut misses: Vec<(&'a str, &'a str, &str)> = self
            .unread()
            .filter_map(|(name, value)| Some((name, value, near_miss(name, known)?)))
            .collect();
        misses.sort_unstable_by_key(|(name, _, _)| *name);
        for (name, value, meant) in misses {
            self.fail(
                name,
                Some(value),
                format!("unknown field `{name}` (did you mean `{meant}`?)"),
            );
        }
    }

    /// Records a problem with `field`.
    pub(crate) fn fail(&mut self, field: &str, value: Option<&str>, problem: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            value: value.map(shorten),
            problem: problem.into(),
        });
    }

    /// The raw value; an empty value is an error (never read as "absent").
    pub(crate) fn get(&mut self, field: &str) -> Option<&'a str> {
        let (_, value, read) = self
            .entries
            .iter_mut()
            .find(|(name, _, _)| *name == field)?;
        *read = true;
        let value = *value;
        if value.is_empty() {
            self.fail(field, Some(value), "is empty; leave the field out instead");
            return None;
        }
        Some(value)
    }

    /// The raw value of a field that must be there (`why` says what it is for).
    pub(crate) fn require(&mut self, field: &str, why: &str) -> Option<&'a str> {
        if !self.has(field) {
            self.fail(field, None, why);
            return None;
        }
        self.get(field)
    }

    /// Converts a raw value, recording the conversion's error against the field.
    pub(crate) fn typed<T>(
        &mut self,
        field: &str,
        raw: Option<&'a str>,
        conv: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = raw?;
        match conv(raw) {
            Ok(v) => Some(v),
            Err(problem) => {
                self.fail(field, Some(raw), problem);
                None
            }
        }
    }

    /// An optional strict decimal that must satisfy `check` (described by `range`).
    pub(crate) fn number(
        &mut self,
        field: &str,
        check: fn(f64) -> bool,
        range: &str,
    ) -> Option<f64> {
        let raw = self.get(field);
        self.typed(field, raw, |r| {
            let v = parse_decimal(r)?;
            if check(v) {
                Ok(v)
            } else {
                Err(format!("must be {range}"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{edit_distance, near_miss};

    #[test]
    fn edit_distances_worked_by_hand() {
        let d = |a: &str, b: &str| {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            edit_distance(&a, &b)
        };
        assert_eq!(d("kitten", "sitting"), 3); // k→s, e→i, +g
        assert_eq!(d("ab", "ba"), 1); // one swap of neighbours
        assert_eq!(d("leveraeg", "leverage"), 1);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("ca", "abc"), 3); // a swap is not edited again (optimal string alignment)
        assert_eq!(d("price", "price"), 0);
    }

    const PLAN: &[&str] = &[
        "qty",
        "leverage",
        "reduceOnly",
        "kill_score",
        "side",
        "price",
        "mark_price",
    ];

    #[test]
    fn near_misses_of_contract_fields_are_named() {
        // (field sent, the contract field it misses), worked by hand.
        let cases = [
            ("levarage", Some("leverage")), // one substitution, 8 letters: ≤ 2 allowed
            ("leveraeg", Some("leverage")), // a swap of neighbours
            ("Qty", Some("qty")),           // case only
            ("QTY", Some("qty")),
            ("reduce_only", Some("reduceOnly")), // `_` and case
            ("reduce-only", Some("reduceOnly")),
            ("killScore", Some("kill_score")),
            ("markPrice", Some("mark_price")),
            ("prices", Some("price")), // one insertion, 5 letters: ≤ 1 allowed
            ("prrices", None),         // two edits from a 5-letter name
            ("qtx", None),             // 3 letters: case and separators only
            ("size", None),            // 4 letters: case and separators only
            ("strategy_id", None),     // a producer's own field
            ("leverage", None),        // the field itself
            ("lévarage", Some("leverage")), // not ASCII: two substitutions, 8 letters
            ("qté", None),             // not ASCII, 3 letters: case and separators only
        ];
        for (sent, meant) in cases {
            assert_eq!(near_miss(sent, PLAN), meant, "{sent}");
        }
    }
}
