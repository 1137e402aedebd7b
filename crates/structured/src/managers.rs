//! `metadata.managedFields` as kube-apiserver's `managedfields` package handles it: decoding the
//! entries into per-manager field sets, encoding them back in kube's order, manager identity,
//! the cap on update managers, and default manager names.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};

use crate::fieldsv1::FieldsV1Error;
use crate::path::FieldPath;
use crate::set::FieldSet;

/// The operation that produced a managedFields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply,
    /// Any other write: create, update, merge/JSON patch.
    Update,
}

impl Operation {
    /// The wire spelling, `Apply` or `Update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Why the `managedFields` of an object could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManagedFieldsError {
    /// An entry has no `manager` field.
    #[error("managedFields entry {index} has no manager")]
    MissingManager {
        /// Position of the entry.
        index: usize,
    },
    /// An entry's operation is neither `Apply` nor `Update`.
    #[error("managedFields entry {index} has invalid operation {operation:?}")]
    InvalidOperation {
        /// Position of the entry.
        index: usize,
        /// The operation found.
        operation: String,
    },
    /// An entry's `fieldsType` is not `FieldsV1`.
    #[error("can only decode FieldsV1 formatted managedFields, got {0:?}")]
    UnsupportedFieldsType(String),
    /// An entry's `fieldsV1` is malformed.
    #[error("managedFields entry {index}: {source}")]
    InvalidFields {
        /// Position of the entry.
        index: usize,
        /// The decoding error.
        source: FieldsV1Error,
    },
}

/// Who manages a set of fields. Apply managers are identified without API version, update
/// managers with it (as kube's `BuildManagerIdentifier` does).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ManagerId {
    pub manager: String,
    pub operation: Operation,
    pub api_version: Option<String>,
    pub subresource: Option<String>,
}

impl ManagerId {
    pub fn new(manager: &str, operation: Operation, api_version: &str, subresource: Option<&str>) -> Self {
        ManagerId {
            manager: manager.to_owned(),
            operation,
            api_version: (operation == Operation::Update).then(|| api_version.to_owned()),
            subresource: subresource.filter(|s| !s.is_empty()).map(str::to_owned),
        }
    }

    /// How kube names the manager in conflict messages (`printManager`): `"name"`, plus
    /// ` with subresource "status"`, plus ` using <apiVersion>` for update managers.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if let (Operation::Update, Some(v)) = (self.operation, &self.api_version) {
            s.push_str(&format!(" using {v}"));
        }
        s
    }
}

/// One manager's fields.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Managed {
    pub set: FieldSet,
    pub api_version: String,
    pub time: Option<Time>,
}

/// All managers of an object.
pub(crate) type Managers = BTreeMap<ManagerId, Managed>;

/// Decodes managedFields entries; a later entry with the same identity replaces an earlier one.
pub(crate) fn decode(entries: &[ManagedFieldsEntry]) -> Result<Managers, ManagedFieldsError> {
    let mut out = Managers::new();
    for (index, e) in entries.iter().enumerate() {
        let manager = e
            .manager
            .as_deref()
            .ok_or(ManagedFieldsError::MissingManager { index })?;
        let operation = match e.operation.as_deref() {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            other => {
                return Err(ManagedFieldsError::InvalidOperation {
                    index,
                    operation: other.unwrap_or("").to_owned(),
                });
            }
        };
        match e.fields_type.as_deref() {
            Some("FieldsV1") => {}
            other => {
                return Err(ManagedFieldsError::UnsupportedFieldsType(
                    other.unwrap_or("").to_owned(),
                ));
            }
        }
        let set = match &e.fields_v1 {
            Some(FieldsV1(v)) => FieldSet::from_fields_v1(v)
                .map_err(|source| ManagedFieldsError::InvalidFields { index, source })?,
            None => FieldSet::new(),
        };
        let api_version = e.api_version.clone().unwrap_or_default();
        let id = ManagerId::new(manager, operation, &api_version, e.subresource.as_deref());
        out.insert(
            id,
            Managed {
                set,
                api_version,
                time: e.time.clone(),
            },
        );
    }
    Ok(out)
}

/// Encodes managers as managedFields entries in kube's order: Apply before Update, then by time
/// (seconds), manager, apiVersion and subresource. Managers with empty sets are dropped.
pub(crate) fn encode(managers: &Managers) -> Vec<ManagedFieldsEntry> {
    let mut out: Vec<ManagedFieldsEntry> = managers
        .iter()
        .filter(|(_, m)| !m.set.is_empty())
        .map(|(id, m)| ManagedFieldsEntry {
            api_version: Some(m.api_version.clone()),
            fields_type: Some("FieldsV1".to_owned()),
            fields_v1: Some(FieldsV1(m.set.to_fields_v1())),
            manager: Some(id.manager.clone()),
            operation: Some(id.operation.as_str().to_owned()),
            subresource: id.subresource.clone(),
            time: m.time.clone(),
        })
        .collect();
    out.sort_by(|p, q| {
        let seconds = |e: &ManagedFieldsEntry| e.time.as_ref().map_or(0, |t| t.0.as_second());
        p.operation
            .cmp(&q.operation)
            .then_with(|| seconds(p).cmp(&seconds(q)))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    out
}

/// The most update managers kube keeps before folding the oldest into `ancient-changes`.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager name the oldest update managers are merged into.
pub const ANCIENT_CHANGES_MANAGER: &str = "ancient-changes";

/// kube's `capManagersManager`: while there are more than [`MAX_UPDATE_MANAGERS`] update
/// managers, the oldest are merged, per API version, into an `ancient-changes` entry.
pub(crate) fn cap_update_managers(managers: &mut Managers) {
    let mut updaters: Vec<ManagerId> = managers
        .keys()
        .filter(|id| id.operation == Operation::Update)
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let seconds = |m: &Managers, id: &ManagerId| m[id].time.as_ref().map_or(0, |t| t.0.as_second());
    updaters.sort_by(|a, b| {
        seconds(managers, a)
            .cmp(&seconds(managers, b))
            .then_with(|| a.cmp(b))
    });
    let mut first_by_version: BTreeMap<String, ManagerId> = BTreeMap::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managers.get(&id).cloned() else {
            continue;
        };
        let bucket = ManagerId::new(
            ANCIENT_CHANGES_MANAGER,
            Operation::Update,
            &entry.api_version,
            None,
        );
        match first_by_version.get(&entry.api_version) {
            Some(first) => {
                if !managers.contains_key(&bucket)
                    && let Some(f) = managers.remove(first)
                {
                    managers.insert(bucket.clone(), f);
                }
                managers.remove(&id);
                if let Some(b) = managers.get_mut(&bucket) {
                    b.set = entry.set.union(&b.set);
                    b.time = entry.time.clone();
                    b.api_version = entry.api_version.clone();
                }
                length -= 1;
            }
            None => {
                first_by_version.insert(entry.api_version.clone(), id);
            }
        }
    }
}

/// The fields kube never records as managed (`stripMetaManager`): `apiVersion`, `kind`,
/// `metadata` itself and the server-owned or identifying metadata fields.
pub(crate) fn strip_set() -> FieldSet {
    let mut s = FieldSet::new();
    for p in [&["apiVersion"][..], &["kind"], &["metadata"]] {
        s.insert(&FieldPath::fields(p).0);
    }
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&FieldPath::fields(&["metadata", f]).0);
    }
    s
}

/// The longest manager name kube accepts.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The manager name kube-apiserver uses for a request: the `fieldManager` query parameter if
/// given, else the User-Agent up to its first `/` (`kubectl/v1.34.0 (linux/amd64)` → `kubectl`,
/// `kube/5.0.0` → `kube`), without non-printable characters and cut to 128 bytes.
///
/// kubectl itself always sends an explicit `fieldManager` (`kubectl-client-side-apply`,
/// `kubectl-create`, `kubectl-edit`, `kubectl-replace`, `kubectl-label`, `kubectl-annotate`,
/// `kubectl` for server-side apply), so the User-Agent rule mostly applies to other clients.
pub fn default_field_manager(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_owned();
    }
    let prefix = user_agent.unwrap_or("").split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// Validates an explicit `fieldManager` as kube-apiserver does; the error texts are kube's.
pub fn validate_field_manager(field_manager: &str) -> Result<(), &'static str> {
    if field_manager.len() > FIELD_MANAGER_MAX_LENGTH {
        return Err("fieldManager should be less than 128 characters");
    }
    if field_manager.chars().any(char::is_control) {
        return Err("fieldManager contains invalid characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(manager: &str, op: &str, secs: i64, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            api_version: Some("x.dev/v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            manager: Some(manager.into()),
            operation: Some(op.into()),
            subresource: None,
            time: Some(Time(jiff::Timestamp::from_second(secs).unwrap())),
        }
    }

    #[test]
    fn round_trips_and_sorts_like_kube() {
        let entries = vec![
            entry("b", "Update", 5, json!({"f:spec": {"f:b": {}}})),
            entry("z", "Apply", 9, json!({"f:spec": {"f:z": {}}})),
            entry("a", "Update", 5, json!({"f:spec": {"f:a": {}}})),
            entry("c", "Update", 1, json!({"f:spec": {"f:c": {}}})),
        ];
        let managers = decode(&entries).unwrap();
        let names: Vec<String> = encode(&managers)
            .into_iter()
            .map(|e| e.manager.unwrap())
            .collect();
        assert_eq!(names, vec!["z", "c", "a", "b"]);
    }

    #[test]
    fn rejects_bad_entries() {
        let mut e = entry("a", "Patch", 1, json!({}));
        assert!(matches!(
            decode(&[e.clone()]),
            Err(ManagedFieldsError::InvalidOperation { .. })
        ));
        e.operation = Some("Update".into());
        e.fields_type = Some("FieldsV2".into());
        assert!(matches!(
            decode(&[e.clone()]),
            Err(ManagedFieldsError::UnsupportedFieldsType(_))
        ));
        e.fields_type = Some("FieldsV1".into());
        e.fields_v1 = Some(FieldsV1(json!({"bad": {}})));
        assert!(matches!(
            decode(&[e.clone()]),
            Err(ManagedFieldsError::InvalidFields { .. })
        ));
        e.manager = None;
        assert!(matches!(
            decode(&[e]),
            Err(ManagedFieldsError::MissingManager { .. })
        ));
    }

    #[test]
    fn caps_update_managers_into_ancient_changes() {
        let entries: Vec<ManagedFieldsEntry> = (0..12)
            .map(|i| entry(&format!("m{i:02}"), "Update", i, json!({format!("f:f{i}"): {}})))
            .collect();
        let mut managers = decode(&entries).unwrap();
        cap_update_managers(&mut managers);
        let out = encode(&managers);
        assert_eq!(out.len(), 10);
        let ancient = out
            .iter()
            .find(|e| e.manager.as_deref() == Some(ANCIENT_CHANGES_MANAGER))
            .unwrap();
        assert_eq!(
            ancient.fields_v1.as_ref().unwrap().0,
            json!({"f:f0": {}, "f:f1": {}, "f:f2": {}})
        );
        assert_eq!(ancient.time.as_ref().unwrap().0.as_second(), 2);
    }

    #[test]
    fn manager_names() {
        assert_eq!(default_field_manager(Some("mine"), Some("kubectl/v1")), "mine");
        assert_eq!(
            default_field_manager(None, Some("kubectl/v1.34.0 (linux/amd64) kubernetes/abc")),
            "kubectl"
        );
        assert_eq!(default_field_manager(Some(""), Some("kube/5.0.0")), "kube");
        assert_eq!(default_field_manager(None, Some("a\u{7}b/1")), "ab");
        assert_eq!(default_field_manager(None, None), "");
        assert_eq!(default_field_manager(None, Some(&"x".repeat(200))).len(), 128);
        assert!(validate_field_manager("kubectl").is_ok());
        assert!(validate_field_manager(&"x".repeat(129)).is_err());
        let id = ManagerId::new(
            "kubectl-client-side-apply",
            Operation::Update,
            "test.ironnet.dev/v1",
            None,
        );
        assert_eq!(
            id.describe(),
            r#""kubectl-client-side-apply" using test.ironnet.dev/v1"#
        );
        let id = ManagerId::new("ctl", Operation::Apply, "v1", Some("status"));
        assert_eq!(id.describe(), r#""ctl" with subresource "status""#);
    }
}
