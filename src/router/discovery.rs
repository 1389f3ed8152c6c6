//! Discovery: `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`, merged
//! across frontdoor's own resources and the available backends, ordered as kube-aggregator
//! orders them (groups by groupPriorityMinimum, then name; versions by versionPriority, then
//! Kubernetes version order), plus aggregated discovery (apidiscovery.k8s.io v2 and v2beta1)
//! with an ETag. Backends' documents come from the availability prober's cache; every document
//! is built once per change of its sources (`Cached`) and served as bytes.

use super::version;
use super::Table;
use crate::api::ApiResource;
use crate::filters::Reply;
use pingora::http::RequestHeader;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

/// kube-apiserver's priorities for its built-in groups (controlplane's apiVersionPriorities);
/// other local groups get the CRD defaults.
fn builtin_priority(group: &str, version: &str) -> (i32, i32) {
    let g = match group {
        "" => return (18000, 1),
        "apiregistration.k8s.io" => 18000,
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "storage.k8s.io" => 16800,
        "admissionregistration.k8s.io" => 16700,
        "apiextensions.k8s.io" => 16700,
        "scheduling.k8s.io" => 16600,
        "coordination.k8s.io" => 16500,
        "node.k8s.io" => 16300,
        "discovery.k8s.io" => 16200,
        "flowcontrol.apiserver.k8s.io" => 16100,
        "audit.k8s.io" => 16000,
        _ => return (1000, 100),
    };
    (g, if version == "v1" { 15 } else { 9 })
}

/// One served group/version and its resources (APIResource JSON objects).
#[derive(Debug, Clone)]
pub struct VersionView {
    pub version: String,
    pub priority: i32,
    pub resources: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub name: String,
    pub priority: i32,
    /// In preference order.
    pub versions: Vec<VersionView>,
}

/// What discovery merges: the APIService table (available backends and their priorities)
/// and the resources frontdoor serves itself.
pub struct Sources<'a> {
    pub table: &'a Table,
    pub local: &'a [ApiResource],
    /// The group-versions of `local` no CRD made: a backend's APIService never takes these,
    /// and takes the others (as kube's autoregistration leaves an APIService it did not make).
    pub builtin: &'a super::GroupVersions,
    /// The secure port's address, as clients should use it.
    pub address: &'a str,
    /// The upstream apiserver's discovery (`--upstream-apiserver`), from its last refresh.
    pub upstream: Option<&'a [super::upstream::UpstreamGroup]>,
}

/// Every group/version served now, local and available backends, in discovery order. The
/// core group is the one named "".
pub fn groups(src: &Sources<'_>) -> Vec<GroupView> {
    let table = src.table;
    // (group, version) -> (group priority, version priority, resources)
    let mut gvs: BTreeMap<(String, String), (i32, i32, Vec<Value>)> = BTreeMap::new();
    let builtin = |g: &str, v: &str| src.builtin.get(g).is_some_and(|vs| vs.contains(v));
    let to_backend = |g: &str, v: &str| super::backend_takes(table.get(g, v).map(|b| &**b), src.builtin, g, v);
    for r in src.local.iter().filter(|r| !to_backend(&r.group, &r.version)) {
        let e = gvs.entry((r.group.clone(), r.version.clone())).or_insert_with(|| {
            let (gp, vp) = match table.get(&r.group, &r.version) {
                Some(b) => (b.spec.group_priority_minimum, b.spec.version_priority),
                None => builtin_priority(&r.group, &r.version),
            };
            (gp, vp, Vec::new())
        });
        e.2.push(serde_json::to_value(r).unwrap_or(Value::Null));
    }
    for b in
        table.services.iter().filter(|b| !b.is_local() && b.available() && !builtin(&b.spec.group, &b.spec.version))
    {
        let resources = b.state.resources.load_full();
        let list = resources.as_deref().and_then(Value::as_array).cloned().unwrap_or_default();
        gvs.insert(
            (b.spec.group.clone(), b.spec.version.clone()),
            (b.spec.group_priority_minimum, b.spec.version_priority, list),
        );
    }
    // the upstream apiserver fills in what no APIService and no local resource claims, its
    // versions in its own preference order
    for g in src.upstream.unwrap_or_default() {
        let n = g.versions.len() as i32;
        for (i, (v, resources)) in g.versions.iter().enumerate() {
            // a backend's group-version is the backend's; a local APIService's is the
            // upstream's (kube's local delegate), with the APIService's priorities
            let claimed = table.get(&g.name, v);
            if claimed.is_some_and(|b| !b.is_local()) {
                continue;
            }
            let e = gvs.entry((g.name.clone(), v.clone())).or_insert_with(|| match claimed {
                Some(b) => (b.spec.group_priority_minimum, b.spec.version_priority, Vec::new()),
                None => (builtin_priority(&g.name, v).0, 1000 - 1000 / (n + 1) * (i as i32 + 1), Vec::new()),
            });
            let named = |r: &Value| r.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let claimed: std::collections::HashSet<String> = e.2.iter().map(named).collect();
            e.2.extend(resources.iter().filter(|r| !claimed.contains(&named(r))).cloned());
        }
    }
    // the core group always serves v1, as kube-apiserver's does
    gvs.entry((String::new(), "v1".into())).or_insert_with(|| {
        let (gp, vp) = builtin_priority("", "v1");
        (gp, vp, Vec::new())
    });
    let mut by_group: BTreeMap<String, GroupView> = BTreeMap::new();
    for ((g, v), (gp, vp, resources)) in gvs {
        let e = by_group.entry(g.clone()).or_insert_with(|| GroupView { name: g, priority: gp, versions: Vec::new() });
        e.priority = e.priority.max(gp);
        e.versions.push(VersionView { version: v, priority: vp, resources });
    }
    let mut out: Vec<GroupView> = by_group.into_values().collect();
    for g in &mut out {
        g.versions.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| version::compare(&b.version, &a.version)));
    }
    out.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.name.cmp(&b.name)));
    out
}

fn group_version(g: &str, v: &str) -> String {
    if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    }
}

fn api_group(g: &GroupView) -> Value {
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(&g.name, &v.version), "version": v.version}))
        .collect();
    json!({"name": g.name, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

fn resource_list(group: &str, v: &VersionView) -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group, &v.version), "resources": v.resources})
}

/// An APIResourceList's entries in aggregated discovery's form: subresources under their
/// resource.
fn aggregated_resources(list: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let str_of = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    for r in list.iter().filter(|r| !str_of(r, "name").contains('/')) {
        let kind = json!({"group": str_of(r, "group"), "version": str_of(r, "version"), "kind": str_of(r, "kind")});
        let scope =
            if r.get("namespaced").and_then(Value::as_bool).unwrap_or(false) { "Namespaced" } else { "Cluster" };
        let mut e = json!({
            "resource": str_of(r, "name"),
            "responseKind": kind,
            "scope": scope,
            "singularResource": str_of(r, "singularName"),
            "verbs": r.get("verbs").cloned().unwrap_or(json!([])),
        });
        for k in ["shortNames", "categories"] {
            if let Some(v) = r.get(k).filter(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
                e[k] = v.clone();
            }
        }
        out.push(e);
    }
    for r in list {
        let name = str_of(r, "name");
        let Some((parent, sub)) = name.split_once('/') else {
            continue;
        };
        if let Some(p) = out.iter_mut().find(|p| p["resource"] == parent) {
            let entry = json!({
                "subresource": sub,
                "responseKind": {"group": str_of(r, "group"), "version": str_of(r, "version"), "kind": str_of(r, "kind")},
                "verbs": r.get("verbs").cloned().unwrap_or(json!([])),
            });
            match p.get_mut("subresources").and_then(Value::as_array_mut) {
                Some(a) => a.push(entry),
                None => p["subresources"] = json!([entry]),
            }
        }
    }
    out
}

fn aggregated(groups: &[GroupView], api_version: &str) -> Value {
    let items: Vec<Value> = groups
        .iter()
        .map(|g| {
            let versions: Vec<Value> = g
                .versions
                .iter()
                .map(|v| json!({"version": v.version, "resources": aggregated_resources(&v.resources), "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": g.name, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{api_version}"), "metadata": {}, "items": items})
}

/// The aggregated-discovery version the client asks for (v2 or v2beta1), honouring the
/// order of its Accept header; None for the legacy documents.
pub fn wants_aggregated(req: &RequestHeader) -> Option<&'static str> {
    let accept = req.headers.get_all("Accept").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: BTreeMap<&str, &str> =
            parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect();
        if media == "application/json"
            && params.get("g") == Some(&"apidiscovery.k8s.io")
            && params.get("as") == Some(&"APIGroupDiscoveryList")
        {
            match params.get("v") {
                Some(&"v2") => return Some("v2"),
                Some(&"v2beta1") => return Some("v2beta1"),
                _ => {}
            }
        }
        if media == "application/json" && params.is_empty() || media == "*/*" || media == "application/*" {
            return None;
        }
    }
    None
}

/// A served document: its bytes and (for aggregated discovery) its ETag.
#[derive(Debug, Clone, Default)]
struct Doc {
    body: bytes::Bytes,
    etag: String,
}

impl Doc {
    fn of(v: &Value) -> Doc {
        let body = serde_json::to_vec(v).unwrap_or_default();
        let etag = format!("\"{:x}\"", Sha256::digest(&body));
        Doc { body: body.into(), etag }
    }
}

/// Every discovery document, built once per change of the sources (the APIService table, a
/// backend's availability or resources, the upstream's discovery) and served as bytes.
/// Resources' subresources by `group/version/resource` ([`resource_key`]).
type ResourceIndex = HashMap<String, HashSet<String>>;

/// The index's key of a resource: one string hashed once per lookup, where nested maps by
/// group, version and resource hashed three (SipHash, ~250 instructions each, every request's
/// metrics labels). The slashes cannot make two resources one: a request's group, version and
/// resource are path segments, without a slash, so its key has exactly two, which only the key
/// of the same three names (with no slash in them) has.
fn resource_key(key: &mut String, group: &str, version: &str, resource: &str) {
    key.clear();
    key.reserve(group.len() + version.len() + resource.len() + 2);
    key.push_str(group);
    key.push('/');
    key.push_str(version);
    key.push('/');
    key.push_str(resource);
}

/// What a thread's lookup key keeps of its room between requests.
const KEY_ROOM: usize = 256;

#[derive(Debug, Default)]
pub struct Cached {
    /// Aggregated `/api` and `/apis`: [core v2, core v2beta1, named v2, named v2beta1].
    aggregated: [Doc; 4],
    /// Legacy documents by path: `/api`, `/apis`, `/api/v1`, `/apis/<g>`, `/apis/<g>/<v>`.
    legacy: HashMap<String, Doc>,
    /// Every resource served or routed (a down backend's as it last listed them), with its
    /// subresources, by group and version: what a request may be labelled with. Keyed with
    /// std's random hasher, not Fx: the names come from backends' discovery, and names built to
    /// collide would make every lookup slow.
    resources: ResourceIndex,
}

impl Cached {
    pub fn build(src: &Sources<'_>) -> Cached {
        let all = groups(src);
        let mut resources = ResourceIndex::default();
        let mut index = |group: &str, version: &str, list: &[Value]| {
            for name in list.iter().filter_map(|r| r["name"].as_str()) {
                let (resource, sub) = name.split_once('/').unwrap_or((name, ""));
                let mut key = String::new();
                resource_key(&mut key, group, version, resource);
                let subs = resources.entry(key).or_default();
                if !sub.is_empty() {
                    subs.insert(sub.to_string());
                }
            }
        };
        for g in &all {
            for v in &g.versions {
                index(&g.name, &v.version, &v.resources);
            }
        }
        for b in src.table.services.iter().filter(|b| !b.is_local() && !b.available()) {
            let last = b.state.resources.load_full();
            index(&b.spec.group, &b.spec.version, last.as_deref().and_then(Value::as_array).map_or(&[], |l| l));
        }
        let (core, named): (Vec<GroupView>, Vec<GroupView>) = all.into_iter().partition(|g| g.name.is_empty());
        let aggregated = [
            Doc::of(&aggregated(&core, "v2")),
            Doc::of(&aggregated(&core, "v2beta1")),
            Doc::of(&aggregated(&named, "v2")),
            Doc::of(&aggregated(&named, "v2beta1")),
        ];
        let mut legacy = std::collections::HashMap::new();
        let mut core_versions: Vec<String> =
            core.iter().flat_map(|g| g.versions.iter().map(|v| v.version.clone())).collect();
        if core_versions.is_empty() {
            core_versions.push("v1".into());
        }
        legacy.insert(
            "/api".to_string(),
            Doc::of(&json!({
                "kind": "APIVersions",
                "versions": core_versions,
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": src.address}],
            })),
        );
        let list: Vec<Value> = named.iter().map(api_group).collect();
        legacy.insert("/apis".into(), Doc::of(&json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list})));
        for g in core.iter().chain(&named) {
            if !g.name.is_empty() {
                let mut v = api_group(g);
                v["kind"] = "APIGroup".into();
                v["apiVersion"] = "v1".into();
                legacy.insert(format!("/apis/{}", g.name), Doc::of(&v));
            }
            for v in &g.versions {
                let path = if g.name.is_empty() {
                    format!("/api/{}", v.version)
                } else {
                    format!("/apis/{}/{}", g.name, v.version)
                };
                legacy.insert(path, Doc::of(&resource_list(&g.name, v)));
            }
        }
        Cached { aggregated, legacy, resources }
    }

    /// Whether the resource (with its subresource, when one is named) is served or routed.
    pub fn lists(&self, group: &str, version: &str, resource: &str, subresource: &str) -> bool {
        thread_local! {
            // the key is built here, not allocated per request
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|key| {
            resource_key(key, group, version, resource);
            let subs = self.resources.get(key.as_str());
            let listed = subs.is_some_and(|s| subresource.is_empty() || s.contains(subresource));
            // a request's long names (up to its head's size) leave no lasting room behind
            if key.capacity() > KEY_ROOM {
                *key = String::new();
            }
            listed
        })
    }

    /// Serves a discovery path, or None when `path` is not one.
    pub fn serve(&self, req: &RequestHeader, path: &str) -> Option<Reply> {
        // normalized (one leading slash, none trailing), copied only when it is not already
        let path = match path.strip_prefix('/') {
            Some(rest) if !rest.starts_with('/') && !rest.ends_with('/') => std::borrow::Cow::Borrowed(path),
            _ => std::borrow::Cow::Owned(format!("/{}", path.trim_matches('/'))),
        };
        let path = path.as_ref();
        if path == "/api" || path == "/apis" {
            if let Some(v) = wants_aggregated(req) {
                let i = (path == "/apis") as usize * 2 + (v == "v2beta1") as usize;
                return Some(aggregated_reply(req, &self.aggregated[i], v));
            }
        }
        let doc = self.legacy.get(path)?;
        Some(Reply::new(200, "application/json", doc.body.clone()))
    }
}

/// An aggregated discovery document with its ETag, or 304 when the client has it.
fn aggregated_reply(req: &RequestHeader, doc: &Doc, api_version: &str) -> Reply {
    let ctype = format!("application/json;g=apidiscovery.k8s.io;v={api_version};as=APIGroupDiscoveryList");
    let matches = req
        .headers
        .get("If-None-Match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == doc.etag));
    let reply = if matches { Reply::new(304, &ctype, Vec::new()) } else { Reply::new(200, &ctype, doc.body.clone()) };
    reply.header("ETag", doc.etag.clone()).header("Vary", "Accept")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_fills_in_what_no_one_claims() {
        use super::super::upstream::UpstreamGroup;
        let table = Table::default();
        let local = vec![ApiResource {
            group: "".into(),
            version: "v1".into(),
            name: "configmaps".into(),
            kind: "ConfigMap".into(),
            ..Default::default()
        }];
        let upstream = vec![
            UpstreamGroup {
                name: "".into(),
                versions: vec![(
                    "v1".into(),
                    vec![json!({"name": "configmaps", "kind": "Upstream"}), json!({"name": "pods", "kind": "Pod"})],
                )],
            },
            UpstreamGroup { name: "autoscaling".into(), versions: vec![("v2".into(), vec![]), ("v1".into(), vec![])] },
            UpstreamGroup { name: "stable.example.com".into(), versions: vec![("v1".into(), vec![])] },
        ];
        let src = Sources {
            table: &table,
            local: &local,
            builtin: &Default::default(),
            address: "x",
            upstream: Some(&upstream),
        };
        let all = groups(&src);
        let core = all.iter().find(|g| g.name.is_empty()).unwrap();
        let kinds: Vec<&str> = core.versions[0].resources.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["ConfigMap", "Pod"], "a local resource wins over the upstream's");
        let auto = all.iter().find(|g| g.name == "autoscaling").unwrap();
        assert_eq!(auto.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), vec!["v2", "v1"]);
        assert!(all.iter().any(|g| g.name == "stable.example.com"));

        // what a request may be labelled with: resources and their subresources as listed
        let upstream = vec![UpstreamGroup {
            name: "apps".into(),
            versions: vec![("v1".into(), vec![json!({"name": "deployments"}), json!({"name": "deployments/scale"})])],
        }];
        let cached = Cached::build(&Sources { upstream: Some(&upstream), ..src });
        assert!(cached.lists("", "v1", "configmaps", ""));
        assert!(cached.lists("apps", "v1", "deployments", ""));
        assert!(cached.lists("apps", "v1", "deployments", "scale"));
        assert!(!cached.lists("apps", "v1", "deployments", "status"));
        assert!(!cached.lists("apps", "v1", "pods", ""));
        assert!(!cached.lists("apps", "v2", "deployments", ""));
        assert!(!cached.lists("", "v1", "apps/v1/deployments", ""), "no other split of the names");
        assert!(!cached.lists("apps/v1", "deployments", "", ""));
    }

    fn req(accept: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/apis", None).unwrap();
        r.insert_header("Accept", accept).unwrap();
        r
    }

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(&req(kubectl)), Some("v2"));
        assert_eq!(
            wants_aggregated(&req("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList")),
            Some("v2beta1")
        );
        assert_eq!(wants_aggregated(&req("application/json")), None);
        assert_eq!(
            wants_aggregated(&req(
                "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )),
            None
        );
        assert_eq!(wants_aggregated(&req("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")), Some("v2"));
    }

    #[test]
    fn subresources_nest() {
        let list = vec![
            json!({"name": "flunders", "singularName": "flunder", "namespaced": true, "kind": "Flunder", "verbs": ["get", "list"], "shortNames": ["fl"]}),
            json!({"name": "flunders/status", "singularName": "", "namespaced": true, "kind": "Flunder", "verbs": ["get", "patch"]}),
        ];
        let out = aggregated_resources(&list);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["scope"], "Namespaced");
        assert_eq!(out[0]["shortNames"], json!(["fl"]));
        assert_eq!(out[0]["subresources"][0]["subresource"], "status");
        assert_eq!(out[0]["responseKind"]["kind"], "Flunder");
    }

    #[test]
    fn builtin_priorities() {
        assert!(builtin_priority("apps", "v1").0 > builtin_priority("batch", "v1").0);
        assert_eq!(builtin_priority("example.com", "v1"), (1000, 100));
    }
}
