//! RequestInfo: what a request is about, resolved from its method, path and query exactly as
//! k8s.io/apiserver's `RequestInfoFactory.NewRequestInfo` does (prefixes `api` and `apis`,
//! `api` groupless), including the `AuthorizeWithSelectors` field and label selectors.

pub mod query;
pub mod selector;

use query::{ListOptions, Query};

/// The resolved attributes of a request, filled once and read by every later filter.
///
/// Every request's context and every idle watch holds one for its whole life, so its text is
/// one allocation: the decoded path, then what the path does not hold (the verb, a name from
/// the field selector, the selectors), each attribute a span of it. (As twelve `String`s it was
/// 296 bytes and eight allocations for a watch, ~450 bytes of memory in all.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    text: Box<str>,
    spans: [Span; FIELDS],
    pub is_resource_request: bool,
    /// `/namespaces/<namespace>/` came before the resource: a namespaced path, which no
    /// cluster-scoped resource has (`/namespaces/x` is the namespace itself, not such a path).
    pub namespaced_path: bool,
    /// The verb came from a `/watch/` or `/proxy/` prefix, whatever the method.
    pub verb_from_prefix: bool,
}

/// A range of [`RequestInfo`]'s text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

// The attributes, as indices of `RequestInfo::spans`.
const PATH: usize = 0;
const VERB: usize = 1;
const API_PREFIX: usize = 2;
const API_GROUP: usize = 3;
const API_VERSION: usize = 4;
const NAMESPACE: usize = 5;
const RESOURCE: usize = 6;
const SUBRESOURCE: usize = 7;
const NAME: usize = 8;
const PARTS: usize = 9;
const FIELD_SELECTOR: usize = 10;
const LABEL_SELECTOR: usize = 11;
const FIELDS: usize = 12;

impl RequestInfo {
    /// One request's attributes from pieces that borrow from `path` (the decoded path) or not.
    fn assemble(path: &str, pieces: [&str; FIELDS], flags: (bool, bool, bool)) -> Self {
        // a piece of the path is a span of it; any other is appended once, exactly sized
        let within = |piece: &str| {
            let (at, base) = (piece.as_ptr() as usize, path.as_ptr() as usize);
            at >= base && at + piece.len() <= base + path.len()
        };
        let extra: usize = pieces.iter().filter(|p| !p.is_empty() && !within(p)).map(|p| p.len()).sum();
        let mut text = String::with_capacity(path.len() + extra);
        text.push_str(path);
        let mut spans = [Span::default(); FIELDS];
        for (span, piece) in spans.iter_mut().zip(pieces) {
            let start = if piece.is_empty() {
                continue;
            } else if within(piece) {
                piece.as_ptr() as usize - path.as_ptr() as usize
            } else {
                text.push_str(piece);
                text.len() - piece.len()
            };
            // a request's head is far below 4 GiB (pingora bounds it to a few hundred KiB)
            debug_assert!(start + piece.len() <= u32::MAX as usize, "a RequestInfo of 4 GiB");
            *span = Span { start: start as u32, end: (start + piece.len()) as u32 };
        }
        let (is_resource_request, namespaced_path, verb_from_prefix) = flags;
        RequestInfo { text: text.into_boxed_str(), spans, is_resource_request, namespaced_path, verb_from_prefix }
    }

    fn get(&self, field: usize) -> &str {
        let Span { start, end } = self.spans[field];
        &self.text[start as usize..end as usize]
    }

    /// The URL path, percent-decoded (Go's `URL.Path`), for non-resource authorization and audit.
    pub fn path(&self) -> &str {
        self.get(PATH)
    }

    /// Kubernetes verb for resource requests (get, list, watch, create, ...), or the
    /// lower-cased HTTP method for non-resource requests.
    pub fn verb(&self) -> &str {
        self.get(VERB)
    }

    pub fn api_prefix(&self) -> &str {
        self.get(API_PREFIX)
    }

    pub fn api_group(&self) -> &str {
        self.get(API_GROUP)
    }

    pub fn api_version(&self) -> &str {
        self.get(API_VERSION)
    }

    pub fn namespace(&self) -> &str {
        self.get(NAMESPACE)
    }

    pub fn resource(&self) -> &str {
        self.get(RESOURCE)
    }

    pub fn subresource(&self) -> &str {
        self.get(SUBRESOURCE)
    }

    pub fn name(&self) -> &str {
        self.get(NAME)
    }

    /// The path segments from the resource on (`resource/name/subresource/...`); none for a
    /// non-resource request.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        let parts = if self.is_resource_request { Some(self.get(PARTS).split('/')) } else { None };
        parts.into_iter().flatten()
    }

    /// The raw `fieldSelector` of a list, watch or deletecollection (not via the legacy
    /// `/watch/` prefix), for authorization with selectors.
    pub fn field_selector(&self) -> &str {
        self.get(FIELD_SELECTOR)
    }

    /// The raw `labelSelector`, under the same rule.
    pub fn label_selector(&self) -> &str {
        self.get(LABEL_SELECTOR)
    }
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
        let mut pieces = [""; FIELDS];
        pieces[PATH] = &path;
        let trimmed = path.trim_matches('/');
        // a request path has a handful of segments: found without an allocation
        let segments: smallvec::SmallVec<[&str; 8]> =
            if trimmed.is_empty() { Default::default() } else { trimmed.split('/').collect() };
        // as upstream, a prefix is kept though the path turns out too short for a group's
        let non_resource = |prefix: &str| {
            let lower = method.to_ascii_lowercase();
            let mut pieces = [""; FIELDS];
            pieces[PATH] = &path;
            pieces[VERB] = &lower;
            pieces[API_PREFIX] = prefix;
            Ok(Self::assemble(&path, pieces, (false, false, false)))
        };
        if segments.len() < 3 || !(segments[0] == "api" || segments[0] == "apis") {
            return non_resource("");
        }
        pieces[API_PREFIX] = segments[0];
        let mut parts = &segments[1..];
        if segments[0] != "api" {
            // /apis/<group>/<version>/<resource> needs three parts after the prefix
            if parts.len() < 3 {
                return non_resource(segments[0]);
            }
            pieces[API_GROUP] = parts[0];
            parts = &parts[1..];
        }
        pieces[API_VERSION] = parts[0];
        parts = &parts[1..];

        // the verb is settled here and written once, at the end
        let verb_from_prefix = SPECIAL_VERBS.contains(&parts[0]);
        let mut verb = if verb_from_prefix {
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

        let mut namespaced_path = false;
        if parts[0] == "namespaces" && parts.len() > 1 {
            pieces[NAMESPACE] = parts[1];
            if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                parts = &parts[2..];
                namespaced_path = true;
            }
        }
        // the segments from the resource on, as they stand in the path
        let last = parts[parts.len() - 1];
        let from = parts[0].as_ptr() as usize - path.as_ptr() as usize;
        let to = last.as_ptr() as usize - path.as_ptr() as usize + last.len();
        pieces[PARTS] = &path[from..to];

        let n = parts.len();
        if n >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.contains(&verb) {
            pieces[SUBRESOURCE] = parts[2];
        }
        if n >= 2 {
            pieces[NAME] = parts[1];
        }
        pieces[RESOURCE] = parts[0];

        let query_name;
        if pieces[NAME].is_empty() && verb == "get" {
            let opts = ListOptions::decode(parsed);
            verb = if opts.watch { "watch" } else { "list" };
            if let Some(name) = opts.name.filter(|n| is_valid_path_segment_name(n)) {
                query_name = name;
                pieces[NAME] = &query_name;
            }
        }
        if pieces[NAME].is_empty() && verb == "delete" {
            verb = "deletecollection";
        }
        if !verb_from_prefix && VERBS_WITH_SELECTORS.contains(&verb) {
            pieces[FIELD_SELECTOR] = parsed.first("fieldSelector").unwrap_or_default();
            pieces[LABEL_SELECTOR] = parsed.first("labelSelector").unwrap_or_default();
        }
        pieces[VERB] = verb;
        Ok(Self::assemble(&path, pieces, (true, namespaced_path, verb_from_prefix)))
    }

    /// Whether kube counts this request as long-running (exempt from the request timeout
    /// and from max-in-flight): watches, proxy, and the streaming subresources.
    pub fn is_long_running(&self) -> bool {
        if !self.is_resource_request {
            // kube's BasicLongRunningRequestCheck also exempts the profiler
            return self.path().starts_with("/debug/pprof/");
        }
        matches!(self.verb(), "watch" | "proxy")
            || matches!(self.subresource(), "attach" | "exec" | "proxy" | "log" | "portforward")
    }

    /// kube's read-only verbs, which count against `--max-requests-inflight`.
    pub fn is_read_only(&self) -> bool {
        matches!(self.verb(), "get" | "list" | "watch")
    }

    /// `apiserver_request_total`'s scope label (kube's `CleanScope`: a create names its
    /// object in the body, so it is resource-scoped).
    pub fn scope(&self) -> &'static str {
        if !self.name().is_empty() || self.verb() == "create" {
            "resource"
        } else if !self.namespace().is_empty() {
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
