//! Field paths and field validation errors, as in `k8s.io/apimachinery/pkg/util/validation/field`.
//!
//! A [`FieldError`] renders as `spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535`
//! and maps to a `StatusCause { reason: "FieldValueInvalid", field: "spec.ports[0].port", message }`.

use std::fmt;

use serde_json::Value;

/// A path to a field inside an object, e.g. `spec.ports[0].port` or `metadata.labels[app]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(String);

impl Path {
    /// A root path with one field name, e.g. `Path::new("spec")`.
    pub fn new(name: &str) -> Self {
        Path(name.to_owned())
    }

    /// The path of a child field: `spec` → `spec.ports`.
    #[must_use]
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Path(name.to_owned())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// The path of a list element: `spec.ports` → `spec.ports[3]`.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        Path(format!("{}[{index}]", self.0))
    }

    /// The path of a map entry: `metadata.labels` → `metadata.labels[app]`.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        Path(format!("{}[{key}]", self.0))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of a field error; determines the `StatusCause.reason` and the message prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// A referenced value does not exist.
    NotFound,
    /// A required value is missing.
    Required,
    /// A value that must be unique is repeated.
    Duplicate,
    /// A value is malformed or out of range.
    Invalid,
    /// A value is not one of the supported enum values.
    NotSupported,
    /// A value is valid but not allowed here (e.g. changing an immutable field).
    Forbidden,
    /// A value is too long.
    TooLong,
    /// A list has too many items.
    TooMany,
    /// The server failed while validating.
    Internal,
    /// A value has the wrong JSON type.
    TypeInvalid,
}

impl ErrorType {
    /// The `StatusCause.reason` kube-apiserver uses for this type.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human-readable prefix of the message, e.g. `Invalid value`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
            ErrorType::TypeInvalid => "Invalid value",
        }
    }

    /// Whether the bad value is omitted from the message (as kube-apiserver does).
    fn omits_value(self) -> bool {
        matches!(
            self,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
        )
    }
}

/// One validation failure of one field.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub error_type: ErrorType,
    /// Where: the field path, e.g. `spec.ports[0].port`.
    pub field: String,
    /// The offending value, when there is one to show.
    pub bad_value: Option<Value>,
    /// Why, in words; may be empty.
    pub detail: String,
}

impl FieldError {
    fn new(error_type: ErrorType, path: &Path, bad_value: Option<Value>, detail: impl Into<String>) -> Self {
        FieldError {
            error_type,
            field: path.0.clone(),
            bad_value,
            detail: detail.into(),
        }
    }

    /// The field is missing.
    pub fn required(path: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Required, path, None, detail)
    }

    /// The value is malformed or out of range.
    pub fn invalid(path: &Path, value: impl Into<Value>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, path, Some(value.into()), detail)
    }

    /// The value is not one of `supported`.
    pub fn not_supported(path: &Path, value: impl Into<Value>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorType::NotSupported, path, Some(value.into()), detail)
    }

    /// The value is not allowed here (e.g. an immutable field changed).
    pub fn forbidden(path: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, path, None, detail)
    }

    /// The value repeats one that must be unique.
    pub fn duplicate(path: &Path, value: impl Into<Value>) -> Self {
        Self::new(ErrorType::Duplicate, path, Some(value.into()), "")
    }

    /// A referenced value does not exist.
    pub fn not_found(path: &Path, value: impl Into<Value>) -> Self {
        Self::new(ErrorType::NotFound, path, Some(value.into()), "")
    }

    /// The string is longer than `max` bytes.
    pub fn too_long(path: &Path, max: usize) -> Self {
        Self::new(
            ErrorType::TooLong,
            path,
            None,
            format!("may not be more than {max} bytes"),
        )
    }

    /// The list has `actual` items, more than `max`.
    pub fn too_many(path: &Path, actual: usize, max: usize) -> Self {
        Self::new(
            ErrorType::TooMany,
            path,
            Some(Value::from(actual)),
            format!("must have at most {max} items"),
        )
    }

    /// The value has the wrong JSON type.
    pub fn type_invalid(path: &Path, value: impl Into<Value>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::TypeInvalid, path, Some(value.into()), detail)
    }

    /// Validation itself failed.
    pub fn internal(path: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, path, None, detail)
    }

    /// The message without the field path, e.g. `Invalid value: "x": must be a valid IP`.
    pub fn body(&self) -> String {
        let mut s = self.error_type.label().to_owned();
        if !self.error_type.omits_value()
            && let Some(value) = &self.bad_value
        {
            s.push_str(": ");
            s.push_str(&render_value(value));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

/// Renders a bad value the way kube-apiserver does: strings quoted, numbers and booleans bare,
/// `null` as `null`, composite values as compact JSON.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

impl std::error::Error for FieldError {}

/// A list of field errors; empty means valid.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorList(pub Vec<FieldError>);

impl ErrorList {
    /// An empty list.
    pub fn new() -> Self {
        ErrorList(Vec::new())
    }

    /// Adds one error.
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Appends every error of `other`.
    pub fn extend(&mut self, other: ErrorList) {
        self.0.extend(other.0);
    }

    /// Whether there are no errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    /// `Ok(())` if empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), ErrorList> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<FieldError> for ErrorList {
    fn from(error: FieldError) -> Self {
        ErrorList(vec![error])
    }
}

impl IntoIterator for ErrorList {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for ErrorList {
    /// Like kube-apiserver's aggregate: one error bare, several as `[a, b]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("[")?;
                for (i, e) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl std::error::Error for ErrorList {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_kubernetes() {
        let p = Path::new("spec").child("ports").index(2).child("port");
        assert_eq!(p.as_str(), "spec.ports[2].port");
        assert_eq!(
            Path::new("metadata").child("labels").key("app").as_str(),
            "metadata.labels[app]"
        );
        assert_eq!(Path::default().child("spec").as_str(), "spec");
    }

    #[test]
    fn messages_match_kube_apiserver() {
        let p = Path::new("spec").child("id");
        assert_eq!(
            FieldError::invalid(&p, "abc", "must be a number").to_string(),
            r#"spec.id: Invalid value: "abc": must be a number"#
        );
        assert_eq!(
            FieldError::invalid(&p, 7, "").to_string(),
            "spec.id: Invalid value: 7"
        );
        assert_eq!(
            FieldError::required(&p, "").to_string(),
            "spec.id: Required value"
        );
        assert_eq!(
            FieldError::forbidden(&p, "field is immutable").to_string(),
            "spec.id: Forbidden: field is immutable"
        );
        assert_eq!(
            FieldError::not_supported(&p, "Foo", &["Public", "Internal"]).to_string(),
            r#"spec.id: Unsupported value: "Foo": supported values: "Public", "Internal""#
        );
        assert_eq!(
            FieldError::duplicate(&p, "x").to_string(),
            r#"spec.id: Duplicate value: "x""#
        );
        assert_eq!(
            FieldError::too_long(&p, 63).to_string(),
            "spec.id: Too long: may not be more than 63 bytes"
        );
        assert_eq!(
            FieldError::too_many(&p, 20, 15).to_string(),
            "spec.id: Too many: 20: must have at most 15 items"
        );
        assert_eq!(
            FieldError::required(&p, "").error_type.reason(),
            "FieldValueRequired"
        );
    }

    #[test]
    fn lists_aggregate_like_kube_apiserver() {
        let p = Path::new("spec");
        let mut l = ErrorList::new();
        assert!(l.clone().into_result().is_ok());
        l.push(FieldError::required(&p.child("a"), ""));
        assert_eq!(l.to_string(), "spec.a: Required value");
        l.push(FieldError::required(&p.child("b"), ""));
        assert_eq!(l.to_string(), "[spec.a: Required value, spec.b: Required value]");
        assert_eq!(l.len(), 2);
    }
}
