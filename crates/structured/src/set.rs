//! Sets of field paths (structured-merge-diff's `fieldpath.Set`), the unit of field ownership.
//!
//! A set is a tree: at each level, `members` are the path elements that are themselves in the set,
//! and `children` are the path elements under which deeper paths are in the set. A path can be
//! both (a list item that is owned as a whole and whose fields are owned too), which is what
//! FieldsV1 encodes as `".": {}`.

use std::collections::{BTreeMap, BTreeSet};

use crate::path::{FieldPath, PathElement};

/// A set of [`FieldPath`]s, stored as a prefix tree.
///
/// Invariant: every child set is non-empty, so structural equality is set equality.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding the given paths.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a FieldPath>) -> Self {
        let mut s = FieldSet::new();
        for p in paths {
            s.insert(p.elements());
        }
        s
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// The number of paths in the set.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.values().map(FieldSet::len).sum::<usize>()
    }

    /// Adds `path`; inserting the empty path is a no-op (the root is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => match self.children.get_mut(first) {
                Some(child) => child.insert(rest),
                None => {
                    let mut child = FieldSet::new();
                    child.insert(rest);
                    self.children.insert(first.clone(), child);
                }
            },
        }
    }

    /// Whether `path` is a member of the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Whether `pe` (one level down) is a member.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths under `pe`, with `pe` stripped (`WithPrefix`); empty if there are none.
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// The members one level down, in order.
    pub fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    /// The children one level down, in order.
    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    pub(crate) fn insert_child(&mut self, pe: PathElement, child: FieldSet) {
        if child.is_empty() {
            return;
        }
        match self.children.get_mut(&pe) {
            Some(existing) => *existing = existing.union(&child),
            None => {
                self.children.insert(pe, child);
            }
        }
    }

    /// Every path in `self` or `other`.
    #[must_use]
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            out.insert_child(pe.clone(), child.clone());
        }
        out
    }

    /// Every path in both `self` and `other`.
    #[must_use]
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.intersection(&other.members).cloned().collect();
        for (pe, child) in &self.children {
            if let Some(o) = other.children.get(pe) {
                out.insert_child(pe.clone(), child.intersection(o));
            }
        }
        out
    }

    /// Every path in `self` that is not in `other` (paths below a member of `other` are kept:
    /// this is `Difference`, not [`FieldSet::recursive_difference`]).
    #[must_use]
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, child) in &self.children {
            match other.children.get(pe) {
                Some(o) => out.insert_child(pe.clone(), child.difference(o)),
                None => out.insert_child(pe.clone(), child.clone()),
            }
        }
        out
    }

    /// Every path in `self` that is neither in `other` nor below a member of `other`.
    #[must_use]
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, child) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            match other.children.get(pe) {
                Some(o) => out.insert_child(pe.clone(), child.recursive_difference(o)),
                None => out.insert_child(pe.clone(), child.clone()),
            }
        }
        out
    }

    /// All paths, members of a level before its children, each level in [`PathElement`] order
    /// (structured-merge-diff's `Iterate`).
    pub fn paths(&self) -> Vec<FieldPath> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<FieldPath>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(FieldPath(p));
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The leaf paths in sorted path order, as used for stable conflict listings.
    pub fn sorted_paths(&self) -> Vec<FieldPath> {
        let mut v = self.paths();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(names: &[&str]) -> FieldPath {
        FieldPath::fields(names)
    }

    fn set(paths: &[&[&str]]) -> FieldSet {
        let ps: Vec<FieldPath> = paths.iter().map(|n| p(n)).collect();
        FieldSet::from_paths(&ps)
    }

    #[test]
    fn algebra() {
        let a = set(&[&["spec", "a"], &["spec", "b"], &["spec"]]);
        let b = set(&[&["spec", "b"], &["spec", "c"]]);
        assert_eq!(
            a.union(&b),
            set(&[&["spec", "a"], &["spec", "b"], &["spec", "c"], &["spec"]])
        );
        assert_eq!(a.intersection(&b), set(&[&["spec", "b"]]));
        assert_eq!(a.difference(&b), set(&[&["spec", "a"], &["spec"]]));
        assert_eq!(b.difference(&a), set(&[&["spec", "c"]]));
        // `spec` is a member of `a`, so everything under it goes.
        assert_eq!(b.recursive_difference(&a), FieldSet::new());
        assert!(a.contains(&p(&["spec"]).0) && !b.contains(&p(&["spec"]).0));
        assert_eq!(a.len(), 3);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn difference_drops_emptied_children() {
        let a = set(&[&["x", "y", "z"]]);
        let d = a.difference(&a);
        assert!(d.is_empty());
        assert_eq!(d, FieldSet::new());
    }
}
