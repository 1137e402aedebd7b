//! Validation building blocks shared by every kind: name syntax, object metadata, label selectors,
//! enums and immutability, all producing kube-apiserver's exact field errors.

pub mod meta;
pub mod names;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use serde::Serialize;

pub use meta::{NameRule, selector_matches, validate_label_selector, validate_labels, validate_object_meta};

/// Detail text kube uses for a changed immutable field.
pub const FIELD_IS_IMMUTABLE: &str = "field is immutable";

/// Pushes one `Invalid` error at `path` per message of a name check.
pub(crate) fn push_name_errors(errs: &mut ErrorList, path: &Path, value: &str, messages: Vec<String>) {
    for msg in messages {
        errs.push(FieldError::invalid(path, value, msg));
    }
}

/// `Invalid` errors when `value` is not a DNS-1123 subdomain.
pub fn subdomain(path: &Path, value: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    push_name_errors(&mut errs, path, value, names::dns1123_subdomain(value));
    errs
}

/// `Invalid` errors when `value` is not a DNS-1123 label.
pub fn label(path: &Path, value: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    push_name_errors(&mut errs, path, value, names::dns1123_label(value));
    errs
}

/// `Forbidden: field is immutable` at `path` when `new != old` (the ironcore `ValidateImmutableField` form).
pub fn immutable<T: PartialEq>(new: &T, old: &T, path: &Path) -> ErrorList {
    if new == old {
        ErrorList::new()
    } else {
        FieldError::forbidden(path, FIELD_IS_IMMUTABLE).into()
    }
}

/// `Forbidden: field is immutable` at `path` with a short diff, when the serialised forms differ
/// (the ironcore `ValidateImmutableFieldWithDiff` form used for whole-spec immutability).
pub fn immutable_with_diff<T: Serialize>(new: &T, old: &T, path: &Path) -> ErrorList {
    let (n, o) = (serde_json::to_value(new).ok(), serde_json::to_value(old).ok());
    if n == o {
        return ErrorList::new();
    }
    let render = |v: Option<serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_default();
    FieldError::forbidden(
        path,
        format!("{FIELD_IS_IMMUTABLE}\n- {}\n+ {}", render(o), render(n)),
    )
    .into()
}

/// `Required` at `path` with `detail` when an enum value is absent (upstream `ValidateEnum` for empty values).
pub fn required_enum<T>(value: &Option<T>, path: &Path, detail: &str) -> ErrorList {
    if value.is_none() {
        FieldError::required(path, detail).into()
    } else {
        ErrorList::new()
    }
}

/// Detail of the error for a spec change sent to a `/status` subresource.
pub const SPEC_CHANGED_ON_STATUS: &str = "may not be changed through the status subresource";

/// Forbidden on `spec` when a `/status` update changed the spec. The server resets the spec from the stored
/// object before validating (see [`crate::kind::prepare_for_status_update`]), so this fires only when it did not.
pub fn spec_unchanged_on_status<T: PartialEq>(new: &T, old: &T) -> ErrorList {
    if new == old {
        ErrorList::new()
    } else {
        FieldError::forbidden(&Path::new("spec"), SPEC_CHANGED_ON_STATUS).into()
    }
}
