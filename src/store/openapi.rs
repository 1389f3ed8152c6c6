//! A minimal OpenAPI v3 document per group-version of the store's resources
//! (`/openapi/v3`, `/openapi/v3/<api|apis/group>/<version>`): it declares each resource's
//! endpoints and their `fieldValidation` parameter, so kubectl leaves validation to the
//! server (as against kube) instead of needing the full schemas. No schemas are published.

use crate::api::ApiResource;
use crate::filters::Reply;
use crate::request_info::RequestInfo;
use serde_json::{json, Map, Value};

/// Answers a GET under `/openapi/v3` for the locally served resources; None otherwise.
pub fn serve(info: &RequestInfo, local: &[ApiResource]) -> Option<Reply> {
    // checked first: every non-resource GET passes here (/version, /healthz, ...)
    if info.is_resource_request || !(info.verb == "get" || info.verb == "head") || !info.path.starts_with("/openapi/v3")
    {
        return None;
    }
    let doc = document(local, &info.path)?;
    Some(Reply::json(200, &doc))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).iter().take(16).map(|b| format!("{b:02X}")).collect()
}

/// The document for one group-version.
fn gv_document(resources: &[ApiResource], group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    for r in resources.iter().filter(|r| r.group == group && r.version == version && !r.name.contains('/')) {
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let base = format!("/{}", gv_path(group, version));
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.name)
        } else {
            format!("{base}/{}", r.name)
        };
        let op = |action: &str, params: Vec<Value>| {
            json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                   "parameters": params, "responses": {"200": {"description": "OK"}}})
        };
        paths.insert(
            collection.clone(),
            json!({"get": op("list", vec![]), "post": op("post", vec![query("dryRun"), query("fieldManager"), query("fieldValidation")])}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": op("get", vec![]),
                "put": op("put", vec![query("dryRun"), query("fieldManager"), query("fieldValidation")]),
                "patch": op("patch", vec![query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")]),
                "delete": op("delete", vec![query("dryRun")]),
            }),
        );
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1"}, "paths": paths, "components": {"schemas": {}}})
}

/// The document at `path` (`/openapi/v3` or a group-version under it), if the store has it.
pub fn document(resources: &[ApiResource], path: &str) -> Option<Value> {
    let rest = path.trim_end_matches('/').strip_prefix("/openapi/v3")?;
    if rest.is_empty() {
        let mut paths = Map::new();
        let mut seen: Vec<(String, String)> = Vec::new();
        for r in resources {
            if !seen.contains(&(r.group.clone(), r.version.clone())) {
                seen.push((r.group.clone(), r.version.clone()));
            }
        }
        for (g, v) in seen {
            let p = gv_path(&g, &v);
            let h = hash(&gv_document(resources, &g, &v).to_string());
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}));
        }
        return Some(json!({"paths": paths}));
    }
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (g, v) = match parts.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    resources.iter().any(|r| r.group == g && r.version == v).then(|| gv_document(resources, g, v))
}

/// Every group-version document of `resources`: ("api/v1" or "apis/G/V", document) pairs.
pub fn v3_documents(resources: &[ApiResource]) -> Vec<(String, Value)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for r in resources {
        if !seen.contains(&(r.group.clone(), r.version.clone())) {
            seen.push((r.group.clone(), r.version.clone()));
        }
    }
    seen.into_iter().map(|(g, v)| (gv_path(&g, &v), gv_document(resources, &g, &v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_group_version() {
        let rs: Vec<ApiResource> = crate::store::resources::defaults().iter().flat_map(|d| d.api_resources()).collect();
        let root = document(&rs, "/openapi/v3").unwrap();
        assert!(root["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/api/v1?hash="));
        let core = document(&rs, "/openapi/v3/api/v1").unwrap();
        let patch = &core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(document(&rs, "/openapi/v3/apis/nope/v1").is_none());
    }
}
