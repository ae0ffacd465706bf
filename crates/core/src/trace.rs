//! The decision trace: one line per gate with its inputs, its threshold and its outcome.
//!
//! It answers "why was plan X blocked?" without reading logs. Lines are cheap to build (static
//! names, numbers kept as numbers) because a trace is written for every decision on the hot path.

use crate::reason::BlockReason;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::sync::Arc;

/// What a gate concluded.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The gate let the plan through.
    Pass,
    /// The gate decided the plan is blocked, with this reason.
    Block(BlockReason),
    /// The plan waits for something (a rotation close).
    Pending(BlockReason),
    /// The gate passed the plan but flags something an operator should see.
    Warn,
    /// The gate changed the plan (e.g. scaled its quantity) and let it through.
    Adjust,
    /// The gate does not apply to this plan (e.g. a close at an open-only gate), or is off.
    NotApplicable,
    /// The gate, in shadow mode, would have blocked with this reason; it blocked nothing.
    Shadow(BlockReason),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Block(_) => "block",
            Outcome::Pending(_) => "pending",
            Outcome::Warn => "warn",
            Outcome::Adjust => "adjust",
            Outcome::NotApplicable => "n/a",
            Outcome::Shadow(_) => "shadow",
        }
    }
}

/// A value in a trace line. Numbers stay numbers so that the JSON is machine-readable.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    /// A measured or configured quantity.
    Num(f64),
    /// A count or an integer setting.
    Int(i64),
    /// A yes/no input.
    Flag(bool),
    /// A fixed name (state, regime, action).
    Name(&'static str),
    /// Free text (parse errors, field names); boxed, so that a fact stays small.
    Text(Box<str>),
    /// An identifier (a symbol, a plan id), sharing its owner's text.
    Id(Arc<str>),
    /// An input that was not there.
    Missing,
}

impl Fact {
    /// A number, or `Missing` when there is none.
    pub fn opt_num(value: Option<f64>) -> Fact {
        value.map_or(Fact::Missing, Fact::Num)
    }
}

impl Serialize for Fact {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Fact::Num(v) if v.is_finite() => s.serialize_f64(*v),
            Fact::Num(v) => s.serialize_str(&v.to_string()),
            Fact::Int(v) => s.serialize_i64(*v),
            Fact::Flag(v) => s.serialize_bool(*v),
            Fact::Name(v) => s.serialize_str(v),
            Fact::Text(v) => s.serialize_str(v),
            Fact::Id(v) => s.serialize_str(v),
            Fact::Missing => s.serialize_none(),
        }
    }
}

/// One gate's line of the trace. Its facts live in the trace that holds it
/// ([`Trace::facts_of`]): a decision's lines share one buffer of facts, so writing a line
/// neither allocates nor moves the line around (measured with callgrind on the decide
/// benchmark: lines owning their facts inline cost 13 % of `decide`'s instructions in copies).
#[derive(Clone, Debug, PartialEq)]
pub struct TraceLine {
    /// The gate's name (stable; the order of lines is the order of the gates).
    pub gate: &'static str,
    /// What the gate concluded.
    pub outcome: Outcome,
    /// Where the line's facts are in the trace's buffer.
    facts: std::ops::Range<u32>,
    /// A sentence for people, when the facts alone don't say it (static text costs nothing).
    pub note: Option<Cow<'static, str>>,
}

impl TraceLine {
    /// The block (or pending) reason of this line, if it decided one; a shadow line's reason
    /// is what it would have blocked with.
    pub fn reason(&self) -> Option<BlockReason> {
        match &self.outcome {
            Outcome::Block(r) | Outcome::Pending(r) | Outcome::Shadow(r) => Some(*r),
            _ => None,
        }
    }
}

/// Writes facts into the last line of a trace, in place: got from [`Trace::line`] (a new line)
/// or [`Trace::last`] (the line a gate is still writing). Each method adds to the trace at
/// once; the writer is only a way to chain them.
pub struct LineWriter<'t> {
    trace: &'t mut Trace,
}

impl LineWriter<'_> {
    #[inline(always)]
    fn fact(self, name: &'static str, value: Fact) -> Self {
        self.trace.facts.push((name, value));
        if let Some(line) = self.trace.lines.last_mut() {
            line.facts.end += 1;
        }
        self
    }

    /// Adds a numeric fact.
    #[inline(always)]
    pub fn num(self, name: &'static str, value: f64) -> Self {
        self.fact(name, Fact::Num(value))
    }

    /// Adds an integer fact.
    #[inline(always)]
    pub fn int(self, name: &'static str, value: i64) -> Self {
        self.fact(name, Fact::Int(value))
    }

    /// Adds a yes/no fact.
    #[inline(always)]
    pub fn flag(self, name: &'static str, value: bool) -> Self {
        self.fact(name, Fact::Flag(value))
    }

    /// Adds a fixed-name fact.
    #[inline(always)]
    pub fn name(self, name: &'static str, value: &'static str) -> Self {
        self.fact(name, Fact::Name(value))
    }

    /// Adds a text fact.
    #[inline(always)]
    pub fn text(self, name: &'static str, value: impl Into<String>) -> Self {
        self.fact(name, Fact::Text(value.into().into_boxed_str()))
    }

    /// Adds an identifier (a symbol, a plan id) by sharing its text, without a copy.
    #[inline(always)]
    pub fn id(self, name: &'static str, value: impl Into<Arc<str>>) -> Self {
        self.fact(name, Fact::Id(value.into()))
    }

    /// Adds an optional number: `Missing` when absent, so absence is visible, never a zero.
    #[inline(always)]
    pub fn opt_num(self, name: &'static str, value: Option<f64>) -> Self {
        self.fact(name, Fact::opt_num(value))
    }

    /// Adds an optional integer: `Missing` when absent.
    #[inline(always)]
    pub fn opt_int(self, name: &'static str, value: Option<i64>) -> Self {
        self.fact(name, value.map(Fact::Int).unwrap_or(Fact::Missing))
    }

    /// Adds facts gathered beforehand, in their order.
    pub fn facts(self, facts: impl IntoIterator<Item = (&'static str, Fact)>) -> Self {
        facts
            .into_iter()
            .fold(self, |w, (name, value)| w.fact(name, value))
    }

    /// Sets the line's note for people.
    #[inline(always)]
    pub fn note(self, note: impl Into<Cow<'static, str>>) -> Self {
        if let Some(line) = self.trace.lines.last_mut() {
            line.note = Some(note.into());
        }
        self
    }

    /// Sets the line's outcome (a gate that learns it after writing its inputs).
    #[inline(always)]
    pub fn outcome(self, outcome: Outcome) -> Self {
        if let Some(line) = self.trace.lines.last_mut() {
            line.outcome = outcome;
        }
        self
    }
}

/// A line with its facts, for writing out.
struct LineView<'a> {
    line: &'a TraceLine,
    facts: &'a [(&'static str, Fact)],
}

struct FactMap<'a>(&'a [(&'static str, Fact)]);

impl Serialize for FactMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for LineView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("TraceLine", 5)?;
        st.serialize_field("gate", self.line.gate)?;
        st.serialize_field("outcome", self.line.outcome.label())?;
        st.serialize_field("reason", &self.line.reason().map(|r| r.code()))?;
        st.serialize_field("inputs", &FactMap(self.facts))?;
        st.serialize_field("note", &self.line.note)?;
        st.end()
    }
}

/// The whole trace of one decision, gate by gate in evaluation order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// The lines, in gate order.
    lines: Vec<TraceLine>,
    /// Every line's facts, line after line.
    facts: Vec<(&'static str, Fact)>,
}

impl Trace {
    /// A trace with room for a whole open path (the schema, idempotency and execute lines,
    /// the common path and every open gate, with their facts): two allocations, no regrowth.
    pub fn for_decision() -> Self {
        Trace {
            lines: Vec::with_capacity(32),
            facts: Vec::with_capacity(160),
        }
    }

    /// Starts a line for `gate` with `outcome`; its facts follow through the writer.
    #[inline(always)]
    pub fn line(&mut self, gate: &'static str, outcome: Outcome) -> LineWriter<'_> {
        let at = self.facts.len() as u32;
        self.lines.push(TraceLine {
            gate,
            outcome,
            facts: at..at,
            note: None,
        });
        LineWriter { trace: self }
    }

    /// Goes on writing the last line (a gate adding what it learned after starting it).
    #[inline(always)]
    pub fn last(&mut self) -> LineWriter<'_> {
        debug_assert!(!self.lines.is_empty(), "no line to go on writing");
        LineWriter { trace: self }
    }

    /// The lines, in gate order.
    pub fn lines(&self) -> &[TraceLine] {
        &self.lines
    }

    /// The facts of `line`, one of this trace's lines, in the order the gate wrote them.
    pub fn facts_of(&self, line: &TraceLine) -> &[(&'static str, Fact)] {
        &self.facts[line.facts.start as usize..line.facts.end as usize]
    }

    /// The value of fact `name` in the line of `gate`, if the trace has both.
    pub fn fact(&self, gate: &str, name: &str) -> Option<&Fact> {
        let line = self.lines.iter().find(|l| l.gate == gate)?;
        self.facts_of(line)
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    fn views(&self) -> impl Iterator<Item = LineView<'_>> {
        self.lines.iter().map(|line| LineView {
            line,
            facts: self.facts_of(line),
        })
    }

    /// The trace as a JSON array (one object per gate); deterministic for equal traces.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(64 * self.lines.len());
        self.write_json(&mut out);
        String::from_utf8(out).expect("JSON of strings is UTF-8")
    }

    /// Appends the trace as a JSON array — byte for byte what its `Serialize` writes — without
    /// going through a serializer for the names (the gates', the facts', the outcomes'), which
    /// are the code's own and need no escaping: a journal of thousands of traces spends most of
    /// its time here.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, LineView { line, facts }) in self.views().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"gate\":");
            push_name(out, line.gate);
            out.extend_from_slice(b",\"outcome\":");
            push_name(out, line.outcome.label());
            out.extend_from_slice(b",\"reason\":");
            match line.reason() {
                Some(r) => push_name(out, r.code()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"inputs\":{");
            for (j, (name, fact)) in facts.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                push_name(out, name);
                out.push(b':');
                push_fact(out, fact);
            }
            out.extend_from_slice(b"},\"note\":");
            match &line.note {
                Some(note) => push_str(out, note),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        }
        out.push(b']');
    }
}

impl Serialize for Trace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.views())
    }
}

/// Appends `s` as a JSON string: between quotes as it is when nothing in it needs escaping
/// (the code's names never do), else escaped as serde_json escapes it.
fn push_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("a string serializes");
    }
}

/// Appends one of the code's own names (a gate, a fact, an outcome, a reason code, a fixed
/// value) as a JSON string. They are literals of this crate, none with a quote, a backslash or
/// a control character, so they are written without the per-byte check [`push_str`] makes for
/// text from outside; every debug build (the tests) checks that this stays true.
fn push_name(out: &mut Vec<u8>, name: &'static str) {
    debug_assert!(
        name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
        "a name of the code that needs escaping: {name:?}"
    );
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// Appends a fact's value as its `Serialize` writes it.
fn push_fact(out: &mut Vec<u8>, fact: &Fact) {
    match fact {
        Fact::Num(v) if v.is_finite() => {
            serde_json::to_writer(&mut *out, v).expect("a finite number serializes")
        }
        Fact::Num(v) => push_str(out, &v.to_string()),
        Fact::Int(v) => serde_json::to_writer(&mut *out, v).expect("an integer serializes"),
        Fact::Flag(true) => out.extend_from_slice(b"true"),
        Fact::Flag(false) => out.extend_from_slice(b"false"),
        Fact::Name(v) => push_name(out, v),
        Fact::Text(v) => push_str(out, v),
        Fact::Id(v) => push_str(out, v),
        Fact::Missing => out.extend_from_slice(b"null"),
    }
}

/// A decision record's trace: the gate lines as decided, or their JSON as a store read it
/// back. The lines are rendered to JSON only when the record is written out (to Redis, a
/// journal, the API), so a decision nobody writes out — a replay's comparison run — never pays
/// for the rendering, and one that is written out is rendered once.
#[derive(Clone, Debug)]
pub enum RecordTrace {
    /// The lines, shared with the decision that wrote them.
    Lines(Arc<Trace>),
    /// The JSON text, as stored.
    Json(String),
}

impl RecordTrace {
    /// The trace as a JSON array (one object per gate).
    pub fn json(&self) -> Cow<'_, str> {
        match self {
            RecordTrace::Lines(lines) => Cow::Owned(lines.to_json()),
            RecordTrace::Json(text) => Cow::Borrowed(text),
        }
    }

    /// Writes the JSON array to `out` without an intermediate string.
    pub fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match self {
            RecordTrace::Lines(lines) => {
                let mut json = Vec::with_capacity(64 * lines.lines.len());
                lines.write_json(&mut json);
                out.write_all(&json)
            }
            RecordTrace::Json(text) => out.write_all(text.as_bytes()),
        }
    }

    /// The gate lines, when the record holds them (not when it was read back as text).
    pub fn lines(&self) -> Option<&Trace> {
        match self {
            RecordTrace::Lines(lines) => Some(lines),
            RecordTrace::Json(_) => None,
        }
    }
}

impl Default for RecordTrace {
    fn default() -> Self {
        RecordTrace::Json(String::new())
    }
}

impl From<String> for RecordTrace {
    fn from(text: String) -> Self {
        RecordTrace::Json(text)
    }
}

/// Two traces are equal when their JSON is: a trace read back equals the one written.
impl PartialEq for RecordTrace {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Serialize for RecordTrace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.json())
    }
}

/// Reads the trace as a JSON string (as every record is written by `Serialize`), or as the JSON
/// array itself (as the Redis store keeps it, so that the array travels and is stored once);
/// either way the array's text is kept as it was written. JSON input only: the array's text is
/// taken from serde_json's raw value.
impl<'de> serde::Deserialize<'de> for RecordTrace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get();
        if text.starts_with('"') {
            serde_json::from_str::<String>(text)
                .map(RecordTrace::Json)
                .map_err(serde::de::Error::custom)
        } else if text.starts_with('[') {
            Ok(RecordTrace::Json(text.to_owned()))
        } else {
            Err(serde::de::Error::custom(format!(
                "a trace is a JSON array or a string holding one, not {text}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn every_kind() -> Trace {
        let mut t = Trace::default();
        t.line("schema", Outcome::Pass).name("action", "OPEN_LONG");
        t.line("correlation", Outcome::Block(BlockReason::CorrelationCap))
            .num("rho", 0.812_345_678_9)
            .num("tiny", 1e-300)
            .num("nan", f64::NAN)
            .num("inf", f64::NEG_INFINITY)
            .int("window", -100)
            .flag("aligned", true)
            .flag("stale", false)
            .opt_num("missing", None)
            .text("symbol", "BTC\"USDT\\\n\t\u{1}é€")
            .id("id", "plan\"1")
            .note("a \"quoted\" note\r\n");
        t.line(
            "rotation",
            Outcome::Pending(BlockReason::ActiveSlotsWaitingRotationClose),
        );
        t.line("drawdown", Outcome::Shadow(BlockReason::DrawdownHalt))
            .note("static");
        t.line("heat", Outcome::Warn);
        t.line("sizing", Outcome::Adjust);
        t.line("close", Outcome::NotApplicable);
        t
    }

    /// Each line keeps its own facts, in order, also when a gate goes on writing its line
    /// after starting it.
    #[test]
    fn lines_keep_their_own_facts() {
        let mut t = Trace::default();
        t.line("a", Outcome::Pass).int("x", 1);
        t.line("b", Outcome::Pass);
        t.line("c", Outcome::Pass).int("y", 2).int("z", 3);
        t.last().outcome(Outcome::Warn).int("w", 4).note("later");
        let facts: Vec<Vec<&str>> = t
            .lines()
            .iter()
            .map(|l| t.facts_of(l).iter().map(|(k, _)| *k).collect())
            .collect();
        assert_eq!(facts, [vec!["x"], vec![], vec!["y", "z", "w"]]);
        assert_eq!(t.lines()[2].outcome, Outcome::Warn);
        assert_eq!(t.fact("c", "w"), Some(&Fact::Int(4)));
        assert_eq!(t.fact("b", "x"), None);
    }

    #[test]
    fn the_hand_written_json_is_what_serde_writes() {
        for t in [Trace::default(), every_kind()] {
            assert_eq!(t.to_json(), serde_json::to_string(&t).unwrap());
        }
    }

    /// A record's trace reads back from either form a store keeps, with the array's text as
    /// written; anything else is refused, naming what it found.
    #[test]
    fn a_trace_reads_from_a_string_or_the_array_itself() {
        #[derive(serde::Deserialize)]
        struct Holder {
            trace: RecordTrace,
        }
        let array = every_kind().to_json();
        let as_string = format!("{{\"trace\":{}}}", serde_json::to_string(&array).unwrap());
        let as_array = format!("{{\"trace\":{array}}}");
        for text in [as_string, as_array] {
            let read: Holder = serde_json::from_str(&text).unwrap();
            assert_eq!(read.trace.json(), array);
        }
        let bad = serde_json::from_str::<Holder>("{\"trace\":{\"gate\":1}}")
            .err()
            .unwrap();
        assert!(bad.to_string().contains("not {\"gate\":1}"), "{bad}");
    }

    proptest! {
        #[test]
        fn any_text_and_number_are_written_as_serde_writes_them(
            text in any::<String>(),
            note in any::<String>(),
            x in any::<f64>(),
            n in any::<i64>(),
        ) {
            let mut t = Trace::default();
            t.line("g", Outcome::Pass).text("t", text).num("x", x).int("n", n).note(note);
            prop_assert_eq!(t.to_json(), serde_json::to_string(&t).unwrap());
        }
    }
}
