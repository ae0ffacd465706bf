//! The rooms of both crates form no circle: following `crate::…` and `super::…` paths from file
//! to file never comes back to where it started (test modules excluded). A circle is where a
//! newcomer trips: the arrows between files must only point down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file's module path (`service/mod.rs` → `[service]`, `lib.rs` → `[]`).
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths a file refers to: `crate::a::b::c`, `super::a`, and the items of
/// `use crate::a::{b, c}` groups.
fn references(text: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for base in ["crate::", "super::"] {
        for (at, _) in text.match_indices(base) {
            if at > 0 && text[..at].chars().last().is_some_and(ident_char) {
                continue; // `governor_core::…`, `quantum_governor::…`
            }
            let rest = &text[at + base.len()..];
            let mut segs: Vec<String> = Vec::new();
            let mut tail = rest;
            loop {
                let name: String = tail.chars().take_while(|c| ident_char(*c)).collect();
                if name.is_empty() {
                    break;
                }
                tail = &tail[name.len()..];
                segs.push(name);
                match tail.strip_prefix("::") {
                    Some(t) => tail = t,
                    None => break,
                }
            }
            let prefix: Vec<String> = if base == "crate::" {
                segs
            } else {
                me[..me.len().saturating_sub(1)]
                    .iter()
                    .cloned()
                    .chain(segs)
                    .collect()
            };
            if let Some(group) = tail.strip_prefix('{') {
                let inner: String = group.chars().take_while(|c| *c != '}').collect();
                for item in inner.split(',') {
                    let first: String =
                        item.trim().chars().take_while(|c| ident_char(*c)).collect();
                    if !first.is_empty() && first != "self" {
                        out.push(prefix.iter().cloned().chain([first]).collect());
                    }
                }
            }
            out.push(prefix);
        }
    }
    out
}

fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (module_of(&rel), rel)
        })
        .collect();
    let resolve = |path: &[String]| {
        (1..=path.len())
            .rev()
            .find_map(|n| modules.get(&path[..n]).cloned())
    };
    let mut edges = BTreeMap::new();
    for (module, rel) in &modules {
        let text = std::fs::read_to_string(src.join(rel)).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let targets: BTreeSet<String> = references(text, module)
            .iter()
            .filter_map(|p| resolve(p))
            .filter(|t| t != rel)
            .collect();
        edges.insert(rel.clone(), targets);
    }
    edges
}

/// A circle of files, if there is one.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        v: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == v) {
            return Some(path[at..].to_vec());
        }
        if done.contains(v) {
            return None;
        }
        path.push(v.to_owned());
        for w in &edges[v] {
            if let Some(c) = visit(w, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(v.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|v| visit(v, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_circle_between_the_files_of_either_crate() {
    for krate in ["core", "governor"] {
        let src = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .join(krate)
            .join("src");
        let edges = graph(&src);
        assert!(edges.len() > 20, "{krate}: only {} files read", edges.len());
        assert!(
            edges.values().map(BTreeSet::len).sum::<usize>() > 50,
            "{krate}: too few arrows found: the scan is broken"
        );
        if let Some(c) = circle(&edges) {
            panic!("{krate}: the files {} form a circle", c.join(" → "));
        }
    }
}

#[test]
fn the_scan_finds_a_circle_when_there_is_one() {
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a.rs", vec!["b.rs"]),
        ("b.rs", vec!["c.rs"]),
        ("c.rs", vec!["a.rs"]),
        ("d.rs", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circle(&edges).map(|c| c.len()), Some(3));
    let refs = references(
        "use crate::store::{memory, redis::RedisStore};\nsuper::x::Y",
        &["service".into(), "workers".into()],
    );
    assert!(
        refs.contains(&vec!["store".to_owned(), "memory".to_owned()]),
        "{refs:?}"
    );
    assert!(
        refs.contains(&vec!["service".to_owned(), "x".to_owned(), "Y".to_owned()]),
        "{refs:?}"
    );
}
