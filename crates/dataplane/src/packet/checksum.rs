//! Internet checksum (RFC 1071) and incremental updates (RFC 1624) for NAT rewrites.

/// One's-complement sum of `data` (as big-endian 16-bit words, odd trailing byte padded with zero) added to
/// `initial`, not yet complemented; [`finish`] turns it into the checksum field value.
///
/// Computed four bytes at a time in native byte order: the one's-complement sum is byte-order independent
/// (RFC 1071 section 2(B)), so adding native-endian 32-bit words, folding to 16 bits and reading that result's bytes
/// as big-endian gives the big-endian word sum. Byte positions keep their parity (the odd trailing byte stays the
/// high byte of its word), so odd lengths need no special case beyond zero padding.
#[inline]
// Truncation impossible: both casts follow folds that bring the value into the target width (see there).
#[allow(clippy::cast_possible_truncation)]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        // 2^32 additions of values below 2^32 fit in a u64; a frame is far smaller than 16 GiB.
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        acc += u64::from(u32::from_ne_bytes(last));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // `acc` fits 16 bits after the loop: the cast keeps every bit.
    let words = u16::from_be_bytes((acc as u16).to_ne_bytes());
    let s = u64::from(initial) + u64::from(words);
    // One fold keeps the sum's value modulo 0xffff and brings it into 32 bits (at most 0x1_0000_fffe before).
    ((s & 0xffff_ffff) + (s >> 32)) as u32
}

/// Folds a 32-bit sum to 16 bits and complements it: the checksum field value.
#[inline]
// Truncation impossible: the two folds leave at most 0xffff.
#[allow(clippy::cast_possible_truncation)]
pub fn finish(s: u32) -> u16 {
    // Two folds bring any 32-bit sum to 16 bits (the first leaves at most 0x1fffe, the second at most 0xffff);
    // a fold of a value that already fits is the identity, so this equals folding until it fits, without a loop.
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// The checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// Sum of the IPv4 pseudo header for an upper-layer packet of `len` bytes.
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    sum(&src, 0) + sum(&dst, 0) + u32::from(proto) + u32::from(len)
}

/// Sum of the IPv6 pseudo header for an upper-layer packet of `len` bytes.
// Truncation impossible: the sum of five values below 2^32 is below 2^35, and one fold brings it into 32 bits.
#[allow(clippy::cast_possible_truncation)]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, len: u32) -> u32 {
    let s = sum(&src, 0) as u64
        + sum(&dst, 0) as u64
        + u64::from(next_header)
        + u64::from(len >> 16)
        + u64::from(len & 0xffff);
    ((s & 0xffff_ffff) + (s >> 32)) as u32
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit word of the covered data changed from `old` to `new`.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!check) + u32::from(!old) + u32::from(new);
    finish(s)
}

/// The new checksum after a 32-bit value (e.g. an IPv4 address) of the covered data changed.
#[inline]
pub fn update32(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let c = update16(
        check,
        u16::from_be_bytes([old[0], old[1]]),
        u16::from_be_bytes([new[0], new[1]]),
    );
    update16(
        c,
        u16::from_be_bytes([old[2], old[3]]),
        u16::from_be_bytes([new[2], new[3]]),
    )
}

#[cfg(test)]
// Tests build frames from small literal lengths; the truncation lint guards the code under test.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(
            finish(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            !0xddf2
        );
    }

    /// The plain definition: big-endian 16-bit words summed one at a time.
    fn reference_sum(data: &[u8]) -> u32 {
        let mut acc = 0u64;
        for w in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u32
    }

    #[test]
    fn odd_length_pads_the_last_byte_as_a_high_byte() {
        // 0x0102 + 0x0300 = 0x0402.
        assert_eq!(finish(sum(&[1, 2, 3], 0)), !0x0402);
        assert_eq!(finish(sum(&[], 0)), 0xffff);
    }

    proptest! {
        #[test]
        fn fast_sum_equals_the_word_by_word_definition(data in proptest::collection::vec(any::<u8>(), 0..3000),
                                                         initial in 0u32..0x0010_0000) {
            prop_assert_eq!(finish(sum(&data, initial)), finish(reference_sum(&data) + initial));
        }

        #[test]
        fn incremental_update_equals_recomputation(mut data in proptest::collection::vec(any::<u8>(), 8..64),
                                                   at in 0usize..3, new in any::<[u8; 4]>()) {
            let off = at * 2;
            let before = checksum(&data);
            let old = [data[off], data[off + 1], data[off + 2], data[off + 3]];
            data[off..off + 4].copy_from_slice(&new);
            let after = checksum(&data);
            let inc = update32(before, old, new);
            // 0x0000 and 0xffff are the same value in one's complement.
            prop_assert!(inc == after || (inc == 0xffff && after == 0) || (inc == 0 && after == 0xffff));
        }

        #[test]
        fn finish_equals_folding_until_it_fits(s in any::<u32>()) {
            let mut r = s;
            while r > 0xffff {
                r = (r & 0xffff) + (r >> 16);
            }
            prop_assert_eq!(finish(s), !(r as u16));
        }
    }
}
