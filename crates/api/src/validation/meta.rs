//! Object metadata and label-selector validation, as kube-apiserver's `ValidateObjectMeta` and
//! `ValidateLabelSelector`.

use std::collections::BTreeMap;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::names;

/// Maximum total size of all annotation keys and values (256 KiB), as kube-apiserver.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// How a kind's `metadata.name` is checked.
#[derive(Clone, Copy, Debug)]
pub enum NameRule {
    /// A DNS-1123 label (at most 63 characters, no dots).
    Label,
    /// A DNS-1123 subdomain (at most 253 characters).
    Subdomain,
    /// A kind-specific rule returning the failure messages.
    Custom(fn(&str) -> Vec<String>),
}

impl NameRule {
    /// Checks `name`; `prefix` is true for `generateName`, whose trailing `-` is ignored as kube does.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let name = if prefix {
            name.strip_suffix('-').unwrap_or(name)
        } else {
            name
        };
        match self {
            NameRule::Label => names::dns1123_label(name),
            NameRule::Subdomain => names::dns1123_subdomain(name),
            NameRule::Custom(f) => f(name),
        }
    }
}

/// Validates `metadata` of a new object: name (or generateName) by `rule`, namespace required when
/// `namespaced` and forbidden otherwise, labels and annotations.
pub fn validate_object_meta(meta: &ObjectMeta, namespaced: bool, rule: NameRule) -> ErrorList {
    let path = Path::new("metadata");
    let mut errs = ErrorList::new();
    if let Some(generate_name) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        for msg in rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                &path.child("generateName"),
                generate_name,
                msg,
            ));
        }
    }
    match meta.name.as_deref() {
        None | Some("") => {
            if meta.generate_name.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(
                    &path.child("name"),
                    "name or generateName is required",
                ));
            }
        }
        Some(name) => {
            for msg in rule.check(name, false) {
                errs.push(FieldError::invalid(&path.child("name"), name, msg));
            }
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in names::dns1123_label(namespace) {
                errs.push(FieldError::invalid(&path.child("namespace"), namespace, msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errs.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs
}

/// Validates `metadata` on update: the create rules for the new object, plus name and namespace unchanged.
pub fn validate_object_meta_update(
    new: &ObjectMeta,
    old: &ObjectMeta,
    namespaced: bool,
    rule: NameRule,
) -> ErrorList {
    let path = Path::new("metadata");
    let mut errs = validate_object_meta(new, namespaced, rule);
    if new.name != old.name {
        errs.push(FieldError::invalid(
            &path.child("name"),
            new.name.clone().unwrap_or_default(),
            "field is immutable",
        ));
    }
    if new.namespace != old.namespace {
        errs.push(FieldError::invalid(
            &path.child("namespace"),
            new.namespace.clone().unwrap_or_default(),
            "field is immutable",
        ));
    }
    errs
}

/// Validates label keys (qualified names) and values, reporting at `path` as kube does.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in labels.into_iter().flatten() {
        for msg in names::qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        for msg in names::label_value(v) {
            errs.push(FieldError::invalid(path, v.as_str(), msg));
        }
    }
    errs
}

/// Validates annotation keys (qualified names, checked lower-cased) and the total size limit.
pub fn validate_annotations(annotations: Option<&BTreeMap<String, String>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut total = 0usize;
    for (k, v) in annotations.into_iter().flatten() {
        for msg in names::qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Validates a label selector: `matchLabels` as labels, each `matchExpressions` entry's key, operator and values.
pub fn validate_label_selector(selector: &LabelSelector, path: &Path) -> ErrorList {
    let mut errs = validate_labels(selector.match_labels.as_ref(), &path.child("matchLabels"));
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                &p.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        for msg in names::qualified_name(&req.key) {
            errs.push(FieldError::invalid(&p.child("key"), req.key.as_str(), msg));
        }
        for (j, v) in values.iter().enumerate() {
            for msg in names::label_value(v) {
                errs.push(FieldError::invalid(&p.child("values").index(j), v.as_str(), msg));
            }
        }
    }
    errs
}

/// Whether `selector` matches `labels` (`matchLabels` and every `matchExpressions` requirement).
/// A selector with an unknown operator matches nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let value = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}
