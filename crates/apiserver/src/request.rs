//! Request parsing: URL paths to targets, query parameters, and `Accept` negotiation.

use std::collections::HashMap;

use crate::error::ApiError;

/// What a URL path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api`.
    CoreVersions,
    /// `/api/v1`.
    CoreResources,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/apis/<group>/<version>`.
    GroupResources(String, String),
    /// A resource collection, object or subresource.
    Resource(ResourcePath),
}

/// A resource URL: `/api/v1/...` or `/apis/<g>/<v>/...`, then `[namespaces/<ns>/]<plural>[/<name>[/<sub>]]`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ResourcePath {
    /// Group (empty for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Plural resource.
    pub plural: String,
    /// Object name.
    pub name: Option<String>,
    /// Subresource (e.g. `status`).
    pub subresource: Option<String>,
}

/// Parses a URL path; `None` if it names nothing this server serves.
///
/// A resource path must not contain empty segments: `.../widgets/` is not the collection (an
/// empty name would turn a DELETE of one object into a DELETECOLLECTION), so it names nothing.
pub fn parse_path(path: &str) -> Option<Target> {
    let all: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let strict = all.iter().all(|s| !s.is_empty());
    let segs: Vec<&str> = all.into_iter().filter(|s| !s.is_empty()).collect();
    match resource_target(&segs)? {
        Target::Resource(_) if !strict => None,
        target => Some(target),
    }
}

fn resource_target(segs: &[&str]) -> Option<Target> {
    let (group, version, rest) = match segs {
        ["api"] => return Some(Target::CoreVersions),
        ["api", "v1"] => return Some(Target::CoreResources),
        ["apis"] => return Some(Target::Groups),
        ["apis", g] => return Some(Target::Group((*g).to_owned())),
        ["apis", g, v] => return Some(Target::GroupResources((*g).to_owned(), (*v).to_owned())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let mut p = ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        ..Default::default()
    };
    let rest: &[&str] = match rest {
        // `/namespaces/<ns>/<plural>...` (but `/namespaces/<ns>` and `/namespaces/<ns>/status|finalize`
        // address the Namespace object itself).
        ["namespaces", ns, plural, tail @ ..]
            if !matches!(*plural, "status" | "finalize") || !tail.is_empty() =>
        {
            p.namespace = Some((*ns).to_owned());
            let mut v = vec![*plural];
            v.extend_from_slice(tail);
            return fill(p, &v);
        }
        other => other,
    };
    fill(p, rest)
}

fn fill(mut p: ResourcePath, rest: &[&str]) -> Option<Target> {
    match rest {
        [plural] => p.plural = (*plural).to_owned(),
        [plural, name] => {
            p.plural = (*plural).to_owned();
            p.name = Some((*name).to_owned());
        }
        [plural, name, sub] => {
            p.plural = (*plural).to_owned();
            p.name = Some((*name).to_owned());
            p.subresource = Some((*sub).to_owned());
        }
        _ => return None,
    }
    Some(Target::Resource(p))
}

/// Percent-decodes a query component (`+` is a space).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters (last occurrence wins; `dryRun` is collected).
#[derive(Clone, Debug, Default)]
pub struct Query {
    params: HashMap<String, String>,
    dry_run: Vec<String>,
}

impl Query {
    /// Parses a raw query string leniently (kube-rs sends a leading `&`).
    pub fn parse(raw: Option<&str>) -> Self {
        let mut q = Query::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (percent_decode(k), percent_decode(v));
            if k == "dryRun" {
                q.dry_run.push(v.clone());
            }
            q.params.insert(k, v);
        }
        q
    }

    /// A parameter's value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }

    /// Removes a parameter.
    pub fn remove(&mut self, k: &str) {
        self.params.remove(k);
    }

    /// A boolean parameter (`true`/`1`); a malformed value is a 400.
    pub fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for boolean parameter {k}"
            ))),
        }
    }

    /// An integer parameter; a malformed value is a 400 naming the parameter.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{k}: Invalid value: {v:?}: must be an integer"))),
        }
    }

    /// Checks the list options every list, watch and DELETECOLLECTION takes: `limit` and
    /// `timeoutSeconds` are integers ≥ 0 (0: no limit, no timeout), else 400 naming the parameter.
    pub fn validate_list_options(&self) -> Result<(), ApiError> {
        for k in ["limit", "timeoutSeconds"] {
            if let Some(v) = self.int(k)?
                && v < 0
            {
                return Err(ApiError::bad_request(format!(
                    "{k}: Invalid value: {v}: must be greater than or equal to 0"
                )));
            }
        }
        Ok(())
    }

    /// `dryRun`: `All` means dry run; any other non-empty value is a 400.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        let mut dry = false;
        for v in &self.dry_run {
            match v.as_str() {
                "All" => dry = true,
                "" => {}
                other => {
                    return Err(ApiError::bad_request(format!(
                        "dryRun: Unsupported value: {other:?}: supported values: \"All\""
                    )));
                }
            }
        }
        Ok(dry)
    }

    /// `fieldValidation` (default `Warn`, as kube-apiserver does for requests that don't say;
    /// kubectl sends `Strict`).
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.get("fieldValidation") {
            Some("Strict") => Ok(FieldValidation::Strict),
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// How unknown and duplicate fields are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and return `Warning` headers.
    Warn,
    /// Reject the request.
    Strict,
}

/// The representation the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The object(s) as JSON.
    Json,
    /// The object(s) as YAML.
    Yaml,
    /// `meta.k8s.io/v1` Table.
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    PartialMetadata,
    /// `apidiscovery.k8s.io/v2` APIGroupDiscoveryList (discovery endpoints only).
    AggregatedDiscovery,
}

/// Picks the first supported representation in `Accept` (no header: JSON); none supported → 406.
/// Protobuf counts as JSON here: handlers build JSON, and [`crate::protobuf`] re-encodes it.
pub fn negotiate(accept: Option<&str>) -> Result<Output, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut params = HashMap::new();
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                params.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let is_json = matches!(media.as_str(), "application/json" | "*/*" | "application/*");
        if let Some(as_) = params.get("as") {
            if !is_json {
                continue;
            }
            let g = params.get("g").map(String::as_str).unwrap_or("");
            let v = params.get("v").map(String::as_str).unwrap_or("");
            match (as_.as_str(), g, v) {
                ("Table", "meta.k8s.io", "v1") => return Ok(Output::Table),
                ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io", "v1") => {
                    return Ok(Output::PartialMetadata);
                }
                ("APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2") => {
                    return Ok(Output::AggregatedDiscovery);
                }
                _ => continue,
            }
        }
        match media.as_str() {
            // Protobuf is transcoded from the JSON reply at the edge (see `crate::protobuf`).
            "application/json" | "*/*" | "application/*" | crate::protobuf::MEDIA_TYPE => {
                return Ok(Output::Json);
            }
            "application/yaml" => return Ok(Output::Yaml),
            _ => {}
        }
    }
    Err(ApiError::not_acceptable())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(p: &str) -> ResourcePath {
        match parse_path(p) {
            Some(Target::Resource(r)) => r,
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = res("/apis/test.ironnet.dev/v1/namespaces/default/widgets/w1/status");
        assert_eq!(
            (
                r.group.as_str(),
                r.namespace.as_deref(),
                r.plural.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (
                "test.ironnet.dev",
                Some("default"),
                "widgets",
                Some("w1"),
                Some("status")
            )
        );
        let r = res("/apis/test.ironnet.dev/v1/widgets");
        assert_eq!((r.namespace, r.plural.as_str()), (None, "widgets"));
        let r = res("/api/v1/namespaces/default");
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let r = res("/api/v1/namespaces/default/status");
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("default"), Some("status"))
        );
        let r = res("/api/v1/namespaces/default/events");
        assert_eq!(
            (r.plural.as_str(), r.namespace.as_deref(), r.name),
            ("events", Some("default"), None)
        );
        assert_eq!(parse_path("/apis"), Some(Target::Groups));
        assert_eq!(parse_path("/api"), Some(Target::CoreVersions));
        assert_eq!(parse_path("/foo"), None);
        assert_eq!(parse_path("/apis/g/v/a/b/c/d"), None);
        // Empty segments never name an object or collection; discovery stays lenient.
        for p in [
            "/apis/test.ironnet.dev/v1/namespaces/default/widgets/",
            "/apis/test.ironnet.dev/v1/namespaces/default/widgets//status",
            "/apis/test.ironnet.dev/v1/namespaces//widgets",
            "/api/v1/namespaces/",
            "api/v1/namespaces",
        ] {
            assert_eq!(parse_path(p), None, "{p}");
        }
        assert_eq!(parse_path("/apis/"), Some(Target::Groups));
    }

    #[test]
    fn queries() {
        let q = Query::parse(Some(
            "&labelSelector=app%3Da%2Cb+in+(x)&watch=true&dryRun=All&limit=5",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=a,b in (x)"));
        assert!(q.flag("watch").unwrap());
        assert!(q.dry_run().unwrap());
        assert_eq!(q.int("limit").unwrap(), Some(5));
        assert_eq!(
            Query::parse(Some("limit=x")).int("limit").unwrap_err().message,
            "limit: Invalid value: \"x\": must be an integer"
        );
        assert_eq!(
            Query::parse(Some("timeoutSeconds=-1"))
                .validate_list_options()
                .unwrap_err()
                .message,
            "timeoutSeconds: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(
            Query::parse(Some("limit=0&timeoutSeconds=0"))
                .validate_list_options()
                .is_ok()
        );
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
        assert_eq!(Query::parse(Some("a=%")).get("a"), Some("%"));
        assert_eq!(Query::parse(Some("a=%4")).get("a"), Some("%4"));
    }

    #[test]
    fn accept_negotiation() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(table)).unwrap(), Output::Table);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json")).unwrap(),
            Output::Json
        );
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ))
            .unwrap(),
            Output::PartialMetadata
        );
        assert_eq!(negotiate(None).unwrap(), Output::Json);
        assert_eq!(negotiate(Some("application/yaml")).unwrap(), Output::Yaml);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf")).unwrap(),
            Output::Json
        );
        assert_eq!(
            negotiate(Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io"))
                .unwrap_err()
                .code,
            406
        );
    }

    proptest::proptest! {
        #[test]
        fn request_parsing_never_panics(path in "[a-z/.%+&=-]{0,60}", accept in ".{0,60}") {
            let _ = parse_path(&path);
            let _ = Query::parse(Some(&path)).dry_run();
            let _ = negotiate(Some(&accept));
        }
    }
}
