//! RequestInfo: what a request is about, resolved from its method, path and query exactly as
//! k8s.io/apiserver's `RequestInfoFactory.NewRequestInfo` does (prefixes `api` and `apis`,
//! `api` groupless).

use std::borrow::Cow;

/// The resolved attributes of a request, filled once and read by every later filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The URL path, kept for non-resource authorization and audit.
    pub path: String,
    /// Kubernetes verb for resource requests (get, list, watch, create, ...), or the
    /// lower-cased HTTP method for non-resource requests.
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The path segments from the resource on (`resource/name/subresource/...`).
    pub parts: Vec<String>,
}

/// Why a path cannot be resolved; kube answers these with an internal-error Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfoError(pub String);

impl std::fmt::Display for RequestInfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RequestInfoError {}

const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl RequestInfo {
    /// Resolves a request. `query` is the raw query string without the leading `?`.
    pub fn resolve(method: &str, path: &str, query: Option<&str>) -> Result<Self, RequestInfoError> {
        let mut info = RequestInfo {
            is_resource_request: false,
            path: path.to_string(),
            verb: method.to_ascii_lowercase(),
            ..Default::default()
        };
        let trimmed = path.trim_matches('/');
        let mut parts: Vec<&str> = if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect() };
        if parts.len() < 3 || !(parts[0] == "api" || parts[0] == "apis") {
            return Ok(info);
        }
        info.api_prefix = parts[0].to_string();
        parts.remove(0);
        if info.api_prefix != "api" {
            // /apis/<group>/<version>/<resource> needs three parts after the prefix
            if parts.len() < 3 {
                return Ok(info);
            }
            info.api_group = parts.remove(0).to_string();
        }
        info.is_resource_request = true;
        info.api_version = parts.remove(0).to_string();

        if parts[0] == "proxy" || parts[0] == "watch" {
            if parts.len() < 2 {
                return Err(RequestInfoError(format!(
                    "unable to determine kind and namespace from url, {}",
                    display_url(path, query)
                )));
            }
            info.verb = parts.remove(0).to_string();
        } else {
            info.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_string();
        }

        if parts[0] == "namespaces" {
            if parts.len() > 1 {
                info.namespace = parts[1].to_string();
                if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                    parts.drain(..2);
                }
            }
        }
        info.parts = parts.iter().map(|s| s.to_string()).collect();

        let n = info.parts.len();
        if n >= 3 && info.verb != "proxy" {
            info.subresource = info.parts[2].clone();
        }
        if n >= 2 {
            info.name = info.parts[1].clone();
        }
        if n >= 1 {
            info.resource = info.parts[0].clone();
        }

        if info.name.is_empty() && info.verb == "get" {
            let opts = ListQuery::parse(query.unwrap_or(""));
            info.verb = if opts.watch { "watch" } else { "list" }.to_string();
            if let Some(name) = opts.field_selector_name {
                if is_valid_path_segment_name(&name) {
                    info.name = name;
                }
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        Ok(info)
    }

    /// Whether kube counts this request as long-running (exempt from the request timeout
    /// and from max-in-flight): watches, proxy, and the streaming subresources.
    pub fn is_long_running(&self) -> bool {
        if !self.is_resource_request {
            return false;
        }
        matches!(self.verb.as_str(), "watch" | "proxy")
            || matches!(self.subresource.as_str(), "attach" | "exec" | "proxy" | "log" | "portforward")
    }

    /// kube's read-only verbs, which count against `--max-requests-inflight`.
    pub fn is_read_only(&self) -> bool {
        matches!(self.verb.as_str(), "get" | "list" | "watch")
    }

    /// `apiserver_request_total`'s scope label.
    pub fn scope(&self) -> &'static str {
        if !self.is_resource_request {
            ""
        } else if !self.name.is_empty() {
            "resource"
        } else if !self.namespace.is_empty() {
            "namespace"
        } else {
            "cluster"
        }
    }
}

fn display_url<'a>(path: &'a str, query: Option<&str>) -> Cow<'a, str> {
    match query {
        Some(q) if !q.is_empty() => Cow::Owned(format!("{path}?{q}")),
        _ => Cow::Borrowed(path),
    }
}

/// kube's `path.IsValidPathSegmentName`.
fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// The parts of metav1 ListOptions that RequestInfo reads. A query that fails to decode
/// falls back as kube's does: no name, and `watch` true unless its first value is false/0.
struct ListQuery {
    watch: bool,
    field_selector_name: Option<String>,
}

impl ListQuery {
    fn parse(query: &str) -> Self {
        let mut watch_values: Vec<String> = Vec::new();
        let mut field_selector: Option<String> = None;
        let mut ok = true;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "watch" => watch_values.push(v.into_owned()),
                "fieldSelector" => {
                    if field_selector.is_none() {
                        field_selector = Some(v.into_owned());
                    }
                }
                "allowWatchBookmarks" | "sendInitialEvents" => ok &= parse_bool(&v).is_some(),
                "timeoutSeconds" | "limit" => ok &= v.is_empty() || v.parse::<i64>().is_ok(),
                _ => {}
            }
        }
        let watch = match watch_values.first() {
            None => false,
            Some(v) => match parse_bool(v) {
                Some(b) => b,
                None => {
                    ok = false;
                    true
                }
            },
        };
        let field_selector_name = match field_selector.as_deref().map(exact_name) {
            Some(Ok(name)) => name,
            Some(Err(())) => {
                ok = false;
                None
            }
            None => None,
        };
        if !ok {
            let watch = !matches!(
                watch_values.first().map(|v| v.to_ascii_lowercase()).as_deref(),
                None | Some("false") | Some("0")
            );
            return ListQuery { watch, field_selector_name: None };
        }
        ListQuery { watch, field_selector_name }
    }
}

/// Go's strconv.ParseBool, which the query decoder uses; an empty value is false.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        _ => None,
    }
}

/// `fields.Selector.RequiresExactMatch("metadata.name")`: the value of a `metadata.name=X`
/// or `==` term. Err for a selector that does not parse.
fn exact_name(selector: &str) -> Result<Option<String>, ()> {
    let mut found = None;
    for term in split_unescaped(selector, ',') {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let (field, op, value) = if let Some(i) = term.find("!=") {
            (&term[..i], "!=", &term[i + 2..])
        } else if let Some(i) = term.find("==") {
            (&term[..i], "==", &term[i + 2..])
        } else if let Some(i) = term.find('=') {
            (&term[..i], "=", &term[i + 1..])
        } else {
            return Err(());
        };
        if field.trim() == "metadata.name" && op != "!=" {
            found = Some(unescape_field_value(value.trim())?);
        }
    }
    Ok(found)
}

fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn unescape_field_value(v: &str) -> Result<String, ()> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => return Err(()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}
