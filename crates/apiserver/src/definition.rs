//! `ResourceDefinition`: everything the server needs to know to serve one kind generically.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// Errors building a [`ResourceDefinition`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The CRD has no version that is both served and stored.
    #[error("custom resource definition {0} has no served storage version")]
    NoStorageVersion(String),
    /// A required name is empty or malformed.
    #[error("invalid resource definition: {0}")]
    Invalid(String),
    /// The schema could not be converted to JSON.
    #[error("schema of {0} is not valid JSON: {1}")]
    Schema(String, String),
}

/// One printer column (`additionalPrinterColumns`), rendered in Table responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// OpenAPI format hint (e.g. `name`).
    pub format: String,
    /// Human-readable description.
    pub description: String,
    /// 0 = shown by default; > 0 only with `-o wide`.
    pub priority: i32,
    /// JSONPath into the object, e.g. `.spec.size`.
    pub json_path: String,
}

/// Scope of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Objects live in a namespace.
    Namespaced,
    /// Objects are cluster-wide.
    Cluster,
}

/// A served kind: names, scope, schema, printer columns, selectable fields and subresources.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceDefinition {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Widget`.
    pub kind: String,
    /// List kind, e.g. `WidgetList`.
    pub list_kind: String,
    /// Plural resource name (the URL segment), e.g. `widgets`.
    pub plural: String,
    /// Singular resource name.
    pub singular: String,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (e.g. `all`).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
    /// OpenAPI v3 schema of the whole object.
    pub schema: Value,
    /// Printer columns after the implicit `Name` column (an `Age` column is added if none is a date).
    pub printer_columns: Vec<PrinterColumn>,
    /// JSONPaths (e.g. `.spec.color`) usable in field selectors besides `metadata.name`/`metadata.namespace`.
    pub selectable_fields: Vec<String>,
    /// Whether the `/status` subresource is enabled.
    pub status_subresource: bool,
    /// Whether `application/strategic-merge-patch+json` is accepted (treated as JSON merge
    /// patch; only sound for kinds without merge-keyed lists, e.g. Lease and Event).
    pub strategic_merge_patch: bool,
}

impl ResourceDefinition {
    /// A definition with the given names and scope, a schema that accepts anything, no printer
    /// columns, no selectable fields and no status subresource. Fails if a name is empty or
    /// the plural is not lowercase.
    pub fn new(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        scope: Scope,
    ) -> Result<Self, DefinitionError> {
        if version.is_empty() || kind.is_empty() || plural.is_empty() {
            return Err(DefinitionError::Invalid(
                "version, kind and plural must not be empty".into(),
            ));
        }
        if plural
            .chars()
            .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(DefinitionError::Invalid(format!(
                "plural {plural:?} must be lowercase alphanumeric"
            )));
        }
        Ok(ResourceDefinition {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            list_kind: format!("{kind}List"),
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            short_names: Vec::new(),
            categories: Vec::new(),
            scope,
            schema: serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            printer_columns: Vec::new(),
            selectable_fields: Vec::new(),
            status_subresource: false,
            strategic_merge_patch: false,
        })
    }

    /// Builds the definition of a CRD's storage version (what kube-derive's `CustomResourceExt::crd()` returns).
    pub fn from_crd(crd: &CustomResourceDefinition) -> Result<Self, DefinitionError> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let spec = &crd.spec;
        let version = spec
            .versions
            .iter()
            .find(|v| v.served && v.storage)
            .ok_or_else(|| DefinitionError::NoStorageVersion(name.clone()))?;
        let scope = match spec.scope.as_str() {
            "Namespaced" => Scope::Namespaced,
            "Cluster" => Scope::Cluster,
            other => return Err(DefinitionError::Invalid(format!("unknown scope {other:?}"))),
        };
        let mut def = Self::new(
            &spec.group,
            &version.name,
            &spec.names.kind,
            &spec.names.plural,
            scope,
        )?;
        def.singular = spec
            .names
            .singular
            .clone()
            .unwrap_or_else(|| spec.names.kind.to_lowercase());
        if let Some(list_kind) = &spec.names.list_kind {
            def.list_kind = list_kind.clone();
        }
        def.short_names = spec.names.short_names.clone().unwrap_or_default();
        def.categories = spec.names.categories.clone().unwrap_or_default();
        if let Some(schema) = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        {
            def.schema = serde_json::to_value(schema)
                .map_err(|e| DefinitionError::Schema(name.clone(), e.to_string()))?;
        }
        def.printer_columns = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: c.name.clone(),
                type_: c.type_.clone(),
                format: c.format.clone().unwrap_or_default(),
                description: c.description.clone().unwrap_or_default(),
                priority: c.priority.unwrap_or(0),
                json_path: c.json_path.clone(),
            })
            .collect();
        def.selectable_fields = version
            .selectable_fields
            .iter()
            .flatten()
            .map(|f| f.json_path.clone())
            .collect();
        def.status_subresource = version.subresources.as_ref().is_some_and(|s| s.status.is_some());
        Ok(def)
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether objects live in namespaces.
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The group used in store keys (`core` for the core group).
    pub fn storage_group(&self) -> &str {
        if self.group.is_empty() {
            "core"
        } else {
            &self.group
        }
    }

    /// The store key prefix of all objects of this kind, ending in `/`.
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/{}/", self.storage_group(), self.plural)
    }

    /// The store key prefix of this kind's objects in `namespace` (or all, if `None`), ending in `/`.
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced(), namespace) {
            (true, Some(ns)) => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }

    /// The store key of one object: `/registry/<group>/<plural>/[<namespace>/]<name>`.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced(), namespace) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }

    /// Whether `path` (without the leading dot, e.g. `spec.color`) may be used in a field selector.
    pub fn is_selectable(&self, path: &str) -> bool {
        path == "metadata.name"
            || (path == "metadata.namespace")
            || self
                .selectable_fields
                .iter()
                .any(|f| f.trim_start_matches('.') == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_registry_layout() {
        let def = ResourceDefinition::new("test.ironnet.dev", "v1", "Widget", "widgets", Scope::Namespaced)
            .unwrap();
        assert_eq!(
            def.key(Some("default"), "a"),
            "/registry/test.ironnet.dev/widgets/default/a"
        );
        assert_eq!(
            def.namespace_prefix(Some("default")),
            "/registry/test.ironnet.dev/widgets/default/"
        );
        assert_eq!(def.namespace_prefix(None), "/registry/test.ironnet.dev/widgets/");
        let ns = ResourceDefinition::new("", "v1", "Namespace", "namespaces", Scope::Cluster).unwrap();
        assert_eq!(
            ns.key(None, "kube-system"),
            "/registry/core/namespaces/kube-system"
        );
        assert_eq!(ns.api_version(), "v1");
    }

    #[test]
    fn rejects_bad_names() {
        assert!(ResourceDefinition::new("g", "v1", "W", "Widgets", Scope::Cluster).is_err());
        assert!(ResourceDefinition::new("g", "", "W", "w", Scope::Cluster).is_err());
    }
}
