//! OpenAPI merged as kube-aggregator merges it: `/openapi/v2` is the upstream apiserver's
//! swagger document with frontdoor's own paths and definitions laid over it and every available
//! backend's paths (of its group-version) and definitions added; `/openapi/v3` indexes every
//! group-version document: frontdoor's own, the upstream's and the backends', a group-version
//! both frontdoor and the upstream serve merged into one. The upstream's and the backends'
//! documents are fetched by their refreshers when they change (conditional GETs on ETags and
//! the index's hashes, `refresh`), and everything served here is built once per change of its
//! sources (`build`) and answered from bytes, with kube's ETags, 304s and `?hash=` semantics.

use crate::filters::Reply;
use crate::request_info::query::Query;
use crate::request_info::RequestInfo;
use crate::store::openapi::{Documents, Served};
use pingora::http::RequestHeader;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// One server's OpenAPI (the upstream apiserver's or a backend's), as its refresher last
/// fetched it.
#[derive(Debug, Clone, Default)]
pub struct Remote {
    /// `/openapi/v2`, parsed, with the hash of its bytes.
    pub v2: Option<(Arc<Value>, String)>,
    v2_etag: Option<String>,
    /// The group-versions of its `/openapi/v3` index: name -> (the hash the index named, the
    /// document when it could be fetched).
    pub v3: BTreeMap<String, (String, Option<Served>)>,
    v3_etag: Option<String>,
}

/// A GET of one server's document: (status, body, ETag).
pub type Fetched = Result<(u16, bytes::Bytes, Option<String>), String>;

/// How a refresher GETs a path of its server (with its own identity and peer).
pub trait Fetch {
    /// GETs `path_and_query` (from the server's root), conditional on `etag`.
    fn get(&self, path_and_query: &str, etag: Option<&str>) -> impl std::future::Future<Output = Fetched>;
}

/// The `hash` a v3 index's serverRelativeURL names ("" without one).
fn hash_of(url: &str) -> &str {
    url.split_once('?').map(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("hash=")).unwrap_or("")).unwrap_or("")
}

/// Fetches what changed of a server's OpenAPI since `cur`: `/openapi/v2` (conditional on its
/// ETag), the `/openapi/v3` index (likewise) and each group-version document `keep` accepts
/// whose hash changed (a backend serves its own group-version only). A server without a
/// document (404, 406) has none; a failed fetch keeps the previous one. None when nothing
/// changed.
pub async fn refresh(f: &impl Fetch, cur: &Remote, keep: impl Fn(&str) -> bool) -> Option<Remote> {
    let mut next = cur.clone();
    let mut changed = false;
    match f.get("/openapi/v2", cur.v2_etag.as_deref().filter(|_| cur.v2.is_some())).await {
        Ok((200, body, etag)) => {
            let served = Served::from_bytes(body);
            if cur.v2.as_ref().map(|(_, h)| h) != Some(&served.etag) {
                match serde_json::from_slice::<Value>(&served.body) {
                    Ok(v) => {
                        next.v2 = Some((Arc::new(v), served.etag));
                        changed = true;
                    }
                    Err(e) => tracing::debug!(error = %e, "an invalid /openapi/v2 document; keeping the previous one"),
                }
            }
            next.v2_etag = etag;
        }
        Ok((304, ..)) => {}
        Ok((404 | 406, ..)) => {
            changed |= next.v2.take().is_some();
            next.v2_etag = None;
        }
        Ok((code, ..)) => tracing::debug!(code, "/openapi/v2 failed; keeping the previous document"),
        Err(e) => tracing::debug!(error = %e, "/openapi/v2 failed; keeping the previous document"),
    }
    let index = match f.get("/openapi/v3", cur.v3_etag.as_deref().filter(|_| !cur.v3.is_empty())).await {
        Ok((200, body, etag)) => {
            next.v3_etag = etag;
            serde_json::from_slice::<Value>(&body).ok()
        }
        Ok((404 | 406, ..)) => {
            changed |= !next.v3.is_empty();
            next.v3.clear();
            next.v3_etag = None;
            None
        }
        _ => None,
    };
    if let Some(index) = index {
        let paths = index.get("paths").and_then(Value::as_object).cloned().unwrap_or_default();
        let listed: Vec<(String, String)> = paths
            .iter()
            .filter(|(gv, _)| keep(gv))
            .filter_map(|(gv, e)| Some((gv.clone(), e.get("serverRelativeURL")?.as_str()?.to_string())))
            .collect();
        let before = next.v3.len();
        next.v3.retain(|gv, _| listed.iter().any(|(g, _)| g == gv));
        changed |= next.v3.len() != before;
        for (gv, url) in listed {
            let hash = hash_of(&url).to_string();
            if next.v3.get(&gv).is_some_and(|(h, d)| !hash.is_empty() && *h == hash && d.is_some()) {
                continue;
            }
            let doc = match f.get(&url, None).await {
                Ok((200, body, _)) => Some(Served::from_bytes(body)),
                _ => None,
            };
            let same =
                next.v3.get(&gv).is_some_and(|(_, d)| d.as_ref().map(|d| &d.etag) == doc.as_ref().map(|d| &d.etag));
            changed |= !same;
            next.v3.insert(gv, (hash, doc));
        }
    }
    changed |= next.v2_etag != cur.v2_etag || next.v3_etag != cur.v3_etag;
    changed.then_some(next)
}

/// Everything served under `/openapi/`, built once per change of its sources.
#[derive(Debug, Default)]
pub struct Cached {
    v2: Served,
    index: Served,
    /// The group-version documents served here (the rest of the index is proxied to its owner).
    v3: BTreeMap<String, Served>,
}

impl Cached {
    /// Whether `/openapi/v3/<gv>` is answered here.
    pub fn has_v3(&self, gv: &str) -> bool {
        self.v3.contains_key(gv)
    }
}

/// One backend's group-version and OpenAPI. An unavailable one still claims its group-version
/// (its requests answer 503) but contributes no documents.
pub struct BackendDocs {
    pub gv: String,
    pub available: bool,
    pub docs: Arc<Remote>,
}

/// Whether swagger path `p` lies under group-version document name `gv` ("apis/g/v").
fn under(p: &str, gv: &str) -> bool {
    p.strip_prefix('/').and_then(|p| p.strip_prefix(gv)).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The swagger 2.0 document kube-aggregator would serve: the upstream's (frontdoor's own
/// without one), paths of a backend's group-version replaced by the backend's, frontdoor's own
/// paths and definitions laid over it, each backend's definitions added (renamed where the
/// name is taken by a different definition).
pub fn merge_v2(local: &Value, upstream: Option<&Value>, claimed: &[&str], backends: &[(&str, &Value)]) -> Value {
    let mut out = upstream.unwrap_or(local).clone();
    if !out.is_object() {
        out = local.clone();
    }
    let obj = |v: &Value, k: &str| v.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
    let mut paths = obj(&out, "paths");
    let mut defs = obj(&out, "definitions");
    paths.retain(|p, _| !claimed.iter().any(|gv| under(p, gv)));
    if upstream.is_some() {
        paths.extend(obj(local, "paths"));
        defs.extend(obj(local, "definitions"));
    }
    for (gv, doc) in backends {
        // a definition whose name is taken by a different one is renamed `<name>_v2` (then _v3,
        // ...) and the backend's references follow, as kube-aggregator's merge does
        let mut theirs = obj(doc, "definitions");
        let mut renames: Vec<(String, String)> = Vec::new();
        for (name, d) in &theirs {
            if defs.get(name).is_some_and(|ours| !same_modulo_gvk(ours, d)) {
                let free =
                    (2..).map(|i| format!("{name}_v{i}")).find(|n| !defs.contains_key(n) && !theirs.contains_key(n));
                renames.push((name.clone(), free.expect("an unused name")));
            }
        }
        let mut their_paths: Map<String, Value> = obj(doc, "paths").into_iter().filter(|(p, _)| under(p, gv)).collect();
        if !renames.is_empty() {
            for (from, to) in &renames {
                if let Some(d) = theirs.remove(from) {
                    theirs.insert(to.clone(), d);
                }
            }
            let mut t = Value::Object(theirs);
            let mut p = Value::Object(their_paths);
            rename_refs(&mut t, &renames);
            rename_refs(&mut p, &renames);
            theirs = t.as_object().cloned().unwrap_or_default();
            their_paths = p.as_object().cloned().unwrap_or_default();
        }
        paths.extend(their_paths);
        for (name, d) in theirs {
            defs.entry(name).or_insert(d);
        }
    }
    let sorted = |m: Map<String, Value>| Value::Object(m.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect());
    out["paths"] = sorted(paths);
    out["definitions"] = sorted(defs);
    out
}

/// Whether two definitions are the same but for the kinds they are tagged with (kube's
/// `deepEqualDefinitionsModuloGVKs`).
fn same_modulo_gvk(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("x-kubernetes-group-version-kind");
        }
        v
    };
    strip(a) == strip(b)
}

/// Rewrites every `$ref` to a renamed definition.
fn rename_refs(v: &mut Value, renames: &[(String, String)]) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some((_, to)) = renames.iter().find(|(from, _)| r.strip_prefix("#/definitions/") == Some(from)) {
                    *r = format!("#/definitions/{to}");
                }
            }
            m.values_mut().for_each(|c| rename_refs(c, renames));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rename_refs(c, renames)),
        _ => {}
    }
}

/// One group-version document both frontdoor and the upstream serve: the upstream's with
/// frontdoor's paths and schemas laid over it.
fn merge_v3(upstream: &Value, local: &Value) -> Value {
    let mut out = upstream.clone();
    let obj = |v: &Value, k: &str| v.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
    let mut paths = obj(&out, "paths");
    paths.extend(obj(local, "paths"));
    out["paths"] = Value::Object(paths);
    let mut schemas = obj(out.get("components").unwrap_or(&Value::Null), "schemas");
    schemas.extend(obj(local.get("components").unwrap_or(&Value::Null), "schemas"));
    if !out["components"].is_object() {
        out["components"] = json!({});
    }
    out["components"]["schemas"] = Value::Object(schemas);
    out
}

/// Builds what `/openapi/` serves from frontdoor's own documents, the upstream's and the
/// available backends' (a backend's group-version wins over everyone's, frontdoor's own over
/// the upstream's, as the router routes them).
pub fn build(local: &Documents, upstream: Option<&Remote>, backends: &[BackendDocs]) -> Cached {
    // /openapi/v2
    let up_v2 = upstream.and_then(|u| u.v2.as_ref()).map(|(v, _)| v.as_ref());
    let claimed_gvs: Vec<&str> = backends.iter().map(|b| b.gv.as_str()).collect();
    let backends: Vec<&BackendDocs> = backends.iter().filter(|b| b.available).collect();
    let be_v2: Vec<(&str, &Value)> =
        backends.iter().filter_map(|b| Some((b.gv.as_str(), b.docs.v2.as_ref()?.0.as_ref()))).collect();
    let v2 = if up_v2.is_none() && be_v2.is_empty() {
        local.v2.clone()
    } else {
        Served::new(&merge_v2(&local.v2_value, up_v2, &claimed_gvs, &be_v2))
    };
    // the group-version documents: served here, or listed and proxied to their owner
    let mut v3: BTreeMap<String, Served> = BTreeMap::new();
    let mut proxied: Vec<String> = Vec::new();
    let claimed = |gv: &str| claimed_gvs.contains(&gv);
    for (gv, (_, doc)) in upstream.map(|u| &u.v3).into_iter().flatten() {
        if claimed(gv) {
            continue;
        }
        match (doc, local.v3.iter().find(|(g, ..)| g == gv)) {
            (Some(doc), Some((_, ours, _))) => match serde_json::from_slice::<Value>(&doc.body) {
                Ok(theirs) => {
                    v3.insert(gv.clone(), Served::new(&merge_v3(&theirs, ours)));
                }
                Err(_) => {
                    v3.insert(gv.clone(), local.v3.iter().find(|(g, ..)| g == gv).expect("found").2.clone());
                }
            },
            (Some(doc), None) => {
                v3.insert(gv.clone(), doc.clone());
            }
            (None, Some(_)) => {}
            (None, None) => proxied.push(gv.clone()),
        }
    }
    for (gv, _, served) in &local.v3 {
        if !claimed(gv) && !v3.contains_key(gv) {
            v3.insert(gv.clone(), served.clone());
        }
    }
    for b in &backends {
        match b.docs.v3.get(&b.gv).and_then(|(_, d)| d.clone()) {
            Some(doc) => {
                v3.insert(b.gv.clone(), doc);
            }
            None => proxied.push(b.gv.clone()),
        }
    }
    let mut paths: BTreeMap<String, Value> = BTreeMap::new();
    for (gv, d) in &v3 {
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", d.etag)}));
    }
    for gv in proxied {
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}")}));
    }
    Cached { v2, index: Served::new(&json!({"paths": paths})), v3 }
}

/// Whether an Accept header takes JSON (absent, `*/*`, `application/*`, `application/json`).
fn accepts_json(accept: Option<&str>) -> bool {
    accept.is_none_or(|a| {
        a.split(',')
            .map(|t| t.split(';').next().unwrap_or("").trim())
            .any(|t| matches!(t, "" | "*/*" | "application/*" | "application/json"))
    })
}

/// Answers a GET of `/openapi/v2`, `/openapi/v3` or a group-version document served here (304
/// when If-None-Match names the current ETag); None for any other path. A group-version URL
/// with a stale `?hash=` is redirected (301) to the current one, as kube does, and one with the
/// current hash may be cached for good. The documents are JSON only: a client that takes only
/// protobuf (client-go's v2 reader) gets a 406 rather than bytes it cannot parse.
pub fn serve(c: &Cached, info: &RequestInfo, query: &Query, req: &RequestHeader) -> Option<Reply> {
    // checked first: every non-resource GET passes here (/version, /healthz, ...)
    if info.is_resource_request
        || !(info.verb() == "get" || info.verb() == "head")
        || !info.path().starts_with("/openapi/")
    {
        return None;
    }
    let path = info.path().trim_end_matches('/');
    let gv = v3_group_version(path);
    let served = match (path, gv) {
        ("/openapi/v2", _) => &c.v2,
        ("/openapi/v3", _) => &c.index,
        (_, Some(gv)) => c.v3.get(gv)?,
        _ => return None,
    };
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    if !accepts_json(header("Accept")) {
        return Some(Reply::from(crate::api::Status::failure(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json",
        )));
    }
    let etag = format!("\"{}\"", served.etag);
    let mut immutable = false;
    if let (Some(gv), Some(hash)) = (gv, query.first("hash")) {
        if hash != served.etag {
            let to = format!("/openapi/v3/{gv}?hash={}", served.etag);
            return Some(Reply::empty(301).header("Location", to));
        }
        immutable = true;
    }
    let mut r = if header("If-None-Match").is_some_and(|h| h.split(',').any(|t| t.trim() == etag)) {
        Reply::empty(304)
    } else {
        Reply::new(200, "application/json", served.body.clone())
    };
    r = r.header("ETag", etag).header("Vary", "Accept");
    if immutable {
        let expires = (chrono::Utc::now() + chrono::Duration::days(365)).format("%a, %d %b %Y %H:%M:%S GMT");
        r = r.header("Cache-Control", "public, immutable").header("Expires", expires.to_string());
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiResource;

    fn local() -> Arc<Documents> {
        let rs: Vec<ApiResource> = crate::store::resources::defaults().iter().flat_map(|d| d.api_resources()).collect();
        crate::store::openapi::documents(&rs, &Default::default())
    }

    fn remote(v3: &[(&str, Value)], v2: Option<Value>) -> Remote {
        Remote {
            v2: v2.map(|v| (Arc::new(v), "H".into())),
            v3: v3.iter().map(|(g, d)| (g.to_string(), ("h".into(), Some(Served::new(d))))).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn index_and_documents_merge_local_over_upstream() {
        let up = remote(
            &[
                (
                    "api/v1",
                    json!({"paths": {"/api/v1/pods": {}}, "components": {"schemas": {"io.k8s.api.core.v1.Pod": {}}}}),
                ),
                ("apis/apps/v1", json!({"paths": {"/apis/apps/v1/deployments": {}}})),
                ("apis/wardle.example.com/v1", json!({"paths": {"/apis/wardle.example.com/v1/upstream": {}}})),
            ],
            None,
        );
        let be = BackendDocs {
            gv: "apis/wardle.example.com/v1".into(),
            available: true,
            docs: Arc::new(remote(
                &[("apis/wardle.example.com/v1", json!({"paths": {"/apis/wardle.example.com/v1/flunders": {}}}))],
                None,
            )),
        };
        let nodoc =
            BackendDocs { gv: "apis/zeta.example.com/v1".into(), available: true, docs: Arc::new(Remote::default()) };
        // the upstream serves apps/v1 too, but an APIService claims it for a backend that is down
        let down = BackendDocs { gv: "apis/apps/v1".into(), available: false, docs: Arc::new(Remote::default()) };
        let c = build(&local(), Some(&up), &[be, nodoc, down]);
        let index: Value = serde_json::from_slice(&c.index.body).unwrap();
        let url = |gv: &str| index["paths"][gv]["serverRelativeURL"].as_str().unwrap().to_string();
        assert!(index["paths"].get("apis/apps/v1").is_none(), "claimed by a backend that is down: {index}");
        assert!(url("api/v1").starts_with("/openapi/v3/api/v1?hash="));
        assert_eq!(url("apis/zeta.example.com/v1"), "/openapi/v3/apis/zeta.example.com/v1", "proxied to its backend");
        let doc = |gv: &str| serde_json::from_slice::<Value>(&c.v3[gv].body).unwrap();
        assert!(doc("apis/wardle.example.com/v1")["paths"]["/apis/wardle.example.com/v1/flunders"].is_object());
        assert!(doc("apis/wardle.example.com/v1")["paths"].get("/apis/wardle.example.com/v1/upstream").is_none());
        let core = doc("api/v1");
        assert!(core["paths"]["/api/v1/pods"].is_object(), "the upstream's");
        assert!(core["paths"]["/api/v1/namespaces/{namespace}/configmaps"].is_object(), "frontdoor's own");
        assert!(core["components"]["schemas"]["io.k8s.api.core.v1.Pod"].is_object());
        assert!(core["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"].is_object());
        assert!(c.has_v3("apis/rbac.authorization.k8s.io/v1") && !c.has_v3("apis/zeta.example.com/v1"));
    }

    #[test]
    fn v2_merges_like_kube_aggregator() {
        let up = json!({"swagger": "2.0", "info": {"title": "Kubernetes"}, "paths": {
            "/apis/apps/v1/deployments": {"get": {}},
            "/apis/wardle.example.com/v1/stale": {"get": {}},
            "/apis/down.example.com/v1/things": {"get": {}},
            "/api/v1/namespaces/{namespace}/configmaps": {"get": {"upstream": true}},
        }, "definitions": {"io.k8s.api.apps.v1.Deployment": {}, "io.k8s.api.core.v1.ConfigMap": {"upstream": true},
            "x.Same": {"type": "object", "x-kubernetes-group-version-kind": [{"kind": "S"}]}}});
        let be = json!({"paths": {"/apis/wardle.example.com/v1/flunders": {"get": {"schema": {"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"}}}, "/apis/other/v1/x": {}, "/version": {}},
            "definitions": {"wardle.Flunder": {"properties": {"d": {"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"}}},
                "io.k8s.api.apps.v1.Deployment": {"backend": true},
                "x.Same": {"type": "object"}}});
        let claimed = ["apis/wardle.example.com/v1", "apis/down.example.com/v1"];
        let m = merge_v2(&local().v2_value, Some(&up), &claimed, &[("apis/wardle.example.com/v1", &be)]);
        let paths = m["paths"].as_object().unwrap();
        assert!(paths.contains_key("/apis/apps/v1/deployments"));
        assert!(!paths.contains_key("/apis/down.example.com/v1/things"), "a backend that is down still owns its paths");
        assert!(paths.contains_key("/apis/wardle.example.com/v1/flunders"));
        assert!(!paths.contains_key("/apis/wardle.example.com/v1/stale"), "the backend owns its group-version");
        assert!(
            !paths.contains_key("/apis/other/v1/x") && !paths.contains_key("/version"),
            "a backend adds its own paths only"
        );
        assert!(m["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["get"].get("upstream").is_none(), "ours win");
        assert!(m["definitions"]["io.k8s.api.core.v1.ConfigMap"].get("upstream").is_none());
        assert!(
            m["definitions"]["io.k8s.api.apps.v1.Deployment"].get("backend").is_none(),
            "the first definition stays"
        );
        assert_eq!(m["definitions"]["io.k8s.api.apps.v1.Deployment_v2"]["backend"], true, "a conflict is renamed");
        assert!(m["definitions"].get("x.Same_v2").is_none(), "the same but for its kinds: no conflict");
        let renamed = json!({"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment_v2"});
        assert_eq!(m["definitions"]["wardle.Flunder"]["properties"]["d"], renamed, "and referred to by its new name");
        assert_eq!(m["paths"]["/apis/wardle.example.com/v1/flunders"]["get"]["schema"], renamed);
        assert!(m["definitions"]["io.k8s.api.rbac.v1.Role"].is_object());
        assert_eq!(m["info"]["title"], "Kubernetes");
    }

    #[tokio::test]
    async fn refresh_fetches_what_changed() {
        use std::sync::Mutex;
        struct Server {
            hash: Mutex<String>,
            asked: Mutex<Vec<String>>,
        }
        impl Fetch for Server {
            async fn get(&self, path: &str, etag: Option<&str>) -> Fetched {
                self.asked.lock().unwrap().push(path.to_string());
                let h = self.hash.lock().unwrap().clone();
                match path {
                    "/openapi/v2" if etag == Some("\"v2\"") => Ok((304, Default::default(), None)),
                    "/openapi/v2" => Ok((200, br#"{"swagger":"2.0"}"#.to_vec().into(), Some("\"v2\"".into()))),
                    "/openapi/v3" => Ok((200, format!(r#"{{"paths":{{"apis/a/v1":{{"serverRelativeURL":"/openapi/v3/apis/a/v1?hash={h}"}},"apis/b/v1":{{"serverRelativeURL":"/openapi/v3/apis/b/v1?hash=B"}}}}}}"#).into_bytes().into(), None)),
                    p if p.starts_with("/openapi/v3/apis/a/v1") => Ok((200, format!("{{\"h\":\"{h}\"}}").into_bytes().into(), None)),
                    _ => Ok((404, Default::default(), None)),
                }
            }
        }
        let s = Server { hash: Mutex::new("A1".into()), asked: Mutex::new(vec![]) };
        let r = refresh(&s, &Remote::default(), |gv| gv == "apis/a/v1").await.unwrap();
        assert!(r.v2.is_some());
        assert!(r.v3["apis/a/v1"].1.is_some());
        assert!(!r.v3.contains_key("apis/b/v1"), "only what `keep` accepts");
        s.asked.lock().unwrap().clear();
        assert!(refresh(&s, &r, |gv| gv == "apis/a/v1").await.is_none(), "nothing changed");
        assert_eq!(*s.asked.lock().unwrap(), vec!["/openapi/v2", "/openapi/v3"], "no document fetched again");
        *s.hash.lock().unwrap() = "A2".into();
        let r2 = refresh(&s, &r, |gv| gv == "apis/a/v1").await.unwrap();
        assert_ne!(r2.v3["apis/a/v1"].1, r.v3["apis/a/v1"].1);
    }

    #[test]
    fn served_with_etags_hashes_and_redirects() {
        let c = build(&local(), None, &[]);
        let info = |path: &str| RequestInfo::resolve("GET", path, None).unwrap();
        let req = |accept: Option<&str>, inm: Option<&str>| {
            let mut r = RequestHeader::build("GET", b"/openapi", None).unwrap();
            if let Some(a) = accept {
                r.insert_header("Accept", a).unwrap();
            }
            if let Some(e) = inm {
                r.insert_header("If-None-Match", e).unwrap();
            }
            r
        };
        let none = Query::parse("");
        let root = serve(&c, &info("/openapi/v3"), &none, &req(None, None)).unwrap();
        let v: Value = serde_json::from_slice(&root.body).unwrap();
        let url = v["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
        let hash = url.split("hash=").nth(1).unwrap();
        let doc = serve(&c, &info("/openapi/v3/api/v1"), &none, &req(Some("application/json"), None)).unwrap();
        let etag = doc.headers.iter().find(|(k, _)| *k == "ETag").unwrap().1.clone();
        assert_eq!(format!("\"{hash}\""), etag);
        assert!(!doc.headers.iter().any(|(k, _)| *k == "Cache-Control"), "immutable only with the hash");
        assert_eq!(serve(&c, &info("/openapi/v3/api/v1"), &none, &req(None, Some(&etag))).unwrap().code, 304);
        let hashed =
            serve(&c, &info("/openapi/v3/api/v1"), &Query::parse(&format!("hash={hash}")), &req(None, None)).unwrap();
        assert!(hashed.headers.contains(&("Cache-Control", "public, immutable".into())));
        let stale = serve(&c, &info("/openapi/v3/api/v1"), &Query::parse("hash=OLD"), &req(None, None)).unwrap();
        assert_eq!(stale.code, 301);
        assert!(stale.headers.contains(&("Location", format!("/openapi/v3/api/v1?hash={hash}"))));
        assert_eq!(
            serve(&c, &info("/openapi/v2"), &none, &req(Some("application/json, */*"), None)).unwrap().code,
            200
        );
        let pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        assert_eq!(serve(&c, &info("/openapi/v2"), &none, &req(Some(pb), None)).unwrap().code, 406);
        assert!(serve(&c, &info("/openapi/v3/apis/nope/v1"), &none, &req(None, None)).is_none());
    }
}
