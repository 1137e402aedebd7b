//! A hierarchical bitmap over `0..len` with O(log₆₄ len) insert, remove and next-free search.

/// Bits per word.
const W: u64 = 64;

/// A set of integers in `0..len` ("taken"), with a fast search for the next integer *not* in it.
///
/// Level 0 has one bit per id; each higher level has one bit per word of the level below, set
/// when that word is full. A search for a free id skips full regions 64ⁿ ids at a time, so the
/// cost does not grow as the set fills.
#[derive(Clone, Debug)]
pub struct IdBitmap {
    len: u64,
    count: u64,
    /// `levels[0]` is the per-id level; the last level has a single word.
    levels: Vec<Vec<u64>>,
}

impl IdBitmap {
    /// An empty set over `0..len`.
    pub fn new(len: u64) -> Self {
        let mut levels = Vec::new();
        let mut n = len.max(1);
        loop {
            let words = n.div_ceil(W);
            levels.push(vec![0u64; words as usize]);
            if words == 1 {
                break;
            }
            n = words;
        }
        let mut bitmap = IdBitmap {
            len,
            count: 0,
            levels,
        };
        bitmap.mark_padding();
        bitmap
    }

    /// Marks the bits past `len` in every level as full, so that searches never return them.
    fn mark_padding(&mut self) {
        let mut n = self.len;
        for level in 0..self.levels.len() {
            let words = self.levels[level].len() as u64;
            for bit in n..words * W {
                self.levels[level][(bit / W) as usize] |= 1 << (bit % W);
            }
            // Propagate full words upwards.
            for word in 0..words {
                if self.levels[level][word as usize] == u64::MAX && level + 1 < self.levels.len() {
                    self.levels[level + 1][(word / W) as usize] |= 1 << (word % W);
                }
            }
            n = words;
        }
    }

    /// The size of the universe `0..len`.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the universe is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many ids are taken.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether every id is taken.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// Whether `id` is taken. Ids outside the universe are reported as taken.
    pub fn contains(&self, id: u64) -> bool {
        id >= self.len || self.levels[0][(id / W) as usize] & (1 << (id % W)) != 0
    }

    /// Marks `id` taken; returns whether it was free. Ids outside the universe are ignored.
    pub fn insert(&mut self, id: u64) -> bool {
        if self.contains(id) {
            return false;
        }
        self.count += 1;
        let mut index = id;
        for level in 0..self.levels.len() {
            let word = &mut self.levels[level][(index / W) as usize];
            *word |= 1 << (index % W);
            if *word != u64::MAX {
                break;
            }
            index /= W;
        }
        true
    }

    /// Marks `id` free; returns whether it was taken.
    pub fn remove(&mut self, id: u64) -> bool {
        if id >= self.len || !self.contains(id) {
            return false;
        }
        self.count -= 1;
        let mut index = id;
        for level in 0..self.levels.len() {
            let word = &mut self.levels[level][(index / W) as usize];
            let was_full = *word == u64::MAX;
            *word &= !(1 << (index % W));
            if !was_full {
                break;
            }
            index /= W;
        }
        true
    }

    /// The smallest free id ≥ `from`, if any.
    fn next_free_at_or_after(&self, from: u64) -> Option<u64> {
        if from >= self.len {
            return None;
        }
        // Climb: at each level, look for a non-full bit at or after the current position in the
        // current word; if none, move to the next word by going up one level.
        let mut level = 0;
        let mut pos = from;
        loop {
            let words = &self.levels[level];
            let word_index = (pos / W) as usize;
            if word_index >= words.len() {
                return None;
            }
            let masked = !words[word_index] & (u64::MAX << (pos % W));
            if masked != 0 {
                pos = word_index as u64 * W + u64::from(masked.trailing_zeros());
                break;
            }
            // This word has nothing free after pos: continue from the next word, one level up.
            let next_word = word_index as u64 + 1;
            if level + 1 == self.levels.len() {
                return None;
            }
            level += 1;
            pos = next_word;
        }
        // Descend: the bit found at `level` names a non-full word of the level below.
        while level > 0 {
            level -= 1;
            let word = self.levels[level][pos as usize];
            pos = pos * W + u64::from((!word).trailing_zeros());
        }
        (pos < self.len).then_some(pos)
    }

    /// The first free id at or after `start`, wrapping around to 0; `None` when full.
    pub fn next_free(&self, start: u64) -> Option<u64> {
        if self.is_full() {
            return None;
        }
        let start = if start >= self.len { 0 } else { start };
        self.next_free_at_or_after(start)
            .or_else(|| self.next_free_at_or_after(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fills_every_id_once_then_reports_full() {
        for len in [1u64, 2, 63, 64, 65, 4095, 4096, 4097, 262_145] {
            let mut b = IdBitmap::new(len);
            for expected in 0..len {
                let id = b.next_free(0).unwrap();
                assert_eq!(id, expected, "len {len}");
                assert!(b.insert(id));
            }
            assert!(b.is_full());
            assert_eq!(b.next_free(0), None);
            assert!(b.remove(len / 2));
            assert_eq!(b.next_free(0), Some(len / 2));
            assert_eq!(b.next_free(len - 1), Some(len / 2), "wraps around");
        }
    }

    #[test]
    fn out_of_range_ids_are_never_free() {
        let mut b = IdBitmap::new(10);
        assert!(b.contains(10));
        assert!(!b.insert(10));
        assert!(!b.remove(10));
        assert_eq!(b.next_free(10), Some(0));
        let empty = IdBitmap::new(0);
        assert!(empty.is_full());
        assert_eq!(empty.next_free(0), None);
    }

    proptest! {
        #[test]
        fn next_free_matches_a_linear_scan(
            len in 1u64..5000,
            ops in proptest::collection::vec((any::<bool>(), 0u64..5000), 0..400),
            start in 0u64..5000,
        ) {
            let mut b = IdBitmap::new(len);
            let mut model = std::collections::BTreeSet::new();
            for (insert, id) in ops {
                let id = id % len;
                if insert {
                    prop_assert_eq!(b.insert(id), model.insert(id));
                } else {
                    prop_assert_eq!(b.remove(id), model.remove(&id));
                }
            }
            prop_assert_eq!(b.count(), model.len() as u64);
            let s = if start >= len { 0 } else { start };
            let expected = (s..len).chain(0..s).find(|i| !model.contains(i));
            prop_assert_eq!(b.next_free(start), expected);
        }
    }
}
