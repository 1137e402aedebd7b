//! Label selector evaluation with Kubernetes' nil-versus-empty semantics.
//!
//! A `None` selector selects nothing; `Some({})` selects everything. Invalid selectors (an unknown operator,
//! `In` without values, `Exists` with values) are an error rather than silently matching nothing, so a
//! reconciler can report them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

/// A label selector could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid label selector: {0}")]
pub struct SelectorError(pub String);

/// A compiled label selector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelMatcher {
    /// `None` matches nothing (a nil selector).
    inner: Option<Selector>,
}

impl LabelMatcher {
    /// Compiles `selector`; `None` yields a matcher that selects nothing.
    ///
    /// Errors when an expression is malformed (unknown operator, `In`/`NotIn` without values,
    /// `Exists`/`DoesNotExist` with values).
    pub fn new(selector: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(selector) = selector else {
            return Ok(LabelMatcher { inner: None });
        };
        for req in selector.match_expressions.iter().flatten() {
            let n = req.values.as_ref().map_or(0, Vec::len);
            let ok = match req.operator.as_str() {
                "In" | "NotIn" => n > 0,
                "Exists" | "DoesNotExist" => n == 0,
                _ => false,
            };
            if !ok {
                return Err(SelectorError(format!(
                    "operator {:?} on key {:?} with {n} values",
                    req.operator, req.key
                )));
            }
        }
        let compiled = Selector::try_from(selector.clone()).map_err(|e| SelectorError(e.to_string()))?;
        Ok(LabelMatcher {
            inner: Some(compiled),
        })
    }

    /// A matcher that selects every label set (`{}`).
    pub fn everything() -> Self {
        LabelMatcher {
            inner: Some(Selector::default()),
        }
    }

    /// A matcher that selects exactly the label sets containing all of `labels`.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        LabelMatcher {
            inner: Some(labels.clone().into_iter().collect()),
        }
    }

    /// Whether `labels` are selected. A nil selector selects nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.inner.as_ref().is_some_and(|s| s.matches(labels))
    }

    /// Whether this is a nil selector (selects nothing).
    pub fn is_nothing(&self) -> bool {
        self.inner.is_none()
    }
}

/// Builds a label map from `(key, value)` pairs (test and fixture helper).
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| v.to_string()).collect())
            },
        }
    }

    #[test]
    fn nil_selects_nothing_and_empty_selects_everything() {
        let nil = LabelMatcher::new(None).unwrap();
        assert!(nil.is_nothing());
        assert!(!nil.matches(&labels([])));
        let empty = LabelMatcher::new(Some(&LabelSelector::default())).unwrap();
        assert!(empty.matches(&labels([])));
        assert!(empty.matches(&labels([("a", "b")])));
        assert!(LabelMatcher::everything().matches(&labels([("x", "y")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let sel = LabelSelector {
            match_labels: Some(labels([("app", "web")])),
            match_expressions: Some(vec![
                req("tier", "In", &["a", "b"]),
                req("old", "DoesNotExist", &[]),
            ]),
        };
        let m = LabelMatcher::new(Some(&sel)).unwrap();
        assert!(m.matches(&labels([("app", "web"), ("tier", "a")])));
        assert!(!m.matches(&labels([("app", "web"), ("tier", "c")])));
        assert!(!m.matches(&labels([("app", "web"), ("tier", "a"), ("old", "")])));
        assert!(!m.matches(&labels([("tier", "a")])));
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for bad in [
            req("k", "In", &[]),
            req("k", "Exists", &["v"]),
            req("k", "Gt", &["1"]),
        ] {
            let sel = LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![bad]),
            };
            assert!(LabelMatcher::new(Some(&sel)).is_err());
        }
    }

    #[test]
    fn from_labels_requires_every_pair() {
        let m = LabelMatcher::from_labels(&labels([("a", "1"), ("b", "2")]));
        assert!(m.matches(&labels([("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!m.matches(&labels([("a", "1")])));
    }
}
