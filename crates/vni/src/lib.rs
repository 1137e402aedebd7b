//! The VNI (virtual network identifier) as a type that can only hold a valid value.
//!
//! VXLAN and Geneve carry a 24-bit network identifier; ironcore-net allocates network IDs in `1..=16777215`,
//! metalbond refuses routes in VNI 0 and metalnet's Network API requires `1..=16777215`. [`Vni`] is that range:
//! a value of the type is a valid VNI, so code that holds one never re-checks it. Where a wire format carries 0 for
//! "no VNI" (metalbond's target VNI, for example), the absent value is `Option<Vni>`, converted at the codec with
//! [`Vni::from_wire`] and [`Vni::to_wire`].
//!
//! The crate does no I/O. With the `serde` feature, a `Vni` serializes as its number and deserializing validates.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(clippy::cast_possible_truncation)]

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// A virtual network identifier in `1..=16777215` (24 bits, not 0).
///
/// The representation is a non-zero `u32`, so `Vni` and `Option<Vni>` both take four bytes and [`get`](Self::get)
/// compiles to a plain load. Ordering, equality and hashing are those of the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "u32", into = "u32"))]
pub struct Vni(NonZeroU32);

/// Why a number or string is not a VNI.
///
/// The messages are the ones ironnet's components and their tests print (`VNI 0 is outside 1..=16777215`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VniError {
    /// The number is 0, negative, or needs more than 24 bits.
    #[error("VNI {0} is outside 1..={max}", max = Vni::MAX.get())]
    OutOfRange(i64),
    /// The text is not a decimal number written canonically (no sign, no leading zeros, no spaces).
    #[error("{0:?} is not a VNI (a decimal number without sign or leading zeros)")]
    NotCanonical(String),
    /// A command-line value is not an unsigned 32-bit number.
    #[error("{0:?} is not an unsigned 32-bit number")]
    NotANumber(String),
}

impl Vni {
    /// The smallest VNI, 1.
    pub const MIN: Vni = match NonZeroU32::new(1) {
        Some(v) => Vni(v),
        None => unreachable!(),
    };

    /// The largest VNI, 2^24 - 1 = 16777215.
    pub const MAX: Vni = match NonZeroU32::new((1 << 24) - 1) {
        Some(v) => Vni(v),
        None => unreachable!(),
    };

    /// The VNI `value`, or [`VniError::OutOfRange`] unless `1 <= value <= 16777215`.
    #[inline]
    pub const fn new(value: u32) -> Result<Vni, VniError> {
        if value > Vni::MAX.get() {
            return Err(VniError::OutOfRange(value as i64));
        }
        match NonZeroU32::new(value) {
            Some(v) => Ok(Vni(v)),
            None => Err(VniError::OutOfRange(0)),
        }
    }

    /// The VNI `value` if it is one: [`new`](Self::new) for `const` contexts (see [`vni!`]).
    #[inline]
    pub const fn checked(value: u32) -> Option<Vni> {
        if value > Vni::MAX.get() {
            return None;
        }
        match NonZeroU32::new(value) {
            Some(v) => Some(Vni(v)),
            None => None,
        }
    }

    /// The number, always in `1..=16777215`.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// Parses a command-line flag as upstream's integer flags read it (`0100` and `+100` are VNI 100), then checks
    /// the range: for `--public-vni`, `--subscribe` and the like, where [`FromStr`]'s one canonical spelling would
    /// refuse values that upstream accepts.
    pub fn parse_flag(text: &str) -> Result<Vni, VniError> {
        let number: u32 = text.parse().map_err(|_| VniError::NotANumber(text.to_owned()))?;
        Vni::new(number)
    }

    /// Reads a wire field where 0 means "no VNI": `Ok(None)` for 0, `Ok(Some(vni))` for a valid VNI, and
    /// [`VniError::OutOfRange`] for a number that needs more than 24 bits.
    #[inline]
    pub fn from_wire(value: u32) -> Result<Option<Vni>, VniError> {
        if value == 0 {
            return Ok(None);
        }
        Vni::new(value).map(Some)
    }

    /// Writes an optional VNI to a wire field where 0 means "no VNI"; the inverse of [`from_wire`](Self::from_wire).
    #[inline]
    pub const fn to_wire(vni: Option<Vni>) -> u32 {
        match vni {
            Some(v) => v.get(),
            None => 0,
        }
    }
}

/// A [`Vni`] from a constant expression, checked at compile time: `vni!(100)`. A constant that is not a VNI
/// (`vni!(0)`) fails the build, so the macro never panics at run time.
#[macro_export]
macro_rules! vni {
    ($value:expr) => {
        const {
            match $crate::Vni::checked($value) {
                ::core::option::Option::Some(v) => v,
                ::core::option::Option::None => panic!("not a VNI: outside 1..=16777215"),
            }
        }
    };
}

impl TryFrom<u32> for Vni {
    type Error = VniError;

    /// As [`Vni::new`].
    #[inline]
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Vni::new(value)
    }
}

impl TryFrom<i32> for Vni {
    type Error = VniError;

    /// The VNI `value` (the Kubernetes APIs carry VNIs as int32); negative numbers are out of range.
    fn try_from(value: i32) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .map_err(|_| VniError::OutOfRange(i64::from(value)))
            .and_then(Vni::new)
    }
}

impl TryFrom<i64> for Vni {
    type Error = VniError;

    /// The VNI `value`; anything outside `1..=16777215` is out of range.
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .map_err(|_| VniError::OutOfRange(value))
            .and_then(Vni::new)
    }
}

impl From<Vni> for u32 {
    #[inline]
    fn from(vni: Vni) -> u32 {
        vni.get()
    }
}

impl From<Vni> for i32 {
    /// Lossless: a VNI has at most 24 bits.
    #[inline]
    fn from(vni: Vni) -> i32 {
        // Cannot wrap: get() <= 2^24 - 1 < i32::MAX.
        #[allow(clippy::cast_possible_wrap)]
        let v = vni.get() as i32;
        v
    }
}

impl From<Vni> for i64 {
    #[inline]
    fn from(vni: Vni) -> i64 {
        i64::from(vni.get())
    }
}

impl FromStr for Vni {
    type Err = VniError;

    /// Parses the canonical decimal form only, the one [`Display`](fmt::Display) writes: `"100"` is VNI 100, while
    /// `"0100"`, `"+100"`, `" 100"` and `""` are [`VniError::NotCanonical`] (as ironcore-net names NetworkIDs by
    /// the canonical form, two spellings of one VNI must not both be accepted). A canonical number outside the
    /// range (`"0"`, `"-1"`, `"16777216"`) is [`VniError::OutOfRange`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let not_canonical = || VniError::NotCanonical(s.to_owned());
        let digits = s.strip_prefix('-').unwrap_or(s);
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && s != "-0";
        if !canonical {
            return Err(not_canonical());
        }
        // Canonical but too long for i64: certainly out of range; report the saturated value.
        let value: i64 = s
            .parse()
            .unwrap_or(if s.starts_with('-') { i64::MIN } else { i64::MAX });
        Vni::try_from(value)
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn range_bounds() {
        assert_eq!(Vni::new(0), Err(VniError::OutOfRange(0)));
        assert_eq!(Vni::new(1).map(Vni::get), Ok(1));
        assert_eq!(Vni::new(16_777_215).map(Vni::get), Ok(16_777_215));
        assert_eq!(Vni::new(16_777_216), Err(VniError::OutOfRange(16_777_216)));
        assert_eq!(Vni::new(u32::MAX), Err(VniError::OutOfRange(4_294_967_295)));
        assert_eq!(Vni::MIN.get(), 1);
        assert_eq!(Vni::MAX.get(), 16_777_215);
    }

    #[test]
    fn constants_are_checked_at_compile_time() {
        const HUNDRED: Vni = vni!(100);
        assert_eq!(HUNDRED.get(), 100);
        assert_eq!(vni!(16_777_215), Vni::MAX);
        assert_eq!(Vni::checked(0), None);
        assert_eq!(Vni::checked(1 << 24), None);
        assert_eq!(Vni::checked(1), Some(Vni::MIN));
    }

    #[test]
    fn signed_integers() {
        assert_eq!(Vni::try_from(-1i32), Err(VniError::OutOfRange(-1)));
        assert_eq!(Vni::try_from(i32::MIN), Err(VniError::OutOfRange(-2_147_483_648)));
        assert_eq!(Vni::try_from(0i32), Err(VniError::OutOfRange(0)));
        assert_eq!(Vni::try_from(100i32).map(Vni::get), Ok(100));
        assert_eq!(
            Vni::try_from(16_777_216i32),
            Err(VniError::OutOfRange(16_777_216))
        );
        assert_eq!(Vni::try_from(1i64 << 40), Err(VniError::OutOfRange(1 << 40)));
        assert_eq!(Vni::try_from(-5i64), Err(VniError::OutOfRange(-5)));
        assert_eq!(Vni::try_from(16_777_215i64).map(Vni::get), Ok(16_777_215));
        assert_eq!(i32::from(Vni::MAX), 16_777_215);
        assert_eq!(i64::from(Vni::MIN), 1);
    }

    #[test]
    fn messages_callers_rely_on() {
        assert_eq!(
            VniError::OutOfRange(0).to_string(),
            "VNI 0 is outside 1..=16777215"
        );
        assert_eq!(
            Vni::new(16_777_216).unwrap_err().to_string(),
            "VNI 16777216 is outside 1..=16777215"
        );
        assert_eq!(
            "007".parse::<Vni>().unwrap_err().to_string(),
            "\"007\" is not a VNI (a decimal number without sign or leading zeros)"
        );
    }

    #[test]
    fn parses_only_the_canonical_form() {
        assert_eq!("1".parse::<Vni>().map(Vni::get), Ok(1));
        assert_eq!("16777215".parse::<Vni>().map(Vni::get), Ok(16_777_215));
        for text in [
            "007", "+5", "", " 5", "5 ", "0x10", "1e3", "-0", "--1", "-", "05", "1_000",
        ] {
            assert_eq!(
                text.parse::<Vni>(),
                Err(VniError::NotCanonical(text.to_owned())),
                "{text:?}"
            );
        }
        assert_eq!("0".parse::<Vni>(), Err(VniError::OutOfRange(0)));
        assert_eq!("-3".parse::<Vni>(), Err(VniError::OutOfRange(-3)));
        assert_eq!("16777216".parse::<Vni>(), Err(VniError::OutOfRange(16_777_216)));
        assert_eq!(
            "99999999999999999999".parse::<Vni>(),
            Err(VniError::OutOfRange(i64::MAX))
        );
    }

    #[test]
    fn flags_accept_every_spelling_of_a_vni() {
        assert_eq!(Vni::parse_flag("0100"), Ok(vni!(100)));
        assert_eq!(Vni::parse_flag("+7"), Ok(vni!(7)));
        assert_eq!(Vni::parse_flag("0"), Err(VniError::OutOfRange(0)));
        assert_eq!(
            Vni::parse_flag("-1").unwrap_err().to_string(),
            "\"-1\" is not an unsigned 32-bit number"
        );
        assert_eq!(Vni::parse_flag("x"), Err(VniError::NotANumber("x".into())));
        assert_eq!(Vni::parse_flag("16777216"), Err(VniError::OutOfRange(16_777_216)));
    }

    #[test]
    fn wire_zero_is_absent() {
        assert_eq!(Vni::from_wire(0), Ok(None));
        assert_eq!(Vni::from_wire(7), Ok(Some(Vni::new(7).unwrap())));
        assert_eq!(Vni::from_wire(1 << 24), Err(VniError::OutOfRange(1 << 24)));
        assert_eq!(Vni::to_wire(None), 0);
        assert_eq!(Vni::to_wire(Some(Vni::MAX)), 16_777_215);
        assert_eq!(std::mem::size_of::<Option<Vni>>(), 4);
    }

    #[test]
    fn orders_and_displays_as_the_number() {
        let (a, b) = (Vni::new(9).unwrap(), Vni::new(10).unwrap());
        assert!(a < b);
        assert_eq!(b.to_string(), "10");
        assert_eq!(format!("{a:>4}"), "   9");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_is_the_number_and_validates() {
        assert_eq!(serde_json::to_string(&Vni::new(300).unwrap()).unwrap(), "300");
        assert_eq!(serde_json::from_str::<Vni>("300").unwrap().get(), 300);
        let err = serde_json::from_str::<Vni>("0").unwrap_err().to_string();
        assert!(err.starts_with("VNI 0 is outside 1..=16777215"), "{err}");
    }

    proptest! {
        #[test]
        fn text_round_trip(n in 1u32..=16_777_215) {
            let vni = Vni::new(n).unwrap();
            prop_assert_eq!(vni.get(), n);
            prop_assert_eq!(vni.to_string().parse::<Vni>(), Ok(vni));
            prop_assert_eq!(Vni::try_from(i32::from(vni)), Ok(vni));
            prop_assert_eq!(Vni::from_wire(Vni::to_wire(Some(vni))), Ok(Some(vni)));
        }

        #[test]
        fn any_u32_is_accepted_exactly_in_range(n: u32) {
            prop_assert_eq!(Vni::new(n).is_ok(), (1..=16_777_215).contains(&n));
            prop_assert_eq!(n.to_string().parse::<Vni>().is_ok(), (1..=16_777_215).contains(&n));
        }
    }
}
