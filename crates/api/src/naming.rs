//! Deterministic object names and provider IDs; part of the contract between controllers.

/// The scheme prefix of ironcore-net provider IDs.
pub const PROVIDER_ID_PREFIX: &str = "ironcore-net://";

/// Name of the ephemeral Prefix for `ips[index]` of NetworkInterface or LoadBalancer `owner`: `<owner>-<index>`.
pub fn ephemeral_ip_prefix_name(owner: &str, index: usize) -> String {
    format!("{owner}-{index}")
}

/// Name of the ephemeral Prefix for `prefixes[index]` of NetworkInterface `nic`: `<nic>-pf-<index>`.
pub fn ephemeral_prefix_prefix_name(nic: &str, index: usize) -> String {
    format!("{nic}-pf-{index}")
}

/// Name of the ephemeral VirtualIP of NetworkInterface `nic`: the NIC's name, or the referenced VirtualIP's.
pub fn network_interface_virtual_ip_name(nic: &str, virtual_ip_ref: Option<&str>) -> String {
    virtual_ip_ref.unwrap_or(nic).to_owned()
}

/// Name of the LoadBalancerRouting of LoadBalancer `lb`: the same name.
pub fn load_balancer_routing_name(lb: &str) -> String {
    lb.to_owned()
}

/// Name of the ephemeral NetworkInterface of Machine `machine` for its entry `nic`: `<machine>-<nic>`.
pub fn machine_ephemeral_network_interface_name(machine: &str, nic: &str) -> String {
    format!("{machine}-{nic}")
}

/// Name of the DaemonSet of an apinet LoadBalancer: `lb-<name>`.
pub fn load_balancer_daemon_set_name(lb: &str) -> String {
    format!("lb-{lb}")
}

/// Name of an apinet Node mirrored from metalnet node `node` in `partition`: `<partition>.<node>`.
pub fn partition_node_name(partition: &str, node: &str) -> String {
    format!("{partition}.{node}")
}

/// The parts of an ironcore-net provider ID `ironcore-net://<namespace>/<name>/<id>/<uid>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderID {
    /// Namespace of the apinet object.
    pub namespace: String,
    /// Name of the apinet object.
    pub name: String,
    /// For a Network the VNI; for a NetworkInterface the Node name.
    pub id: String,
    /// UID of the apinet object.
    pub uid: String,
}

/// Why a provider ID does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderIDError {
    /// The ID does not start with `ironcore-net://`.
    #[error("provider id {0:?} does not start with {PROVIDER_ID_PREFIX:?}")]
    Prefix(String),
    /// The ID does not have exactly four `/`-separated parts after the prefix.
    #[error("provider id {0:?} must have the form ironcore-net://<namespace>/<name>/<id>/<uid>")]
    Parts(String),
    /// A network interface ID's node is not a DNS-1123 subdomain.
    #[error("provider id {id:?}: invalid node name {node:?}: {reason}")]
    Node {
        /// The whole ID.
        id: String,
        /// The node part.
        node: String,
        /// Why the node name is invalid.
        reason: String,
    },
}

impl ProviderID {
    /// Formats `ironcore-net://<namespace>/<name>/<id>/<uid>`.
    pub fn format(&self) -> String {
        format!(
            "{PROVIDER_ID_PREFIX}{}/{}/{}/{}",
            self.namespace, self.name, self.id, self.uid
        )
    }

    fn parse_parts(s: &str) -> Result<Self, ProviderIDError> {
        let rest = s
            .strip_prefix(PROVIDER_ID_PREFIX)
            .ok_or_else(|| ProviderIDError::Prefix(s.to_owned()))?;
        let parts: Vec<&str> = rest.splitn(5, '/').collect();
        match parts.as_slice() {
            [namespace, name, id, uid] => Ok(ProviderID {
                namespace: (*namespace).to_owned(),
                name: (*name).to_owned(),
                id: (*id).to_owned(),
                uid: (*uid).to_owned(),
            }),
            _ => Err(ProviderIDError::Parts(s.to_owned())),
        }
    }

    /// Parses a Network provider ID (`id` is the VNI).
    pub fn parse_network(s: &str) -> Result<Self, ProviderIDError> {
        Self::parse_parts(s)
    }

    /// Parses a NetworkInterface provider ID (`id` is the Node, which must be a DNS-1123 subdomain).
    pub fn parse_network_interface(s: &str) -> Result<Self, ProviderIDError> {
        let id = Self::parse_parts(s)?;
        if let Some(reason) = crate::validation::names::dns1123_subdomain(&id.id)
            .into_iter()
            .next()
        {
            return Err(ProviderIDError::Node {
                id: s.to_owned(),
                node: id.id,
                reason,
            });
        }
        Ok(id)
    }
}

/// `ironcore-net://<namespace>/<name>/<node>/<uid>` for an apinet NetworkInterface.
pub fn network_interface_provider_id(namespace: &str, name: &str, node: &str, uid: &str) -> String {
    ProviderID {
        namespace: namespace.into(),
        name: name.into(),
        id: node.into(),
        uid: uid.into(),
    }
    .format()
}

/// `ironcore-net://<namespace>/<name>/<vni>/<uid>` for an apinet Network.
pub fn network_provider_id(namespace: &str, name: &str, vni: &str, uid: &str) -> String {
    ProviderID {
        namespace: namespace.into(),
        name: name.into(),
        id: vni.into(),
        uid: uid.into(),
    }
    .format()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_round_trip() {
        let id = network_interface_provider_id("ns", "name", "node.dns.subdomain", "uid");
        assert_eq!(id, "ironcore-net://ns/name/node.dns.subdomain/uid");
        let parsed = ProviderID::parse_network_interface(&id).unwrap();
        assert_eq!(parsed.format(), id);
        let id = network_provider_id("ns", "name", "foo", "uid");
        assert_eq!(id, "ironcore-net://ns/name/foo/uid");
        assert_eq!(ProviderID::parse_network(&id).unwrap().id, "foo");
        assert!(matches!(
            ProviderID::parse_network("x://a/b/c/d"),
            Err(ProviderIDError::Prefix(_))
        ));
        assert!(matches!(
            ProviderID::parse_network("ironcore-net://a/b/c"),
            Err(ProviderIDError::Parts(_))
        ));
        assert!(matches!(
            ProviderID::parse_network("ironcore-net://a/b/c/d/e"),
            Err(ProviderIDError::Parts(_))
        ));
        assert!(matches!(
            ProviderID::parse_network_interface("ironcore-net://a/b/No_De/d"),
            Err(ProviderIDError::Node { .. })
        ));
    }

    #[test]
    fn names() {
        assert_eq!(ephemeral_ip_prefix_name("nic", 0), "nic-0");
        assert_eq!(ephemeral_prefix_prefix_name("nic", 2), "nic-pf-2");
        assert_eq!(
            machine_ephemeral_network_interface_name("m", "primary"),
            "m-primary"
        );
        assert_eq!(network_interface_virtual_ip_name("nic", None), "nic");
        assert_eq!(network_interface_virtual_ip_name("nic", Some("vip")), "vip");
        assert_eq!(load_balancer_daemon_set_name("x"), "lb-x");
        assert_eq!(partition_node_name("p", "n"), "p.n");
        assert_eq!(load_balancer_routing_name("lb"), "lb");
    }
}
