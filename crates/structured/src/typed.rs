//! Schema-driven operations on values, ported from structured-merge-diff's `typed` package:
//! field-set extraction (`ToFieldSet`), comparison (`Compare`), merging (`Merge` with the
//! right-hand side winning) and removal of paths (`RemoveItems`).
//!
//! Every walk resolves the schema node of each value; a value whose JSON type does not match its
//! node is treated as a leaf (replaced and owned as a whole), and fields the schema does not
//! declare are treated with the deduced semantics of [`ANY`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::path::{FieldPath, PathElement, values_equal};
use crate::schema::{ANY, Kind, ListNode, ListType, NodeId, ObjectNode, Schema};
use crate::set::FieldSet;

/// A value that cannot be interpreted under its schema.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct TypedError {
    /// Where, rendered like `.spec.ports`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err(path: &FieldPath, message: impl Into<String>) -> TypedError {
    TypedError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// The outcome of comparing two objects: which paths were added, modified or removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

/// How a (node, value) pair behaves structurally.
enum Shape<'a> {
    /// A granular object: fields merge one by one.
    Map(Option<&'a ObjectNode>, Option<&'a Map<String, Value>>),
    /// An associative list: elements merge by key or value.
    List(&'a ListNode, Option<&'a Vec<Value>>),
    /// Replaced and owned as a whole.
    Leaf,
}

impl Schema {
    /// The shape of `value` under `id` (`None` for a missing value).
    fn shape<'a>(&'a self, id: NodeId, value: Option<&'a Value>) -> Shape<'a> {
        match (&self.node(id).kind, value) {
            (Kind::Object(o), None | Some(Value::Null)) if !o.atomic => Shape::Map(Some(o), None),
            (Kind::Object(o), Some(Value::Object(m))) if !o.atomic => Shape::Map(Some(o), Some(m)),
            (Kind::Any, None | Some(Value::Null)) => Shape::Map(None, None),
            (Kind::Any, Some(Value::Object(m))) => Shape::Map(None, Some(m)),
            (Kind::List(l), None | Some(Value::Null)) if l.list_type != ListType::Atomic => {
                Shape::List(l, None)
            }
            (Kind::List(l), Some(Value::Array(a))) if l.list_type != ListType::Atomic => {
                Shape::List(l, Some(a))
            }
            _ => Shape::Leaf,
        }
    }

    /// The node of field `name` in a map shape; undeclared fields are [`ANY`].
    fn map_field(&self, obj: Option<&ObjectNode>, name: &str) -> NodeId {
        obj.and_then(|o| self.field_of(o, name)).unwrap_or(ANY)
    }

    /// Whether `name` is a declared field (not a map entry) of `obj`.
    fn is_named(obj: Option<&ObjectNode>, name: &str) -> bool {
        obj.is_some_and(|o| o.fields.contains_key(name))
    }

    /// The path element identifying `item` in associative list `list`.
    fn item_element(
        &self,
        list: &ListNode,
        item: &Value,
        path: &FieldPath,
    ) -> Result<PathElement, TypedError> {
        match &list.list_type {
            ListType::Map(keys) => {
                let Value::Object(m) = item else {
                    return Err(err(
                        path,
                        "associative list with keys has an element that is not a map type",
                    ));
                };
                let defaults = match &self.node(list.items).kind {
                    Kind::Object(o) => Some(&o.defaults),
                    _ => None,
                };
                let mut fields = Vec::with_capacity(keys.len());
                for k in keys {
                    let value = m
                        .get(k)
                        .filter(|v| !v.is_null())
                        .or_else(|| defaults.and_then(|d| d.get(k)));
                    match value {
                        Some(v) => fields.push((k.clone(), v.clone())),
                        _ => {
                            return Err(err(
                                path,
                                format!(
                                    "associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                                ),
                            ));
                        }
                    }
                }
                Ok(PathElement::key(fields))
            }
            ListType::Set => match item {
                Value::Object(_) | Value::Array(_) => Err(err(
                    path,
                    "associative list without keys has an element that's a map or list type",
                )),
                v => Ok(PathElement::Value(v.clone())),
            },
            ListType::Atomic => Err(err(path, "atomic lists have no element identity")),
        }
    }

    /// Path elements of every item, plus an index; duplicates are an error unless `allow_dup`,
    /// in which case the first occurrence is indexed.
    fn index_items<'v>(
        &self,
        list: &ListNode,
        items: &'v [Value],
        path: &FieldPath,
        allow_dup: bool,
    ) -> Result<(Vec<PathElement>, BTreeMap<PathElement, &'v Value>), TypedError> {
        let mut pes = Vec::with_capacity(items.len());
        let mut index = BTreeMap::new();
        for item in items {
            let pe = self.item_element(list, item, path)?;
            match index.entry(pe.clone()) {
                std::collections::btree_map::Entry::Occupied(_) if !allow_dup => {
                    return Err(err(path, format!("duplicate entries for key {pe}")));
                }
                std::collections::btree_map::Entry::Occupied(_) => {}
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(item);
                }
            }
            pes.push(pe);
        }
        Ok((pes, index))
    }

    /// Every path `value` sets (structured-merge-diff's `ToFieldSet`): leaves, map entries, list
    /// items, and named fields holding `null` or `{}`; named fields holding non-empty objects are
    /// only prefixes.
    pub(crate) fn to_field_set(&self, value: &Value) -> Result<FieldSet, TypedError> {
        let (set, _) = self.field_set_walk(self.root(), value, &mut FieldPath::default(), false)?;
        Ok(set)
    }

    /// [`Schema::to_field_set`] tolerating duplicate list entries, for stored objects (SMD's
    /// `AllowDuplicates`).
    pub(crate) fn to_field_set_lenient(&self, value: &Value) -> Result<FieldSet, TypedError> {
        let (set, _) = self.field_set_walk(self.root(), value, &mut FieldPath::default(), true)?;
        Ok(set)
    }

    /// The set below `value` and whether `value` itself is a member on its own account (leaves).
    fn field_set_walk(
        &self,
        id: NodeId,
        value: &Value,
        path: &mut FieldPath,
        allow_dup: bool,
    ) -> Result<(FieldSet, bool), TypedError> {
        let mut set = FieldSet::new();
        match self.shape(id, Some(value)) {
            Shape::Map(obj, Some(map)) => {
                for (k, v) in map {
                    let pe = PathElement::field(k);
                    path.0.push(pe.clone());
                    let (child, leaf) = self.field_set_walk(self.map_field(obj, k), v, path, allow_dup)?;
                    path.0.pop();
                    let empty = v.is_null() || v.as_object().is_some_and(Map::is_empty);
                    if leaf || empty || !Self::is_named(obj, k) {
                        set.insert_member(pe.clone());
                    }
                    set.insert_child(pe, child);
                }
            }
            Shape::Map(_, None) | Shape::List(_, None) => {}
            Shape::List(list, Some(items)) => {
                let (pes, _) = self.index_items(list, items, path, allow_dup)?;
                for (item, pe) in items.iter().zip(pes) {
                    path.0.push(pe.clone());
                    let (child, _) = self.field_set_walk(list.items, item, path, allow_dup)?;
                    path.0.pop();
                    set.insert_member(pe.clone());
                    set.insert_child(pe, child);
                }
            }
            Shape::Leaf => return Ok((set, true)),
        }
        Ok((set, false))
    }

    /// Compares `old` with `new` (structured-merge-diff's `Compare`). Duplicate list entries are
    /// tolerated (the first occurrence counts), as both sides are stored or about-to-be-stored
    /// objects.
    pub(crate) fn compare(&self, old: &Value, new: &Value) -> Result<Comparison, TypedError> {
        let mut c = Comparison::default();
        self.compare_walk(
            self.root(),
            Some(old),
            Some(new),
            &mut FieldPath::default(),
            &mut c,
        )?;
        Ok(c)
    }

    fn compare_walk(
        &self,
        id: NodeId,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        path: &mut FieldPath,
        c: &mut Comparison,
    ) -> Result<(), TypedError> {
        match (self.shape(id, lhs), self.shape(id, rhs)) {
            (Shape::Map(obj, l), Shape::Map(_, r)) => {
                let (l, r) = (l.filter(|m| !m.is_empty()), r.filter(|m| !m.is_empty()));
                if l.is_some() || r.is_some() {
                    for (k, rv) in r.into_iter().flatten() {
                        path.0.push(PathElement::field(k));
                        self.compare_walk(
                            self.map_field(obj, k),
                            l.and_then(|m| m.get(k)),
                            Some(rv),
                            path,
                            c,
                        )?;
                        path.0.pop();
                    }
                    for (k, lv) in l.into_iter().flatten() {
                        if r.is_some_and(|m| m.contains_key(k)) {
                            continue;
                        }
                        path.0.push(PathElement::field(k));
                        self.compare_walk(self.map_field(obj, k), Some(lv), None, path, c)?;
                        path.0.pop();
                    }
                } else if let (Some(a), Some(b)) = (lhs, rhs)
                    && a.is_null() != b.is_null()
                {
                    // `null` versus `{}`: nothing inside differs, but the value does.
                    c.modified.insert(&path.0);
                }
            }
            (Shape::List(list, l), Shape::List(_, r)) => {
                let (lpes, lindex) = match l {
                    Some(items) => self.index_items(list, items, path, true)?,
                    None => (Vec::new(), BTreeMap::new()),
                };
                let (rpes, rindex) = match r {
                    Some(items) => self.index_items(list, items, path, true)?,
                    None => (Vec::new(), BTreeMap::new()),
                };
                let mut seen_r = BTreeSet::new();
                for pe in &rpes {
                    if !seen_r.insert(pe) {
                        continue;
                    }
                    path.0.push(pe.clone());
                    self.compare_walk(
                        list.items,
                        lindex.get(pe).copied(),
                        rindex.get(pe).copied(),
                        path,
                        c,
                    )?;
                    path.0.pop();
                }
                let mut seen = BTreeSet::new();
                for pe in &lpes {
                    if rindex.contains_key(pe) || !seen.insert(pe) {
                        continue;
                    }
                    path.0.push(pe.clone());
                    self.compare_walk(list.items, lindex.get(pe).copied(), None, path, c)?;
                    path.0.pop();
                }
                if l.is_none()
                    && r.is_none()
                    && let (Some(a), Some(b)) = (lhs, rhs)
                    && a.is_null() != b.is_null()
                {
                    c.modified.insert(&path.0);
                }
            }
            _ => {
                if let (Some(a), Some(b)) = (lhs, rhs)
                    && !values_equal(a, b)
                {
                    c.modified.insert(&path.0);
                }
            }
        }
        match (lhs, rhs) {
            (None, Some(_)) => c.added.insert(&path.0),
            (Some(_), None) => c.removed.insert(&path.0),
            _ => {}
        }
        Ok(())
    }

    /// Merges `rhs` into `lhs` (structured-merge-diff's `Merge`): granular maps merge by field,
    /// associative lists by element identity (shared elements in `rhs` order, `lhs`-only
    /// elements kept in place), everything else is replaced by `rhs`.
    pub(crate) fn merge(&self, lhs: &Value, rhs: &Value) -> Result<Value, TypedError> {
        let out = self.merge_walk(self.root(), Some(lhs), Some(rhs), &mut FieldPath::default())?;
        Ok(out.unwrap_or(Value::Null))
    }

    fn merge_walk(
        &self,
        id: NodeId,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        path: &mut FieldPath,
    ) -> Result<Option<Value>, TypedError> {
        let leaf = || Ok(rhs.or(lhs).cloned());
        match (self.shape(id, lhs), self.shape(id, rhs)) {
            (Shape::Map(obj, l), Shape::Map(_, r)) => {
                let (Some(l), Some(r)) = (l.filter(|m| !m.is_empty()), r.filter(|m| !m.is_empty())) else {
                    // One side is empty or null: the other side's whole value, or rhs if both.
                    return match (l.is_some_and(|m| !m.is_empty()), r.is_some_and(|m| !m.is_empty())) {
                        (true, false) => Ok(lhs.cloned()),
                        _ => leaf(),
                    };
                };
                let mut out = Map::with_capacity(l.len().max(r.len()));
                for (k, lv) in l {
                    let v = match r.get(k) {
                        Some(rv) => {
                            path.0.push(PathElement::field(k));
                            let m = self.merge_walk(self.map_field(obj, k), Some(lv), Some(rv), path)?;
                            path.0.pop();
                            m
                        }
                        None => Some(lv.clone()),
                    };
                    if let Some(v) = v {
                        out.insert(k.clone(), v);
                    }
                }
                for (k, rv) in r {
                    if !l.contains_key(k) {
                        path.0.push(PathElement::field(k));
                        let m = self.merge_walk(self.map_field(obj, k), None, Some(rv), path)?;
                        path.0.pop();
                        if let Some(v) = m {
                            out.insert(k.clone(), v);
                        }
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            (Shape::List(list, l), Shape::List(_, r)) => {
                let (Some(l), Some(r)) = (l.filter(|a| !a.is_empty()), r.filter(|a| !a.is_empty())) else {
                    return match (l.is_some_and(|a| !a.is_empty()), r.is_some_and(|a| !a.is_empty())) {
                        (true, false) => Ok(lhs.cloned()),
                        _ => leaf(),
                    };
                };
                self.merge_list(list, l, r, path).map(|v| Some(Value::Array(v)))
            }
            _ => leaf(),
        }
    }

    /// structured-merge-diff's `visitListItems` for merging: walks both lists, emitting lhs-only
    /// items where they are, and shared and rhs-only items in rhs order.
    fn merge_list(
        &self,
        list: &ListNode,
        l: &[Value],
        r: &[Value],
        path: &mut FieldPath,
    ) -> Result<Vec<Value>, TypedError> {
        let (lpes, lindex) = self.index_items(list, l, path, true)?;
        let (rpes, rindex) = self.index_items(list, r, path, false)?;
        let (lkeys, rkeys) = (&lpes, &rpes);
        let shared: Vec<&PathElement> = rkeys.iter().filter(|k| lindex.contains_key(*k)).collect();
        let mut next_shared = 0usize;
        let mut merged_rhs = BTreeSet::new();
        let mut out = Vec::with_capacity(l.len().max(r.len()));
        let (mut li, mut ri) = (0, 0);
        while li < l.len() || ri < r.len() {
            if li < l.len() && ri < r.len() {
                if lkeys[li] == rkeys[ri] {
                    let key = &rkeys[ri];
                    merged_rhs.insert(key);
                    path.0.push(key.clone());
                    let m = self.merge_walk(
                        list.items,
                        lindex.get(key).copied(),
                        rindex.get(key).copied(),
                        path,
                    )?;
                    path.0.pop();
                    out.extend(m);
                    li += 1;
                    ri += 1;
                    if shared.get(next_shared) == Some(&key) {
                        next_shared += 1;
                    }
                    continue;
                }
                if rindex.contains_key(&lkeys[li])
                    && shared.get(next_shared).is_some_and(|k| **k != lkeys[li])
                {
                    // A shared item, but not the next one in rhs order: it is emitted later.
                    li += 1;
                    continue;
                }
            }
            if li < l.len() {
                if !rindex.contains_key(&lkeys[li]) {
                    out.push(l[li].clone());
                    li += 1;
                    continue;
                } else if merged_rhs.contains(&lkeys[li]) {
                    li += 1;
                    continue;
                }
            }
            if ri < r.len() {
                let key = &rkeys[ri];
                merged_rhs.insert(key);
                path.0.push(key.clone());
                let m = self.merge_walk(
                    list.items,
                    lindex.get(key).copied(),
                    rindex.get(key).copied(),
                    path,
                )?;
                path.0.pop();
                out.extend(m);
                ri += 1;
                if shared.get(next_shared) == Some(&key) {
                    next_shared += 1;
                }
            }
        }
        Ok(out)
    }

    /// `value` without the paths that are members of `set` (structured-merge-diff's
    /// `RemoveItems`): removing a member removes its whole subtree; atomic values are never
    /// entered.
    pub(crate) fn remove_items(&self, value: &Value, set: &FieldSet) -> Value {
        self.remove_walk(self.root(), value, set)
    }

    fn remove_walk(&self, id: NodeId, value: &Value, set: &FieldSet) -> Value {
        match self.shape(id, Some(value)) {
            Shape::Map(obj, Some(map)) => {
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    let pe = PathElement::field(k);
                    if set.has_member(&pe) {
                        continue;
                    }
                    let v = match set.child(&pe) {
                        Some(sub) => self.remove_walk(self.map_field(obj, k), v, sub),
                        None => v.clone(),
                    };
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Shape::List(list, Some(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Ok(pe) = self.item_element(list, item, &FieldPath::default()) else {
                        out.push(item.clone());
                        continue;
                    };
                    if set.has_member(&pe) {
                        continue;
                    }
                    out.push(match set.child(&pe) {
                        Some(sub) => self.remove_walk(list.items, item, sub),
                        None => item.clone(),
                    });
                }
                Value::Array(out)
            }
            _ => value.clone(),
        }
    }

    /// Where `applied` sets a field to `null` and `merged` holds an empty object or list there
    /// (the applier's own former content was pruned away), makes `merged` hold `null` too, so
    /// that the result is what was applied and re-applying it is a no-op.
    pub(crate) fn restore_applied_nulls(&self, applied: &Value, merged: &mut Value) {
        self.applied_nulls_walk(self.root(), applied, merged);
    }

    fn applied_nulls_walk(&self, id: NodeId, applied: &Value, merged: &mut Value) {
        match (self.shape(id, Some(applied)), merged) {
            (Shape::Map(obj, Some(a)), Value::Object(m)) => {
                for (k, av) in a {
                    let Some(mv) = m.get_mut(k) else { continue };
                    let emptied =
                        mv.as_object().is_some_and(Map::is_empty) || mv.as_array().is_some_and(Vec::is_empty);
                    if av.is_null() && emptied {
                        *mv = Value::Null;
                    } else {
                        self.applied_nulls_walk(self.map_field(obj, k), av, mv);
                    }
                }
            }
            (Shape::List(list, Some(a)), Value::Array(m)) => {
                let positions: BTreeMap<PathElement, usize> = m
                    .iter()
                    .enumerate()
                    .filter_map(|(i, mv)| Some((self.item_element(list, mv, &FieldPath::default()).ok()?, i)))
                    .collect();
                for av in a {
                    let Ok(pe) = self.item_element(list, av, &FieldPath::default()) else {
                        continue;
                    };
                    if let Some(&i) = positions.get(&pe) {
                        self.applied_nulls_walk(list.items, av, &mut m[i]);
                    }
                }
            }
            _ => {}
        }
    }

    /// `set` plus, as members, every declared (struct) field that has members below it
    /// (structured-merge-diff's `EnsureNamedFieldsAreMembers`), so that removing the set removes
    /// emptied structs too.
    pub(crate) fn ensure_named_fields_are_members(&self, set: &FieldSet) -> FieldSet {
        self.named_walk(self.root(), set)
    }

    fn named_walk(&self, id: NodeId, set: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for m in set.members() {
            out.insert_member(m.clone());
        }
        let (obj, items) = match &self.node(id).kind {
            Kind::Object(o) => (Some(o), ANY),
            Kind::List(l) => (None, l.items),
            Kind::Any | Kind::Scalar(_) | Kind::Alias(_) => (None, ANY),
        };
        for (pe, child) in set.children() {
            let child_id = match pe {
                PathElement::Field(name) => {
                    if Self::is_named(obj, name) {
                        out.insert_member(pe.clone());
                    }
                    self.map_field(obj, name)
                }
                _ => items,
            };
            out.insert_child(pe.clone(), self.named_walk(child_id, child));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_openapi(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "replicas": {"type": "integer"},
                        "ports": {
                            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}
                        },
                        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "args": {"type": "array", "items": {"type": "string"}},
                        "sel": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
                        "env": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                }
            }
        }))
        .unwrap()
    }

    fn fv1(s: &FieldSet) -> String {
        serde_json::to_string(&s.to_fields_v1()).unwrap()
    }

    #[test]
    fn field_set_of_applied_config() {
        let s = schema();
        let set = s
            .to_field_set(&json!({
                "spec": {"replicas": 1, "ports": [{"name": "a", "port": 1}], "tags": ["x"], "args": ["a"],
                         "sel": {"a": "b"}, "env": {"A": "1"}}
            }))
            .unwrap();
        assert_eq!(
            fv1(&set),
            r#"{"f:spec":{"f:args":{},"f:env":{"f:A":{}},"f:ports":{"k:{\"name\":\"a\"}":{".":{},"f:name":{},"f:port":{}}},"f:replicas":{},"f:sel":{},"f:tags":{"v:\"x\"":{}}}}"#
        );
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let s = schema();
        let c = s
            .compare(
                &json!({"spec": {"replicas": 1, "tags": ["x"], "ports": [{"name": "a", "port": 1}]}}),
                &json!({"spec": {"replicas": 2, "tags": ["y"], "ports": [{"name": "a", "port": 1}], "env": {"A": "1"}}}),
            )
            .unwrap();
        assert_eq!(fv1(&c.modified), r#"{"f:spec":{"f:replicas":{}}}"#);
        assert_eq!(
            fv1(&c.added),
            r#"{"f:spec":{"f:env":{".":{},"f:A":{}},"f:tags":{"v:\"y\"":{}}}}"#
        );
        assert_eq!(fv1(&c.removed), r#"{"f:spec":{"f:tags":{"v:\"x\"":{}}}}"#);
    }

    #[test]
    fn merge_orders_lists_like_structured_merge_diff() {
        let s = schema();
        let l = json!({"spec": {"ports": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "tags": ["1", "2"]}});
        let r = json!({"spec": {"ports": [{"name": "c", "port": 3}, {"name": "d"}, {"name": "a", "port": 1}], "tags": ["3"]}});
        let m = s.merge(&l, &r).unwrap();
        assert_eq!(
            m["spec"]["ports"],
            json!([{"name": "b"}, {"name": "c", "port": 3}, {"name": "d"}, {"name": "a", "port": 1}])
        );
        assert_eq!(m["spec"]["tags"], json!(["1", "2", "3"]));
        assert!(
            s.merge(&l, &json!({"spec": {"ports": [{"name": "a"}, {"name": "a"}]}}))
                .is_err()
        );
        assert!(s.merge(&l, &json!({"spec": {"ports": [{"port": 1}]}})).is_err());
    }

    #[test]
    fn remove_items_and_named_fields() {
        let s = schema();
        let obj = json!({"spec": {"replicas": 1, "ports": [{"name": "a", "port": 1}, {"name": "b"}], "env": {"A": "1", "B": "2"}}});
        let set = s
            .to_field_set(&json!({"spec": {"ports": [{"name": "a", "port": 1}], "env": {"A": "1"}}}))
            .unwrap();
        assert_eq!(
            s.remove_items(&obj, &set),
            json!({"spec": {"replicas": 1, "ports": [{"name": "b"}], "env": {"B": "2"}}})
        );
        let named = s.ensure_named_fields_are_members(&set);
        assert_eq!(
            fv1(&named),
            r#"{"f:spec":{".":{},"f:env":{".":{},"f:A":{}},"f:ports":{".":{},"k:{\"name\":\"a\"}":{".":{},"f:name":{},"f:port":{}}}}}"#
        );
        assert_eq!(s.remove_items(&obj, &named), json!({}));
    }
}
