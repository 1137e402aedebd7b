//! The flow table's hash index: an open-addressing table of 8-byte entries (32 bits of the key's hash + the 32-bit
//! value `slot << 1 | direction`), linear probing, backward-shift deletion.
//!
//! Why not a `HashMap<FlowKey, u32>`: that stores the 44-byte key a second time (48-byte buckets), so at a million
//! flows (two million keys) the index alone was ~200 MiB and every first packet wrote into a fresh 48-byte bucket
//! of it. Here the key lives only in the flow slab; the index is 8 bytes per bucket (32 MiB at a million flows), a
//! probe reads one cache line, and a lookup confirms a tag match by comparing the key in the slab, which the
//! caller reads next anyway. The hash is keyed per table (see `FlowTable`), so crafted flow keys cannot aim at one
//! probe sequence.

/// An unused bucket. Values are `< u32::MAX` (slots are `< 2^31 - 1`), so no entry equals it.
const EMPTY: u64 = u64::MAX;
/// Smallest table: 2^MIN_BITS buckets.
const MIN_BITS: u32 = 4;

/// Maps 64-bit hashes to `u32` values; the caller resolves tag collisions with its `eq` callback.
#[derive(Debug, Clone)]
pub(crate) struct FlowIndex {
    /// `tag << 32 | value`, or [`EMPTY`]. The tag is the hash's upper 32 bits; its top `bits` bits are the home
    /// bucket, so growing can rehash from the entries alone.
    buckets: Vec<u64>,
    bits: u32,
    len: usize,
}

impl Default for FlowIndex {
    fn default() -> Self {
        Self::with_bits(MIN_BITS)
    }
}

impl FlowIndex {
    fn with_bits(bits: u32) -> Self {
        FlowIndex {
            buckets: vec![EMPTY; 1 << bits],
            bits,
            len: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        (tag >> (32 - self.bits)) as usize
    }

    /// Largest number of entries before the table grows (load factor 3/4 keeps linear probes short).
    #[inline]
    fn limit(&self) -> usize {
        self.buckets.len() / 4 * 3
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the bucket array.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * 8
    }

    /// The value stored under `hash` for which `eq` is true.
    #[inline]
    // Truncation intended: an entry is `tag << 32 | value`, and a tag is the high half of the hash; the casts take
    // the halves apart.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = (hash >> 32) as u32;
        let mask = self.mask();
        let mut i = self.home(tag);
        loop {
            let e = self.buckets[i];
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == tag && eq(e as u32) {
                return Some(e as u32);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `value` under `hash`. The caller has checked that no equal key is present.
    pub(crate) fn insert(&mut self, hash: u64, value: u32) {
        debug_assert!(value != u32::MAX);
        if self.len >= self.limit() {
            self.grow_to(self.bits + 1);
        }
        self.place(hash >> 32 << 32 | u64::from(value));
        self.len += 1;
    }

    fn place(&mut self, entry: u64) {
        let mask = self.mask();
        let mut i = self.home((entry >> 32) as u32);
        while self.buckets[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.buckets[i] = entry;
    }

    fn grow_to(&mut self, bits: u32) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; 1 << bits]);
        self.bits = bits;
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            self.place(e);
        }
    }

    /// Makes room for `additional` more entries without growing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let need = self.len + additional;
        let mut bits = self.bits;
        while (1usize << bits) / 4 * 3 < need && bits < 32 {
            bits += 1;
        }
        if bits > self.bits {
            self.grow_to(bits);
        }
    }

    /// Removes the entry with exactly this hash and value; returns whether it was present.
    pub(crate) fn remove(&mut self, hash: u64, value: u32) -> bool {
        let target = hash >> 32 << 32 | u64::from(value);
        let mask = self.mask();
        let mut i = self.home((hash >> 32) as u32);
        loop {
            let e = self.buckets[i];
            if e == EMPTY {
                return false;
            }
            if e == target {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward-shift deletion: move later entries of the probe run into the hole when their home bucket is
        // not after the hole, so that every entry stays reachable from its home without tombstones.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let e = self.buckets[j];
            if e == EMPTY {
                break;
            }
            let home = self.home((e >> 32) as u32);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.buckets[hole] = e;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.buckets[hole] = EMPTY;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Inserts and removals with deliberately colliding hashes (few distinct home buckets and tags) agree with
        /// a `HashMap` model, including after growth and backward-shift deletions that wrap around the end.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..64, 0u64..8), 1..400)) {
            let mut idx = FlowIndex::default();
            let mut model: HashMap<u32, u64> = HashMap::new();
            // Value v's hash: a few tags spread over the whole 32-bit tag space (so homes include the last bucket).
            let hash_of = |v: u32, salt: u64| (salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 0xffff_0000_0000) ^ u64::from(v % 5) << 61;
            for (add, v, salt) in ops {
                if add {
                    if let std::collections::hash_map::Entry::Vacant(e) = model.entry(v) {
                        let h = hash_of(v, salt);
                        e.insert(h);
                        idx.insert(h, v);
                    }
                } else if let Some(h) = model.remove(&v) {
                    prop_assert!(idx.remove(h, v));
                    prop_assert!(!idx.remove(h, v));
                }
                prop_assert_eq!(idx.len(), model.len());
                for (&v, &h) in &model {
                    prop_assert_eq!(idx.find(h, |x| x == v), Some(v));
                }
            }
        }
    }

    #[test]
    fn reserve_prevents_growth() {
        let mut idx = FlowIndex::default();
        idx.reserve(1000);
        let buckets = idx.buckets.len();
        for v in 0..1000u32 {
            idx.insert(u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15), v);
        }
        assert_eq!(idx.buckets.len(), buckets);
        assert_eq!(
            idx.find(7u64.wrapping_mul(0x9e37_79b9_7f4a_7c15), |x| x == 7),
            Some(7)
        );
        assert_eq!(
            idx.find(5000u64.wrapping_mul(0x9e37_79b9_7f4a_7c15), |_| true),
            None
        );
    }
}
