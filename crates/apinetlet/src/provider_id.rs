//! Provider IDs (upstream ironcore-net `apinetlet/provider`):
//! `ironcore-net://<namespace>/<name>/<node-or-id>/<uid>`.

use std::fmt;
use std::str::FromStr;

/// The scheme prefix of every provider ID.
pub const PREFIX: &str = "ironcore-net://";

/// A provider ID could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderIdError {
    /// The ID does not start with `ironcore-net://`.
    #[error("provider id {0:?} does not start with {PREFIX:?}")]
    MissingPrefix(String),
    /// The ID does not have exactly four non-empty `/`-separated parts.
    #[error("provider id {0:?} must have the form {PREFIX}<namespace>/<name>/<x>/<uid>")]
    Malformed(String),
    /// The node of a NetworkInterface ID is not a DNS-1123 subdomain.
    #[error("node {0:?} is not a DNS-1123 subdomain")]
    InvalidNode(String),
}

fn split(s: &str) -> Result<[&str; 4], ProviderIdError> {
    let rest = s
        .strip_prefix(PREFIX)
        .ok_or_else(|| ProviderIdError::MissingPrefix(s.to_owned()))?;
    let parts: Vec<&str> = rest.splitn(5, '/').collect();
    match parts.as_slice() {
        [a, b, c, d] if [a, b, c, d].iter().all(|p| !p.is_empty()) => Ok([a, b, c, d]),
        _ => Err(ProviderIdError::Malformed(s.to_owned())),
    }
}

/// Whether `s` is a DNS-1123 subdomain (≤253 chars, dot-separated labels of `[a-z0-9-]`, alphanumeric at the
/// ends).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The provider ID of an apinet NetworkInterface.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NetworkInterfaceId {
    /// apinet namespace.
    pub namespace: String,
    /// apinet NetworkInterface name.
    pub name: String,
    /// apinet Node name.
    pub node: String,
    /// apinet NetworkInterface UID.
    pub uid: String,
}

impl fmt::Display for NetworkInterfaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}/{}/{}/{}",
            self.namespace, self.name, self.node, self.uid
        )
    }
}

impl FromStr for NetworkInterfaceId {
    type Err = ProviderIdError;

    /// Parses `ironcore-net://<ns>/<name>/<node>/<uid>`; the node must be a DNS-1123 subdomain.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let [namespace, name, node, uid] = split(s)?;
        if !is_dns1123_subdomain(node) {
            return Err(ProviderIdError::InvalidNode(node.to_owned()));
        }
        Ok(NetworkInterfaceId {
            namespace: namespace.into(),
            name: name.into(),
            node: node.into(),
            uid: uid.into(),
        })
    }
}

/// The provider ID of an apinet Network.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NetworkId {
    /// apinet namespace.
    pub namespace: String,
    /// apinet Network name (the ironcore Network's UID).
    pub name: String,
    /// The VNI (`spec.id`).
    pub id: String,
    /// apinet Network UID.
    pub uid: String,
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}/{}/{}/{}",
            self.namespace, self.name, self.id, self.uid
        )
    }
}

impl FromStr for NetworkId {
    type Err = ProviderIdError;

    /// Parses `ironcore-net://<ns>/<name>/<id>/<uid>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let [namespace, name, id, uid] = split(s)?;
        Ok(NetworkId {
            namespace: namespace.into(),
            name: name.into(),
            id: id.into(),
            uid: uid.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn conformance_7_4() {
        let nic = NetworkInterfaceId {
            namespace: "ns".into(),
            name: "name".into(),
            node: "node.dns.subdomain".into(),
            uid: "uid".into(),
        };
        assert_eq!(nic.to_string(), "ironcore-net://ns/name/node.dns.subdomain/uid");
        assert_eq!(nic.to_string().parse::<NetworkInterfaceId>().unwrap(), nic);
        let net = NetworkId {
            namespace: "ns".into(),
            name: "name".into(),
            id: "foo".into(),
            uid: "uid".into(),
        };
        assert_eq!(net.to_string(), "ironcore-net://ns/name/foo/uid");
        assert_eq!(net.to_string().parse::<NetworkId>().unwrap(), net);
    }

    #[test]
    fn bad_ids_are_errors() {
        assert!(matches!(
            "my://provider-id".parse::<NetworkId>(),
            Err(ProviderIdError::MissingPrefix(_))
        ));
        assert!(matches!(
            "ironcore-net://a/b/c".parse::<NetworkId>(),
            Err(ProviderIdError::Malformed(_))
        ));
        assert!(matches!(
            "ironcore-net://a/b/c/d/e".parse::<NetworkId>(),
            Err(ProviderIdError::Malformed(_))
        ));
        assert!(matches!(
            "ironcore-net://a//c/d".parse::<NetworkId>(),
            Err(ProviderIdError::Malformed(_))
        ));
        assert!(matches!(
            "ironcore-net://a/b/Node_1/d".parse::<NetworkInterfaceId>(),
            Err(ProviderIdError::InvalidNode(_))
        ));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,80}") {
            let _ = s.parse::<NetworkId>();
            let _ = s.parse::<NetworkInterfaceId>();
            let _ = format!("{PREFIX}{s}").parse::<NetworkInterfaceId>();
        }

        #[test]
        fn round_trip(ns in "[a-z0-9-]{1,20}", name in "[a-z0-9-]{1,20}", node in "[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", uid in "[a-f0-9-]{1,36}") {
            prop_assume!(is_dns1123_subdomain(&node));
            let id = NetworkInterfaceId { namespace: ns, name, node, uid };
            prop_assert_eq!(id.to_string().parse::<NetworkInterfaceId>().unwrap(), id);
        }
    }
}
