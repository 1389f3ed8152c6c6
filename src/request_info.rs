//! RequestInfo: what a request is about, resolved from its method, path and query exactly as
//! k8s.io/apiserver's `RequestInfoFactory.NewRequestInfo` does (prefixes `api` and `apis`,
//! `api` groupless), including the `AuthorizeWithSelectors` field and label selectors.

pub mod query;
pub mod selector;

use query::{ListOptions, Query};

/// The resolved attributes of a request, filled once and read by every later filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The URL path, percent-decoded (Go's `URL.Path`), for non-resource authorization and audit.
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
    /// `/namespaces/<namespace>/` came before the resource: a namespaced path, which no
    /// cluster-scoped resource has (`/namespaces/x` is the namespace itself, not such a path).
    pub namespaced_path: bool,
    /// The verb came from a `/watch/` or `/proxy/` prefix, whatever the method.
    pub verb_from_prefix: bool,
    /// The raw `fieldSelector` of a list, watch or deletecollection (not via the legacy
    /// `/watch/` prefix), for authorization with selectors.
    pub field_selector: String,
    /// The raw `labelSelector`, under the same rule.
    pub label_selector: String,
}

/// Why a path cannot be resolved; kube answers these with a plain-text 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfoError(pub String);

impl std::fmt::Display for RequestInfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RequestInfoError {}

/// Legacy verbs given as the first segment after the version.
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
/// Legacy verbs whose paths carry no subresource.
const SPECIAL_VERBS_NO_SUBRESOURCES: [&str; 1] = ["proxy"];
/// Subresources of a namespace, told apart from namespaced resources.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];
/// Verbs whose field and label selectors are kept for authorization.
const VERBS_WITH_SELECTORS: [&str; 3] = ["list", "watch", "deletecollection"];

impl RequestInfo {
    /// Resolves a request. `raw_path` is the request target's path as sent (percent-encoded),
    /// `query` the raw query string without the leading `?`.
    pub fn resolve(method: &str, raw_path: &str, query: Option<&str>) -> Result<Self, RequestInfoError> {
        Self::resolve_parsed(method, raw_path, query, &Query::parse(query.unwrap_or("")))
    }

    /// Resolves a request whose query the chain already parsed (`parsed` is `raw_query` read
    /// once; the raw form is only quoted in errors).
    pub fn resolve_parsed(
        method: &str,
        raw_path: &str,
        raw_query: Option<&str>,
        parsed: &Query,
    ) -> Result<Self, RequestInfoError> {
        // without a '%' decoding is the identity (and a &str is valid UTF-8): memchr finds that
        // where the decoder walks the path byte by byte (~1,100 instructions a request)
        let path: std::borrow::Cow<str> = if raw_path.contains('%') {
            percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy()
        } else {
            raw_path.into()
        };
        let mut info = RequestInfo { is_resource_request: false, path: path.to_string(), ..Default::default() };
        let trimmed = path.trim_matches('/');
        let segments: Vec<&str> = if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect() };
        if segments.len() < 3 || !(segments[0] == "api" || segments[0] == "apis") {
            info.verb = method.to_ascii_lowercase();
            return Ok(info);
        }
        info.api_prefix = segments[0].to_string();
        let mut parts = &segments[1..];
        if info.api_prefix != "api" {
            // /apis/<group>/<version>/<resource> needs three parts after the prefix
            if parts.len() < 3 {
                info.verb = method.to_ascii_lowercase();
                return Ok(info);
            }
            info.api_group = parts[0].to_string();
            parts = &parts[1..];
        }
        info.is_resource_request = true;
        info.api_version = parts[0].to_string();
        parts = &parts[1..];

        // the verb is settled here and written once, at the end
        info.verb_from_prefix = SPECIAL_VERBS.contains(&parts[0]);
        let mut verb = if info.verb_from_prefix {
            if parts.len() < 2 {
                return Err(RequestInfoError(format!(
                    "unable to determine kind and namespace from url, {}",
                    display_url(raw_path, raw_query)
                )));
            }
            let verb = parts[0];
            parts = &parts[1..];
            verb
        } else {
            match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
        };

        if parts[0] == "namespaces" && parts.len() > 1 {
            info.namespace = parts[1].to_string();
            if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                parts = &parts[2..];
                info.namespaced_path = true;
            }
        }
        info.parts = parts.iter().map(|s| s.to_string()).collect();

        let n = parts.len();
        if n >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.contains(&verb) {
            info.subresource = parts[2].to_string();
        }
        if n >= 2 {
            info.name = parts[1].to_string();
        }
        info.resource = parts[0].to_string();

        if info.name.is_empty() && verb == "get" {
            let opts = ListOptions::decode(parsed);
            verb = if opts.watch { "watch" } else { "list" };
            if let Some(name) = opts.name.filter(|n| is_valid_path_segment_name(n)) {
                info.name = name;
            }
        }
        if info.name.is_empty() && verb == "delete" {
            verb = "deletecollection";
        }
        if !info.verb_from_prefix && VERBS_WITH_SELECTORS.contains(&verb) {
            info.field_selector = parsed.first("fieldSelector").unwrap_or_default().to_string();
            info.label_selector = parsed.first("labelSelector").unwrap_or_default().to_string();
        }
        info.verb = verb.to_string();
        Ok(info)
    }

    /// Whether kube counts this request as long-running (exempt from the request timeout
    /// and from max-in-flight): watches, proxy, and the streaming subresources.
    pub fn is_long_running(&self) -> bool {
        if !self.is_resource_request {
            // kube's BasicLongRunningRequestCheck also exempts the profiler
            return self.path.starts_with("/debug/pprof/");
        }
        matches!(self.verb.as_str(), "watch" | "proxy")
            || matches!(self.subresource.as_str(), "attach" | "exec" | "proxy" | "log" | "portforward")
    }

    /// kube's read-only verbs, which count against `--max-requests-inflight`.
    pub fn is_read_only(&self) -> bool {
        matches!(self.verb.as_str(), "get" | "list" | "watch")
    }

    /// `apiserver_request_total`'s scope label (kube's `CleanScope`: a create names its
    /// object in the body, so it is resource-scoped).
    pub fn scope(&self) -> &'static str {
        if !self.name.is_empty() || self.verb == "create" {
            "resource"
        } else if !self.namespace.is_empty() {
            "namespace"
        } else if self.is_resource_request {
            "cluster"
        } else {
            ""
        }
    }
}

/// Go's `URL.String()` of the request target: the path as sent, and `?query` when there was one.
fn display_url(raw_path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{raw_path}?{q}"),
        None => raw_path.to_string(),
    }
}

/// kube's `path.IsValidPathSegmentName`.
fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

#[cfg(test)]
mod tests;
