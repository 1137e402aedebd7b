//! Helpers shared by the integration tests: run objects through the dynamic descriptors like the API server.

#![allow(dead_code)]

use ironnet_api::{KindDescriptor, kinds};
use ironnet_apimachinery::field::ErrorList;
use serde_json::Value;

/// The descriptor of `group`/`kind`; panics (test failure) if it is missing.
pub fn descriptor(group: &str, kind: &str) -> KindDescriptor {
    kinds()
        .into_iter()
        .find(|d| d.group() == group && d.kind() == kind)
        .unwrap_or_else(|| panic!("no descriptor for {kind}.{group}"))
}

/// Defaults (when the object decodes) and validates a new object, as the API server does on create.
pub fn create_errors(d: &KindDescriptor, mut obj: Value) -> ErrorList {
    if let Err(errs) = (d.default)(&mut obj) {
        return errs;
    }
    (d.validate_create)(&obj)
}

/// Defaults both objects and validates `new` as an update of `old`.
pub fn update_errors(d: &KindDescriptor, mut new: Value, mut old: Value) -> ErrorList {
    (d.default)(&mut old).expect("old object decodes");
    if let Err(errs) = (d.default)(&mut new) {
        return errs;
    }
    (d.validate_update)(&new, &old)
}

/// The rendered messages of an error list.
pub fn rendered(errs: &ErrorList) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// Asserts that `errs` contains an error rendering exactly as `expected`.
pub fn assert_contains(errs: &ErrorList, expected: &str, case: &str) {
    let all = rendered(errs);
    assert!(
        all.iter().any(|e| e == expected),
        "case {case:?}: expected error\n  {expected}\nnot among\n  {}",
        all.join("\n  ")
    );
}

/// Asserts that no error is reported at exactly `field`.
pub fn assert_no_error_at(errs: &ErrorList, field: &str, case: &str) {
    let at: Vec<String> = errs
        .iter()
        .filter(|e| e.field == field)
        .map(ToString::to_string)
        .collect();
    assert!(
        at.is_empty(),
        "case {case:?}: unexpected errors at {field}: {at:?}"
    );
}

/// kube's DNS-1123 subdomain message for `value`.
pub fn subdomain_msg(field: &str, value: &str) -> String {
    format!(
        "{field}: Invalid value: {value:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
}

/// kube's DNS-1123 label message for `value`.
pub fn label_msg(field: &str, value: &str) -> String {
    format!(
        "{field}: Invalid value: {value:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    )
}

/// A table case: a name, an object, and errors it must produce (rendered exactly).
pub struct Case {
    /// What the case checks.
    pub name: &'static str,
    /// The object to create.
    pub object: Value,
    /// Errors that must be among the result.
    pub expected: Vec<String>,
}

/// Runs create cases against one kind.
pub fn run_create_cases(group: &str, kind: &str, cases: Vec<Case>) {
    let d = descriptor(group, kind);
    for case in cases {
        let errs = create_errors(&d, case.object.clone());
        assert!(!errs.is_empty(), "case {:?}: object was accepted", case.name);
        for e in &case.expected {
            assert_contains(&errs, e, case.name);
        }
    }
}

/// Asserts a valid object is accepted.
pub fn assert_valid(group: &str, kind: &str, object: Value) {
    let d = descriptor(group, kind);
    let errs = create_errors(&d, object);
    assert!(
        errs.is_empty(),
        "{kind}: unexpected errors: {:?}",
        rendered(&errs)
    );
}
