//! Longest-prefix-match tables: one hash map per prefix length, probed from the longest populated length down.
//!
//! Why not a trie: VNI tables hold at most 1024 rules and in practice very few distinct lengths (/32 or /128
//! interface addresses, a handful of alias prefixes, the /0 default), so a lookup is two or three hash probes with
//! no pointer chasing, and updates are O(1).

use std::collections::HashMap;
use std::hash::Hash;

/// An address type usable as an LPM key: an unsigned integer of `BITS` bits.
pub trait LpmKey: Copy + Eq + Hash + std::fmt::Debug {
    /// Number of bits (32 or 128).
    const BITS: u8;
    /// `self` with all bits after the first `len` cleared. `len` must be ≤ `BITS`.
    fn masked(self, len: u8) -> Self;
}

impl LpmKey for u32 {
    const BITS: u8 = 32;
    #[inline]
    fn masked(self, len: u8) -> Self {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (32 - u32::from(len)))
        }
    }
}

impl LpmKey for u128 {
    const BITS: u8 = 128;
    #[inline]
    fn masked(self, len: u8) -> Self {
        if len == 0 {
            0
        } else {
            self & (u128::MAX << (128 - u32::from(len)))
        }
    }
}

/// A longest-prefix-match table from (masked prefix, length) to `V`.
#[derive(Debug, Clone)]
pub struct Lpm<K: LpmKey, V> {
    by_len: Vec<HashMap<K, V, foldhash::fast::RandomState>>,
    /// Populated lengths, longest first.
    lens: Vec<u8>,
    len: usize,
}

impl<K: LpmKey, V> Default for Lpm<K, V> {
    fn default() -> Self {
        Lpm {
            by_len: (0..=K::BITS).map(|_| HashMap::default()).collect(),
            lens: Vec::new(),
            len: 0,
        }
    }
}

impl<K: LpmKey, V> Lpm<K, V> {
    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no rules.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts the rule (`prefix` masked to `plen`); returns `false` and leaves the table unchanged if a rule with
    /// the same masked prefix and length exists. `plen` must be ≤ `K::BITS` (callers pass `ipnet` lengths).
    pub fn insert(&mut self, prefix: K, plen: u8, value: V) -> bool {
        let map = &mut self.by_len[usize::from(plen)];
        let key = prefix.masked(plen);
        if map.contains_key(&key) {
            return false;
        }
        map.insert(key, value);
        self.len += 1;
        if !self.lens.contains(&plen) {
            self.lens.push(plen);
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        true
    }

    /// Removes the exact rule, returning its value.
    pub fn remove(&mut self, prefix: K, plen: u8) -> Option<V> {
        let map = self.by_len.get_mut(usize::from(plen))?;
        let v = map.remove(&prefix.masked(plen))?;
        self.len -= 1;
        if map.is_empty() {
            self.lens.retain(|l| *l != plen);
        }
        Some(v)
    }

    /// The exact rule's value.
    pub fn get_exact(&self, prefix: K, plen: u8) -> Option<&V> {
        self.by_len.get(usize::from(plen))?.get(&prefix.masked(plen))
    }

    /// Longest-prefix match: the value and the matched length.
    #[inline]
    pub fn lookup(&self, addr: K) -> Option<(&V, u8)> {
        for &l in &self.lens {
            if let Some(v) = self.by_len[usize::from(l)].get(&addr.masked(l)) {
                return Some((v, l));
            }
        }
        None
    }

    /// All rules as (masked prefix, length, value), longest lengths first.
    pub fn iter(&self) -> impl Iterator<Item = (K, u8, &V)> + '_ {
        self.lens
            .iter()
            .flat_map(move |&l| self.by_len[usize::from(l)].iter().map(move |(k, v)| (*k, l, v)))
    }

    /// Keeps only the rules for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(K, u8, &V) -> bool) {
        for l in 0..=K::BITS {
            let map = &mut self.by_len[usize::from(l)];
            let before = map.len();
            map.retain(|k, v| keep(*k, l, v));
            self.len -= before - map.len();
        }
        let by_len = &self.by_len;
        self.lens.retain(|l| !by_len[usize::from(*l)].is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn longest_match_wins_and_prefixes_are_masked() {
        let mut t: Lpm<u32, &str> = Lpm::default();
        assert!(t.insert(0, 0, "default"));
        assert!(t.insert(0x0a00_0000, 8, "ten"));
        assert!(t.insert(0x0a01_02ff, 24, "ten-one-two"));
        assert!(!t.insert(0x0a01_0204, 24, "dup"));
        assert_eq!(t.lookup(0x0a01_0203), Some((&"ten-one-two", 24)));
        assert_eq!(t.lookup(0x0a02_0203), Some((&"ten", 8)));
        assert_eq!(t.lookup(0x0b00_0001), Some((&"default", 0)));
        assert_eq!(t.remove(0x0a01_0200, 24), Some("ten-one-two"));
        assert_eq!(t.lookup(0x0a01_0203), Some((&"ten", 8)));
        assert_eq!(t.len(), 2);
    }

    proptest! {
        #[test]
        fn lookup_matches_a_linear_scan(rules in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..40),
                                        probes in proptest::collection::vec(any::<u32>(), 1..40)) {
            let mut t: Lpm<u32, usize> = Lpm::default();
            let mut linear: Vec<(u32, u8, usize)> = Vec::new();
            for (i, (p, l)) in rules.iter().enumerate() {
                let m = p.masked(*l);
                if t.insert(*p, *l, i) {
                    linear.push((m, *l, i));
                }
            }
            for a in probes {
                let expect = linear.iter().filter(|(p, l, _)| a.masked(*l) == *p).max_by_key(|(_, l, _)| *l)
                    .map(|(_, l, i)| (*i, *l));
                prop_assert_eq!(t.lookup(a).map(|(v, l)| (*v, l)), expect);
            }
        }
    }
}
