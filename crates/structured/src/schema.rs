//! The structural schema of an object, built from an OpenAPI v3 schema as kube-derive/schemars
//! emit it for a CustomResourceDefinition.
//!
//! Only what structural operations need is kept: the shape (object fields, map values, list
//! items), JSON types, nullability, and the merge semantics of lists and maps
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`,
//! `x-kubernetes-preserve-unknown-fields`). The top-level `metadata` always has `ObjectMeta`'s
//! shape, whatever the CRD says, because that is how kube-apiserver treats it.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

/// Index of a node in a [`Schema`]'s arena (nodes refer to each other by index so that recursive
/// `$ref`s terminate).
pub(crate) type NodeId = usize;

/// The node that accepts anything, with structured-merge-diff's "deduced" semantics: objects are
/// granular maps of deduced values, lists are atomic.
pub(crate) const ANY: NodeId = 0;

/// Why an OpenAPI schema was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    /// The top-level schema does not describe an object.
    #[error("the top-level schema must be of type object")]
    RootNotObject,
    /// A schema is neither an object nor a boolean.
    #[error("{at}: schema must be an object or a boolean")]
    NotASchema {
        /// JSON-pointer-like location of the bad schema.
        at: String,
    },
    /// A `$ref` does not point into the document.
    #[error("{at}: unresolvable $ref {reference:?}")]
    UnresolvedRef {
        /// Where the reference is.
        at: String,
        /// The reference.
        reference: String,
    },
    /// `$ref`s or `allOf`s nest deeper than any real schema does (most likely a reference cycle).
    #[error("{at}: $ref/allOf nesting too deep")]
    TooDeep {
        /// Where the nesting started.
        at: String,
    },
    /// An `x-kubernetes-*` extension or `type` has a value Kubernetes does not accept.
    #[error("{at}: invalid {extension}: {reason}")]
    InvalidExtension {
        /// Where.
        at: String,
        /// Which keyword.
        extension: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The JSON scalar types a scalar node accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScalarTypes {
    pub string: bool,
    pub integer: bool,
    pub number: bool,
    pub boolean: bool,
}

impl ScalarTypes {
    fn union(self, o: ScalarTypes) -> ScalarTypes {
        ScalarTypes {
            string: self.string || o.string,
            integer: self.integer || o.integer,
            number: self.number || o.number,
            boolean: self.boolean || o.boolean,
        }
    }
}

/// How the elements of a list are identified when merging.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ListType {
    /// The list is replaced as a whole.
    Atomic,
    /// Scalar elements identified by value.
    Set,
    /// Object elements identified by these key fields.
    Map(Vec<String>),
}

/// An object node: struct fields, map values, or both.
#[derive(Clone, Debug, Default)]
pub(crate) struct ObjectNode {
    pub fields: BTreeMap<String, NodeId>,
    /// `default` values of fields, used for map-list keys an element omits.
    pub defaults: BTreeMap<String, Value>,
    pub additional: Option<NodeId>,
    pub preserve_unknown: bool,
    pub atomic: bool,
}

/// A list node.
#[derive(Clone, Debug)]
pub(crate) struct ListNode {
    pub items: NodeId,
    pub list_type: ListType,
}

/// The shape of a node.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// The same shape as another node (a nullable use of a shared, possibly recursive, `$ref`).
    Alias(NodeId),
    Any,
    Scalar(ScalarTypes),
    Object(ObjectNode),
    List(ListNode),
}

/// A schema node.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub nullable: bool,
}

/// A structural schema, ready for pruning, validation, merging and field-set extraction.
#[derive(Clone, Debug)]
pub struct Schema {
    nodes: Vec<Node>,
    root: NodeId,
}

/// `ObjectMeta`'s shape with its merge semantics (granular labels/annotations, finalizers a set,
/// ownerReferences a map keyed by uid, managedFields atomic).
static OBJECT_META: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "generateName": {"type": "string"},
            "namespace": {"type": "string"},
            "selfLink": {"type": "string"},
            "uid": {"type": "string"},
            "resourceVersion": {"type": "string"},
            "generation": {"type": "integer"},
            "creationTimestamp": {"type": "string", "nullable": true},
            "deletionTimestamp": {"type": "string", "nullable": true},
            "deletionGracePeriodSeconds": {"type": "integer"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "ownerReferences": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["uid"],
                "items": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "uid": {"type": "string"},
                        "controller": {"type": "boolean"},
                        "blockOwnerDeletion": {"type": "boolean"}
                    }
                }
            },
            "finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "managedFields": {
                "type": "array",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        }
    })
});

impl Schema {
    /// Builds the schema of a top-level object from an OpenAPI v3 schema; `$ref`s resolve
    /// against `schema` itself (e.g. `#/definitions/...`, `#/$defs/...`).
    ///
    /// Errors if the schema is not an object schema or is malformed (see [`SchemaError`]).
    pub fn from_openapi(schema: &Value) -> Result<Schema, SchemaError> {
        Self::from_openapi_in(schema, schema)
    }

    /// Like [`Schema::from_openapi`], but `$ref`s resolve against `document` (e.g. a whole
    /// OpenAPI document with `#/components/schemas/...`).
    pub fn from_openapi_in(schema: &Value, document: &Value) -> Result<Schema, SchemaError> {
        let mut b = Builder {
            document,
            nodes: vec![Node {
                kind: Kind::Any,
                nullable: true,
            }],
            refs: HashMap::new(),
            depth: 0,
        };
        let root = b.build_id(schema, "#")?;
        let meta = b.build_id(&OBJECT_META, "metadata")?;
        let string = b.alloc(Node {
            kind: Kind::Scalar(ScalarTypes {
                string: true,
                ..Default::default()
            }),
            nullable: false,
        });
        match &mut b.nodes[root].kind {
            Kind::Object(obj) => {
                obj.fields.insert("apiVersion".into(), string);
                obj.fields.insert("kind".into(), string);
                obj.fields.insert("metadata".into(), meta);
            }
            _ => return Err(SchemaError::RootNotObject),
        }
        Ok(Schema { nodes: b.nodes, root })
    }

    /// The schema of an object whose content is not described: every field is kept and merged
    /// with structured-merge-diff's deduced semantics; `metadata` still follows `ObjectMeta`.
    pub fn untyped() -> Schema {
        let doc = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        // The literal above is a valid object schema, so this cannot fail.
        Schema::from_openapi(&doc).unwrap_or_else(|_| unreachable_schema())
    }

    pub(crate) fn root(&self) -> NodeId {
        self.root
    }

    /// The node `id` describes, with aliases followed.
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        let mut id = id;
        // Aliases only ever point at nodes built from a pure `$ref`, never at other aliases, but
        // bound the walk anyway.
        for _ in 0..8 {
            match self.nodes[id].kind {
                Kind::Alias(target) => id = target,
                _ => break,
            }
        }
        &self.nodes[id]
    }

    /// Whether `null` is a valid value for node `id` (the alias itself or its target says so).
    #[cfg(test)]
    pub(crate) fn is_nullable(&self, id: NodeId) -> bool {
        self.nodes[id].nullable || self.node(id).nullable
    }

    /// The node for field `name` of object node `obj`: the declared property, else the
    /// `additionalProperties` schema, else [`ANY`] if unknown fields are preserved.
    pub(crate) fn field_of(&self, obj: &ObjectNode, name: &str) -> Option<NodeId> {
        obj.fields
            .get(name)
            .copied()
            .or(obj.additional)
            .or(if obj.preserve_unknown { Some(ANY) } else { None })
    }
}

fn unreachable_schema() -> Schema {
    Schema {
        nodes: vec![Node {
            kind: Kind::Object(ObjectNode {
                preserve_unknown: true,
                ..Default::default()
            }),
            nullable: false,
        }],
        root: 0,
    }
}

const MAX_DEPTH: usize = 64;

/// Nesting bound for building nodes: real CRD schemas are a few dozen levels deep; recursion
/// through non-shareable `$ref`s would otherwise overflow the stack.
const MAX_BUILD_DEPTH: usize = 64;

struct Builder<'a> {
    document: &'a Value,
    nodes: Vec<Node>,
    refs: HashMap<String, NodeId>,
    depth: usize,
}

impl Builder<'_> {
    fn alloc(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn resolve(&self, reference: &str, at: &str) -> Result<Value, SchemaError> {
        let unresolved = || SchemaError::UnresolvedRef {
            at: at.to_owned(),
            reference: reference.to_owned(),
        };
        let pointer = reference.strip_prefix('#').ok_or_else(unresolved)?;
        self.document.pointer(pointer).cloned().ok_or_else(unresolved)
    }

    fn build_id(&mut self, s: &Value, at: &str) -> Result<NodeId, SchemaError> {
        if let Some(reference) = pure_ref(s) {
            if let Some(&id) = self.refs.get(reference) {
                return Ok(id);
            }
            let id = self.alloc(Node {
                kind: Kind::Any,
                nullable: true,
            });
            self.refs.insert(reference.to_owned(), id);
            let target = self.resolve(reference, at)?;
            let node = self.build_node(&target, at)?;
            self.nodes[id] = node;
            return Ok(id);
        }
        let node = self.build_node(s, at)?;
        Ok(self.alloc(node))
    }

    /// Resolves `$ref` and `allOf` into one flat schema object.
    fn flatten(&self, s: &Value, at: &str, depth: usize) -> Result<Map<String, Value>, SchemaError> {
        if depth > MAX_DEPTH {
            return Err(SchemaError::TooDeep { at: at.to_owned() });
        }
        let mut obj = match s {
            Value::Object(m) => m.clone(),
            Value::Bool(_) => return Ok(Map::new()),
            _ => return Err(SchemaError::NotASchema { at: at.to_owned() }),
        };
        let mut base = Map::new();
        if let Some(r) = obj.remove("$ref") {
            let reference = r.as_str().ok_or_else(|| SchemaError::UnresolvedRef {
                at: at.to_owned(),
                reference: r.to_string(),
            })?;
            let target = self.resolve(reference, at)?;
            base = self.flatten(&target, at, depth + 1)?;
        }
        if let Some(all) = obj.remove("allOf") {
            for sub in all.as_array().into_iter().flatten() {
                let flat = self.flatten(sub, at, depth + 1)?;
                merge_schema(&mut base, flat);
            }
        }
        merge_schema(&mut base, obj);
        Ok(base)
    }

    fn build_node(&mut self, s: &Value, at: &str) -> Result<Node, SchemaError> {
        if self.depth > MAX_BUILD_DEPTH {
            return Err(SchemaError::TooDeep { at: at.to_owned() });
        }
        self.depth += 1;
        let node = self.build_node_inner(s, at);
        self.depth -= 1;
        node
    }

    fn build_node_inner(&mut self, s: &Value, at: &str) -> Result<Node, SchemaError> {
        if s == &Value::Bool(true) || s == &Value::Bool(false) {
            return Ok(Node {
                kind: Kind::Any,
                nullable: true,
            });
        }
        let mut flat = self.flatten(s, at, 0)?;
        let mut nullable = flat.get("nullable").and_then(Value::as_bool) == Some(true);
        let mut types = ScalarTypes::default();
        let (mut is_object, mut is_array) = (false, false);
        match flat.get("type") {
            None => {}
            Some(Value::String(t)) => {
                classify(t, &mut types, &mut is_object, &mut is_array, &mut nullable, at)?
            }
            Some(Value::Array(ts)) => {
                for t in ts {
                    let t = t
                        .as_str()
                        .ok_or_else(|| bad_type(at, "type names must be strings"))?;
                    classify(t, &mut types, &mut is_object, &mut is_array, &mut nullable, at)?;
                }
            }
            Some(_) => return Err(bad_type(at, "must be a string or a list of strings")),
        }
        // anyOf/oneOf: `{type: null}` variants make the node nullable; object variants contribute
        // their properties (schemars emits enums with data this way); scalar variants their types.
        let mut variants = Vec::new();
        for key in ["anyOf", "oneOf"] {
            for v in flat.get(key).and_then(Value::as_array).into_iter().flatten() {
                let f = self.flatten(v, at, 1)?;
                if f.get("type").and_then(Value::as_str) == Some("null") {
                    nullable = true;
                } else {
                    variants.push(f);
                }
            }
        }
        let no_type = types == ScalarTypes::default() && !is_object && !is_array;
        let raw_variants: Vec<&Value> = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| flat.get(*k).and_then(Value::as_array))
            .flatten()
            .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if no_type
            && !flat.contains_key("properties")
            && let [only] = raw_variants.as_slice()
            && pure_ref(only).is_some()
        {
            // `Option<T>` of a named (possibly recursive) type: share T's node.
            let only = (*only).clone();
            let target = self.build_id(&only, at)?;
            return Ok(Node {
                kind: Kind::Alias(target),
                nullable,
            });
        }
        if no_type && !variants.is_empty() {
            let all_objects = variants.iter().all(|v| {
                v.get("type").and_then(Value::as_str) == Some("object") || v.contains_key("properties")
            });
            if variants.len() == 1 || all_objects {
                for v in variants.drain(..) {
                    merge_schema(&mut flat, v);
                }
                flat.remove("anyOf");
                flat.remove("oneOf");
                let mut node = self.build_node(&Value::Object(flat), at)?;
                node.nullable |= nullable;
                return Ok(node);
            }
        }
        let int_or_string = flat.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
        let preserve = flat
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        let kind = if int_or_string {
            Kind::Scalar(ScalarTypes {
                string: true,
                integer: true,
                ..Default::default()
            })
        } else if is_object
            || (no_type && (flat.contains_key("properties") || flat.contains_key("additionalProperties")))
        {
            for v in &variants {
                if let Some(Value::Object(props)) = v.get("properties") {
                    let entry = flat
                        .entry("properties")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(mine) = entry {
                        for (k, p) in props {
                            mine.entry(k.clone()).or_insert_with(|| p.clone());
                        }
                    }
                }
            }
            Kind::Object(self.build_object(&flat, at, preserve)?)
        } else if is_array || (no_type && flat.contains_key("items")) {
            Kind::List(self.build_list(&flat, at)?)
        } else if !no_type {
            Kind::Scalar(types)
        } else if !variants.is_empty() {
            let mut acc = ScalarTypes::default();
            let mut any = false;
            for v in &variants {
                match self.build_node(&Value::Object(v.clone()), at)?.kind {
                    Kind::Scalar(t) => acc = acc.union(t),
                    _ => any = true,
                }
            }
            if any { Kind::Any } else { Kind::Scalar(acc) }
        } else {
            Kind::Any
        };
        Ok(Node { kind, nullable })
    }

    fn build_object(
        &mut self,
        flat: &Map<String, Value>,
        at: &str,
        preserve: bool,
    ) -> Result<ObjectNode, SchemaError> {
        let mut obj = ObjectNode {
            preserve_unknown: preserve,
            ..Default::default()
        };
        match flat.get("x-kubernetes-map-type").map(|v| v.as_str()) {
            None | Some(Some("granular")) => {}
            Some(Some("atomic")) => obj.atomic = true,
            Some(other) => {
                return Err(SchemaError::InvalidExtension {
                    at: at.to_owned(),
                    extension: "x-kubernetes-map-type",
                    reason: format!("unsupported value {other:?}, must be granular or atomic"),
                });
            }
        }
        if let Some(Value::Object(props)) = flat.get("properties") {
            for (name, sub) in props {
                let id = self.build_id(sub, &format!("{at}/properties/{name}"))?;
                obj.fields.insert(name.clone(), id);
                if let Some(default) = sub.get("default") {
                    obj.defaults.insert(name.clone(), default.clone());
                }
            }
        }
        match flat.get("additionalProperties") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => obj.additional = Some(ANY),
            Some(sub) => obj.additional = Some(self.build_id(sub, &format!("{at}/additionalProperties"))?),
        }
        if flat
            .get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true)
        {
            let string = self.alloc(Node {
                kind: Kind::Scalar(ScalarTypes {
                    string: true,
                    ..Default::default()
                }),
                nullable: false,
            });
            obj.fields.entry("apiVersion".into()).or_insert(string);
            obj.fields.entry("kind".into()).or_insert(string);
            let meta = self.build_id(&OBJECT_META, &format!("{at}/metadata"))?;
            obj.fields.insert("metadata".into(), meta);
        }
        Ok(obj)
    }

    fn build_list(&mut self, flat: &Map<String, Value>, at: &str) -> Result<ListNode, SchemaError> {
        let items = match flat.get("items") {
            None => ANY,
            Some(sub) => self.build_id(sub, &format!("{at}/items"))?,
        };
        let invalid = |reason: String| SchemaError::InvalidExtension {
            at: at.to_owned(),
            extension: "x-kubernetes-list-type",
            reason,
        };
        let list_type = match flat.get("x-kubernetes-list-type").map(|v| v.as_str()) {
            None | Some(Some("atomic")) => ListType::Atomic,
            Some(Some("set")) => ListType::Set,
            Some(Some("map")) => {
                let keys: Vec<String> = flat
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                if keys.is_empty() {
                    return Err(invalid(
                        "map lists need non-empty x-kubernetes-list-map-keys".into(),
                    ));
                }
                let items_kind = match self.nodes[items].kind {
                    Kind::Alias(target) => &self.nodes[target].kind,
                    ref k => k,
                };
                if !matches!(items_kind, Kind::Object(_) | Kind::Any | Kind::Alias(_)) {
                    return Err(invalid("map lists need object items".into()));
                }
                ListType::Map(keys)
            }
            Some(other) => {
                return Err(invalid(format!(
                    "unsupported value {other:?}, must be atomic, set or map"
                )));
            }
        };
        Ok(ListNode { items, list_type })
    }
}

fn bad_type(at: &str, reason: &str) -> SchemaError {
    SchemaError::InvalidExtension {
        at: at.to_owned(),
        extension: "type",
        reason: reason.to_owned(),
    }
}

fn classify(
    t: &str,
    types: &mut ScalarTypes,
    is_object: &mut bool,
    is_array: &mut bool,
    nullable: &mut bool,
    at: &str,
) -> Result<(), SchemaError> {
    match t {
        "object" => *is_object = true,
        "array" => *is_array = true,
        "string" => types.string = true,
        "integer" => types.integer = true,
        "number" => types.number = true,
        "boolean" => types.boolean = true,
        "null" => *nullable = true,
        other => return Err(bad_type(at, &format!("unknown type {other:?}"))),
    }
    Ok(())
}

/// A `$ref` with nothing beside it but documentation, which can be shared (and may recurse).
fn pure_ref(s: &Value) -> Option<&str> {
    let m = s.as_object()?;
    let r = m.get("$ref")?.as_str()?;
    m.keys()
        .all(|k| {
            matches!(
                k.as_str(),
                "$ref" | "description" | "title" | "default" | "example"
            )
        })
        .then_some(r)
}

/// Merges schema `b` into `a`: `properties` are united, `required` concatenated, other keywords
/// of `b` win.
fn merge_schema(a: &mut Map<String, Value>, b: Map<String, Value>) {
    for (k, v) in b {
        match (k.as_str(), a.get_mut(&k), v) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (name, p) in theirs {
                    mine.insert(name, p);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for r in theirs {
                    if !mine.contains(&r) {
                        mine.push(r);
                    }
                }
            }
            (_, _, v) => {
                a.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(s: &Schema, id: NodeId) -> &ObjectNode {
        match &s.node(id).kind {
            Kind::Object(o) => o,
            k => panic!("not an object: {k:?}"),
        }
    }

    #[test]
    fn builds_kube_derive_style_schema() {
        let s = Schema::from_openapi(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {"$ref": "#/definitions/Port"}
                        },
                        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "target": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "parent": {"anyOf": [{"$ref": "#/definitions/Port"}, {"type": "null"}]},
                        "sel": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}}
                    }
                }
            },
            "definitions": {
                "Port": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": ["integer", "null"]}}}
            }
        }))
        .unwrap();
        let root = object(&s, s.root());
        assert!(root.fields.contains_key("apiVersion") && root.fields.contains_key("metadata"));
        let spec = object(&s, root.fields["spec"]);
        let Kind::List(ports) = &s.node(spec.fields["ports"]).kind else {
            panic!()
        };
        assert_eq!(ports.list_type, ListType::Map(vec!["name".into()]));
        let port = object(&s, ports.items);
        assert!(s.node(port.fields["port"]).nullable);
        assert!(matches!(
            s.node(spec.fields["target"]).kind,
            Kind::Scalar(ScalarTypes {
                string: true,
                integer: true,
                ..
            })
        ));
        assert!(s.is_nullable(spec.fields["parent"]));
        assert!(object(&s, spec.fields["parent"]).fields.contains_key("port"));
        assert!(object(&s, spec.fields["sel"]).atomic);
    }

    #[test]
    fn recursive_refs_terminate() {
        let s = Schema::from_openapi(&json!({
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}
        }))
        .unwrap();
        let tree = object(&s, s.root()).fields["tree"];
        let Kind::List(l) = &s.node(object(&s, tree).fields["children"]).kind else {
            panic!()
        };
        assert_eq!(l.items, tree);
    }

    #[test]
    fn rejects_bad_schemas() {
        assert_eq!(
            Schema::from_openapi(&json!({"type": "string"})).unwrap_err(),
            SchemaError::RootNotObject
        );
        assert!(matches!(
            Schema::from_openapi(&json!({"type": "object", "properties": {"a": {"$ref": "#/nope"}}})),
            Err(SchemaError::UnresolvedRef { .. })
        ));
        assert!(Schema::from_openapi(&json!({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}}})).is_err());
        assert!(Schema::from_openapi(&json!({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "bag"}}})).is_err());
        assert!(
            Schema::from_openapi(&json!({"type": "object", "properties": {"a": {"type": "thing"}}})).is_err()
        );
        assert!(Schema::from_openapi(&json!({"type": "object", "properties": {"a": 3}})).is_err());
        assert!(matches!(
            Schema::from_openapi(
                &json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"$ref": "#/$defs/A", "type": "object"}}})
            ),
            Err(SchemaError::TooDeep { .. })
        ));
        // Recursion through a `$ref` that cannot be shared (it has siblings) is cut off, not a
        // stack overflow.
        let inline_recursion = json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/A"}},
            "$defs": {"A": {"type": "object", "properties": {"child": {"allOf": [{"$ref": "#/$defs/A"}], "maxProperties": 1}}}}
        });
        assert!(matches!(
            Schema::from_openapi(&inline_recursion),
            Err(SchemaError::TooDeep { .. })
        ));
    }
}
