//! `meta.k8s.io/v1` Table and `PartialObjectMetadata` projections, from a kind's printer columns.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::definition::{PrinterColumn, ResourceDefinition};
use crate::jsonpath::JsonPath;
use crate::registry::RegisteredKind;
use crate::strategy::Strategy;

/// What each Table row carries in `object` (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// A `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter value; `None` for an unknown value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "None" => Some(IncludeObject::None),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// Renders `d` seconds like kubectl's `duration.HumanDuration` (`5s`, `3m2s`, `2d3h`, `4y`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// A compiled column: definition and parsed path.
#[derive(Clone, Debug)]
struct Column {
    def: PrinterColumn,
    path: Option<JsonPath>,
}

/// Converts objects of one kind to Table rows.
#[derive(Clone)]
pub struct TableConvertor {
    columns: Vec<Column>,
    /// The kind's strategy, asked for formatted cells before a column's JSONPath is evaluated.
    strategy: Option<Arc<dyn Strategy>>,
}

impl std::fmt::Debug for TableConvertor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableConvertor")
            .field("columns", &self.columns)
            .field("formatted", &self.strategy.is_some())
            .finish()
    }
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, \
     although some resources may allow a client to request the generation of an appropriate name automatically. \
     Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More \
     info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

impl TableConvertor {
    /// The convertor for `def`: `Name`, then the printer columns (or `Age` if there are none).
    /// Columns whose JSONPath does not parse render as empty cells.
    pub fn new(def: &ResourceDefinition) -> Self {
        let mut cols = def.printer_columns.clone();
        if cols.is_empty() {
            cols.push(PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                format: String::new(),
                description:
                    "CreationTimestamp is a timestamp representing the server time when this object was \
                              created."
                        .into(),
                priority: 0,
                json_path: ".metadata.creationTimestamp".into(),
            });
        }
        let columns = cols
            .into_iter()
            .map(|c| Column {
                path: JsonPath::parse(&c.json_path).ok(),
                def: c,
            })
            .collect();
        TableConvertor {
            columns,
            strategy: None,
        }
    }

    /// The convertor for a registered kind: like [`TableConvertor::new`], but cells come from the
    /// kind's [`Strategy::printer_cell`] where it formats them.
    pub fn for_kind(kind: &RegisteredKind) -> Self {
        TableConvertor {
            strategy: Some(Arc::clone(&kind.strategy)),
            ..Self::new(&kind.def)
        }
    }

    /// The `columnDefinitions` array.
    pub fn column_definitions(&self) -> Value {
        let mut defs = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0}),
        ];
        for c in &self.columns {
            defs.push(json!({
                "name": c.def.name, "type": c.def.type_, "format": c.def.format,
                "description": c.def.description, "priority": c.def.priority,
            }));
        }
        Value::Array(defs)
    }

    /// One row for `obj`, with ages computed against `now`.
    pub fn row(&self, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
        let mut cells = vec![Value::String(crate::meta::name(obj).to_owned())];
        for c in &self.columns {
            if let Some(formatted) = self.strategy.as_ref().and_then(|s| s.printer_cell(&c.def, obj)) {
                cells.push(formatted);
                continue;
            }
            let v = c.path.as_ref().and_then(|p| p.eval(obj).into_iter().next());
            cells.push(cell(&c.def.type_, v, now));
        }
        let mut row = json!({"cells": cells});
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => row["object"] = partial_object_metadata(obj),
            IncludeObject::Object => row["object"] = obj.clone(),
        }
        row
    }

    /// A Table of `objs`; `with_headers = false` omits column definitions (watch events after the first).
    pub fn table(
        &self,
        objs: &[Value],
        list_meta: Value,
        include: IncludeObject,
        with_headers: bool,
        now: Timestamp,
    ) -> Value {
        let rows: Vec<Value> = objs.iter().map(|o| self.row(o, include, now)).collect();
        let columns = if with_headers {
            self.column_definitions()
        } else {
            Value::Array(Vec::new())
        };
        // Field order of kube-apiserver's `metav1.Table`, so the JSON is byte-for-byte the same.
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows})
    }
}

/// Converts a JSON value to a cell of the column's type, like kube-apiserver's CRD table convertor.
fn cell(type_: &str, v: Option<&Value>, now: Timestamp) -> Value {
    let Some(v) = v else { return Value::Null };
    match type_ {
        "date" => match v.as_str().and_then(|s| s.parse::<Timestamp>().ok()) {
            Some(t) => Value::String(human_duration(now.duration_since(t).as_secs())),
            None => Value::Null,
        },
        "integer" => v.as_i64().map(Value::from).unwrap_or(Value::Null),
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        "string" => match v {
            Value::String(_) => v.clone(),
            Value::Object(_) | Value::Array(_) => Value::String(v.to_string()),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        },
        _ => match v {
            Value::Object(_) | Value::Array(_) => Value::String(v.to_string()),
            other => other.clone(),
        },
    }
}

/// `PartialObjectMetadata` of `obj`.
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Scope;

    #[test]
    fn human_durations_match_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(3 * 60 + 2), "3m2s");
        assert_eq!(human_duration(5 * 60), "5m");
        assert_eq!(human_duration(45 * 60), "45m");
        assert_eq!(human_duration(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(2 * 86400 + 3 * 3600), "2d3h");
        assert_eq!(human_duration(30 * 86400), "30d");
        assert_eq!(human_duration(4 * 365 * 86400), "4y");
        assert_eq!(human_duration(3 * 365 * 86400 + 86400), "3y1d");
        assert_eq!(human_duration(10 * 365 * 86400), "10y");
        assert_eq!(human_duration(-1), "0s");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    /// Formats `Size` only, leaving the other columns to their JSONPath.
    struct Sized;

    impl Strategy for Sized {
        fn printer_cell(&self, column: &PrinterColumn, obj: &Value) -> Option<Value> {
            (column.name == "Size").then(|| match obj.pointer("/spec/size") {
                Some(v) => json!(format!("{v} units")),
                None => json!("<none>"),
            })
        }
    }

    #[test]
    fn a_kinds_strategy_formats_the_cells_it_knows() {
        let mut def = ResourceDefinition::new("g", "v1", "W", "ws", Scope::Namespaced).unwrap();
        def.printer_columns = vec![
            PrinterColumn {
                name: "Size".into(),
                type_: "integer".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: ".spec.size".into(),
            },
            PrinterColumn {
                name: "Color".into(),
                type_: "string".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: ".spec.color".into(),
            },
        ];
        let kind = RegisteredKind {
            def: def.clone(),
            strategy: Arc::new(Sized),
        };
        let now: Timestamp = "2026-11-23T19:00:00Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "a"}, "spec": {"size": 3, "color": "red"}});
        let bare = json!({"metadata": {"name": "b"}, "spec": {}});
        let t = TableConvertor::for_kind(&kind);
        assert_eq!(
            t.row(&obj, IncludeObject::None, now),
            json!({"cells": ["a", "3 units", "red"]})
        );
        assert_eq!(
            t.row(&bare, IncludeObject::None, now),
            json!({"cells": ["b", "<none>", null]})
        );
        // Without the kind's strategy the same definition renders plain values.
        assert_eq!(
            TableConvertor::new(&def).row(&obj, IncludeObject::None, now),
            json!({"cells": ["a", 3, "red"]})
        );
        let table = t.table(
            &[obj],
            json!({"resourceVersion": "7"}),
            IncludeObject::None,
            false,
            now,
        );
        let keys: Vec<&String> = table.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["kind", "apiVersion", "metadata", "columnDefinitions", "rows"],
            "metav1.Table field order"
        );
    }

    #[test]
    fn rows_from_printer_columns() {
        let mut def = ResourceDefinition::new("g", "v1", "W", "ws", Scope::Namespaced).unwrap();
        def.printer_columns = vec![
            PrinterColumn {
                name: "Size".into(),
                type_: "integer".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: ".spec.size".into(),
            },
            PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                format: String::new(),
                description: String::new(),
                priority: 1,
                json_path: ".metadata.creationTimestamp".into(),
            },
        ];
        let t = TableConvertor::new(&def);
        let now: Timestamp = "2026-11-23T19:03:02Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": "2026-11-23T19:00:00Z"}, "spec": {"size": 3}});
        let row = t.row(&obj, IncludeObject::Metadata, now);
        assert_eq!(row["cells"], json!(["a", 3, "3m2s"]));
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
        let table = t.table(
            &[obj],
            json!({"resourceVersion": "7"}),
            IncludeObject::None,
            true,
            now,
        );
        assert_eq!(table["columnDefinitions"][2]["priority"], 1);
        assert_eq!(table["columnDefinitions"][0]["format"], "name");
        assert!(table["rows"][0].get("object").is_none());
    }
}
