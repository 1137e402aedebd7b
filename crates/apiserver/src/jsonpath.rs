//! A JSONPath evaluator for the subset kubectl printer columns use: `.a.b`, `['a']`, `[0]`,
//! `[*]`, `[?(@.type=="Ready")]` (with `==`/`!=` against a string or number), optionally wrapped in `{}`.

use serde_json::Value;

/// Errors parsing a JSONPath.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// The expression is outside the supported subset or malformed.
    #[error("invalid JSONPath {path:?}: {why}")]
    Invalid {
        /// The expression.
        path: String,
        /// What is wrong.
        why: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Filter {
        field: Vec<String>,
        negated: bool,
        value: Value,
    },
}

/// A parsed JSONPath.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses an expression such as `.status.conditions[?(@.type=="Ready")].status`.
    pub fn parse(expr: &str) -> Result<Self, JsonPathError> {
        let err = |why: &str| JsonPathError::Invalid {
            path: expr.to_owned(),
            why: why.to_owned(),
        };
        let mut s = expr.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            s = inner.trim();
        }
        s = s.strip_prefix('$').unwrap_or(s);
        let bytes = s.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    i += 1;
                    let start = i;
                    while i < bytes.len() && bytes[i] != b'.' && bytes[i] != b'[' {
                        i += 1;
                    }
                    let name = &s[start..i];
                    if name == "*" {
                        steps.push(Step::Wildcard);
                    } else if !name.is_empty() {
                        steps.push(Step::Field(name.to_owned()));
                    } else if i < bytes.len() && bytes[i] == b'.' {
                        return Err(err("recursive descent is not supported"));
                    }
                }
                b'[' => {
                    let close = find_bracket_end(s, i).ok_or_else(|| err("unterminated '['"))?;
                    let inner = s[i + 1..close].trim();
                    i = close + 1;
                    if inner == "*" {
                        steps.push(Step::Wildcard);
                    } else if let Some(f) = inner.strip_prefix("?(").and_then(|r| r.strip_suffix(')')) {
                        steps.push(parse_filter(f).ok_or_else(|| err("unsupported filter"))?);
                    } else if let Some(q) = strip_quotes(inner) {
                        steps.push(Step::Field(q.to_owned()));
                    } else {
                        let n: i64 = inner.parse().map_err(|_| err("unsupported subscript"))?;
                        steps.push(Step::Index(n));
                    }
                }
                _ => return Err(err("expected '.' or '['")),
            }
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path selects in `obj`, in document order.
    pub fn eval<'a>(&self, obj: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![obj];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in cur {
                match step {
                    Step::Field(f) => next.extend(v.get(f.as_str())),
                    Step::Index(n) => {
                        if let Some(a) = v.as_array() {
                            let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                            if idx >= 0 {
                                next.extend(a.get(idx as usize));
                            }
                        }
                    }
                    Step::Wildcard => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter {
                        field,
                        negated,
                        value,
                    } => {
                        if let Some(a) = v.as_array() {
                            for item in a {
                                let mut x = Some(item);
                                for seg in field {
                                    x = x.and_then(|x| x.get(seg.as_str()));
                                }
                                let eq = x.is_some_and(|x| x == value);
                                if x.is_some() && eq != *negated {
                                    next.push(item);
                                }
                            }
                        }
                    }
                }
            }
            cur = next;
        }
        cur
    }
}

fn find_bracket_end(s: &str, open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (j, c) in s[open + 1..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(open + 1 + j),
            _ => {}
        }
    }
    None
}

fn strip_quotes(s: &str) -> Option<&str> {
    s.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

fn parse_filter(f: &str) -> Option<Step> {
    let (lhs, rhs, negated) = if let Some((l, r)) = f.split_once("!=") {
        (l, r, true)
    } else {
        let (l, r) = f.split_once("==")?;
        (l, r, false)
    };
    let lhs = lhs.trim().strip_prefix("@.")?;
    let rhs = rhs.trim();
    let value = match strip_quotes(rhs) {
        Some(q) => Value::String(q.to_owned()),
        None => serde_json::from_str(rhs).ok()?,
    };
    Some(Step::Filter {
        field: lhs.split('.').map(str::to_owned).collect(),
        negated,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printer_column_paths() {
        let obj = json!({
            "spec": {"size": 3, "items": [{"n": "a"}, {"n": "b"}], "odd.key": 1},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]}
        });
        let e = |p: &str| {
            JsonPath::parse(p)
                .unwrap()
                .eval(&obj)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(e(".spec.size"), vec![json!(3)]);
        assert_eq!(e("{.spec.size}"), vec![json!(3)]);
        assert_eq!(e(".spec.items[1].n"), vec![json!("b")]);
        assert_eq!(e(".spec.items[-1].n"), vec![json!("b")]);
        assert_eq!(e(".spec.items[*].n"), vec![json!("a"), json!("b")]);
        assert_eq!(
            e(r#".status.conditions[?(@.type=="Ready")].status"#),
            vec![json!("True")]
        );
        assert_eq!(
            e(r#".status.conditions[?(@.type!='Ready')].status"#),
            vec![json!("False")]
        );
        assert_eq!(e(".spec['odd.key']"), vec![json!(1)]);
        assert!(e(".spec.missing").is_empty());
        assert!(JsonPath::parse("spec").is_err());
        assert!(JsonPath::parse(".a[").is_err());
        assert!(JsonPath::parse("..a").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            if let Ok(p) = JsonPath::parse(&s) {
                let _ = p.eval(&json!({"a": [1, {"b": 2}]}));
            }
        }
    }
}
