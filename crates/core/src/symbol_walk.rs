//! Finding several symbols in a symbol-keyed map by walking it once.
//!
//! The decision looks the same few symbols up in several sorted maps (the market summaries,
//! a correlation row). When the symbols come in ascending order — positions do, since the
//! book is a sorted map — stepping through the map alongside them costs one comparison per
//! step instead of a tree search per symbol.

use crate::types::Symbol;
use std::cmp::Ordering;
use std::collections::{btree_map, BTreeMap};
use std::iter::Peekable;

/// A cursor over a symbol-keyed map that answers lookups asked in ascending order.
pub struct SymbolWalk<'m, V> {
    ahead: Peekable<btree_map::Iter<'m, Symbol, V>>,
}

impl<'m, V> SymbolWalk<'m, V> {
    /// A walk from the map's first entry.
    pub fn new(map: &'m BTreeMap<Symbol, V>) -> Self {
        SymbolWalk {
            ahead: map.iter().peekable(),
        }
    }

    /// `symbol`'s value. Symbols must be asked in ascending order (repeats allowed): a symbol
    /// asked after a larger one is reported missing, never mistaken for another.
    pub fn find(&mut self, symbol: &Symbol) -> Option<&'m V> {
        while let Some((key, value)) = self.ahead.peek() {
            match (*key).cmp(symbol) {
                Ordering::Less => {
                    self.ahead.next();
                }
                Ordering::Equal => return Some(*value),
                Ordering::Greater => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    #[test]
    fn ascending_lookups_find_what_a_search_finds() {
        let map: BTreeMap<Symbol, u32> = [("BUSDT", 2), ("DUSDT", 4), ("FUSDT", 6)]
            .into_iter()
            .map(|(s, v)| (sym(s), v))
            .collect();
        let mut walk = SymbolWalk::new(&map);
        assert_eq!(walk.find(&sym("AUSDT")), None);
        assert_eq!(walk.find(&sym("BUSDT")), Some(&2));
        assert_eq!(
            walk.find(&sym("BUSDT")),
            Some(&2),
            "a repeat is found again"
        );
        assert_eq!(walk.find(&sym("CUSDT")), None);
        assert_eq!(walk.find(&sym("FUSDT")), Some(&6));
        assert_eq!(walk.find(&sym("GUSDT")), None);
    }

    #[test]
    fn a_symbol_asked_out_of_order_is_missing_not_another() {
        let map: BTreeMap<Symbol, u32> = [("BUSDT", 2), ("DUSDT", 4)]
            .into_iter()
            .map(|(s, v)| (sym(s), v))
            .collect();
        let mut walk = SymbolWalk::new(&map);
        assert_eq!(walk.find(&sym("DUSDT")), Some(&4));
        assert_eq!(walk.find(&sym("BUSDT")), None);
    }
}
