//! `IP` and `IPPrefix`: addresses and prefixes serialised as strings, parsed like Go's `net/netip`.
//!
//! Upstream wraps `netip.Addr` / `netip.Prefix`; the JSON form is the canonical string (`"10.0.0.1"`,
//! `"2001:db8::/64"`) and a zero value is `null`. In Rust the zero value is `Option::None`, so every optional
//! address field is an `Option<IP>` and `null` decodes to `None`.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not an IP address or prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The address part is not a valid IPv4 or IPv6 address.
    #[error("ParseAddr({0:?}): invalid IP address")]
    InvalidAddress(String),
    /// A prefix has no `/len` part.
    #[error("netip.ParsePrefix({0:?}): no '/'")]
    MissingLength(String),
    /// A prefix carries an IPv6 zone, which netip rejects.
    #[error("netip.ParsePrefix({0:?}): IPv6 zones cannot be present in a prefix")]
    ZoneInPrefix(String),
    /// The prefix length is not a decimal number within the family's bit count.
    #[error("netip.ParsePrefix({0:?}): bad bits after slash")]
    BadLength(String),
}

/// An IP family (`corev1.IPFamily`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum IPFamily {
    /// IPv4 (`"IPv4"`).
    IPv4,
    /// IPv6 (`"IPv6"`).
    IPv6,
}

impl IPFamily {
    /// The wire string, `"IPv4"` or `"IPv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IPFamily::IPv4 => "IPv4",
            IPFamily::IPv6 => "IPv6",
        }
    }

    /// The number of address bits of the family (32 or 128).
    pub fn bits(self) -> u8 {
        match self {
            IPFamily::IPv4 => 32,
            IPFamily::IPv6 => 128,
        }
    }

    /// Parses the wire string; `None` for anything but `"IPv4"`/`"IPv6"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IPv4" => Some(IPFamily::IPv4),
            "IPv6" => Some(IPFamily::IPv6),
            _ => None,
        }
    }
}

impl fmt::Display for IPFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IP address as upstream's `IP` (`netip.Addr`): IPv4 dotted-quad without leading zeros, IPv6 with an
/// optional zone; IPv4-mapped IPv6 addresses stay IPv6. Displays in canonical (RFC 5952) form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IP {
    addr: IpAddr,
    zone: Option<String>,
}

impl IP {
    /// An address without a zone.
    pub fn new(addr: IpAddr) -> Self {
        IP { addr, zone: None }
    }

    /// The address (without zone).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The IPv6 zone, if any.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// The family: IPv4 for plain IPv4 addresses, IPv6 for all IPv6 ones (including IPv4-mapped).
    pub fn family(&self) -> IPFamily {
        match self.addr {
            IpAddr::V4(_) => IPFamily::IPv4,
            IpAddr::V6(_) => IPFamily::IPv6,
        }
    }

    /// The value of the `apinet.ironcore.dev/ip` label: the address with `:` replaced by `-`.
    pub fn label_value(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl From<IpAddr> for IP {
    fn from(addr: IpAddr) -> Self {
        IP::new(addr)
    }
}

impl From<Ipv4Addr> for IP {
    fn from(addr: Ipv4Addr) -> Self {
        IP::new(IpAddr::V4(addr))
    }
}

impl From<Ipv6Addr> for IP {
    fn from(addr: Ipv6Addr) -> Self {
        IP::new(IpAddr::V6(addr))
    }
}

impl FromStr for IP {
    type Err = ParseError;

    /// Parses like Go's `netip.ParseAddr`. Rust's parser already rejects IPv4 octets with leading zeros.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseError::InvalidAddress(s.to_owned());
        if let Some((addr, zone)) = s.split_once('%') {
            if zone.is_empty() {
                return Err(invalid());
            }
            let v6 = Ipv6Addr::from_str(addr).map_err(|_| invalid())?;
            return Ok(IP {
                addr: IpAddr::V6(v6),
                zone: Some(zone.to_owned()),
            });
        }
        if s.contains(':') {
            Ipv6Addr::from_str(s).map(IP::from).map_err(|_| invalid())
        } else {
            Ipv4Addr::from_str(s).map(IP::from).map_err(|_| invalid())
        }
    }
}

impl fmt::Display for IP {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(zone) = &self.zone {
            write!(f, "%{zone}")?;
        }
        Ok(())
    }
}

impl Serialize for IP {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IP {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        IP::from_str(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for IP {
    fn schema_name() -> Cow<'static, str> {
        "IP".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "ip",
            "description": "An IPv4 or IPv6 address in canonical form, e.g. 10.0.0.1 or 2001:db8::1."
        })
    }
}

/// An IP prefix as upstream's `IPPrefix` (`netip.Prefix`): `addr/len`, host bits kept as written
/// (`10.0.0.1/24` stays `10.0.0.1/24`), zones rejected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IPPrefix {
    addr: IpAddr,
    len: u8,
}

impl IPPrefix {
    /// A prefix from an address and a length; `None` if `len` exceeds the family's bit count.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let max = IP::new(addr).family().bits();
        (len <= max).then_some(IPPrefix { addr, len })
    }

    /// The address part, as written (host bits not masked).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether the prefix has length zero (`0.0.0.0/0`, `::/0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The family of the address part.
    pub fn family(&self) -> IPFamily {
        IP::new(self.addr).family()
    }

    /// Whether the prefix covers exactly one address (`/32` for IPv4, `/128` for IPv6).
    pub fn is_single_ip(&self) -> bool {
        self.len == self.family().bits()
    }

    /// The prefix with host bits cleared.
    pub fn masked(&self) -> IPPrefix {
        IPPrefix {
            addr: mask(self.addr, self.len),
            len: self.len,
        }
    }

    /// Whether `ip` lies inside this prefix (same family and same network bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        IP::new(ip).family() == self.family() && mask(ip, self.len) == mask(self.addr, self.len)
    }

    /// Whether `other` lies entirely within this prefix (Go: `cidr.Contains(except.Addr()) && bits <= except.bits`).
    pub fn contains_prefix(&self, other: &IPPrefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for IPPrefix {
    type Err = ParseError;

    /// Parses like Go's `netip.ParsePrefix`: the length must be plain decimal digits (no sign, no leading zeros).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .rsplit_once('/')
            .ok_or_else(|| ParseError::MissingLength(s.to_owned()))?;
        if addr.contains('%') {
            return Err(ParseError::ZoneInPrefix(s.to_owned()));
        }
        let ip = IP::from_str(addr).map_err(|_| ParseError::InvalidAddress(s.to_owned()))?;
        let bad_len = || ParseError::BadLength(s.to_owned());
        if len.is_empty()
            || !len.bytes().all(|b| b.is_ascii_digit())
            || (len.len() > 1 && len.starts_with('0'))
        {
            return Err(bad_len());
        }
        let len: u8 = len.parse().map_err(|_| bad_len())?;
        IPPrefix::new(ip.addr(), len).ok_or_else(bad_len)
    }
}

impl fmt::Display for IPPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for IPPrefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IPPrefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        IPPrefix::from_str(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for IPPrefix {
    fn schema_name() -> Cow<'static, str> {
        "IPPrefix".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "ip-prefix",
            "description": "An IP prefix in CIDR notation, e.g. 10.0.0.0/24 (host bits are kept as written)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_like_netip() {
        assert!("010.0.0.1".parse::<IP>().is_err());
        assert_eq!("fe80::1%eth0".parse::<IP>().unwrap().zone(), Some("eth0"));
        assert_eq!("::ffff:1.2.3.4".parse::<IP>().unwrap().family(), IPFamily::IPv6);
        assert_eq!(
            "2001:DB8:0:0::1".parse::<IP>().unwrap().to_string(),
            "2001:db8::1"
        );
        assert_eq!(
            "10.0.0.1/24".parse::<IPPrefix>().unwrap().to_string(),
            "10.0.0.1/24"
        );
        assert!("10.0.0.0".parse::<IPPrefix>().is_err());
        assert!("fe80::%eth0/64".parse::<IPPrefix>().is_err());
        assert!("10.0.0.0/33".parse::<IPPrefix>().is_err());
        assert!("10.0.0.0/024".parse::<IPPrefix>().is_err());
        assert!("10.0.0.0/+4".parse::<IPPrefix>().is_err());
        assert!("10.0.0.1/32".parse::<IPPrefix>().unwrap().is_single_ip());
        assert_eq!(IP::from_str("2001:db8::1").unwrap().label_value(), "2001-db8--1");
    }

    #[test]
    fn json_round_trip() {
        let ip: Option<IP> = serde_json::from_str("null").unwrap();
        assert_eq!(ip, None);
        let ip: IP = serde_json::from_str("\"10.0.0.1\"").unwrap();
        assert_eq!(serde_json::to_string(&ip).unwrap(), "\"10.0.0.1\"");
        let p: IPPrefix = serde_json::from_str("\"2001:db8::/64\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"2001:db8::/64\"");
        assert!(serde_json::from_str::<IP>("\"10.0.0\"").is_err());
        assert!(serde_json::from_str::<IP>("7").is_err());
    }

    #[test]
    fn containment() {
        let cidr: IPPrefix = "10.0.0.0/16".parse().unwrap();
        assert!(cidr.contains_prefix(&"10.0.1.0/24".parse().unwrap()));
        assert!(!cidr.contains_prefix(&"10.1.0.0/16".parse().unwrap()));
        assert!(!cidr.contains_prefix(&"10.0.0.0/8".parse().unwrap()));
        assert!(!cidr.contains_prefix(&"::/0".parse().unwrap()));
    }

    proptest! {
        // Parsing arbitrary text never panics, and whatever parses re-parses to the same value from its display.
        #[test]
        fn parse_never_panics_and_round_trips(s in ".{0,48}") {
            if let Ok(ip) = s.parse::<IP>() {
                prop_assert_eq!(ip.to_string().parse::<IP>().unwrap(), ip);
            }
            if let Ok(p) = s.parse::<IPPrefix>() {
                prop_assert_eq!(p.to_string().parse::<IPPrefix>().unwrap(), p);
            }
        }

        #[test]
        fn canonical_addresses_round_trip(a in any::<u32>(), b in any::<u128>(), len in 0u8..=32) {
            let v4 = IP::from(Ipv4Addr::from(a));
            prop_assert_eq!(v4.to_string().parse::<IP>().unwrap(), v4.clone());
            let v6 = IP::from(Ipv6Addr::from(b));
            prop_assert_eq!(v6.to_string().parse::<IP>().unwrap(), v6);
            let p = IPPrefix::new(v4.addr(), len).unwrap();
            prop_assert!(p.contains(p.masked().addr()));
            prop_assert!(p.masked().contains_prefix(&p));
        }
    }
}
