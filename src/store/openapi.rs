//! `/openapi/v2` and `/openapi/v3` for the resources frontdoor serves itself, with kube's
//! schemas (store::schema, from k8s-openapi): each resource's paths and operations (with the
//! `fieldValidation` parameter, so kubectl leaves validation to the server) and the definitions
//! of its kind, named and tagged (`x-kubernetes-group-version-kind`) as kube names them, so
//! `kubectl explain` works. The documents are built once per set of resources; `router::openapi`
//! merges them with the upstream's and the backends' and serves them.

use super::schema::{self, ref_name};
use crate::api::ApiResource;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The custom resources' definitions (CRDs' schemas, store::crd::openapi), beside kube's own.
#[derive(Debug, Default)]
pub struct CustomSchemas {
    /// (group, version, kind, definition name)
    pub kinds: Vec<(String, String, String, String)>,
    pub definitions: Map<String, Value>,
    /// Tells one set of schemas from another (the documents' cache key).
    pub fingerprint: String,
}

/// kube's definitions and the custom ones, looked up as one.
struct Defs<'a> {
    builtin: &'a schema::Schemas,
    custom: &'a CustomSchemas,
}

impl<'a> Defs<'a> {
    fn new(custom: &'a CustomSchemas) -> Self {
        Defs { builtin: schema::get(), custom }
    }

    fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&'a str> {
        self.builtin.kind(group, version, kind).or_else(|| {
            let found = self.custom.kinds.iter().find(|(g, v, k, _)| g == group && v == version && k == kind);
            found.map(|(.., n)| n.as_str())
        })
    }

    fn definition(&self, name: &str) -> Option<&'a Value> {
        self.builtin.definition(name).or_else(|| self.custom.definitions.get(name))
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// kube's operation ids: `createCoreV1NamespacedConfigMap`, `listRbacAuthorizationV1ClusterRole`.
fn operation_id(verb: &str, r: &ApiResource, suffix: &str) -> String {
    let camel = |s: &str| -> String {
        s.split(['.', '-'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut c = p.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect()
    };
    let group = if r.group.is_empty() { "Core".to_string() } else { camel(r.group.trim_end_matches(".k8s.io")) };
    let scope = if r.namespaced && !suffix.contains("ForAllNamespaces") { "Namespaced" } else { "" };
    format!("{verb}{group}{}{scope}{}{suffix}", camel(&r.version), r.kind)
}

/// The definition names `roots` refer to, transitively.
fn reachable(defs: &Defs, roots: &[String]) -> BTreeSet<String> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(n) = ref_name(v) {
                    out.push(n.to_string());
                }
                m.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            if let Some(d) = defs.definition(&n) {
                refs(d, &mut todo);
            }
        }
    }
    seen
}

/// A `$ref` to a definition, in v2 (`#/definitions/`) or v3 (`#/components/schemas/`) form.
fn ref_to(name: &str, v3: bool) -> Value {
    let base = if v3 { "#/components/schemas/" } else { "#/definitions/" };
    json!({"$ref": format!("{base}{name}")})
}

/// A definition rewritten for OpenAPI v3: `$ref`s into components, and a `$ref` with siblings
/// (a description) wrapped in `allOf`, as kube writes them.
fn to_v3(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(n) = ref_name(v) {
                if m.len() == 1 {
                    return ref_to(n, true);
                }
                let mut out: Map<String, Value> =
                    m.iter().filter(|(k, _)| *k != "$ref").map(|(k, v)| (k.clone(), to_v3(v))).collect();
                out.insert("allOf".into(), json!([ref_to(n, true)]));
                return Value::Object(out);
            }
            Value::Object(m.iter().map(|(k, v)| (k.clone(), to_v3(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v3).collect()),
        other => other.clone(),
    }
}

/// The paths of `resources` (top-level ones; subresources are their objects' paths), for v2 or v3.
fn paths(resources: &[&ApiResource], s: &Defs, v3: bool) -> Map<String, Value> {
    let mut paths = Map::new();
    let query = |name: &str, desc: &str| {
        if v3 {
            json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string", "uniqueItems": true}})
        } else {
            json!({"name": name, "in": "query", "description": desc, "type": "string", "uniqueItems": true})
        }
    };
    let write_params = || {
        vec![
            query("dryRun", "When present, indicates that modifications should not be persisted."),
            query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
            query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn (the default) - Strict"),
        ]
    };
    for r in resources.iter().filter(|r| !r.name.contains('/')) {
        let def = s.kind(&r.group, &r.version, &r.kind);
        let body_schema = def.map(|d| ref_to(d, v3)).unwrap_or_else(|| json!({"type": "object"}));
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let ok = |code: &str| {
            let mut m = Map::new();
            for c in code.split(',') {
                let resp = if v3 {
                    json!({"description": "OK", "content": {"application/json": {"schema": body_schema}}})
                } else {
                    json!({"description": "OK", "schema": body_schema})
                };
                m.insert(c.to_string(), resp);
            }
            Value::Object(m)
        };
        let op = |verb: &str, action: &str, suffix: &str, mut params: Vec<Value>, codes: &str, body: bool| {
            let mut o = json!({
                "operationId": operation_id(verb, r, suffix),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "tags": [gv_path(&r.group, &r.version).replace(['/', '.'], "_")],
                "responses": ok(codes),
            });
            if body {
                if v3 {
                    o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": body_schema}, "application/yaml": {"schema": body_schema}}});
                } else {
                    params.push(json!({"name": "body", "in": "body", "required": true, "schema": body_schema}));
                    o["consumes"] = json!(["*/*"]);
                }
            }
            if !v3 {
                o["produces"] = json!(["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]);
                o["schemes"] = json!(["https"]);
            }
            o["parameters"] = Value::Array(params);
            o
        };
        let base = format!("/{}", gv_path(&r.group, &r.version));
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.name)
        } else {
            format!("{base}/{}", r.name)
        };
        let has = |v: &str| r.verbs.iter().any(|x| x == v);
        let mut c = Map::new();
        if has("list") {
            c.insert("get".into(), op("list", "list", "", vec![], "200", false));
        }
        if has("create") {
            c.insert("post".into(), op("create", "post", "", write_params(), "200,201,202", true));
        }
        if has("deletecollection") {
            c.insert(
                "delete".into(),
                op("deleteCollection", "deletecollection", "", vec![query("dryRun", "dry run")], "200", false),
            );
        }
        if !c.is_empty() {
            paths.insert(collection.clone(), Value::Object(c));
        }
        let mut item = Map::new();
        if has("get") {
            item.insert("get".into(), op("read", "get", "", vec![], "200", false));
        }
        if has("update") {
            item.insert("put".into(), op("replace", "put", "", write_params(), "200,201", true));
        }
        if has("patch") {
            let mut p = write_params();
            p.push(query("force", "Force is going to \"force\" Apply requests."));
            let mut o = op("patch", "patch", "", p, "200,201", false);
            let patch_types = [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ];
            if v3 {
                let content: Map<String, Value> =
                    patch_types.iter().map(|t| (t.to_string(), json!({"schema": {"type": "object"}}))).collect();
                o["requestBody"] = json!({"required": true, "content": content});
            } else {
                o["consumes"] = json!(patch_types);
                o["parameters"]
                    .as_array_mut()
                    .expect("array")
                    .push(json!({"name": "body", "in": "body", "required": true, "schema": {"type": "object"}}));
            }
            item.insert("patch".into(), o);
        }
        if has("delete") {
            item.insert(
                "delete".into(),
                op("delete", "delete", "", vec![query("dryRun", "dry run")], "200,202", false),
            );
        }
        if !item.is_empty() {
            paths.insert(format!("{collection}/{{name}}"), Value::Object(item));
        }
        if r.namespaced && has("list") {
            paths.insert(
                format!("{base}/{}", r.name),
                json!({"get": op("list", "list", "ForAllNamespaces", vec![], "200", false)}),
            );
        }
    }
    paths
}

/// The definitions `resources`' kinds need (with the meta types every path refers to).
fn definitions(resources: &[&ApiResource], s: &Defs) -> BTreeSet<String> {
    let mut roots: Vec<String> =
        resources.iter().filter_map(|r| s.kind(&r.group, &r.version, &r.kind)).map(String::from).collect();
    roots.push("io.k8s.apimachinery.pkg.apis.meta.v1.Status".into());
    roots.push("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into());
    reachable(s, &roots)
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": crate::endpoints::version::info().git_version})
}

/// The whole swagger 2.0 document of `resources` (kube's `/openapi/v2`).
pub fn v2_document(resources: &[ApiResource], custom: &CustomSchemas) -> Value {
    let all: Vec<&ApiResource> = resources.iter().collect();
    let s = &Defs::new(custom);
    let defs: Map<String, Value> =
        definitions(&all, s).into_iter().filter_map(|n| s.definition(&n).map(|d| (n.clone(), d.clone()))).collect();
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths(&all, s, false),
        "definitions": defs,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}},
        "security": [{"BearerToken": []}],
    })
}

/// One OpenAPI v3 document per group-version of `resources`: (`api/v1` or `apis/G/V`, document).
pub fn v3_documents(resources: &[ApiResource], custom: &CustomSchemas) -> Vec<(String, Value)> {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for r in resources {
        if !gvs.contains(&(r.group.clone(), r.version.clone())) {
            gvs.push((r.group.clone(), r.version.clone()));
        }
    }
    let s = &Defs::new(custom);
    gvs.into_iter()
        .map(|(g, v)| {
            let here: Vec<&ApiResource> = resources.iter().filter(|r| r.group == g && r.version == v).collect();
            let schemas: Map<String, Value> = definitions(&here, s)
                .into_iter()
                .filter_map(|n| s.definition(&n).map(|d| (n.clone(), to_v3(d))))
                .collect();
            let doc = json!({
                "openapi": "3.0.0",
                "info": info(),
                "paths": paths(&here, s, true),
                "components": {"schemas": schemas, "securitySchemes": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}}},
            });
            (gv_path(&g, &v), doc)
        })
        .collect()
}

/// A document ready to send: its bytes and ETag (a hash of them, kube's form).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Served {
    pub body: bytes::Bytes,
    /// Unquoted.
    pub etag: String,
}

impl Served {
    pub fn new(v: &Value) -> Self {
        Self::from_bytes(serde_json::to_vec(v).unwrap_or_default().into())
    }

    pub fn from_bytes(body: bytes::Bytes) -> Self {
        use sha2::{Digest, Sha512};
        let etag = Sha512::digest(&body).iter().take(32).map(|b| format!("{b:02X}")).collect();
        Served { body, etag }
    }
}

/// Every document for one set of resources, as values (for merging with other servers')
/// and ready to send.
pub struct Documents {
    key: Key,
    pub v2_value: Arc<Value>,
    pub v2: Served,
    /// ("api/v1" or "apis/G/V", document, its bytes).
    pub v3: Vec<(String, Arc<Value>, Served)>,
}

/// The resources listed, and the custom resources' schemas' fingerprint.
type Key = (Vec<(String, String, String, String, Vec<String>)>, String);

fn build(resources: &[ApiResource], custom: &CustomSchemas, key: Key) -> Documents {
    let v3: Vec<(String, Arc<Value>, Served)> = v3_documents(resources, custom)
        .into_iter()
        .map(|(p, d)| {
            let served = Served::new(&d);
            (p, Arc::new(d), served)
        })
        .collect();
    let v2 = v2_document(resources, custom);
    Documents { key, v2: Served::new(&v2), v2_value: Arc::new(v2), v3 }
}

/// The documents for `resources` and the custom resources' schemas, rebuilt only when they
/// change.
pub fn documents(resources: &[ApiResource], custom: &CustomSchemas) -> Arc<Documents> {
    static CACHE: Mutex<Option<Arc<Documents>>> = Mutex::new(None);
    let listed: Vec<_> = resources
        .iter()
        .map(|r| (r.group.clone(), r.version.clone(), r.name.clone(), r.kind.clone(), r.verbs.clone()))
        .collect();
    let key = (listed, custom.fingerprint.clone());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = cache.as_ref().filter(|d| d.key == key) {
        return d.clone();
    }
    let d = Arc::new(build(resources, custom, key));
    *cache = Some(d.clone());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources() -> Vec<ApiResource> {
        crate::store::resources::defaults().iter().flat_map(|d| d.api_resources()).collect()
    }

    #[test]
    fn v3_documents_carry_kubes_schemas() {
        let docs = v3_documents(&resources(), &CustomSchemas::default());
        let (_, core) = docs.iter().find(|(p, _)| p == "api/v1").unwrap();
        let patch = &core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        let cm = &core["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(cm["x-kubernetes-group-version-kind"][0]["kind"], "ConfigMap");
        assert_eq!(cm["properties"]["data"]["additionalProperties"]["type"], "string");
        assert_eq!(
            cm["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        let meta = &core["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
        assert_eq!(meta["properties"]["finalizers"]["x-kubernetes-list-type"], "set");
        // only what this group-version needs
        assert!(core["components"]["schemas"].get("io.k8s.api.rbac.v1.Role").is_none());
        assert!(docs.iter().any(|(p, _)| p == "apis/rbac.authorization.k8s.io/v1"));
    }

    #[test]
    fn v2_is_one_swagger_document() {
        let d = v2_document(&resources(), &CustomSchemas::default());
        assert_eq!(d["swagger"], "2.0");
        assert_eq!(
            d["definitions"]["io.k8s.api.rbac.v1.Role"]["x-kubernetes-group-version-kind"][0]["group"],
            "rbac.authorization.k8s.io"
        );
        let post = &d["paths"]["/api/v1/namespaces/{namespace}/secrets"]["post"];
        assert_eq!(post["operationId"], "createCoreV1NamespacedSecret");
        assert!(post["parameters"].as_array().unwrap().iter().any(|p| p["in"] == "body"));
        let s = d.to_string();
        assert!(!s.contains("#/components/"), "v2 refers to definitions only");
    }
}
