//! A JSON object read as stream fields, for every edge where a plan or a proposal arrives as
//! JSON (the body of `POST /v1/plans`, the plan file of `evaluate`, the proposal lines of the
//! embedded heat gate). Keys are kept in order *with their duplicates* — `serde_json`'s own map
//! keeps the last of two equal keys silently, which would let `{"qty":"0.001","qty":"5"}`
//! become a plan for 5 — so that the strict parsers see a duplicate and refuse it, as they do
//! on the stream.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// Which JSON values a field may carry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scalars {
    /// Strings, numbers and booleans (written as their text): plans.
    TextNumbersBooleans,
    /// Strings only: harvest proposals, whose stream fields are strings.
    TextOnly,
}

/// The keys and values of one JSON object, in order, duplicates kept.
struct Pairs(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of field names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `text` as fields. The error says what is wrong: not JSON, not an object, or which field
/// holds a value of the wrong kind.
pub fn object_fields(text: &str, scalars: Scalars) -> Result<Vec<(String, String)>, String> {
    let Pairs(pairs) = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    pairs
        .into_iter()
        .map(|(k, v)| {
            let text = match (v, scalars) {
                (Value::String(s), _) => s,
                (Value::Number(n), Scalars::TextNumbersBooleans) => n.to_string(),
                (Value::Bool(b), Scalars::TextNumbersBooleans) => b.to_string(),
                (other, Scalars::TextNumbersBooleans) => {
                    return Err(format!(
                        "field `{k}` = {other}: values are strings, numbers or booleans"
                    ))
                }
                (other, Scalars::TextOnly) => {
                    return Err(format!(
                        "field `{k}` = {other}: stream fields are strings (quote the value)"
                    ))
                }
            };
            Ok((k, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_kept_in_order_for_the_parser_to_refuse() {
        let f = object_fields(
            r#"{"qty":"0.001","qty":"5","leverage":3,"reduceOnly":true}"#,
            Scalars::TextNumbersBooleans,
        )
        .unwrap();
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("qty", "0.001"),
                ("qty", "5"),
                ("leverage", "3"),
                ("reduceOnly", "true")
            ]
        );
    }

    #[test]
    fn wrong_kinds_and_shapes_name_the_field() {
        let e = object_fields(r#"{"qty":[1]}"#, Scalars::TextNumbersBooleans).unwrap_err();
        assert!(e.contains("`qty`"), "{e}");
        let e = object_fields(r#"{"kill_score":0.5}"#, Scalars::TextOnly).unwrap_err();
        assert!(e.contains("`kill_score`") && e.contains("quote"), "{e}");
        assert!(object_fields("[1,2]", Scalars::TextOnly).is_err());
        assert!(object_fields("{\"a\":", Scalars::TextOnly).is_err());
    }
}
