//! OpenAPI v3: the index (`/openapi/v3`) is the upstream apiserver's (from its last refresh)
//! merged with the available backends' group-versions and frontdoor's own, which replace the
//! upstream's of the same name; frontdoor's own group-version documents are served here (from
//! `store::openapi::v3_documents`), every other one is routed to whoever owns the group-version
//! (an APIService's backend or the upstream), so `kubectl apply` validation and `kubectl
//! explain` find every kind. Replies carry an ETag and answer 304 to a matching If-None-Match.

use crate::api::ApiResource;
use crate::filters::Reply;
use pingora::http::RequestHeader;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The path's group-version document name ("api/v1", "apis/g/v") under `/openapi/v3/`.
pub fn v3_group_version(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/openapi/v3/")?.trim_end_matches('/');
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["api", v] if !v.is_empty() => Some(rest),
        ["apis", g, v] if !g.is_empty() && !v.is_empty() => Some(rest),
        _ => None,
    }
}

/// A group-version's document name: "api/v1", "apis/g/v".
pub fn gv_name(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash(body: &[u8]) -> String {
    Sha256::digest(body).iter().take(16).map(|b| format!("{b:02X}")).collect()
}

/// The merged index: the upstream's paths, then each available backend's group-version (its
/// document is routed to the backend), then frontdoor's own (replacing the upstream's).
pub fn v3_index(local: &[(String, String)], backends: &[String], upstream: Option<&Value>) -> Value {
    let mut paths = upstream.and_then(|u| u.get("paths")).and_then(Value::as_object).cloned().unwrap_or_default();
    for gv in backends {
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}")}));
    }
    for (gv, h) in local {
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={h}")}));
    }
    let sorted: Map<String, Value> = paths.into_iter().collect();
    json!({"paths": sorted})
}

/// A JSON reply with an ETag, or 304 when the client already has it.
fn etagged(req: &RequestHeader, doc: &Value) -> Reply {
    let body = serde_json::to_vec(doc).unwrap_or_default();
    let etag = format!("\"{}\"", hash(&body));
    let matches = req
        .headers
        .get("If-None-Match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let reply = if matches {
        Reply::new(304, "application/json", Vec::new())
    } else {
        Reply::new(200, "application/json", body)
    };
    reply.header("ETag", etag).header("Vary", "Accept")
}

/// Answers `/openapi/v3`, the index merged from the upstream's, the available backends' and
/// frontdoor's own documents (which `store::openapi` serves, cached). `backends` are the
/// available APIService backends' group-version names ("apis/g/v").
pub fn serve_index(
    req: &RequestHeader,
    local: &[ApiResource],
    custom: &crate::store::openapi::CustomSchemas,
    backends: &[String],
    upstream: Option<&Value>,
) -> Reply {
    let hashes = crate::store::openapi::v3_hashes(local, custom);
    etagged(req, &v3_index(&hashes, backends, upstream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_merges_local_over_upstream() {
        let upstream = json!({"paths": {
            "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=UP"},
            "apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=UP"},
        }});
        let local = vec![("api/v1".to_string(), "OURS".to_string()), ("apis/x.io/v1".to_string(), "X".to_string())];
        let idx = v3_index(&local, &["apis/wardle.example.com/v1".to_string()], Some(&upstream));
        assert_eq!(
            idx["paths"]["apis/wardle.example.com/v1"]["serverRelativeURL"],
            "/openapi/v3/apis/wardle.example.com/v1"
        );
        assert_eq!(idx["paths"]["apis/apps/v1"]["serverRelativeURL"], "/openapi/v3/apis/apps/v1?hash=UP");
        let core = idx["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap();
        assert_eq!(core, "/openapi/v3/api/v1?hash=OURS");
        assert!(idx["paths"]["apis/x.io/v1"].is_object());
    }

    #[test]
    fn etags_and_paths() {
        assert_eq!(v3_group_version("/openapi/v3/apis/apps/v1"), Some("apis/apps/v1"));
        assert_eq!(v3_group_version("/openapi/v3/api/v1/"), Some("api/v1"));
        assert_eq!(v3_group_version("/openapi/v3"), None);
        assert_eq!(v3_group_version("/openapi/v3/apis/apps"), None);
        let local: Vec<ApiResource> =
            crate::store::resources::defaults().iter().flat_map(|d| d.api_resources()).collect();
        let req = RequestHeader::build("GET", b"/openapi/v3", None).unwrap();
        let backends = ["apis/wardle.example.com/v1".to_string()];
        let r = serve_index(&req, &local, &Default::default(), &backends, None);
        assert_eq!(r.code, 200);
        let etag = r.headers.iter().find(|(k, _)| *k == "ETag").unwrap().1.clone();
        let mut again = RequestHeader::build("GET", b"/openapi/v3", None).unwrap();
        again.insert_header("If-None-Match", etag).unwrap();
        assert_eq!(serve_index(&again, &local, &Default::default(), &backends, None).code, 304);
    }
}
