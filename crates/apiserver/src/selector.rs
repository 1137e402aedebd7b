//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`) and field selectors (`=`, `==`, `!=`).

use serde_json::Value;

/// Errors parsing a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector is malformed.
    #[error("unable to parse requirement: {0}")]
    Label(String),
    /// The field selector is malformed.
    #[error("invalid field selector: {0}")]
    Field(String),
    /// The field selector names a field that is not selectable for this kind.
    #[error("{field:?} is not a known field selector: only {allowed}")]
    UnknownField {
        /// The field that was asked for.
        field: String,
        /// The selectable fields, quoted and comma-separated.
        allowed: String,
    },
}

/// One label requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also matches objects without the key).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also matches objects without the key).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector: all requirements must hold. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

fn is_label_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

fn validate_label_value(v: &str) -> Result<(), SelectorError> {
    let ok = v.is_empty()
        || (v.len() <= 63
            && v.chars().all(is_label_name_char)
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(SelectorError::Label(format!(
            "values[0][{v}]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

/// Validates a qualified label key (`[prefix/]name`).
fn validate_label_key(k: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(is_label_name_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(crate::meta::is_dns1123_subdomain);
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(SelectorError::Label(format!(
            "key: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and \
             must start and end with an alphanumeric character"
        )))
    }
}

impl LabelSelector {
    /// Parses kube's label selector syntax, e.g. `app=a,tier in (x,y),!legacy`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the requirements hold for `labels` (a JSON object of strings, or null).
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(rest: &str, key: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Label(format!("found '{rest}', expected: '(' for key {key:?}")))?;
    let mut values = Vec::new();
    for v in inner.split(',') {
        let v = v.trim();
        validate_label_value(v)?;
        values.push(v.to_owned());
    }
    Ok(values)
}

fn parse_requirement(part: &str) -> Result<LabelRequirement, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        validate_label_key(key)?;
        return Ok(LabelRequirement::DoesNotExist(key.to_owned()));
    }
    if let Some((k, v)) = part.split_once("!=") {
        let (k, v) = (k.trim(), v.trim());
        validate_label_key(k)?;
        validate_label_value(v)?;
        return Ok(LabelRequirement::NotEquals(k.to_owned(), v.to_owned()));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        let (k, v) = (k.trim(), v.trim());
        validate_label_key(k)?;
        validate_label_value(v)?;
        return Ok(LabelRequirement::Equals(k.to_owned(), v.to_owned()));
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().trim();
    let rest = words.next().unwrap_or_default().trim();
    validate_label_key(key)?;
    if rest.is_empty() {
        return Ok(LabelRequirement::Exists(key.to_owned()));
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(LabelRequirement::NotIn(key.to_owned(), parse_set(set, key)?));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(LabelRequirement::In(key.to_owned(), parse_set(set, key)?));
    }
    Err(SelectorError::Label(format!(
        "found '{rest}', expected: in, notin, =, ==, !=, or end of string"
    )))
}

/// One field requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Field path without leading dot, e.g. `metadata.name`.
    pub field: String,
    /// Expected value.
    pub value: String,
    /// `!=` instead of `=`.
    pub negated: bool,
}

/// A parsed field selector: all requirements must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

/// Splits on unescaped commas and unescapes `\,`, `\=`, `\\`.
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next()
                && let Some(last) = out.last_mut()
            {
                last.push('\\');
                last.push(n);
            }
        } else if c == sep {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The byte offset of the first `pat` not preceded by a backslash escape.
fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
    }
    None
}

impl FieldSelector {
    /// Parses `a=b,c!=d`, checking every field with `selectable`; `allowed` lists them for the error.
    pub fn parse(
        s: &str,
        selectable: impl Fn(&str) -> bool,
        allowed: &[String],
    ) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_escaped(s, ',') {
            if part.trim().is_empty() {
                continue;
            }
            let (field, value, negated) = if let Some(i) = find_unescaped(&part, "!=") {
                (&part[..i], &part[i + 2..], true)
            } else if let Some(i) = find_unescaped(&part, "==") {
                (&part[..i], &part[i + 2..], false)
            } else if let Some(i) = find_unescaped(&part, "=") {
                (&part[..i], &part[i + 1..], false)
            } else {
                return Err(SelectorError::Field(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !selectable(field) {
                let allowed: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
                return Err(SelectorError::UnknownField {
                    field: field.to_owned(),
                    allowed: allowed.join(", "),
                });
            }
            reqs.push(FieldRequirement {
                field: field.to_owned(),
                value: unescape(value),
                negated,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether every requirement holds for `obj`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) != r.negated
        })
    }

    /// If the selector pins `metadata.name` to one value, that value.
    pub fn exact_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The string value of a dotted field path (missing → empty string, like CRD selectable fields).
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(sel: &str, labels: Value) -> bool {
        LabelSelector::parse(sel).unwrap().matches(Some(&labels))
    }

    #[test]
    fn every_label_operator() {
        let l = json!({"app": "a", "tier": "web"});
        assert!(m("app=a", l.clone()));
        assert!(m("app==a", l.clone()));
        assert!(!m("app!=a", l.clone()));
        assert!(m("x!=a", l.clone()));
        assert!(m("tier in (web, db)", l.clone()));
        assert!(!m("tier notin (web,db)", l.clone()));
        assert!(m("missing notin (web)", l.clone()));
        assert!(m("app", l.clone()));
        assert!(!m("!app", l.clone()));
        assert!(m("!other,app=a,tier in (web)", l.clone()));
        assert!(m("", l.clone()));
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
        assert!(LabelSelector::parse("!app").unwrap().matches(None));
    }

    #[test]
    fn bad_label_selectors() {
        assert!(LabelSelector::parse("a b c").is_err());
        assert!(LabelSelector::parse("app=a b").is_err());
        assert!(LabelSelector::parse("tier in web").is_err());
        assert!(LabelSelector::parse("-bad=x").is_err());
    }

    #[test]
    fn field_selectors() {
        let allowed = vec!["metadata.name".to_owned(), "spec.color".to_owned()];
        let sel = |s: &str| FieldSelector::parse(s, |f| allowed.iter().any(|a| a == f), &allowed);
        let obj = json!({"metadata": {"name": "w1"}, "spec": {"color": "red", "size": 3}});
        assert!(sel("metadata.name=w1").unwrap().matches(&obj));
        assert!(sel("metadata.name==w1,spec.color!=blue").unwrap().matches(&obj));
        assert!(!sel("spec.color=blue").unwrap().matches(&obj));
        assert_eq!(sel("metadata.name=w1").unwrap().exact_name(), Some("w1"));
        let e = sel("spec.size=3").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"spec.size\" is not a known field selector: only \"metadata.name\", \"spec.color\""
        );
        assert!(sel("nonsense").is_err());
        let esc = sel(r"metadata.name=a\,b").unwrap();
        assert_eq!(esc.0[0].value, "a,b");
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,60}") {
            if let Ok(sel) = LabelSelector::parse(&s) {
                let _ = sel.matches(Some(&json!({"a": "b"})));
            }
            let allowed = vec!["metadata.name".to_owned()];
            if let Ok(sel) = FieldSelector::parse(&s, |_| true, &allowed) {
                let _ = sel.matches(&json!({"metadata": {"name": "x"}}));
            }
        }
    }
}
