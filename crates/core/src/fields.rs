//! Strict reading of stream fields, shared by the plan parser and the harvest-proposal parser:
//! duplicates, oversize entries and empty values are errors, every problem is collected with
//! its field and value, nothing is defaulted.

use crate::plan::{parse_decimal, FieldError};
use std::collections::BTreeMap;

/// The fields of one stream entry by name, and the problems found while reading them.
pub(crate) struct Fields<'a> {
    /// Field name → raw value (each name at most once; duplicates are recorded as errors).
    pub(crate) map: BTreeMap<&'a str, &'a str>,
    /// Every problem so far, in the order found.
    pub(crate) errors: Vec<FieldError>,
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
            map: BTreeMap::new(),
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
            if f.map.insert(k.as_ref(), v.as_ref()).is_some() {
                f.fail(k.as_ref(), Some(v.as_ref()), "appears more than once");
            }
        }
        Ok(f)
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
        let value = self.map.get(field).copied()?;
        if value.is_empty() {
            self.fail(field, Some(value), "is empty; leave the field out instead");
            return None;
        }
        Some(value)
    }

    /// The raw value of a field that must be there (`why` says what it is for).
    pub(crate) fn require(&mut self, field: &str, why: &str) -> Option<&'a str> {
        if !self.map.contains_key(field) {
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
