//! Origin metadata: how a derived object remembers the object it was derived from, as upstream
//! ironcore-net's `utils/origin` records it. apinetlet marks apinet objects with the ironcore object they
//! mirror; metalnetlet marks metalnet objects with their apinet source.
//!
//! Contract: an origin `<stem>` writes labels `<stem>-uid` and `<stem>-namespace` and annotation
//! `<stem>-name` (names can exceed the label value limit; UIDs and namespaces cannot). An object has an origin
//! only if all three keys are present. The UID identifies the source's incarnation: a source deleted and
//! recreated under the same name is a different source, so its former derived objects are orphans.

use std::collections::BTreeMap;
use std::fmt::Debug;

use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// One origin kind, identified by its key stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The key stem, e.g. `apinetlet.ironcore.dev/network`.
    pub name: &'static str,
}

/// The source object a derived object stems from.
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

/// Whether the source `data` names still exists as the same incarnation (same UID), read from the API server
/// through `client`.
///
/// Reads fresh, not from a cache, because the answer decides whether a derived object is collected: a cache
/// lagging behind a just-created source must not get that source's new object deleted. Any error other than
/// the source being absent is returned.
pub async fn source_exists<S>(client: Client, data: &OriginData) -> Result<bool, kube::Error>
where
    S: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let sources: Api<S> = Api::namespaced(client, &data.namespace);
    Ok(sources
        .get_opt(&data.name)
        .await?
        .is_some_and(|src| src.meta().uid.as_deref() == Some(data.uid.as_str())))
}

/// Like [`source_exists`], but answers `true` without a request when `cached` (the source as a cache shows it)
/// is the incarnation `data` names.
///
/// Only a negative answer needs the fresh read: a cache lagging behind a just-created source would say it is
/// gone. A cache lagging behind a deletion delays nothing that matters, since a deleted source's derived objects
/// go through its finalizer, and the collector sees every derived object again at its next list.
pub async fn source_exists_cached<S>(
    cached: Option<&S>,
    client: Client,
    data: &OriginData,
) -> Result<bool, kube::Error>
where
    S: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    if cached.is_some_and(|src| src.meta().uid.as_deref() == Some(data.uid.as_str())) {
        return Ok(true);
    }
    source_exists::<S>(client, data).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETWORK: Origin = Origin {
        name: "apinetlet.ironcore.dev/network",
    };
    const VIRTUAL_IP: Origin = Origin {
        name: "apinetlet.ironcore.dev/virtualip",
    };

    /// A source the cache shows as the named incarnation is answered without a request; any other is read
    /// fresh (here from a server that is not there, so the read fails).
    #[tokio::test]
    async fn a_cached_source_needs_no_read_and_any_other_is_read_fresh() {
        let nowhere = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(nowhere).expect("client");
        let source = |uid: &str| -> ironnet_api::apinet::Network {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Network",
                "metadata": {"name": "n", "namespace": "ns", "uid": uid}, "spec": {},
            }))
            .expect("network")
        };
        let same = source("u");
        assert!(
            source_exists_cached(Some(&same), client.clone(), &data())
                .await
                .expect("no request")
        );
        let other = source("another incarnation");
        assert!(
            source_exists_cached(Some(&other), client.clone(), &data())
                .await
                .is_err()
        );
        assert!(
            source_exists_cached::<ironnet_api::apinet::Network>(None, client, &data())
                .await
                .is_err()
        );
    }

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
