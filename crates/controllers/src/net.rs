//! IP families and helpers shared by the decision functions.

use std::net::IpAddr;

/// An IP family (`corev1.IPFamily`), spelled `IPv4` / `IPv6` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6 (including IPv4-mapped IPv6 addresses, as Go's `netip` does).
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The wire string: `IPv4` or `IPv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// Parses the wire string; anything but `IPv4` / `IPv6` is `None`.
    pub fn parse(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }

    /// The prefix length of a single address of this family (32 or 128).
    pub fn host_bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// `addr` as a single-address prefix string (`10.0.0.1/32`, `2001:db8::1/128`).
pub fn host_prefix(addr: &IpAddr) -> String {
    format!("{addr}/{}", Family::of(addr).host_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_round_trip_and_host_prefixes() {
        for f in [Family::V4, Family::V6] {
            assert_eq!(Family::parse(f.as_str()), Some(f));
        }
        assert_eq!(Family::parse("ipv4"), None);
        assert_eq!(host_prefix(&"10.0.0.1".parse().unwrap()), "10.0.0.1/32");
        assert_eq!(host_prefix(&"2001:db8::1".parse().unwrap()), "2001:db8::1/128");
        assert_eq!(Family::of(&"::ffff:1.2.3.4".parse().unwrap()), Family::V6);
    }
}
