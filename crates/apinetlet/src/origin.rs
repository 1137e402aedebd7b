//! Origin metadata: how an apinet object remembers the ironcore object it was derived from (upstream
//! ironcore-net `utils/origin`).
//!
//! Labels `<origin>-uid` and `<origin>-namespace`, annotation `<origin>-name`.

use std::collections::BTreeMap;

/// One origin kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The key stem, e.g. `apinetlet.ironcore.dev/network`.
    pub name: &'static str,
}

/// Origin of apinet Networks.
pub const NETWORK: Origin = Origin {
    name: "apinetlet.ironcore.dev/network",
};
/// Origin of apinet IPs (from VirtualIPs).
pub const VIRTUAL_IP: Origin = Origin {
    name: "apinetlet.ironcore.dev/virtualip",
};
/// Origin of apinet NATGateways and their autoscalers.
pub const NAT_GATEWAY: Origin = Origin {
    name: "apinetlet.ironcore.dev/natgateway",
};
/// Origin of apinet LoadBalancers and routings.
pub const LOAD_BALANCER: Origin = Origin {
    name: "apinetlet.ironcore.dev/loadbalancer",
};
/// Origin of apinet NetworkPolicies and rules.
pub const NETWORK_POLICY: Origin = Origin {
    name: "apinetlet.ironcore.dev/networkpolicy",
};
/// Origin of claimed apinet NetworkInterfaces.
pub const NETWORK_INTERFACE: Origin = Origin {
    name: "apinetlet.ironcore.dev/networkinterface",
};

/// The source object an apinet object stems from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OriginData {
    /// Source namespace.
    pub namespace: String,
    /// Source name.
    pub name: String,
    /// Source UID.
    pub uid: String,
}

impl Origin {
    /// The UID label key.
    pub fn uid_label(&self) -> String {
        format!("{}-uid", self.name)
    }

    /// The namespace label key.
    pub fn namespace_label(&self) -> String {
        format!("{}-namespace", self.name)
    }

    /// The name annotation key.
    pub fn name_annotation(&self) -> String {
        format!("{}-name", self.name)
    }

    /// The origin labels of `data`.
    pub fn labels(&self, data: &OriginData) -> BTreeMap<String, String> {
        BTreeMap::from([
            (self.uid_label(), data.uid.clone()),
            (self.namespace_label(), data.namespace.clone()),
        ])
    }

    /// The origin annotations of `data`.
    pub fn annotations(&self, data: &OriginData) -> BTreeMap<String, String> {
        BTreeMap::from([(self.name_annotation(), data.name.clone())])
    }

    /// The origin recorded on an object, if all keys are present.
    pub fn data_of(
        &self,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Option<OriginData> {
        Some(OriginData {
            uid: labels.get(&self.uid_label())?.clone(),
            namespace: labels.get(&self.namespace_label())?.clone(),
            name: annotations.get(&self.name_annotation())?.clone(),
        })
    }

    /// Whether the object's origin is the source with `uid`.
    pub fn stems_from(&self, labels: &BTreeMap<String, String>, uid: &str) -> bool {
        labels.get(&self.uid_label()).is_some_and(|u| u == uid)
    }

    /// Removes the origin keys from the maps (absent keys are fine).
    pub fn remove(&self, labels: &mut BTreeMap<String, String>, annotations: &mut BTreeMap<String, String>) {
        labels.remove(&self.uid_label());
        labels.remove(&self.namespace_label());
        annotations.remove(&self.name_annotation());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> OriginData {
        OriginData {
            namespace: "ns".into(),
            name: "n".into(),
            uid: "u".into(),
        }
    }

    #[test]
    fn keys_and_round_trip() {
        assert_eq!(NETWORK.uid_label(), "apinetlet.ironcore.dev/network-uid");
        assert_eq!(
            NETWORK.namespace_label(),
            "apinetlet.ironcore.dev/network-namespace"
        );
        assert_eq!(NETWORK.name_annotation(), "apinetlet.ironcore.dev/network-name");
        let (l, a) = (NETWORK.labels(&data()), NETWORK.annotations(&data()));
        assert_eq!(NETWORK.data_of(&l, &a), Some(data()));
        assert!(NETWORK.stems_from(&l, "u"));
        assert!(!NETWORK.stems_from(&l, "v"));
        assert_eq!(VIRTUAL_IP.data_of(&l, &a), None);
    }

    #[test]
    fn incomplete_metadata_has_no_origin_and_removal_is_total() {
        let mut l = NETWORK.labels(&data());
        let mut a = NETWORK.annotations(&data());
        l.insert("keep".into(), "me".into());
        assert_eq!(NETWORK.data_of(&l, &BTreeMap::new()), None);
        NETWORK.remove(&mut l, &mut a);
        assert_eq!(l.len(), 1);
        assert!(a.is_empty());
    }
}
