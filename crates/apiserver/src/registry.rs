//! The registry of served kinds: definition plus strategy, looked up by group/version/resource.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::definition::ResourceDefinition;
use crate::strategy::Strategy;

/// Errors registering a kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The group/version/plural is already registered.
    #[error("resource {0} is already registered")]
    Duplicate(String),
}

/// One served kind.
pub struct RegisteredKind {
    /// Names, schema, columns.
    pub def: ResourceDefinition,
    /// Defaulting, validation and admission.
    pub strategy: Arc<dyn Strategy>,
}

impl std::fmt::Debug for RegisteredKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredKind")
            .field("def", &self.def)
            .finish_non_exhaustive()
    }
}

/// All served kinds. Immutable once the server is built.
#[derive(Debug, Default)]
pub struct Registry {
    kinds: Vec<Arc<RegisteredKind>>,
    by_resource: BTreeMap<(String, String, String), usize>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a kind; fails if its group/version/plural is taken.
    pub fn register(
        &mut self,
        def: ResourceDefinition,
        strategy: Arc<dyn Strategy>,
    ) -> Result<(), RegistryError> {
        let key = (def.group.clone(), def.version.clone(), def.plural.clone());
        if self.by_resource.contains_key(&key) {
            return Err(RegistryError::Duplicate(format!("{}/{}/{}", key.0, key.1, key.2)));
        }
        self.by_resource.insert(key, self.kinds.len());
        self.kinds.push(Arc::new(RegisteredKind { def, strategy }));
        Ok(())
    }

    /// The kind served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<RegisteredKind>> {
        self.by_resource
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .map(|&i| &self.kinds[i])
    }

    /// The kind with this group and kind name (any version).
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&Arc<RegisteredKind>> {
        self.kinds
            .iter()
            .find(|k| k.def.group == group && k.def.kind == kind)
    }

    /// Every kind, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = &Arc<RegisteredKind>> {
        self.kinds.iter()
    }

    /// Every (group, version) served, sorted, core group first.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut gvs: Vec<(String, String)> = self
            .kinds
            .iter()
            .map(|k| (k.def.group.clone(), k.def.version.clone()))
            .collect();
        gvs.sort();
        gvs.dedup();
        gvs
    }

    /// The kinds served in one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<RegisteredKind>> {
        self.kinds
            .iter()
            .filter(move |k| k.def.group == group && k.def.version == version)
    }
}
