//! Types shared by the three API groups: addresses, references, selectors and small enums.

mod ip;

pub use ip::{IP, IPFamily, IPPrefix, ParseError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to an object by name in the same namespace (`corev1.LocalObjectReference`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the referent.
    #[serde(default)]
    pub name: String,
}

impl LocalObjectReference {
    /// A reference to `name`.
    pub fn new(name: impl Into<String>) -> Self {
        LocalObjectReference { name: name.into() }
    }
}

/// A reference to an object by name and UID in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LocalUIDReference {
    /// Name of the referent.
    #[serde(default)]
    pub name: String,
    /// UID of the referent.
    #[serde(default)]
    pub uid: String,
}

/// A transport protocol (`corev1.Protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// The wire string (`TCP`, `UDP`, `SCTP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// Selects objects of one kind by labels: `kind` plus the inlined fields of a label selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectSelector {
    /// Kind of the objects to select, e.g. `NetworkInterface`.
    #[serde(default)]
    pub kind: String,
    /// The label selector (`matchLabels`, `matchExpressions`), inlined.
    #[serde(flatten)]
    pub selector: LabelSelector,
}

/// The status of a condition (`corev1.ConditionStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known whether the condition holds.
    Unknown,
}

/// Renders a label selector like `metav1.FormatLabelSelector` (`app=db,tier in (a,b)`); `<none>` when empty.
pub fn format_label_selector(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return "<none>".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(labels) = &selector.match_labels {
        for (k, v) in labels {
            parts.push(format!("{k}={v}"));
        }
    }
    if let Some(exprs) = &selector.match_expressions {
        for e in exprs {
            let values = e.values.clone().unwrap_or_default().join(",");
            parts.push(match e.operator.as_str() {
                "In" => format!("{} in ({values})", e.key),
                "NotIn" => format!("{} notin ({values})", e.key),
                "Exists" => e.key.clone(),
                "DoesNotExist" => format!("!{}", e.key),
                other => format!("{} {other} ({values})", e.key),
            });
        }
    }
    if parts.is_empty() {
        "<none>".to_owned()
    } else {
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::selector_matches;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    fn selector() -> LabelSelector {
        LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_owned(), "db".to_owned())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        }
    }

    #[test]
    fn formats_like_kubectl() {
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&LabelSelector::default())), "<none>");
        assert_eq!(
            format_label_selector(Some(&selector())),
            "app=db,tier in (a,b),!legacy"
        );
    }

    #[test]
    fn selectors_match_labels() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let s = selector();
        assert!(selector_matches(&s, &labels(&[("app", "db"), ("tier", "a")])));
        assert!(!selector_matches(&s, &labels(&[("app", "db"), ("tier", "c")])));
        assert!(!selector_matches(
            &s,
            &labels(&[("app", "db"), ("tier", "a"), ("legacy", "")])
        ));
        assert!(!selector_matches(&s, &labels(&[("tier", "a")])));
        assert!(
            selector_matches(&LabelSelector::default(), &labels(&[])),
            "{{}} matches everything"
        );
    }
}
